//! The sweeper: re-pushes work whose push after commit never reached Redis (a crash or
//! Redis outage between commit and push). Rows are the truth; pushes are deduplicated by
//! row id, so re-pushing a row still in Redis is a no-op.
//!
//! It also settles jobs left `running` by an attempt that ended without recording its
//! outcome (and whose dead-letter report was lost too): see [`STALE_RUNNING_MARGIN`].

use std::time::Duration;

use chrono::Utc;

use crate::QueueName;
use crate::context::HandlerContext;
use crate::enqueue;

/// A row is stale when it has waited this long since its last push.
pub const STALE_AFTER: Duration = Duration::from_secs(30);

/// A `running` row unchanged for longer than its queue's job timeout plus this margin has
/// no attempt running it: an attempt is dropped at the timeout, a lattice job writes its
/// progress every 250 ms, and the margin covers the longest retry backoff (5 min) and a
/// reclaim. Its last attempt ended without recording an outcome (a dropped or panicking
/// handler, a failed write) and the queue's report of it was lost too (e.g. a Redis
/// restart without persistence). The sweeper marks it `failed` when no attempt is left,
/// else puts it back to `queued` and re-pushes it.
pub const STALE_RUNNING_MARGIN: Duration = Duration::from_secs(600);

/// One sweep; returns how many pushes it made.
pub async fn sweep_stale(ctx: &HandlerContext, stale_after: Duration) -> anyhow::Result<usize> {
    let cutoff = Utc::now() - chrono::Duration::from_std(stale_after)?;
    let mut pushed = settle_stale_running(ctx, STALE_RUNNING_MARGIN).await?;
    let mut conn = ctx.db.get().await?;
    for job in catalytic_db::jobs::stale_queued(&mut conn, cutoff, 500).await? {
        let queue: QueueName = job.queue.parse().map_err(anyhow::Error::msg)?;
        if repush(ctx, &mut conn, &job, queue).await? {
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

/// Settles the rows left `running` longer than their queue's job timeout plus `margin`
/// (see [`STALE_RUNNING_MARGIN`]); returns how many it re-pushed.
pub async fn settle_stale_running(ctx: &HandlerContext, margin: Duration) -> anyhow::Result<usize> {
    let mut conn = ctx.db.get().await?;
    let mut pushed = 0;
    for queue in QueueName::ALL {
        let quiet = queue.job_timeout() + margin;
        let cutoff = Utc::now() - chrono::Duration::from_std(quiet)?;
        for job in catalytic_db::jobs::stale_running(&mut conn, queue.as_str(), cutoff, 500).await?
        {
            let last = job.attempts >= job.max_attempts;
            let error = format!(
                "attempt {} recorded no outcome (its worker was lost, it timed out or its \
                 result could not be written) and the job was not updated for {} s",
                job.attempts,
                quiet.as_secs()
            );
            if !catalytic_db::jobs::settle_stale_running(&mut conn, job.id, cutoff, &error, last)
                .await?
            {
                continue; // an attempt started or finished meanwhile
            }
            if last {
                tracing::warn!(job.id = %job.id, queue = %queue, attempts = job.attempts, "sweeper failed a job left running");
                crate::notify::publish_status(&ctx.queue, job.id.as_uuid(), "failed").await;
                continue;
            }
            tracing::warn!(job.id = %job.id, queue = %queue, attempts = job.attempts, "sweeper re-queued a job left running");
            if repush(ctx, &mut conn, &job, queue).await? {
                pushed += 1;
            }
        }
    }
    Ok(pushed)
}

/// Pushes a `queued` job row to its queue again and records the push; returns whether the
/// push was new (not deduplicated against an entry already there).
async fn repush(
    ctx: &HandlerContext,
    conn: &mut catalytic_db::Conn,
    job: &catalytic_db::jobs::Job,
    queue: QueueName,
) -> anyhow::Result<bool> {
    let outcome = enqueue::push_job(
        &ctx.queue,
        queue,
        job.id.as_uuid(),
        &job.kind,
        job.request_id.clone(),
    )
    .await?;
    catalytic_db::jobs::mark_enqueued(conn, job.id).await?;
    Ok(!outcome.is_duplicate())
}
