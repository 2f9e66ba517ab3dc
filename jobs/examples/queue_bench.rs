//! Benchmark of the Redis Streams queue, run by `scripts/bench-queue` next to the same
//! scenarios on BullMQ (`bench/queue/bullmq.mjs`). Prints one JSON object per line:
//! `{"side":"catalytic","metric":"...","value":...,"unit":"..."}`.
//!
//! ```text
//! queue_bench all [--redis URL] [--jobs N] [--concurrency C]
//! queue_bench worker --prefix P --mode noop|latency|hang --concurrency C   (child process)
//! ```
//!
//! Children read stdin; at EOF they stop gracefully and print a JSON report line.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use apalis::prelude::{WorkerBuilder, WorkerBuilderExt};
use catalytic_jobs::{
    RetryPolicy,
    queue::{ConsumerConfig, JobMeta, PushOptions, QueueClient, RedisStreamBackend},
};
use futures::{StreamExt, stream};
use serde::{Deserialize, Serialize};

const QUEUE: &str = "bench";

#[derive(Debug, Serialize, Deserialize)]
struct NoOp {
    /// Unix time in ns when the job was pushed.
    pushed_ns: u64,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_owned())
}

fn emit(metric: &str, value: f64, unit: &str) {
    println!(
        "{}",
        serde_json::json!({"side": "catalytic", "metric": metric, "value": value, "unit": unit})
    );
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        backoff_base: Duration::from_millis(100),
        backoff_cap: Duration::from_secs(1),
        jitter: true,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().collect();
    let redis = arg(
        &args,
        "--redis",
        &std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned()),
    );
    match args.get(1).map(String::as_str) {
        Some("worker") => worker(&redis, &args).await,
        Some("all") => all(&redis, &args).await,
        _ => Err("usage: queue_bench all|worker ...".into()),
    }
}

// ------------------------------------------------------------------ child worker

#[derive(Default)]
struct Stats {
    done: AtomicU64,
    last_done_ns: AtomicU64,
    latencies: Mutex<Vec<u64>>,
}

async fn worker(
    redis: &str,
    args: &[String],
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let prefix = arg(args, "--prefix", "bench:");
    let mode = arg(args, "--mode", "noop");
    let concurrency: usize = arg(args, "--concurrency", "50").parse()?;
    let client = QueueClient::connect(redis, &prefix).await?;
    let config = ConsumerConfig::new(QUEUE, policy()).with_concurrency(concurrency);
    let backend = RedisStreamBackend::<NoOp>::new(client, config);
    let stats = Arc::new(Stats::default());
    let s = stats.clone();
    let hang = mode == "hang";
    let latency = mode == "latency";
    let worker = WorkerBuilder::new("bench")
        .backend(backend)
        .concurrency(concurrency)
        .timeout(Duration::from_secs(300))
        .enable_tracing()
        .catch_panic()
        .build(move |job: NoOp, _meta: JobMeta| {
            let s = s.clone();
            async move {
                if latency {
                    let waited = now_ns().saturating_sub(job.pushed_ns);
                    if let Ok(mut l) = s.latencies.lock() {
                        l.push(waited);
                    }
                }
                if hang {
                    println!("started");
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                s.done.fetch_add(1, Ordering::Relaxed);
                s.last_done_ns.store(now_ns(), Ordering::Relaxed);
                Ok::<(), std::io::Error>(())
            }
        });
    println!("ready");
    let stop = async {
        // EOF on stdin: stop.
        let _ = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            while std::io::stdin()
                .read_line(&mut line)
                .map(|n| n > 0)
                .unwrap_or(false)
            {
                line.clear();
            }
        })
        .await;
        Ok::<(), std::io::Error>(())
    };
    worker.run_until(stop).await?;
    let latencies = stats
        .latencies
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default();
    println!(
        "{}",
        serde_json::json!({
            "done": stats.done.load(Ordering::Relaxed),
            "last_done_ns": stats.last_done_ns.load(Ordering::Relaxed),
            "latencies_ns": latencies,
        })
    );
    Ok(())
}

// ------------------------------------------------------------------ orchestration

struct ChildWorker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
}

#[derive(Deserialize)]
struct Report {
    done: u64,
    last_done_ns: u64,
    latencies_ns: Vec<u64>,
}

