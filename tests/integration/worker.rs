//! A worker process runs a job end to end: PostgreSQL row → Redis → worker → PostgreSQL.

use std::time::Duration;

use catalytic_db::ids::JobId;
use catalytic_db::jobs::NewJob;
use catalytic_jobs::QueueName;
use catalytic_tests::{TestApp, eventually};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_processes_a_job_end_to_end_and_records_it_in_postgres() {
    let app = TestApp::spawn().await;
    let pool = app.pool();
    let id = JobId::generate();
    {
        let mut conn = pool.get().await.unwrap();
        catalytic_db::jobs::insert(
            &mut conn,
            NewJob {
                id,
                tenant_id: None,
                lattice_id: None,
                queue: "lattice",
                kind: "system.ping",
                params: json!({"hello": "world"}),
                max_attempts: 3,
                idempotency_key: None,
                request_hash: None,
                request_id: Some("req-e2e"),
                created_by: None,
            },
        )
        .await
        .unwrap();
    }
    let client = catalytic_jobs::queue::QueueClient::new(&app.redis_url, &app.prefix).unwrap();
    catalytic_jobs::enqueue::push_job(
        &client,
        QueueName::Lattice,
        id.as_uuid(),
        "system.ping",
        None,
    )
    .await
    .unwrap();
    let worker = app.spawn_worker("lattice");
    let job = eventually(Duration::from_secs(30), "the job to succeed", || {
        let pool = pool.clone();
        async move {
            let mut conn = pool.get().await.ok()?;
            let job = catalytic_db::jobs::get_any(&mut conn, id).await.ok()?;
            (job.status == "succeeded").then_some(job)
        }
    })
    .await;
    let result = job.result.unwrap();
    assert_eq!(result["pong"], true);
    assert_eq!(result["echo"]["hello"], "world");
    assert_eq!(job.attempts, 1);
    assert_eq!(job.progress, 100);
    assert!(job.started_at.is_some() && job.finished_at.is_some());
    let status = worker.terminate().await;
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0");
    drop(pool);
    app.cleanup().await;
}
