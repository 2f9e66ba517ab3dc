//! Test-control routes (`/_test/…`, JSON bodies): what a customer or Stripe itself would do,
//! and views of what the emulator did. They stay up during an emulated outage.
//!
//! | route | effect |
//! |---|---|
//! | `POST /_test/checkout_sessions/{id}/complete` `{email?, name?, trial_days?}` | the customer pays: subscription, first invoice, events |
//! | `POST /_test/checkout_sessions/{id}/expire` | the session expires |
//! | `POST /_test/subscriptions/{id}/fail_payment` | a declined charge: open invoice attempted, past_due |
//! | `POST /_test/subscriptions/{id}/pay` | the open invoices are paid, active |
//! | `POST /_test/subscriptions/{id}/trial_will_end` | `customer.subscription.trial_will_end` |
//! | `POST /_test/subscriptions/{id}/end_trial` | trialing → active, first paid invoice |
//! | `POST /_test/subscriptions/{id}/advance_period` | the renewal: next period, paid invoice (or the scheduled cancellation) |
//! | `POST /_test/down`, `POST /_test/up` | every `/v1` call answers 503 while down |
//! | `GET /_test/events[?type=…]` | every event so far, oldest first |
//! | `POST /_test/events/{id}/redeliver` | queue the event for delivery again |
//! | `GET /_test/deliveries` | every webhook delivery attempt |
//! | `GET`/`POST /_test/webhook_endpoint` `{url, secret?}` | where events are delivered (`url: null` stops) |
//!
//! The actions answer `{"checkout_session", "subscription", "invoice", "events": [{id, type}]}`
//! (fields that do not apply are null).

use std::sync::Arc;

use poem::Response;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::billing;
use crate::checkout::{self, Completion};
use crate::error::{ApiError, ApiResult};
use crate::server::{Shared, json};
use crate::state::{Ctx, Kind, State, WebhookEndpoint};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteBody {
    email: Option<String>,
    name: Option<String>,
    trial_days: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointBody {
    url: Option<String>,
    secret: Option<String>,
}

pub fn handle(
    shared: &Arc<Shared>,
    method: &str,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Response {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut state = shared.lock();
    let result = route(&mut state, method, &segments, query, body);
    drop(state);
    tracing::info!(%method, path = %format!("/_test/{path}"), ok = result.is_ok(), "control request");
    match result {
        Ok(value) => json(200, &value),
        Err(e) => json(e.status, &e.body("control")),
    }
}

fn route(
    state: &mut State,
    method: &str,
    segments: &[&str],
    query: Option<&str>,
    body: &[u8],
) -> ApiResult<Value> {
    let ctx = Ctx::automatic();
    match (method, segments) {
        ("POST", ["checkout_sessions", id, "complete"]) => {
            let body: CompleteBody = parse(body)?;
            let completion = Completion {
                email: body.email,
                name: body.name,
                trial_days: body.trial_days,
            };
            act(state, |state| {
                let (session, subscription, invoice) =
                    checkout::complete(state, &ctx, id, &completion)?;
                Ok(outcome(Some(session), subscription, invoice))
            })
        }
        ("POST", ["checkout_sessions", id, "expire"]) => act(state, |state| {
            Ok(outcome(
                Some(checkout::expire(state, &ctx, id)?),
                None,
                None,
            ))
        }),
        ("POST", ["subscriptions", id, action]) => {
            let id = *id;
            let run: fn(&mut State, &Ctx, &str) -> billing::Step = match *action {
                "fail_payment" => billing::fail_payment,
                "pay" => billing::pay,
                "end_trial" => billing::end_trial,
                "advance_period" => |s, c, id| billing::renew(s, c, id, billing::Payment::Succeeds),
                "trial_will_end" => |s, c, id| Ok((billing::trial_will_end(s, c, id)?, None)),
                _ => return Err(not_found(method, segments)),
            };
            act(state, |state| {
                let (subscription, invoice) = run(state, &ctx, id)?;
                Ok(outcome(None, Some(subscription), invoice))
            })
        }
        ("POST", ["down"]) => {
            state.down = true;
            Ok(json!({ "down": true }))
        }
        ("POST", ["up"]) => {
            state.down = false;
            Ok(json!({ "down": false }))
        }
        ("GET", ["events"]) => {
            let params =
                crate::form::parse(query.unwrap_or_default()).map_err(ApiError::invalid)?;
            let type_ = params.get("type").and_then(Value::as_str);
            let data: Vec<Value> = state
                .table(Kind::Event)
                .since(0)
                .iter()
                .filter(|e| type_.is_none_or(|t| e["type"] == json!(t)))
                .cloned()
                .collect();
            Ok(json!({ "object": "list", "data": data, "has_more": false, "url": "/_test/events" }))
        }
        ("POST", ["events", id, "redeliver"]) => {
            state.find(Kind::Event, id, "id")?;
            if state.webhook.is_none() {
                return Err(ApiError::invalid("No webhook endpoint is configured."));
            }
            state.enqueue_delivery(id);
            Ok(json!({ "id": id, "queued": true }))
        }
        ("GET", ["deliveries"]) => Ok(json!({ "data": state.deliveries })),
        ("GET", ["webhook_endpoint"]) => Ok(json!(state.webhook)),
        ("POST", ["webhook_endpoint"]) => {
            let body: EndpointBody = parse(body)?;
            if let Some(secret) = body.secret {
                state.webhook_secret = secret;
            }
            state.webhook = body.url.map(|url| WebhookEndpoint {
                url,
                secret: state.webhook_secret.clone(),
            });
            Ok(json!(state.webhook))
        }
        ("GET", ["health"]) => Ok(json!({ "ok": true, "down": state.down })),
        _ => Err(not_found(method, segments)),
    }
}

fn not_found(method: &str, segments: &[&str]) -> ApiError {
    ApiError::unrecognized_url(method, &format!("/_test/{}", segments.join("/")))
}

/// A JSON body; an empty body is the default.
fn parse<T: DeserializeOwned + Default>(body: &[u8]) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("Invalid JSON body: {e}")))
}

/// Runs an action and adds the events it emitted to its outcome.
fn act(state: &mut State, f: impl FnOnce(&mut State) -> ApiResult<Value>) -> ApiResult<Value> {
    let before = state.table(Kind::Event).len();
    let mut value = f(state)?;
    let events: Vec<Value> = state
        .table(Kind::Event)
        .since(before)
        .iter()
        .map(|e| json!({ "id": e["id"], "type": e["type"] }))
        .collect();
    value["events"] = json!(events);
    Ok(value)
}

fn outcome(session: Option<Value>, subscription: Option<Value>, invoice: Option<Value>) -> Value {
    json!({ "checkout_session": session, "subscription": subscription, "invoice": invoice })
}
