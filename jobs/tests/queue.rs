//! The job queue against a real Redis (`REDIS_URL`, default redis://127.0.0.1:6379).
//!
//! Every test uses its own random key prefix, so tests run in parallel and never touch
//! anyone else's keys; each deletes its keys at the end.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    str::FromStr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use apalis::prelude::{
    AbortError, BoxDynError, TaskBuilder, TaskSink, WorkerBuilder, WorkerBuilderExt,
};
use apalis_cron::{CronScheduler, Tick};
use catalytic_jobs::{
    RetryPolicy,
    queue::{
        CRON_TICK_TTL, ConsumerConfig, DeadLetterHook, JobMeta, PushOptions, Pushed, QueueClient,
        RedisStreamBackend, cron_dedupe_key,
    },
};
use futures::future::BoxFuture;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::{sync::oneshot, task::JoinHandle};

// ---------------------------------------------------------------- harness

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct TestJob {
    n: u64,
}

const QUEUE: &str = "q";

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn policy(max_attempts: u32, base_ms: u64, cap_ms: u64) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        backoff_base: Duration::from_millis(base_ms),
        backoff_cap: Duration::from_millis(cap_ms),
        jitter: true,
    }
}

/// A test's own corner of Redis.
struct Harness {
    prefix: String,
    client: QueueClient,
}

impl Harness {
    async fn new() -> Self {
        Self::with_url(&redis_url()).await
    }

    async fn with_url(url: &str) -> Self {
        let prefix = format!("test-{:016x}:", rand::rng().random::<u64>());
        let client = QueueClient::connect(url, &prefix)
            .await
            .expect("Redis is reachable at REDIS_URL");
        Self { prefix, client }
    }

    fn config(&self, policy: RetryPolicy) -> ConsumerConfig {
        ConsumerConfig::new(QUEUE, policy)
    }

    fn backend(&self, config: ConsumerConfig) -> RedisStreamBackend<TestJob> {
        RedisStreamBackend::new(self.client.clone(), config)
    }

    async fn push(&self, n: u64) -> Pushed {
        self.push_with(n, PushOptions::default()).await
    }

    async fn push_with(&self, n: u64, options: PushOptions) -> Pushed {
        self.client
            .push(QUEUE, &TestJob { n }, options)
            .await
            .expect("push")
    }

    /// Reads up to `count` entries as consumer `name` and never acknowledges them: a
    /// worker that died holding jobs.
    async fn ghost_read(&self, name: &str, count: usize) -> Vec<String> {
        self.client.ensure_group(QUEUE).await.expect("group");
        let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(catalytic_jobs::queue::CONSUMER_GROUP)
            .arg(name)
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS")
            .arg(self.client.keys(QUEUE).stream())
            .arg(">")
            .query_async(&mut self.client.connection())
            .await
            .expect("ghost read");
        reply
            .keys
            .into_iter()
            .flat_map(|k| k.ids)
            .map(|id| id.id)
            .collect()
    }

    async fn cleanup(self) {
        let mut conn = self.client.connection();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{{{}*", self.prefix))
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<()> =
                redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
        }
    }
}

type Handler =
    Arc<dyn Fn(TestJob, JobMeta) -> BoxFuture<'static, Result<(), BoxDynError>> + Send + Sync>;

fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(TestJob, JobMeta) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxDynError>> + Send + 'static,
{
    Arc::new(move |job, meta| Box::pin(f(job, meta)))
}

/// A worker running in the background until stopped.
struct Running {
    stop: oneshot::Sender<()>,
    join: JoinHandle<Result<(), apalis::prelude::WorkerError>>,
}

impl Running {
    /// Graceful stop: in-flight jobs finish, unstarted entries are handed back.
    async fn stop(self) {
        let _ = self.stop.send(());
        let result = tokio::time::timeout(Duration::from_secs(15), self.join)
            .await
            .expect("worker stops within 15 s")
            .expect("worker task");
        result.expect("worker ends cleanly");
    }

