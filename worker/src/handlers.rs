//! The seam between the queues and `catalytic-jobs`: the apalis task function every queue
//! runs, the sweeper, the report of jobs lost with their worker, and the cron tick of the
//! usage rollup.

use std::sync::Arc;

use apalis::prelude::{AbortError, BoxDynError, Data};
use apalis_cron::Tick;
use catalytic_db::ids::JobId;
use catalytic_jobs::{
    Envelope, HandlerContext, JobError, QueueName,
    queue::{
        CRON_TICK_TTL, DeadEntry, DeadLetterHook, JobMeta, PushOptions, QueueClient,
        cron_dedupe_key,
    },
    sweeper::STALE_AFTER,
};

pub use catalytic_jobs::kinds::USAGE_ROLLUP;
/// Its schedule (seconds first): every minute at :00.
pub const USAGE_ROLLUP_SCHEDULE: &str = "0 * * * * *";

/// The apalis task function of every queue: runs [`catalytic_jobs::handle`] and maps its
/// error to what the queue does next (`Retry` per policy, `Abort` to the dead letters).
pub async fn run_job(
    env: Envelope,
    meta: JobMeta,
    ctx: Data<Arc<HandlerContext>>,
) -> Result<(), BoxDynError> {
    match catalytic_jobs::handle(&ctx, env, meta.attempt, meta.is_final_attempt()).await {
        Ok(()) => Ok(()),
        Err(JobError::Retry(message)) => Err(message.into()),
        Err(JobError::Abort(message)) => Err(AbortError::new(message).into()),
    }
}

/// One sweep of PostgreSQL work that never reached Redis.
pub async fn sweep(ctx: &HandlerContext) -> anyhow::Result<()> {
    let pushed = catalytic_jobs::sweep_stale(ctx, STALE_AFTER).await?;
    if pushed > 0 {
        tracing::info!(pushed, "sweeper re-pushed stale work");
    }
    Ok(())
}

/// A job dead-lettered without its handler recording the outcome (its worker died during
/// the last attempt, or the attempt timed out, panicked or could not write its result):
/// record the failure on its `jobs` row. A row the handler already settled is left alone
/// (only a `running` row changes), so the report of every dead letter is harmless.
/// An email delivery settles its `email_outbox` row the same way: `failed` if still
/// `pending` or `sending`, or `sent` when its `email-sent:<id>` marker says the server
/// accepted it (see [`catalytic_jobs::email::delivery::settle_dead_letter`]).
pub fn dead_letter_hook(ctx: Arc<HandlerContext>) -> DeadLetterHook {
    Arc::new(move |entry: DeadEntry| {
        let ctx = ctx.clone();
        Box::pin(async move {
            let Ok(env) = entry.decode::<Envelope>() else {
                return;
            };
            if let Some(email) = catalytic_jobs::kinds::email::email_id(&env) {
                use catalytic_jobs::email::delivery::{DeadLettered, settle_dead_letter};
                match settle_dead_letter(&ctx, email, &entry.error).await {
                    Ok(DeadLettered::Failed) => {
                        tracing::warn!(email.id = %email, error = %entry.error, "dead-lettered email had no outcome recorded; marked failed");
                    }
                    Ok(DeadLettered::RecordedSent) => {
                        tracing::warn!(email.id = %email, "dead-lettered email had been accepted by the server; recorded sent");
                    }
                    Ok(DeadLettered::Unchanged) => {}
                    Err(e) => {
                        tracing::error!(email.id = %email, error = %e, "could not settle a dead-lettered email");
                    }
                }
                return;
            }
            let Some(id) = env.job_id else {
                return;
            };
            let failed = async {
                let mut conn = ctx.db.get().await?;
                catalytic_db::jobs::fail_attempt(
                    &mut conn,
                    JobId::from_uuid(id),
                    &entry.error,
                    true,
                )
                .await
            };
            match failed.await {
                Ok(true) => {
                    tracing::warn!(job.id = %id, error = %entry.error, "dead-lettered job had no outcome recorded; marked failed");
                    catalytic_jobs::notify::publish_status(&ctx.queue, id, "failed").await;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(job.id = %id, error = %e, "could not mark a lost job failed; the sweeper will")
                }
            }
        })
    })
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
