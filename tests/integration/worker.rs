//! A worker process runs a job end to end: PostgreSQL row → Redis → worker → PostgreSQL.

use std::time::Duration;

use catalytic_db::ids::JobId;
use catalytic_db::jobs::NewJob;
use catalytic_jobs::QueueName;
use catalytic_tests::{TestApp, eventually};
use serde_json::json;

/// Commits a `system.ping` job row on the lattice queue (not pushed).
async fn insert_ping(
    pool: &catalytic_db::Pool,
    params: serde_json::Value,
    request_id: Option<&str>,
) -> JobId {
    let id = JobId::generate();
    let mut conn = pool.get().await.unwrap();
    catalytic_db::jobs::insert(
        &mut conn,
        NewJob {
            id,
            tenant_id: None,
            lattice_id: None,
            queue: "lattice",
            kind: "system.ping",
            params,
            max_attempts: 3,
            idempotency_key: None,
            request_hash: None,
            request_id,
            created_by: None,
        },
    )
    .await
    .unwrap();
    id
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_processes_a_job_end_to_end_and_records_it_in_postgres() {
    let app = TestApp::spawn().await;
    let pool = app.pool();
    let id = insert_ping(&pool, json!({"hello": "world"}), Some("req-e2e")).await;
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

#[tokio::test(flavor = "multi_thread")]
async fn the_sweeper_pushes_a_queued_row_whose_push_never_reached_redis() {
    let app = TestApp::spawn().await;
    let pool = app.pool();
    let id = insert_ping(&pool, json!({"swept": true}), None).await;
    // Committed a minute ago, never pushed: what a crash between commit and push leaves.
    catalytic_db::provision::execute_raw(
        &app.db.url,
        &format!("UPDATE jobs SET created_at = now() - interval '1 minute', enqueued_at = NULL WHERE id = '{id}'"),
    )
    .await
    .unwrap();
    let worker = app.spawn_worker("lattice");
    let job = eventually(Duration::from_secs(40), "the swept job to succeed", || {
        let pool = pool.clone();
        async move {
            let mut conn = pool.get().await.ok()?;
            let job = catalytic_db::jobs::get_any(&mut conn, id).await.ok()?;
            (job.status == "succeeded").then_some(job)
        }
    })
    .await;
    assert_eq!(job.result.unwrap()["echo"]["swept"], true);
    assert_eq!(job.attempts, 1, "pushed once, run once");
    worker.terminate().await;
    drop(pool);
    app.cleanup().await;
}

/// A Redis server of the test's own, so restarting it disturbs no other test.
struct OwnRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    fn start(port: u16, dir: std::path::PathBuf) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let child = std::process::Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
            ])
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server");
        let me = Self {
            port,
            child: Some(child),
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        me
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_restarted_under_load_loses_no_accepted_job() {
    let port = 20000 + (std::process::id() % 20000) as u16;
    let dir = std::env::temp_dir().join(format!("catalytic-redis-{}", uuid::Uuid::new_v4()));
    let mut redis = OwnRedis::start(port, dir.clone());
    let url = redis.url();
    let app = TestApp::spawn_with(|e| {
        e.insert("REDIS_URL", url.clone());
    })
    .await;
    let owner = app.tenant().await;
    app.set_plan(&owner.tenant_id, "enterprise").await;
    let l: serde_json::Value = app
        .post(
            "/api/lattices",
            &owner.access,
            json!({"name": "r", "dimensions": 2, "size": 20}),
        )
        .await
        .json()
        .await
        .unwrap();
    let lid = l["id"].as_str().unwrap().to_owned();
    let worker = app.spawn_worker("lattice");
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..60 {
        if i == 20 {
            redis.stop();
        }
        if i == 40 {
            redis = OwnRedis::start(port, dir.clone());
        }
        let resp = app
            .post(
                &format!("/api/lattices/{lid}/jobs"),
                &owner.access,
                json!({"operation": "statistics"}),
            )
            .await;
        match resp.status().as_u16() {
            202 => accepted.push(
                resp.json::<serde_json::Value>().await.unwrap()["job_id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ),
            503 => refused += 1,
            other => panic!(
                "unexpected {other}: {}",
                resp.text().await.unwrap_or_default()
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        refused > 0,
        "requests during the outage are refused with 503, not accepted blindly"
    );
    assert!(accepted.len() >= 40, "{} accepted", accepted.len());
    for job in &accepted {
        let done = eventually(
            Duration::from_secs(90),
            "every accepted job to finish",
            || async {
                let b: serde_json::Value = app
                    .get(&format!("/api/jobs/{job}?wait=5"), &owner.access)
                    .await
                    .json()
                    .await
                    .ok()?;
                (b["status"] == "succeeded").then_some(b)
            },
        )
        .await;
        assert_eq!(done["result"]["vertices"], 400);
    }
    worker.terminate().await;
    app.cleanup().await;
    drop(redis);
    let _ = std::fs::remove_dir_all(dir);
}

async fn job(pool: &catalytic_db::Pool, id: JobId) -> catalytic_db::jobs::Job {
    let mut conn = pool.get().await.unwrap();
    catalytic_db::jobs::get_any(&mut conn, id).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_whose_outcome_cannot_be_written_on_its_last_attempt_ends_failed_not_running() {
    let app = TestApp::spawn().await;
    let pool = app.pool();
    // PostgreSQL refuses every `succeeded` write of this database: each attempt runs, then
    // fails to record its outcome, and the last one is dead-lettered by the queue.
    catalytic_db::provision::execute_raw(
        &app.db.url,
        "CREATE FUNCTION refuse_success() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'test: the outcome cannot be written'; END $$",
    )
    .await
    .unwrap();
    catalytic_db::provision::execute_raw(
        &app.db.url,
        "CREATE TRIGGER refuse_success BEFORE UPDATE ON jobs FOR EACH ROW \
         WHEN (NEW.status = 'succeeded') EXECUTE FUNCTION refuse_success()",
    )
    .await
    .unwrap();
    let id = insert_ping(&pool, json!({}), None).await;
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
    let done = eventually(Duration::from_secs(40), "the job to end failed", || {
        let pool = pool.clone();
        async move {
            let mut conn = pool.get().await.ok()?;
            let job = catalytic_db::jobs::get_any(&mut conn, id).await.ok()?;
            (job.status != "running" && job.status != "queued").then_some(job)
        }
    })
    .await;
    assert_eq!(done.status, "failed", "{done:?}");
    assert_eq!(done.attempts, 3, "every attempt of the policy ran");
    // A database error is stored as the generic internal message; PostgreSQL's own text
    // (here the trigger's) stays in the worker's log.
    assert_eq!(
        done.error.as_deref(),
        Some("an internal error occurred; it has been logged"),
        "{done:?}"
    );
    assert!(done.finished_at.is_some());
    let stats = client.stats("lattice").await.unwrap();
    assert_eq!(stats.dead, 1);
    worker.terminate().await;
    drop(pool);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sweeper_settles_jobs_left_running_past_their_timeout_by_the_retry_policy() {
    let app = TestApp::spawn().await;
    let pool = app.pool();
    let spent = insert_ping(&pool, json!({"which": "spent"}), None).await;
    let retried = insert_ping(&pool, json!({"which": "retried"}), None).await;
    let recent = insert_ping(&pool, json!({"which": "recent"}), None).await;
    // Left running by attempts that recorded nothing, and whose dead-letter reports were
    // lost too: the lattice queue's timeout is an hour, the margin 10 minutes.
    for (id, attempts, age) in [
        (spent, 3, "71 minutes"),
        (retried, 1, "71 minutes"),
        (recent, 1, "69 minutes"),
    ] {
        catalytic_db::provision::execute_raw(
            &app.db.url,
            &format!(
                "UPDATE jobs SET status = 'running', attempts = {attempts}, \
                 created_at = now() - interval '2 hours', enqueued_at = now() - interval '2 hours', \
                 started_at = now() - interval '{age}', updated_at = now() - interval '{age}' \
                 WHERE id = '{id}'"
            ),
        )
        .await
        .unwrap();
    }
    let ctx = app.handler_context();
    let pushed = catalytic_jobs::sweep_stale(&ctx, catalytic_jobs::sweeper::STALE_AFTER)
        .await
        .unwrap();
    assert_eq!(
        pushed, 1,
        "only the job with attempts left goes back on the queue"
    );

    let spent_job = job(&pool, spent).await;
    assert_eq!(spent_job.status, "failed", "no attempt left: failed");
    assert!(spent_job.finished_at.is_some());
    assert!(
        spent_job
            .error
            .as_deref()
            .is_some_and(|e| e.contains("recorded no outcome")),
        "{:?}",
        spent_job.error
    );
    assert_eq!(job(&pool, retried).await.status, "queued");
    assert_eq!(
        job(&pool, recent).await.status,
        "running",
        "within its timeout plus the margin an attempt may still be running"
    );
    let stats = ctx.queue.stats("lattice").await.unwrap();
    assert_eq!(stats.waiting, 1);

    // The re-pushed job runs its remaining attempt.
    let worker = app.spawn_worker("lattice");
    let done = eventually(
        Duration::from_secs(30),
        "the re-queued job to succeed",
        || {
            let pool = pool.clone();
            async move {
                let mut conn = pool.get().await.ok()?;
                let job = catalytic_db::jobs::get_any(&mut conn, retried).await.ok()?;
                (job.status == "succeeded").then_some(job)
            }
        },
    )
    .await;
    assert_eq!(done.attempts, 2);
    assert_eq!(done.result.unwrap()["echo"]["which"], "retried");
    assert_eq!(job(&pool, spent).await.status, "failed");
    worker.terminate().await;
    drop(pool);
    app.cleanup().await;
}

/// Commits a queued `system.ping` job of `tenant` (not pushed).
async fn insert_tenant_ping(pool: &catalytic_db::Pool, tenant: &str) -> JobId {
    let id = JobId::generate();
    let mut conn = pool.get().await.unwrap();
    catalytic_db::jobs::insert(
        &mut conn,
        NewJob {
            id,
            tenant_id: Some(tenant.parse().unwrap()),
            lattice_id: None,
            queue: "lattice",
            kind: "system.ping",
            params: json!({}),
            max_attempts: 3,
            idempotency_key: None,
            request_hash: None,
            request_id: None,
            created_by: None,
        },
    )
    .await
    .unwrap();
    id
}

/// A client long-polling the job (`?wait=20`): its answer and how long it waited.
fn long_poll(
    app: &TestApp,
    token: &str,
    id: JobId,
) -> tokio::task::JoinHandle<(serde_json::Value, Duration)> {
    let client = app.client.clone();
    let url = app.url(&format!("/api/jobs/{id}?wait=20"));
    let token = token.to_owned();
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let b = client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap();
        (b, started.elapsed())
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_accepted_while_the_job_runs_wins_over_its_result_and_wakes_waiters() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    let pool = app.pool();
    let id = insert_tenant_ping(&pool, &owner.tenant_id).await;
    // The client's cancel is accepted (202) just after the worker claimed the job, and the
    // work finishes before it looks for a cancel again.
    for sql in [
        "CREATE FUNCTION cancel_on_start() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN NEW.cancel_requested := true; RETURN NEW; END $$",
        "CREATE TRIGGER cancel_on_start BEFORE UPDATE ON jobs FOR EACH ROW \
         WHEN (OLD.status = 'queued' AND NEW.status = 'running') EXECUTE FUNCTION cancel_on_start()",
    ] {
        catalytic_db::provision::execute_raw(&app.db.url, sql)
            .await
            .unwrap();
    }
    let waiter = long_poll(&app, &owner.access, id);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ctx = app.handler_context();
    catalytic_jobs::handle(
        &ctx,
        catalytic_jobs::Envelope::for_job(id.as_uuid(), "system.ping", None),
        1,
        false,
    )
    .await
    .unwrap();
    let done = job(&pool, id).await;
    assert_eq!(done.status, "cancelled", "{done:?}");
    assert!(done.result.is_none(), "{done:?}");
    let (b, waited) = waiter.await.unwrap();
    assert_eq!(b["status"], "cancelled", "{b}");
    assert!(
        waited < Duration::from_secs(10),
        "woken, not timed out: {waited:?}"
    );
    drop(pool);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_that_settles_a_requested_cancel_wakes_waiters() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    let pool = app.pool();
    let id = insert_tenant_ping(&pool, &owner.tenant_id).await;
    // Cancelled (202) while running, then its worker died: the next delivery settles it.
    catalytic_db::provision::execute_raw(
        &app.db.url,
        &format!(
            "UPDATE jobs SET status = 'running', attempts = 1, cancel_requested = true WHERE id = '{id}'"
        ),
    )
    .await
    .unwrap();
    let waiter = long_poll(&app, &owner.access, id);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ctx = app.handler_context();
    catalytic_jobs::handle(
        &ctx,
        catalytic_jobs::Envelope::for_job(id.as_uuid(), "system.ping", None),
        2,
        false,
    )
    .await
    .unwrap();
    assert_eq!(job(&pool, id).await.status, "cancelled");
    let (b, waited) = waiter.await.unwrap();
    assert_eq!(b["status"], "cancelled", "{b}");
    assert!(
        waited < Duration::from_secs(10),
        "woken, not timed out: {waited:?}"
    );
    drop(pool);
    app.cleanup().await;
}