impl ChildWorker {
    fn spawn(redis: &str, prefix: &str, mode: &str, concurrency: usize) -> std::io::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .args([
                "worker", "--redis", redis, "--prefix", prefix, "--mode", mode,
            ])
            .args(["--concurrency", &concurrency.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let w = Self {
            child,
            stdin,
            lines: rx,
        };
        w.wait_for("ready", Duration::from_secs(10))?;
        Ok(w)
    }

    fn wait_for(&self, what: &str, timeout: Duration) -> std::io::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(what) => return Ok(line),
                Ok(_) => {}
                Err(_) => return Err(std::io::Error::other(format!("child never said {what}"))),
            }
        }
    }

    /// Graceful stop; returns the child's report.
    fn stop(mut self) -> std::io::Result<Report> {
        drop(self.stdin.take());
        let line = self.wait_for("{", Duration::from_secs(30))?;
        let _ = self.child.wait();
        serde_json::from_str(&line).map_err(std::io::Error::other)
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prefix() -> String {
    format!("bench-{}:", now_ns() % 1_000_000_007)
}

async fn push_many(
    client: &QueueClient,
    n: u64,
    in_flight: usize,
) -> Result<Duration, Box<dyn std::error::Error + Send + Sync>> {
    let started = Instant::now();
    let results: Vec<_> = stream::iter(0..n)
        .map(|_| async {
            client
                .push(
                    QUEUE,
                    &NoOp {
                        pushed_ns: now_ns(),
                    },
                    PushOptions::default(),
                )
                .await
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    for r in results {
        r?;
    }
    Ok(started.elapsed())
}

async fn cleanup(client: &QueueClient) {
    let mut conn = client.connection();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{{}*", client.prefix()))
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
    }
}

async fn drained(client: &QueueClient, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(s) = client.stats(QUEUE).await
            && s.waiting + s.pending + s.delayed == 0
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64
}

async fn all(redis: &str, args: &[String]) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let jobs: u64 = arg(args, "--jobs", "20000").parse()?;
    let concurrency: usize = arg(args, "--concurrency", "50").parse()?;

    // Enqueue rate, one push at a time and 100 in flight.
    {
        let client = QueueClient::connect(redis, &prefix()).await?;
        let n = jobs / 4;
        let took = push_many(&client, n, 1).await?;
        emit(
            "enqueue_sequential",
            n as f64 / took.as_secs_f64(),
            "jobs/s",
        );
        cleanup(&client).await;
        let took = push_many(&client, jobs, 100).await?;
        emit(
            "enqueue_100_in_flight",
            jobs as f64 / took.as_secs_f64(),
            "jobs/s",
        );
        cleanup(&client).await;
    }

    // End-to-end throughput with 1 and 2 worker processes.
    for procs in [1usize, 2] {
        let p = prefix();
        let client = QueueClient::connect(redis, &p).await?;
        client.ensure_group(QUEUE).await?;
        let workers = (0..procs)
            .map(|_| ChildWorker::spawn(redis, &p, "noop", concurrency))
            .collect::<Result<Vec<_>, _>>()?;
        let start_ns = now_ns();
        push_many(&client, jobs, 100).await?;
        let ok = drained(&client, Duration::from_secs(300)).await;
        let reports = workers
            .into_iter()
            .map(ChildWorker::stop)
            .collect::<Result<Vec<_>, _>>()?;
        let done: u64 = reports.iter().map(|r| r.done).sum();
        let end_ns = reports
            .iter()
            .map(|r| r.last_done_ns)
            .max()
            .unwrap_or(start_ns);
        if !ok || done < jobs {
            eprintln!("catalytic: only {done} of {jobs} jobs done");
        }
        let secs = (end_ns.saturating_sub(start_ns)) as f64 / 1e9;
        emit(
            &format!("throughput_{procs}_process"),
            done as f64 / secs,
            "jobs/s",
        );
        cleanup(&client).await;
    }

    // Pickup latency at low load: one job every 10 ms to an idle worker.
    {
        let p = prefix();
        let client = QueueClient::connect(redis, &p).await?;
        client.ensure_group(QUEUE).await?;
        let worker = ChildWorker::spawn(redis, &p, "latency", concurrency)?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        for _ in 0..300 {
            client
                .push(
                    QUEUE,
                    &NoOp {
                        pushed_ns: now_ns(),
                    },
                    PushOptions::default(),
                )
                .await?;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drained(&client, Duration::from_secs(30)).await;
        let mut lat = worker.stop()?.latencies_ns;
        lat.sort_unstable();
        emit("pickup_p50", percentile(&lat, 50.0) / 1e6, "ms");
        emit("pickup_p99", percentile(&lat, 99.0) / 1e6, "ms");
        cleanup(&client).await;
    }

    // Reclaim: a worker is SIGKILLed holding 10 running jobs; time until another worker
    // has finished all of them (default claim idle time: 10 s).
    {
        let p = prefix();
        let client = QueueClient::connect(redis, &p).await?;
        client.ensure_group(QUEUE).await?;
        let victim = ChildWorker::spawn(redis, &p, "hang", 10)?;
        for _ in 0..10 {
            client
                .push(
                    QUEUE,
                    &NoOp {
                        pushed_ns: now_ns(),
                    },
                    PushOptions::default(),
                )
                .await?;
        }
        for _ in 0..10 {
            victim.wait_for("started", Duration::from_secs(10))?;
        }
        let killed_ns = now_ns();
        victim.kill();
        let rescuer = ChildWorker::spawn(redis, &p, "noop", 10)?;
        let ok = drained(&client, Duration::from_secs(120)).await;
        let report = rescuer.stop()?;
        if !ok || report.done < 10 {
            eprintln!("catalytic: only {} of 10 jobs reclaimed", report.done);
        }
        emit(
            "reclaim_after_kill",
            report.last_done_ns.saturating_sub(killed_ns) as f64 / 1e9,
            "s",
        );
        cleanup(&client).await;
    }
    std::io::stdout().flush()?;
    Ok(())
}
