//! Delivering one outbox row: claim it, send it over SMTP, record the outcome.
//!
//! The row is the truth, not the queue entry:
//! - `sent` or `failed` → acknowledged without sending (duplicate deliveries are no-ops).
//! - `pending` → marked `sending` with one more attempt *before* any SMTP traffic, then
//!   sent with the row's own Message-ID (generated when the row was written).
//! - `sending` claimed less than a lease ago (the SMTP timeout plus a margin) → another
//!   attempt may be mid-send: nothing is sent, the job retries later.
//! - `sending` past the lease → the attempt that claimed it died between claiming and
//!   recording, so the server may or may not have accepted it. No SMTP server can be asked
//!   whether it holds a message, so the best available check is the Message-ID: the
//!   message is sent again with the *same* id, which receivers and the local sink use to
//!   recognise the copy, and the row notes it. A duplicate is therefore possible only when
//!   a worker dies after the server accepted the message and before the row was marked
//!   sent (at-least-once with a stable Message-ID).
//!
//! A failed send (server down, 4xx, 5xx, timeout) puts the row back to `pending` with the
//! error and returns `JobError::Retry`; the last attempt marks it `failed` instead.
//!
//! Once the server has accepted the message, the attempt first leaves a Redis marker
//! (`email-sent:<id>`, kept [`SENT_MARKER_TTL`]) and then records `sent`, retrying that write
//! for up to [`RECORD_SENT_FOR`] while PostgreSQL is unavailable. If it still cannot, the
//! job retries and the row stays `sending`; every later attempt looks for the marker before
//! claiming the row and only records the send (with the server's reply) instead of sending
//! again. The marker is removed once the row says `sent`.

use std::time::Duration;

use catalytic_db::ids::EmailId;
use catalytic_db::outbox::{self, Claim};
use catalytic_db::{DbError, DbResult};

use super::settings::EmailSettings;
use super::template;
use super::transport;
use crate::JobError;
use crate::context::HandlerContext;

/// Delivers the email `id`. `final_attempt` comes from the queue; the row's own attempt
/// count also ends the retries (a row re-pushed by the sweeper starts a new queue entry).
#[tracing::instrument(skip_all, fields(email.id = %id, attempt = attempt))]
pub async fn deliver(
    ctx: &HandlerContext,
    id: EmailId,
    attempt: u32,
    final_attempt: bool,
) -> Result<(), JobError> {
    let settings = &ctx.config.email;
    if let Some(response) = sent_marker(ctx, id).await {
        tracing::warn!(
            "an earlier attempt sent this email but could not record it; recording it now"
        );
        return record_sent(ctx, id, &response).await;
    }
    let claim = {
        let mut conn = ctx.db.get().await?;
        outbox::claim_for_sending(&mut conn, id, settings.sending_lease()).await?
    };
    let email = match claim {
        Claim::Missing => {
            tracing::warn!("no such email (its transaction did not commit); nothing to send");
            return Ok(());
        }
        Claim::Settled(email) => {
            tracing::info!(status = %email.status, "email already settled; acknowledged without sending");
            return Ok(());
        }
        Claim::InFlight(email) => {
            return Err(JobError::Retry(format!(
                "attempt {} is still sending this email",
                email.attempts
            )));
        }
        Claim::Claimed { email, resumed } => {
            if resumed {
                tracing::warn!(
                    message_id = %email.message_id,
                    "an earlier attempt died before recording its outcome; re-sending with the same Message-ID"
                );
            }
            email
        }
    };
    let last = final_attempt
        || email.attempts >= i32::try_from(settings.retry.max_attempts).unwrap_or(i32::MAX);
    let outcome = match compose(settings, &email) {
        Ok(message) => ctx.mailer.send(message).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(response) => {
            set_sent_marker(ctx, id, &response).await;
            record_sent(ctx, id, &response).await?;
            tracing::info!(smtp.response = %response, attempts = email.attempts, "email sent");
            Ok(())
        }
        Err(JobError::Abort(reason)) => {
            tracing::error!(error = %reason, "email cannot be sent; marked failed");
            record_failure(ctx, id, email.attempts, &reason, true).await?;
            Err(JobError::Abort(reason))
        }
        Err(JobError::Retry(reason)) => {
            tracing::warn!(error = %reason, last, "email send failed");
            record_failure(ctx, id, email.attempts, &reason, last).await?;
            if last {
                Err(JobError::Abort(reason))
            } else {
                Err(JobError::Retry(reason))
            }
        }
    }
}

/// What the report of a dead-lettered delivery did to its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLettered {
    /// The `email-sent:<id>` marker says the server accepted the message: recorded `sent`.
    RecordedSent,
    /// Still `pending` or `sending`, and no marker: now `failed`.
    Failed,
    /// Already `sent` or `failed` (or no such row): left alone.
    Unchanged,
}

