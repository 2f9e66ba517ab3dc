//! Job state notifications over Redis pub/sub: the API's long-poll (`?wait=`) subscribes
//! to a job's channel and wakes when the worker publishes a terminal state.

use uuid::Uuid;

use crate::queue::QueueClient;

/// The channel of one job's state changes.
pub fn job_channel(prefix: &str, job_id: Uuid) -> String {
    format!("{prefix}job-events:{job_id}")
}

/// Publishes `status` on the job's channel; failures only cost a waiting client its
/// early wake-up (it still sees the state when its wait ends), so they are logged.
pub async fn publish_status(queue: &QueueClient, job_id: Uuid, status: &str) {
    let channel = job_channel(queue.prefix(), job_id);
    let mut conn = queue.connection();
    if let Err(e) = redis::cmd("PUBLISH")
        .arg(&channel)
        .arg(status)
        .query_async::<i64>(&mut conn)
        .await
    {
        tracing::warn!(job.id = %job_id, error = %e, "could not publish job status");
    }
}
