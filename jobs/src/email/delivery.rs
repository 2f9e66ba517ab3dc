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
        Ok(response) => record_sent(ctx, &email, &response).await,
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

/// The server has the message: recording it must not fail lightly, or a later attempt
/// would send it again.
async fn record_sent(
    ctx: &HandlerContext,
    email: &outbox::OutboxEmail,
    response: &str,
) -> Result<(), JobError> {
    let id = email.id;
    retry_db(
        move || async move { outbox::mark_sent(&mut *ctx.db.get().await?, id, response).await },
    )
    .await
    .map_err(|e| JobError::Retry(format!("sent, but the outcome could not be recorded: {e}")))?;
    tracing::info!(smtp.response = %response, attempts = email.attempts, "email sent");
    Ok(())
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
    retry_db(move || async move {
        outbox::record_failure(&mut *ctx.db.get().await?, id, attempt, error, last).await
    })
    .await
    .map_err(|e| JobError::Retry(format!("could not record the failed attempt: {e}")))
}

/// Runs a write, retrying it a few times over ~3 s while the database is unavailable.
async fn retry_db<F, Fut>(mut write: F) -> DbResult<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = DbResult<()>>,
{
    let mut delay = Duration::from_millis(200);
    let mut tries = 0;
    loop {
        tries += 1;
        match write().await {
            Err(DbError::Unavailable(e)) if tries < 5 => {
                tracing::warn!(error = %e, tries, "database unavailable; retrying the write");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
}
