//! `system.ping`: a diagnostics job operators submit to check the whole path (API →
//! PostgreSQL → Redis → worker → PostgreSQL). It echoes its params and names the worker.

use catalytic_db::jobs::Job;

use crate::JobError;
use crate::handler::{JobHandle, Outcome};

pub const PING: &str = "system.ping";

pub async fn ping(handle: &JobHandle, job: &Job) -> Result<Outcome, JobError> {
    handle.set_progress(100);
    Ok(Outcome::Done(serde_json::json!({
        "pong": true,
        "echo": job.params,
        "attempt": handle.attempt,
        "worker": crate::queue::worker_identity(),
    })))
}
