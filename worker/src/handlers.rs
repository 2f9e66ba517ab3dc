//! The seam between the queues and the job handlers of `catalytic-jobs`: the apalis task
//! function every queue runs, the sweeper, and the cron tick of the usage rollup.
//!
//! PROVISIONAL: until `catalytic_jobs::{HandlerContext, handle, sweep_stale}` land, the
//! handler only logs the job. Integration replaces the three marked bodies.

use std::sync::Arc;

use apalis::prelude::{AbortError, BoxDynError, Data};
use apalis_cron::Tick;
use catalytic_jobs::{
    Envelope, JobError, QueueName,
    queue::{CRON_TICK_TTL, JobMeta, PushOptions, QueueClient, cron_dedupe_key},
};
use tracing::Instrument;

use crate::config::RunSettings;

/// The envelope kind of the usage rollup.
pub const USAGE_ROLLUP: &str = "usage.rollup";
/// Its schedule (seconds first): every minute at :00.
pub const USAGE_ROLLUP_SCHEDULE: &str = "0 * * * * *";

/// What handlers share (database pool, SMTP, Stripe client, ...).
pub struct Handlers {
    _database_url: String,
}

/// Connects what the handlers need. (PROVISIONAL body.)
pub async fn connect(settings: &RunSettings) -> anyhow::Result<Arc<Handlers>> {
    Ok(Arc::new(Handlers {
        _database_url: settings.database_url.clone(),
    }))
}

/// Runs one job. (PROVISIONAL body.)
async fn handle(
    _ctx: &Handlers,
    env: Envelope,
    attempt: u32,
    final_attempt: bool,
) -> Result<(), JobError> {
    tracing::info!(
        kind = env.kind,
        attempt,
        final_attempt,
        "job ran (provisional handler)"
    );
    Ok(())
}

/// Re-pushes jobs left `queued` in PostgreSQL. (PROVISIONAL body.)
pub async fn sweep(_ctx: &Handlers, _client: &QueueClient) -> anyhow::Result<()> {
    Ok(())
}

/// The apalis task function of every queue.
pub async fn run_job(
    env: Envelope,
    meta: JobMeta,
    ctx: Data<Arc<Handlers>>,
) -> Result<(), BoxDynError> {
    let span = tracing::info_span!(
        "job",
        queue = meta.queue,
        job_id = meta.job_id,
        kind = env.kind,
        attempt = meta.attempt,
        request_id = env.request_id.as_deref().unwrap_or(""),
    );
    let final_attempt = meta.is_final_attempt();
    match handle(&ctx, env, meta.attempt, final_attempt)
        .instrument(span)
        .await
    {
        Ok(()) => Ok(()),
        Err(JobError::Retry(message)) => Err(message.into()),
        Err(JobError::Abort(message)) => Err(AbortError::new(message).into()),
    }
}

/// The cron task: pushes the rollup of this tick once, whichever replica gets there first.
pub async fn enqueue_usage_rollup(
    tick: Tick,
    client: Data<QueueClient>,
) -> Result<(), BoxDynError> {
    let at = tick.get_timestamp();
    let env = Envelope::new(USAGE_ROLLUP, serde_json::json!({ "tick": at }));
    let options = PushOptions {
        dedupe_key: Some(cron_dedupe_key(USAGE_ROLLUP, at)),
        dedupe_ttl: Some(CRON_TICK_TTL),
        run_at: None,
    };
    let pushed = client
        .push(QueueName::Usage.as_str(), &env, options)
        .await?;
    tracing::debug!(
        tick = at,
        duplicate = pushed.is_duplicate(),
        "usage rollup tick"
    );
    Ok(())
}