/// Settles email `id` after its delivery job was dead-lettered, whatever ended the last
/// attempt (the job timeout dropped it, it panicked, its outcome write failed, or its
/// worker died): a row left `pending` or `sending` would otherwise stay so for good. If the
/// `email-sent:<id>` marker exists the server has the message, so the row is recorded
/// `sent` with the marker's reply; otherwise it becomes `failed` with `error` (an operator
/// re-drives it with `dead retry`). A settled row is left alone. When Redis cannot say
/// whether the marker exists, nothing is changed (a sent email is not marked failed).
pub async fn settle_dead_letter(
    ctx: &HandlerContext,
    id: EmailId,
    error: &str,
) -> anyhow::Result<DeadLettered> {
    let mut redis = ctx.queue.connection();
    let marker: Option<String> = redis::cmd("GET")
        .arg(sent_marker_key(ctx.queue.prefix(), id))
        .query_async(&mut redis)
        .await
        .map_err(|e| anyhow::anyhow!("could not look for the sent marker: {e}"))?;
    if let Some(response) = marker {
        record_sent(ctx, id, &response)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        return Ok(DeadLettered::RecordedSent);
    }
    let failed = retry_db_value(Duration::from_secs(3), move || async move {
        outbox::fail_unsettled(&mut *ctx.db.get().await?, id, error).await
    })
    .await?;
    Ok(if failed {
        DeadLettered::Failed
    } else {
        DeadLettered::Unchanged
    })
}

/// How long an attempt keeps trying to record a send the server accepted while PostgreSQL
/// is unavailable (well within the email job's timeout).
pub const RECORD_SENT_FOR: Duration = Duration::from_secs(30);
/// How long the `email-sent:<id>` marker of a send not yet recorded is kept.
pub const SENT_MARKER_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The Redis key saying the server accepted email `id` (its value: the server's reply).
pub fn sent_marker_key(prefix: &str, id: EmailId) -> String {
    format!("{prefix}email-sent:{id}")
}

/// The server has the message: recording it must not fail lightly, or a later attempt
/// would send it again. Removes the marker once recorded.
async fn record_sent(ctx: &HandlerContext, id: EmailId, response: &str) -> Result<(), JobError> {
    retry_db(RECORD_SENT_FOR, move || async move {
        outbox::mark_sent(&mut *ctx.db.get().await?, id, response).await
    })
    .await
    .map_err(|e| JobError::Retry(format!("sent, but the outcome could not be recorded: {e}")))?;
    let mut redis = ctx.queue.connection();
    if let Err(e) = redis::cmd("DEL")
        .arg(sent_marker_key(ctx.queue.prefix(), id))
        .query_async::<i64>(&mut redis)
        .await
    {
        tracing::debug!(error = %e, "could not remove the sent marker; it expires");
    }
    Ok(())
}

/// Leaves the marker of an accepted send before it is recorded in PostgreSQL.
async fn set_sent_marker(ctx: &HandlerContext, id: EmailId, response: &str) {
    let mut redis = ctx.queue.connection();
    if let Err(e) = redis::cmd("SET")
        .arg(sent_marker_key(ctx.queue.prefix(), id))
        .arg(response)
        .arg("EX")
        .arg(SENT_MARKER_TTL.as_secs())
        .query_async::<()>(&mut redis)
        .await
    {
        tracing::warn!(error = %e, "could not leave the sent marker");
    }
}

/// The server's reply to an earlier attempt that sent email `id` but did not record it.
async fn sent_marker(ctx: &HandlerContext, id: EmailId) -> Option<String> {
    let mut redis = ctx.queue.connection();
    match redis::cmd("GET")
        .arg(sent_marker_key(ctx.queue.prefix(), id))
        .query_async::<Option<String>>(&mut redis)
        .await
    {
        Ok(found) => found,
        Err(e) => {
            // The row's claim still keeps two attempts from sending at once.
            tracing::warn!(error = %e, "could not look for a sent marker");
            None
        }
    }
}

fn compose(
    settings: &EmailSettings,
    email: &outbox::OutboxEmail,
) -> Result<lettre::Message, JobError> {
    let rendered = template::render(&email.template, &email.data, &settings.frontend_url)?;
    transport::build_message(
        &settings.from,
        &email.to_address,
        &email.message_id,
        &rendered,
    )
}

async fn record_failure(
    ctx: &HandlerContext,
    id: EmailId,
    attempt: i32,
    error: &str,
    last: bool,
) -> Result<(), JobError> {
    retry_db(Duration::from_secs(3), move || async move {
        outbox::record_failure(&mut *ctx.db.get().await?, id, attempt, error, last).await
    })
    .await
    .map_err(|e| JobError::Retry(format!("could not record the failed attempt: {e}")))
}

/// Runs a write, retrying it while the database is unavailable, for about `budget` at most.
async fn retry_db<F, Fut>(budget: Duration, write: F) -> DbResult<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = DbResult<()>>,
{
    retry_db_value(budget, write).await
}

/// [`retry_db`] for a write that returns a value.
async fn retry_db_value<T, F, Fut>(budget: Duration, mut write: F) -> DbResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = DbResult<T>>,
{
    let deadline = tokio::time::Instant::now() + budget;
    let mut delay = Duration::from_millis(200);
    let mut tries = 0;
    loop {
        tries += 1;
        match write().await {
            Err(DbError::Unavailable(e)) if tokio::time::Instant::now() + delay < deadline => {
                tracing::warn!(error = %e, tries, "database unavailable; retrying the write");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}
