//! The sweeper: re-pushes work whose push after commit never reached Redis (a crash or
//! Redis outage between commit and push). Rows are the truth; pushes are deduplicated by
//! row id, so re-pushing a row still in Redis is a no-op.

use std::time::Duration;

use chrono::Utc;

use crate::QueueName;
use crate::context::HandlerContext;
use crate::enqueue;

/// A row is stale when it has waited this long since its last push.
pub const STALE_AFTER: Duration = Duration::from_secs(30);

/// One sweep; returns how many pushes it made.
pub async fn sweep_stale(ctx: &HandlerContext, stale_after: Duration) -> anyhow::Result<usize> {
    let cutoff = Utc::now() - chrono::Duration::from_std(stale_after)?;
    let mut conn = ctx.db.get().await?;
    let mut pushed = 0;
    for job in catalytic_db::jobs::stale_queued(&mut conn, cutoff, 500).await? {
        let queue: QueueName = job.queue.parse().map_err(anyhow::Error::msg)?;
        let outcome = enqueue::push_job(
            &ctx.queue,
            queue,
            job.id.as_uuid(),
            &job.kind,
            job.request_id.clone(),
        )
        .await?;
        catalytic_db::jobs::mark_enqueued(&mut conn, job.id).await?;
        if !outcome.is_duplicate() {
            pushed += 1;
            tracing::info!(job.id = %job.id, queue = %queue, "sweeper re-pushed a queued job");
        }
    }
    for email in catalytic_db::outbox::stale_pending(&mut conn, cutoff, 500).await? {
        let outcome = enqueue::push_email(&ctx.queue, email.as_uuid(), None).await?;
        catalytic_db::outbox::mark_pushed(&mut conn, email).await?;
        if !outcome.is_duplicate() {
            pushed += 1;
            tracing::info!(email.id = %email, "sweeper re-pushed a pending email");
        }
    }
    for event in catalytic_db::stripe_events::stale_pending(&mut conn, cutoff, 500).await? {
        let outcome = enqueue::push_stripe_event(&ctx.queue, event.as_uuid(), None).await?;
        catalytic_db::stripe_events::mark_pushed(&mut conn, event).await?;
        if !outcome.is_duplicate() {
            pushed += 1;
            tracing::info!(stripe_event.id = %event, "sweeper re-pushed a pending Stripe event");
        }
    }
    // Suspension for unpaid subscriptions happens even when no event arrives.
    if let Err(e) = crate::billing::delinquency::suspend_overdue(ctx).await {
        tracing::warn!(error = %e, "could not check past-due subscriptions");
    }
    Ok(pushed)
}
