//! Turning stored objects into what the API answers: embedded copies of other objects
//! (a subscription item's price and plan) are taken fresh from the account, and
//! `expand[]` replaces ids with the objects they name.

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::state::{Kind, State, deleted_stub};

/// The current form of a stored object.
pub fn object(state: &State, kind: Kind, id: &str) -> Option<Value> {
    if state.is_deleted(id) {
        return Some(deleted_stub(kind, id));
    }
    let mut value = state.get(kind, id)?.clone();
    if kind == Kind::Subscription {
        refresh_items(state, &mut value);
    }
    Some(value)
}

/// Subscription items embed their price (and the legacy plan view of it).
pub fn refresh_items(state: &State, subscription: &mut Value) {
    let Some(items) = subscription["items"]["data"].as_array_mut() else {
        return;
    };
    for item in items {
        let Some(price_id) = item["price"]["id"].as_str() else {
            continue;
        };
        if let Some(price) = state.get(Kind::Price, price_id) {
            item["plan"] = plan_of(state, price);
            item["price"] = price.clone();
        }
    }
}

/// The legacy `plan` view of a recurring price, as Stripe still embeds it.
pub fn plan_of(state: &State, price: &Value) -> Value {
    let mut plan = state.template("plan");
    let recurring = &price["recurring"];
    for (field, value) in [
        ("id", price["id"].clone()),
        ("active", price["active"].clone()),
        ("amount", price["unit_amount"].clone()),
        ("amount_decimal", price["unit_amount_decimal"].clone()),
        ("created", price["created"].clone()),
        ("currency", price["currency"].clone()),
        ("interval", recurring["interval"].clone()),
        ("interval_count", recurring["interval_count"].clone()),
        ("metadata", price["metadata"].clone()),
        ("nickname", price["nickname"].clone()),
        ("product", price["product"].clone()),
        ("trial_period_days", recurring["trial_period_days"].clone()),
        (
            "usage_type",
            json!(recurring["usage_type"].as_str().unwrap_or("licensed")),
        ),
    ] {
        plan[field] = value;
    }
    plan
}

/// Applies `expand[]` paths (`customer`, `subscription.latest_invoice`, `data.customer`).
pub fn expand(state: &State, value: &mut Value, paths: &[String]) -> ApiResult<()> {
    for (i, path) in paths.iter().enumerate() {
        let segments: Vec<&str> = path.split('.').collect();
        if segments.len() > 4 {
            return Err(ApiError::param(
                format!("expand[{i}]"),
                format!("You cannot expand more than 4 levels of a property. Property: {path}"),
            ));
        }
        expand_at(state, value, &segments, path, i)?;
    }
    Ok(())
}

fn expand_at(
    state: &State,
    node: &mut Value,
    segments: &[&str],
    path: &str,
    index: usize,
) -> ApiResult<()> {
    let Some((first, rest)) = segments.split_first() else {
        return Ok(());
    };
    if let Value::Array(items) = node {
        for item in items {
            expand_at(state, item, segments, path, index)?;
        }
        return Ok(());
    }
    let Value::Object(map) = node else {
        return Ok(());
    };
    if *first == "line_items" && map.get("object") == Some(&json!("checkout.session")) {
        let id = map
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        map.insert(
            "line_items".into(),
            crate::checkout::line_items_list(state, &id),
        );
    }
    let Some(child) = map.get_mut(*first) else {
        return Err(cannot_expand(path, first, index));
    };
    if let Value::String(id) = child {
        let kind = state
            .kind_of(id)
            .ok_or_else(|| cannot_expand(path, first, index))?;
        *child = object(state, kind, id).ok_or_else(|| cannot_expand(path, first, index))?;
    } else if !(child.is_null() || child.is_object() || child.is_array()) {
        return Err(cannot_expand(path, first, index));
    }
    expand_at(state, child, rest, path, index)
}

fn cannot_expand(path: &str, field: &str, index: usize) -> ApiError {
    ApiError::param(
        format!("expand[{index}]"),
        format!(
            "This property cannot be expanded ({field}). You may want to try expanding '{path}' on a different object."
        ),
    )
}
