//! Webhook delivery: each event is POSTed to the configured endpoint with a real
//! `Stripe-Signature` (`t=<unix>,v1=<hex HMAC-SHA256(secret, "t.payload")>`). First attempts
//! go out in the order events happened; a failed one (no answer, or not 2xx) is retried in
//! the background with doubling waits, so one bad event holds up no other.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::server::Shared;
use crate::state::{Delivery, Kind};

/// The `v1` signature of `payload` at time `t`.
pub fn sign(secret: &str, t: i64, payload: &str) -> String {
    // HMAC takes keys of any length; the error case cannot happen.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(format!("{t}.{payload}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Delivers the events queued on `outbox` until the server stops.
pub fn spawn(shared: Arc<Shared>, mut outbox: UnboundedReceiver<String>) {
    tokio::spawn(async move {
        while let Some(event_id) = outbox.recv().await {
            if attempt(&shared, &event_id, 1).await {
                continue;
            }
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut wait = shared.delivery.backoff;
                for n in 2..=shared.delivery.attempts {
                    tokio::time::sleep(wait).await;
                    if attempt(&shared, &event_id, n).await {
                        return;
                    }
                    wait = wait.saturating_mul(2);
                }
                tracing::warn!(%event_id, "webhook delivery gave up");
            });
        }
    });
}

/// One delivery attempt; true when the endpoint answered 2xx (or none is configured).
async fn attempt(shared: &Shared, event_id: &str, n: u32) -> bool {
    let prepared = {
        let state = shared.lock();
        let Some(endpoint) = state.webhook.clone() else {
            return true;
        };
        let Some(event) = state.get(Kind::Event, event_id) else {
            return true;
        };
        let type_ = event["type"].as_str().unwrap_or_default().to_owned();
        // Stripe sends pretty-printed JSON; receivers must verify the bytes as sent.
        let payload = serde_json::to_string_pretty(event).unwrap_or_default();
        (endpoint, type_, payload)
    };
    let (endpoint, type_, payload) = prepared;
    let t = crate::ids::now();
    let signature = format!("t={t},v1={}", sign(&endpoint.secret, t, &payload));
    let result = shared
        .http
        .post(&endpoint.url)
        .header("content-type", "application/json; charset=utf-8")
        .header(
            "user-agent",
            "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        )
        .header("stripe-signature", signature)
        .timeout(Duration::from_secs(10))
        .body(payload)
        .send()
        .await;
    let (status, error) = match result {
        Ok(response) => (Some(response.status().as_u16()), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let delivered = status.is_some_and(|s| (200..300).contains(&s));
    tracing::info!(%event_id, %type_, attempt = n, ?status, ?error, "webhook delivery");
    let mut state = shared.lock();
    state.deliveries.push(Delivery {
        event: event_id.to_owned(),
        type_,
        attempt: n,
        url: endpoint.url,
        at: t,
        status,
        error,
        delivered,
    });
    if delivered && let Some(event) = state.get_mut(Kind::Event, event_id) {
        event["pending_webhooks"] = json!(0);
    }
    delivered
}