    /// Like a SIGKILL: the worker's futures are dropped, nothing is settled or handed back.
    fn kill(self) {
        self.join.abort();
    }
}

fn spawn_worker(
    backend: RedisStreamBackend<TestJob>,
    concurrency: usize,
    handler: Handler,
) -> Running {
    let worker = WorkerBuilder::new(backend.consumer().to_owned())
        .backend(backend)
        .concurrency(concurrency)
        .build(move |job: TestJob, meta: JobMeta| {
            let handler = handler.clone();
            async move { handler(job, meta).await }
        });
    let (stop, stopped) = oneshot::channel::<()>();
    let join = tokio::spawn(worker.run_until(async move {
        let _ = stopped.await;
        Ok::<(), std::io::Error>(())
    }));
    Running { stop, join }
}

async fn eventually(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One run: (job, attempt, final?, start time, last error).
type Run = (u64, u32, bool, Instant, Option<String>);

/// Records every run.
#[derive(Default, Clone)]
struct Runs(Arc<Mutex<Vec<Run>>>);

impl Runs {
    fn record(&self, job: &TestJob, meta: &JobMeta) {
        self.0.lock().unwrap().push((
            job.n,
            meta.attempt,
            meta.is_final_attempt(),
            Instant::now(),
            meta.last_error.clone(),
        ));
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    fn all(&self) -> Vec<Run> {
        self.0.lock().unwrap().clone()
    }
    fn jobs(&self) -> Vec<u64> {
        self.all().into_iter().map(|r| r.0).collect()
    }
}

fn recording(runs: &Runs) -> Handler {
    let runs = runs.clone();
    handler(move |job, meta| {
        runs.record(&job, &meta);
        async { Ok(()) }
    })
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn an_idle_worker_starts_a_new_job_within_milliseconds() {
    let h = Harness::new().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let worker = spawn_worker(
        h.backend(h.config(policy(3, 100, 1_000))),
        2,
        handler(move |_, _| {
            let _ = tx.send(Instant::now());
            async { Ok(()) }
        }),
    );
    // Let the worker connect and block on XREADGROUP: the queue is idle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut latencies = Vec::new();
    for n in 0..5 {
        let pushed_at = Instant::now();
        h.push(n).await;
        let started = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("job starts")
            .expect("handler ran");
        latencies.push(started - pushed_at);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("pickup from idle: {latencies:?}");
    // A sanity bound only; the benchmark reports the real figures.
    assert!(
        latencies.iter().all(|l| *l < Duration::from_millis(500)),
        "{latencies:?}"
    );
    worker.stop().await;
    h.cleanup().await;
}

#[tokio::test]
async fn jobs_of_one_queue_run_in_the_order_they_were_pushed() {
    let h = Harness::new().await;
    for n in 0..30 {
        h.push(n).await;
    }
    let runs = Runs::default();
    let worker = spawn_worker(
        h.backend(h.config(policy(3, 100, 1_000))),
        1,
        recording(&runs),
    );
    eventually("30 jobs", Duration::from_secs(10), || runs.len() == 30).await;
    assert_eq!(runs.jobs(), (0..30).collect::<Vec<_>>());
    worker.stop().await;
    h.cleanup().await;
}

#[tokio::test]
async fn a_worker_never_runs_more_jobs_at_once_than_its_concurrency() {
    let h = Harness::new().await;
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let (r, p, d) = (running.clone(), peak.clone(), done.clone());
    let config = h.config(policy(3, 100, 1_000)).with_concurrency(3);
    let worker = spawn_worker(
        h.backend(config),
        3,
        handler(move |_, _| {
            let (r, p, d) = (r.clone(), p.clone(), d.clone());
            async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                r.fetch_sub(1, Ordering::SeqCst);
                d.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        }),
    );
    for n in 0..15 {
        h.push(n).await;
    }
    eventually("15 jobs", Duration::from_secs(10), || {
        done.load(Ordering::SeqCst) == 15
    })
    .await;
    assert_eq!(peak.load(Ordering::SeqCst), 3);
    // Nothing is left pending: every entry was read only when a slot was free.
    let stats = h.client.stats(QUEUE).await.unwrap();
    assert_eq!((stats.waiting, stats.pending), (0, 0));
    worker.stop().await;
    h.cleanup().await;
}

#[tokio::test]
async fn a_failing_job_is_attempted_exactly_max_attempts_times_with_backoff_between() {
    let h = Harness::new().await;
    // Without jitter the spacing is exact (200, 400, 500 ms); the policy's jitter itself
    // is covered by its unit tests.
    let p = RetryPolicy {
        jitter: false,
        ..policy(4, 200, 500)
    };
    let runs = Runs::default();
    let r = runs.clone();
    let worker = spawn_worker(
        h.backend(h.config(p)),
        2,
        handler(move |job, meta| {
            r.record(&job, &meta);
            async move { Err(format!("boom on attempt {}", meta.attempt).into()) }
        }),
    );
    h.push(7).await;
    eventually(
        "the job to be dead-lettered",
        Duration::from_secs(10),
        || runs.len() == 4,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await; // no fifth attempt comes
    let all = runs.all();
    assert_eq!(all.len(), 4);
    let attempts: Vec<(u32, bool)> = all.iter().map(|r| (r.1, r.2)).collect();
    assert_eq!(
        attempts,
        vec![(1, false), (2, false), (3, false), (4, true)]
    );
    for pair in all.windows(2) {
        let spacing = pair[1].3 - pair[0].3;
        let policy_delay = p.base_delay(pair[1].1);
        assert!(
            spacing >= policy_delay,
            "attempt {} came {spacing:?} after the previous, policy says {policy_delay:?}",
            pair[1].1
        );
        assert!(
            spacing < policy_delay + Duration::from_millis(600),
            "late: {spacing:?}"
        );
        assert_eq!(
            pair[1].4.as_deref(),
            Some(format!("boom on attempt {}", pair[0].1).as_str())
        );
    }
    let dead = h.client.dead_list(QUEUE, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 4);
    assert_eq!(dead[0].error, "boom on attempt 4");
    assert_eq!(dead[0].decode::<TestJob>().unwrap(), TestJob { n: 7 });
    let stats = h.client.stats(QUEUE).await.unwrap();
    assert_eq!(
        (stats.waiting, stats.pending, stats.delayed, stats.dead),
        (0, 0, 0, 1)
    );
    worker.stop().await;
    h.cleanup().await;
}

#[tokio::test]
async fn an_aborted_job_is_dead_lettered_at_once_and_runs_again_when_re_driven() {
    let h = Harness::new().await;
    let runs = Runs::default();
    let r = runs.clone();
    let worker = spawn_worker(
        h.backend(h.config(policy(5, 100, 1_000))),
        1,
        handler(move |job, meta| {
            r.record(&job, &meta);
            let first = r.len() == 1;
            async move {
                if first {
                    Err(AbortError::new("payload refers to a deleted lattice").into())
                } else {
                    Ok(())
                }
            }
        }),
    );
    h.push(1).await;
    eventually("the abort", Duration::from_secs(5), || runs.len() == 1).await;
    let mut dead = Vec::new();
    for _ in 0..100 {
        dead = h.client.dead_list(QUEUE, 10).await.unwrap();
        if !dead.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        dead.len(),
        1,
        "one attempt, then straight to the dead letters"
    );
    assert_eq!(dead[0].attempts, 1);
    assert!(
        dead[0].error.contains("deleted lattice"),
        "{}",
        dead[0].error
    );

    assert!(h.client.dead_retry(QUEUE, &dead[0].id).await.unwrap());
    assert!(
        !h.client.dead_retry(QUEUE, &dead[0].id).await.unwrap(),
        "gone once re-driven"
    );
    eventually("the re-driven run", Duration::from_secs(5), || {
        runs.len() == 2
    })
    .await;
    let second = &runs.all()[1];
    assert_eq!(
        (second.0, second.1),
        (1, 1),
        "a re-driven job starts again at attempt 1"
    );
    assert!(h.client.dead_list(QUEUE, 10).await.unwrap().is_empty());
    worker.stop().await;
    h.cleanup().await;
}

#[tokio::test]
async fn dead_retry_all_re_drives_every_dead_entry() {
    let h = Harness::new().await;
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let (hl, d) = (healthy.clone(), done.clone());
    let worker = spawn_worker(
        h.backend(h.config(policy(1, 100, 1_000))),
        4,
        handler(move |_, _| {
            let ok = hl.load(Ordering::SeqCst);
            let d = d.clone();
            async move {
                if ok {
                    d.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                } else {
                    Err("smtp down".into())
                }
            }
        }),
    );
    for n in 0..5 {
        h.push(n).await;
    }
    let client = h.client.clone();
    let mut dead = 0;
    for _ in 0..200 {
        dead = client.stats(QUEUE).await.unwrap().dead;
        if dead == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(dead, 5);
    healthy.store(true, Ordering::SeqCst);
    assert_eq!(h.client.dead_retry_all(QUEUE).await.unwrap(), 5);
    eventually("5 re-driven jobs", Duration::from_secs(5), || {
        done.load(Ordering::SeqCst) == 5
    })
    .await;
    assert_eq!(h.client.stats(QUEUE).await.unwrap().dead, 0);
    worker.stop().await;
    h.cleanup().await;
}

#[tokio::test]
async fn a_scheduled_job_does_not_run_before_its_time() {
    let h = Harness::new().await;
    let runs = Runs::default();
    let worker = spawn_worker(
        h.backend(h.config(policy(3, 100, 1_000))),
        1,
        recording(&runs),
    );
    let run_at = chrono::Utc::now() + chrono::Duration::milliseconds(1_500);
    let pushed_at = Instant::now();
    let pushed = h
        .push_with(
            1,
            PushOptions {
                run_at: Some(run_at),
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(pushed, Pushed::Scheduled { .. }), "{pushed:?}");
    assert_eq!(h.client.stats(QUEUE).await.unwrap().delayed, 1);
    eventually("the scheduled run", Duration::from_secs(5), || {
        runs.len() == 1
    })
    .await;
    let waited = runs.all()[0].3 - pushed_at;
    assert!(chrono::Utc::now() >= run_at);
    assert!(
        waited >= Duration::from_millis(1_450),
        "ran after {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(2_500),
        "ran after {waited:?}"
    );
    // A time in the past runs now.
    let past = chrono::Utc::now() - chrono::Duration::seconds(5);
    let pushed = h
        .push_with(
            2,
            PushOptions {
                run_at: Some(past),
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(pushed, Pushed::Enqueued { .. }), "{pushed:?}");
    eventually("the past-due run", Duration::from_secs(5), || {
        runs.len() == 2
    })
    .await;
    worker.stop().await;
    h.cleanup().await;
}

#[tokio::test]
async fn a_job_held_by_a_dead_consumer_is_reclaimed_after_claim_idle() {
    let h = Harness::new().await;
    h.push(42).await;
    assert_eq!(h.ghost_read("ghost-worker", 10).await.len(), 1);
    let read_at = Instant::now();
    let runs = Runs::default();
    let config = h
        .config(policy(3, 100, 1_000))
        .with_claim_idle(Duration::from_secs(1));
    let worker = spawn_worker(h.backend(config), 1, recording(&runs));
    eventually("the reclaimed job", Duration::from_secs(6), || {
        runs.len() == 1
    })
    .await;
    let (n, attempt, _, started, last_error) = runs.all().remove(0);
    assert_eq!(n, 42);
    assert!(
        started - read_at >= Duration::from_secs(1),
        "reclaimed before claim_idle"
    );
    assert!(
        started - read_at < Duration::from_secs(4),
        "reclaimed late: {:?}",
        started - read_at
    );
    assert_eq!(attempt, 2, "the lost attempt counts");
    assert!(last_error.unwrap_or_default().contains("worker lost"));
    worker.stop().await;
    h.cleanup().await;
}

#[tokio::test]
async fn a_killed_workers_running_jobs_are_run_again_by_another_worker() {
    let h = Harness::new().await;
    let started = Arc::new(AtomicUsize::new(0));
    let s = started.clone();
    let claim = Duration::from_secs(1);
    let victim = spawn_worker(
        h.backend(
            h.config(policy(3, 100, 1_000))
                .with_claim_idle(claim)
                .with_concurrency(3),
        ),
        3,
        handler(move |_, _| {
            s.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(())
            }
        }),
    );
    for n in 0..3 {
        h.push(n).await;
    }
    eventually("3 jobs running", Duration::from_secs(5), || {
        started.load(Ordering::SeqCst) == 3
    })
    .await;
    victim.kill();
    let killed_at = Instant::now();
    let runs = Runs::default();
    let rescuer = spawn_worker(
        h.backend(
            h.config(policy(3, 100, 1_000))
                .with_claim_idle(claim)
                .with_concurrency(3),
        ),
        3,
        recording(&runs),
    );
    eventually("3 rescued jobs", Duration::from_secs(8), || runs.len() == 3).await;
    eprintln!(
        "reclaimed {} jobs {:?} after the kill",
        runs.len(),
        killed_at.elapsed()
    );
    let mut jobs = runs.jobs();
    jobs.sort_unstable();
    assert_eq!(jobs, vec![0, 1, 2]);
    rescuer.stop().await;
    h.cleanup().await;
}

#[tokio::test]
async fn heartbeats_keep_a_long_job_from_being_taken_by_another_worker() {
    let h = Harness::new().await;
    let runs = Runs::default();
    let claim = Duration::from_millis(600);
    let slow = {
        let runs = runs.clone();
        handler(move |job, meta| {
            runs.record(&job, &meta);
            async {
                tokio::time::sleep(Duration::from_millis(3_000)).await;
                Ok(())
            }
        })
    };
    let a = spawn_worker(
        h.backend(h.config(policy(3, 100, 1_000)).with_claim_idle(claim)),
        1,
        slow.clone(),
    );
    let b = spawn_worker(
        h.backend(h.config(policy(3, 100, 1_000)).with_claim_idle(claim)),
        1,
        slow,
    );
    h.push(1).await;
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    let all = runs.all();
    assert_eq!(
        all.len(),
        1,
        "ran once, not stolen: {:?}",
        all.iter().map(|r| r.1).collect::<Vec<_>>()
    );
    let stats = h.client.stats(QUEUE).await.unwrap();
    assert_eq!(
        (stats.waiting, stats.pending, stats.dead),
        (0, 0, 0),
        "acknowledged"
    );
    a.stop().await;
    b.stop().await;
    h.cleanup().await;
}

#[tokio::test]
async fn a_dedupe_key_admits_one_job_until_that_job_ends() {
    let h = Harness::new().await;
    let key = || PushOptions {
        dedupe_key: Some("job-row-17".into()),
        ..Default::default()
    };
    let first = h.push_with(1, key()).await;
    let second = h.push_with(2, key()).await;
    assert!(matches!(first, Pushed::Enqueued { .. }));
    assert_eq!(
        second,
        Pushed::Duplicate {
            job_id: first.job_id().to_owned()
        }
    );
    assert_eq!(h.client.stats(QUEUE).await.unwrap().waiting, 1);

    let runs = Runs::default();
    let worker = spawn_worker(
        h.backend(h.config(policy(3, 100, 1_000))),
        1,
        recording(&runs),
    );
    eventually("the job", Duration::from_secs(5), || runs.len() == 1).await;
    // Released when the job ended: a new push goes through.
    let mut third = second.clone();
    for _ in 0..100 {
        third = h.push_with(3, key()).await;
        if !third.is_duplicate() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(matches!(third, Pushed::Enqueued { .. }), "{third:?}");
    eventually("the second job", Duration::from_secs(5), || runs.len() == 2).await;
    assert_eq!(runs.jobs(), vec![1, 3]);

    // With a ttl the key outlives the job (once per period).
    let ttl = || PushOptions {
        dedupe_key: Some("daily".into()),
        dedupe_ttl: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    assert!(!h.push_with(4, ttl()).await.is_duplicate());
    eventually("the ttl job", Duration::from_secs(5), || runs.len() == 3).await;
    assert!(h.push_with(5, ttl()).await.is_duplicate());
    worker.stop().await;
    h.cleanup().await;
}

#[tokio::test]
async fn a_cron_tick_runs_once_however_many_schedulers_push_it() {
    let h = Harness::new().await;
    let runs = Runs::default();
    let worker = spawn_worker(
        h.backend(h.config(policy(3, 100, 1_000))),
        2,
        recording(&runs),
    );
    let pushes = Arc::new(AtomicUsize::new(0));
    let mut schedulers = Vec::new();
    for i in 0..2 {
        let client = h.client.clone();
        let pushes = pushes.clone();
        let schedule = cron::Schedule::from_str("* * * * * *").unwrap();
        let scheduler = WorkerBuilder::new(format!("cron-{i}"))
            .backend(CronScheduler::new(schedule))
            .build(move |tick: Tick| {
                let client = client.clone();
                let pushes = pushes.clone();
                async move {
                    let options = PushOptions {
                        dedupe_key: Some(cron_dedupe_key("usage-rollup", tick.get_timestamp())),
                        dedupe_ttl: Some(CRON_TICK_TTL),
                        run_at: None,
                    };
                    client
                        .push(
                            QUEUE,
                            &TestJob {
                                n: tick.get_timestamp(),
                            },
                            options,
                        )
                        .await?;
                    pushes.fetch_add(1, Ordering::SeqCst);
                    Ok::<(), BoxDynError>(())
                }
            });
        let (stop, stopped) = oneshot::channel::<()>();
        let join = tokio::spawn(scheduler.run_until(async move {
            let _ = stopped.await;
            Ok::<(), std::io::Error>(())
        }));
        schedulers.push((stop, join));
    }
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    for (stop, join) in schedulers {
        let _ = stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), join).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut per_tick: BTreeMap<u64, usize> = BTreeMap::new();
    for n in runs.jobs() {
        *per_tick.entry(n).or_default() += 1;
    }
    assert!(per_tick.len() >= 3, "ticks seen: {per_tick:?}");
    assert!(
        per_tick.values().all(|&c| c == 1),
        "a tick ran twice: {per_tick:?}"
    );
    assert!(
        pushes.load(Ordering::SeqCst) >= 2 * per_tick.len() - 1,
        "both schedulers pushed"
    );
    worker.stop().await;
    h.cleanup().await;
}

#[tokio::test]
async fn a_worker_recovers_when_its_redis_connections_are_killed_and_loses_no_pushed_job() {
    // A Redis user of this test's own, so CLIENT KILL hits only this test's connections.
    let admin = Harness::new().await;
    let user = admin.prefix.trim_end_matches(':').to_owned();
    let mut conn = admin.client.connection();
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&user)
        .arg("on")
        .arg("nopass")
        .arg("~*")
        .arg("&*")
        .arg("+@all")
        .query_async(&mut conn)
        .await
        .expect("ACL SETUSER");
    let base = redis_url();
    let url = base.replacen("redis://", &format!("redis://{user}:x@"), 1);
    let h = Harness::with_url(&url).await;

    let seen = Arc::new(Mutex::new(HashSet::new()));
    let s = seen.clone();
    let worker = spawn_worker(
        h.backend(
            h.config(policy(5, 50, 500))
                .with_claim_idle(Duration::from_secs(2))
                .with_concurrency(8),
        ),
        8,
        handler(move |job, _| {
            s.lock().unwrap().insert(job.n);
            async { Ok(()) }
        }),
    );
    let mut acknowledged = HashSet::new();
    let mut errors = 0;
    for n in 0..300u64 {
        if n % 100 == 50 {
            let killed: i64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("USER")
                .arg(&user)
                .query_async(&mut conn)
                .await
                .expect("CLIENT KILL");
            eprintln!("killed {killed} connections");
        }
        match h
            .client
            .push(QUEUE, &TestJob { n }, PushOptions::default())
            .await
        {
            Ok(_) => {
                acknowledged.insert(n);
            }
            Err(e) => {
                errors += 1;
                eprintln!("push {n} failed (expected while reconnecting): {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    eprintln!(
        "{} pushes acknowledged, {errors} failed",
        acknowledged.len()
    );
    assert!(acknowledged.len() >= 290, "the client reconnects by itself");
    eventually(
        "every acknowledged push to run",
        Duration::from_secs(20),
        || {
            let seen = seen.lock().unwrap();
            acknowledged.iter().all(|n| seen.contains(n))
        },
    )
    .await;
    worker.stop().await;
    h.cleanup().await;
    let _: redis::RedisResult<()> = redis::cmd("ACL")
        .arg("DELUSER")
        .arg(&user)
        .query_async(&mut conn)
        .await;
    admin.cleanup().await;
}

#[tokio::test]
async fn handed_back_entries_return_to_the_queue_at_once_without_counting_an_attempt() {
    let h = Harness::new().await;
    for n in 0..3 {
        h.push(n).await;
    }
    assert_eq!(h.ghost_read("stopping-worker", 10).await.len(), 3);
    assert_eq!(
        h.client
            .release_consumer(QUEUE, "stopping-worker")
            .await
            .unwrap(),
        3
    );
    let runs = Runs::default();
    let worker = spawn_worker(
        h.backend(h.config(policy(3, 100, 1_000))),
        1,
        recording(&runs),
    );
    eventually("the handed-back jobs", Duration::from_secs(3), || {
        runs.len() == 3
    })
    .await;
    assert!(runs.all().iter().all(|r| r.1 == 1), "still attempt 1");
    assert_eq!(runs.jobs(), vec![0, 1, 2], "in their original order");
    worker.stop().await;
    h.cleanup().await;
}

#[tokio::test]
async fn a_job_whose_worker_died_on_its_last_attempt_is_dead_lettered_and_reported() {
    let h = Harness::new().await;
    h.push(9).await;
    h.ghost_read("ghost", 1).await;
    let reported = Arc::new(Mutex::new(Vec::new()));
    let r = reported.clone();
    let hook: DeadLetterHook = Arc::new(move |entry| {
        let r = r.clone();
        Box::pin(async move { r.lock().unwrap().push(entry) })
    });
    let runs = Runs::default();
    let config = h
        .config(policy(1, 100, 1_000))
        .with_claim_idle(Duration::from_millis(500))
        .with_dead_letter_hook(hook);
    let worker = spawn_worker(h.backend(config), 1, recording(&runs));
    eventually("the report", Duration::from_secs(5), || {
        !reported.lock().unwrap().is_empty()
    })
    .await;
    let entry = reported.lock().unwrap()[0].clone();
    assert_eq!(entry.decode::<TestJob>().unwrap(), TestJob { n: 9 });
    assert_eq!(entry.attempts, 1);
    assert!(entry.error.contains("worker lost"), "{}", entry.error);
    assert_eq!(runs.len(), 0, "never run again");
    assert_eq!(h.client.dead_list(QUEUE, 10).await.unwrap().len(), 1);
    worker.stop().await;
    h.cleanup().await;
}

#[tokio::test]
async fn a_job_dead_lettered_after_its_last_attempt_or_an_abort_is_reported_once() {
    // The handler may not have recorded the failure (its future dropped by a timeout, a
    // caught panic, a failed write): the hook hears of every entry dead-lettered after a
    // run, not only of those the reclaimer dead-letters.
    let h = Harness::new().await;
    let reported = Arc::new(Mutex::new(Vec::new()));
    let r = reported.clone();
    let hook: DeadLetterHook = Arc::new(move |entry| {
        let r = r.clone();
        Box::pin(async move { r.lock().unwrap().push(entry) })
    });
    let runs = Runs::default();
    let rr = runs.clone();
    let config = h
        .config(RetryPolicy {
            jitter: false,
            ..policy(2, 100, 100)
        })
        .with_dead_letter_hook(hook);
    let worker = spawn_worker(
        h.backend(config),
        2,
        handler(move |job, meta| {
            rr.record(&job, &meta);
            async move {
                if job.n == 2 {
                    Err(AbortError::new("permanently broken").into())
                } else {
                    Err(format!("lost the outcome of attempt {}", meta.attempt).into())
                }
            }
        }),
    );
    h.push(1).await;
    h.push(2).await;
    eventually("both reports", Duration::from_secs(5), || {
        reported.lock().unwrap().len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await; // no further report comes
    let mut entries = reported.lock().unwrap().clone();
    entries.sort_by_key(|e| e.decode::<TestJob>().unwrap().n);
    assert_eq!(entries.len(), 2, "one report per dead letter: {entries:?}");
    assert_eq!(entries[0].decode::<TestJob>().unwrap(), TestJob { n: 1 });
    assert_eq!(entries[0].attempts, 2);
    assert_eq!(entries[0].error, "lost the outcome of attempt 2");
    assert_eq!(entries[1].decode::<TestJob>().unwrap(), TestJob { n: 2 });
    assert_eq!(entries[1].attempts, 1);
    assert_eq!(entries[1].error, "permanently broken");
    let mut dead_ids: Vec<String> = h
        .client
        .dead_list(QUEUE, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    let mut reported_ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
    dead_ids.sort();
    reported_ids.sort();
    assert_eq!(
        reported_ids, dead_ids,
        "the reports carry the dead entries' ids"
    );
    assert_eq!(runs.len(), 3);
    worker.stop().await;
    h.cleanup().await;
}

#[tokio::test]
async fn an_undecodable_entry_is_dead_lettered_and_the_worker_goes_on() {
    let h = Harness::new().await;
    h.client
        .push_bytes(QUEUE, b"{\"not\": \"a test job\"}", PushOptions::default())
        .await
        .unwrap();
    h.push(5).await;
    let runs = Runs::default();
    let worker = spawn_worker(
        h.backend(h.config(policy(3, 100, 1_000))),
        1,
        recording(&runs),
    );
    eventually("the good job", Duration::from_secs(5), || runs.len() == 1).await;
    let mut dead = Vec::new();
    for _ in 0..100 {
        dead = h.client.dead_list(QUEUE, 10).await.unwrap();
        if !dead.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(dead.len(), 1);
    assert!(dead[0].error.contains("undecodable"), "{}", dead[0].error);
    worker.stop().await;
    h.cleanup().await;
}

#[tokio::test]
async fn tasks_pushed_through_the_apalis_task_sink_are_run() {
    let h = Harness::new().await;
    let mut sink = h.backend(h.config(policy(3, 100, 1_000)));
    sink.push(TestJob { n: 1 }).await.unwrap();
    sink.push_task(
        TaskBuilder::new(TestJob { n: 2 })
            .idempotency_key("once")
            .build(),
    )
    .await
    .unwrap();
    sink.push_task(
        TaskBuilder::new(TestJob { n: 3 })
            .idempotency_key("once")
            .build(),
    )
    .await
    .unwrap();
    let runs = Runs::default();
    let worker = spawn_worker(
        h.backend(h.config(policy(3, 100, 1_000))),
        1,
        recording(&runs),
    );
    eventually("two jobs", Duration::from_secs(5), || runs.len() == 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        runs.jobs(),
        vec![1, 2],
        "the duplicate idempotency key was dropped"
    );
    worker.stop().await;
    h.cleanup().await;
}

#[tokio::test]
async fn queue_stats_count_waiting_pending_delayed_and_dead() {
    let h = Harness::new().await;
    for n in 0..4 {
        h.push(n).await;
    }
    h.ghost_read("busy", 1).await;
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    h.push_with(
        9,
        PushOptions {
            run_at: Some(later),
            ..Default::default()
        },
    )
    .await;
    let stats = h.client.stats(QUEUE).await.unwrap();
    assert_eq!(
        (stats.waiting, stats.pending, stats.delayed, stats.dead),
        (3, 1, 1, 0)
    );
    let metrics = catalytic_jobs::queue::QueueMetrics::new();
    metrics.observe_stats(QUEUE, &stats);
    assert_eq!(metrics.depth.with_label_values(&[QUEUE]).get(), 3);
    h.cleanup().await;
}

#[tokio::test]
async fn a_graceful_stop_lets_the_running_job_finish_and_leaves_the_group() {
    let h = Harness::new().await;
    let finished = Arc::new(AtomicUsize::new(0));
    let f = finished.clone();
    let backend = h.backend(h.config(policy(3, 100, 1_000)));
    let consumer = backend.consumer().to_owned();
    let worker = spawn_worker(
        backend,
        1,
        handler(move |_, _| {
            let f = f.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(500)).await;
                f.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        }),
    );
    h.push(1).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    worker.stop().await;
    assert_eq!(
        finished.load(Ordering::SeqCst),
        1,
        "the running job finished"
    );
    let consumers: Vec<HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(h.client.keys(QUEUE).stream())
        .arg(catalytic_jobs::queue::CONSUMER_GROUP)
        .query_async(&mut h.client.connection())
        .await
        .unwrap();
    let names: Vec<String> = consumers
        .iter()
        .filter_map(|c| c.get("name"))
        .filter_map(|v| redis::from_redis_value_ref::<String>(v).ok())
        .collect();
    assert!(!names.contains(&consumer), "{names:?}");
    let stats = h.client.stats(QUEUE).await.unwrap();
    assert_eq!((stats.waiting, stats.pending), (0, 0));
    h.cleanup().await;
}
