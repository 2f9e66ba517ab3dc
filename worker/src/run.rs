//! `catalytic-worker run`: an apalis Monitor with one worker per chosen queue.

use std::{any::Any, str::FromStr, sync::Arc, time::Duration};

use apalis::{
    layers::catch_panic::{CatchPanicLayer, PanicError},
    prelude::{Monitor, WorkerBuilder, WorkerBuilderExt},
};
use apalis_cron::CronScheduler;
use catalytic_jobs::{
    Envelope, HandlerContext, QueueName,
    queue::{ConsumerConfig, QueueClient, QueueMetrics, RedisStreamBackend, worker_identity},
};
use prometheus::Registry;

use crate::{
    config::RunSettings,
    handlers,
    metrics::{MetricsServer, MetricsState},
};

/// How often the sweeper looks for PostgreSQL work that never reached Redis.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// A panic in a handler fails the attempt like any error; the queue's policy decides
/// whether it runs again.
fn panic_error(panic: &Box<dyn Any + Send>) -> PanicError {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    PanicError(format!("handler panicked: {message}"))
}

pub async fn run(settings: RunSettings) -> anyhow::Result<()> {
    let identity = worker_identity();
    let queue_names: Vec<&str> = settings.queues.iter().map(|q| q.as_str()).collect();
    tracing::info!(
        identity,
        queues = queue_names.join(","),
        concurrency = settings.concurrency,
        "catalytic-worker starting"
    );
    let ctx = Arc::new(HandlerContext::connect(&settings.worker)?);
    let client = ctx.queue.clone();

    let registry = Registry::new();
    let metrics = QueueMetrics::new();
    metrics.register(&registry)?;
    let server = MetricsServer::start(
        settings.metrics_addr,
        MetricsState {
            registry,
            metrics: metrics.clone(),
            client: client.clone(),
            queues: settings.queues.clone(),
        },
    )
    .await?;
    tracing::info!(metrics_addr = %server.addr, "metrics at http://{}/metrics", server.addr);

    let mut monitor = Monitor::new();
    for &queue in &settings.queues {
        let consumer = ConsumerConfig::new(queue.as_str(), settings.policy(queue))
            .with_consumer(identity.clone())
            .with_concurrency(settings.concurrency)
            .with_claim_idle(settings.claim_idle)
            .with_metrics(metrics.clone())
            .with_dead_letter_hook(handlers::dead_letter_hook(ctx.clone()));
        monitor = register_queue(monitor, queue, &client, consumer, &ctx);
    }
    if settings.queues.contains(&QueueName::Usage) {
        monitor = register_usage_cron(monitor, &client, &identity)?;
    }

    let sweeper = tokio::spawn(sweep_forever(ctx.clone()));
    let result = monitor
        .shutdown_timeout(settings.shutdown_timeout)
        .run_with_signal(shutdown_signal())
        .await;
    sweeper.abort();

    // Jobs still unfinished when the timeout struck were dropped: hand them back now so
    // other workers start them at once instead of after the claim idle time.
    for queue in &settings.queues {
        match client.release_consumer(queue.as_str(), &identity).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                queue = queue.as_str(),
                handed_back = n,
                "handed back unfinished jobs"
            ),
            Err(e) => {
                tracing::error!(queue = queue.as_str(), error = %e, "could not hand back jobs; they will be reclaimed")
            }
        }
    }
    server.stop().await;
    result?;
    tracing::info!("catalytic-worker stopped");
    Ok(())
}

fn register_queue(
    monitor: Monitor,
    queue: QueueName,
    client: &QueueClient,
    consumer: ConsumerConfig,
    ctx: &Arc<HandlerContext>,
) -> Monitor {
    let client = client.clone();
    let ctx = ctx.clone();
    let name = format!("{}@{}", queue.as_str(), consumer.consumer);
    let concurrency = consumer.concurrency;
    monitor.register(move |_restarts| {
        let backend = RedisStreamBackend::<Envelope>::new(client.clone(), consumer.clone());
        WorkerBuilder::new(name.clone())
            .backend(backend)
            .data(ctx.clone())
            .concurrency(concurrency)
            .timeout(queue.job_timeout())
            .enable_tracing()
            .layer(CatchPanicLayer::with_panic_handler(
                panic_error as fn(&Box<dyn Any + Send>) -> PanicError,
            ))
            .build(handlers::run_job)
    })
}

fn register_usage_cron(
    monitor: Monitor,
    client: &QueueClient,
    identity: &str,
) -> anyhow::Result<Monitor> {
    let schedule = cron::Schedule::from_str(handlers::USAGE_ROLLUP_SCHEDULE)?;
    let client = client.clone();
    let name = format!("usage-cron@{identity}");
    Ok(monitor.register(move |_restarts| {
        WorkerBuilder::new(name.clone())
            .backend(CronScheduler::new(schedule.clone()))
            .data(client.clone())
            .build(handlers::enqueue_usage_rollup)
    }))
}

async fn sweep_forever(ctx: Arc<HandlerContext>) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(e) = handlers::sweep(&ctx).await {
            tracing::warn!(error = format!("{e:#}"), "sweeper failed");
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: finishing in-flight jobs"),
        r = tokio::signal::ctrl_c() => {
            r?;
            tracing::info!("SIGINT: finishing in-flight jobs");
        }
    }
    Ok(())
}
