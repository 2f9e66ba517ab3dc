//! Events: every change to the account records one (`GET /v1/events/{id}`), with the
//! object as it was at that moment, and hands it to the webhook deliverer.

use serde_json::{Map, Value, json};

use crate::error::ApiResult;
use crate::list;
use crate::params::Params;
use crate::state::{Ctx, Kind, State};

/// Records an event of `type_` about `object` and queues its delivery; returns its id.
pub fn emit(
    state: &mut State,
    ctx: &Ctx,
    type_: &str,
    object: Value,
    previous: Option<Value>,
) -> String {
    let id = crate::ids::new("evt_");
    let mut event = state.template("event");
    let mut data = json!({ "object": object });
    if let Some(previous) = previous {
        data["previous_attributes"] = previous;
    }
    event["id"] = json!(id);
    event["object"] = json!("event");
    event["api_version"] = json!(state.api_version);
    event["created"] = json!(crate::ids::now());
    event["data"] = data;
    event["livemode"] = json!(false);
    event["pending_webhooks"] = json!(u8::from(state.webhook.is_some()));
    event["request"] = json!({ "id": ctx.request_id, "idempotency_key": ctx.idempotency_key });
    event["type"] = json!(type_);
    state.put(Kind::Event, event);
    state.enqueue_delivery(&id);
    id
}

/// For `*.updated` events: the old values of the top-level fields that changed.
pub fn previous_attributes(old: &Value, new: &Value) -> Option<Value> {
    let (Value::Object(old), Value::Object(new)) = (old, new) else {
        return None;
    };
    let changed: Map<String, Value> = old
        .iter()
        .filter(|(k, v)| new.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!changed.is_empty()).then_some(Value::Object(changed))
}

/// Emits `{noun}.updated` when `new` differs from `old`.
pub fn emit_updated(state: &mut State, ctx: &Ctx, type_: &str, old: &Value, new: &Value) {
    if let Some(previous) = previous_attributes(old, new) {
        emit(state, ctx, type_, new.clone(), Some(previous));
    }
}

pub fn retrieve(state: &State, id: &str) -> ApiResult<Value> {
    state.find(Kind::Event, id, "id")
}

pub fn list(state: &State, params: &Params) -> ApiResult<Value> {
    list::allow(params, &["type", "types", "created", "delivery_success"])?;
    let type_ = params.str("type")?;
    let types = params.strings("types")?;
    let items = state
        .table(Kind::Event)
        .newest_first()
        .filter(|e| {
            let t = e["type"].as_str().unwrap_or_default();
            type_.as_deref().is_none_or(|want| type_matches(want, t))
                && (types.is_empty() || types.iter().any(|want| type_matches(want, t)))
        })
        .cloned()
        .collect();
    list::page(items, params, "/v1/events")
}

/// `customer.*` matches every customer event, as Stripe's `type` filter allows.
fn type_matches(pattern: &str, type_: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => type_.starts_with(prefix),
        None => pattern == type_,
    }
}
