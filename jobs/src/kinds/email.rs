//! `email.send`: delivers one `email_outbox` row (payload `{"email_id": ...}`).

use catalytic_db::ids::EmailId;
use serde::Deserialize;

use crate::context::HandlerContext;
use crate::{Envelope, JobError, email};

pub use crate::enqueue::EMAIL_SEND;

#[derive(Debug, Deserialize)]
struct Payload {
    email_id: uuid::Uuid,
}

pub async fn send(
    ctx: &HandlerContext,
    env: &Envelope,
    attempt: u32,
    final_attempt: bool,
) -> Result<(), JobError> {
    let payload: Payload = serde_json::from_value(env.payload.clone())
        .map_err(|e| JobError::Abort(format!("bad {EMAIL_SEND} payload: {e}")))?;
    email::delivery::deliver(
        ctx,
        EmailId::from_uuid(payload.email_id),
        attempt,
        final_attempt,
    )
    .await
}

/// The email an `email.send` envelope delivers (`None`: another kind, or a bad payload).
pub fn email_id(env: &Envelope) -> Option<EmailId> {
    if env.kind != EMAIL_SEND {
        return None;
    }
    let payload: Payload = serde_json::from_value(env.payload.clone()).ok()?;
    Some(EmailId::from_uuid(payload.email_id))
}
