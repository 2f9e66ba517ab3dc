//! The one place the API and workers put work on a queue. Every push follows a committed
//! PostgreSQL row (a `jobs` row or an `email_outbox` row), and is deduplicated by that
//! row's id, so the sweeper's re-push of a row still in Redis is a no-op.

use uuid::Uuid;

use crate::queue::{PushOptions, Pushed, QueueClient, QueueError};
use crate::{Envelope, QueueName};

/// The kind of the email delivery job.
pub const EMAIL_SEND: &str = "email.send";

/// Pushes the job of a committed `jobs` row.
pub async fn push_job(
    client: &QueueClient,
    queue: QueueName,
    job_id: Uuid,
    kind: &str,
    request_id: Option<String>,
) -> Result<Pushed, QueueError> {
    let env = Envelope::for_job(job_id, kind, request_id);
    client
        .push(
            queue.as_str(),
            &env,
            PushOptions {
                dedupe_key: Some(format!("job:{job_id}")),
                ..Default::default()
            },
        )
        .await
}

/// Pushes the delivery of a committed `email_outbox` row.
pub async fn push_email(
    client: &QueueClient,
    email_id: Uuid,
    request_id: Option<String>,
) -> Result<Pushed, QueueError> {
    let mut env = Envelope::new(EMAIL_SEND, serde_json::json!({ "email_id": email_id }));
    env.request_id = request_id;
    client
        .push(
            QueueName::Email.as_str(),
            &env,
            PushOptions {
                dedupe_key: Some(format!("email:{email_id}")),
                ..Default::default()
            },
        )
        .await
}

/// Pushes the reconciliation of a committed `stripe_events` row.
pub async fn push_stripe_event(
    client: &QueueClient,
    event_id: Uuid,
    request_id: Option<String>,
) -> Result<Pushed, QueueError> {
    let mut env = Envelope::new(
        crate::billing::reconcile::STRIPE_RECONCILE,
        serde_json::json!({ "event_id": event_id }),
    );
    env.request_id = request_id;
    client
        .push(
            QueueName::Webhooks.as_str(),
            &env,
            PushOptions {
                dedupe_key: Some(format!("stripe-event:{event_id}")),
                ..Default::default()
            },
        )
        .await
}
