//! `/v1/prices`: create (lookup keys, with transfer), retrieve, update, list (by lookup
//! keys, product, active, …) and search. Prices cannot be deleted, as at Stripe.

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::events;
use crate::list;
use crate::params::{Params, apply_metadata, set_nullable};
use crate::search::Query;
use crate::state::{Ctx, Kind, State};

const CREATE: &[&str] = &[
    "active",
    "billing_scheme",
    "currency",
    "currency_options",
    "custom_unit_amount",
    "lookup_key",
    "metadata",
    "nickname",
    "product",
    "product_data",
    "recurring",
    "tax_behavior",
    "tiers",
    "tiers_mode",
    "transfer_lookup_key",
    "transform_quantity",
    "unit_amount",
    "unit_amount_decimal",
];
const UPDATE: &[&str] = &[
    "active",
    "currency_options",
    "lookup_key",
    "metadata",
    "nickname",
    "tax_behavior",
    "transfer_lookup_key",
];
const INTERVALS: &[&str] = &["day", "week", "month", "year"];

pub fn create(state: &mut State, ctx: &Ctx, params: &Params) -> ApiResult<Value> {
    params.allow(CREATE)?;
    let product = match (params.str("product")?, params.hash("product_data")?) {
        (Some(product), None) => {
            crate::products::retrieve(state, &product).map_err(|e| e.with_param("product"))?;
            product
        }
        (None, Some(data)) => {
            data.allow(&[
                "name",
                "active",
                "metadata",
                "statement_descriptor",
                "tax_code",
                "unit_label",
                "id",
            ])?;
            let created = crate::products::create(state, ctx, &data)?;
            created["id"].as_str().unwrap_or_default().to_owned()
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::param(
                "product_data",
                "You may only specify one of these parameters: product, product_data.",
            ));
        }
        (None, None) => return Err(ApiError::missing_param("product")),
    };
    create_for_product(state, ctx, &product, params)
}

/// Creates a price of `product` from price parameters (also `default_price_data`).
pub fn create_for_product(
    state: &mut State,
    ctx: &Ctx,
    product: &str,
    params: &Params,
) -> ApiResult<Value> {
    let currency = params.required_str("currency")?.to_lowercase();
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_lowercase()) {
        return Err(ApiError::param(
            params.name("currency"),
            format!("Invalid currency: {currency}."),
        ));
    }
    let unit_amount = match (
        params.count("unit_amount")?,
        params.str("unit_amount_decimal")?,
    ) {
        (Some(amount), _) => amount,
        (None, Some(decimal)) => decimal
            .parse::<f64>()
            .ok()
            .filter(|d| *d >= 0.0)
            .map(|d| d.round() as i64)
            .ok_or_else(|| {
                ApiError::param(params.name("unit_amount_decimal"), "Invalid decimal.")
            })?,
        (None, None) => {
            return Err(ApiError::param(
                params.name("unit_amount"),
                "You must pass either `unit_amount`, `unit_amount_decimal`, or `custom_unit_amount`.",
            ));
        }
    };
    let now = crate::ids::now();
    let mut price = state.template("price");
    price["id"] = json!(crate::ids::new("price_"));
    price["created"] = json!(now);
    price["currency"] = json!(currency);
    price["product"] = json!(product);
    price["unit_amount"] = json!(unit_amount);
    price["unit_amount_decimal"] = json!(unit_amount.to_string());
    if let Some(recurring) = params.hash("recurring")? {
        recurring.allow(&[
            "interval",
            "interval_count",
            "meter",
            "usage_type",
            "trial_period_days",
        ])?;
        let interval = recurring
            .choice("interval", INTERVALS)?
            .ok_or_else(|| ApiError::missing_param(&recurring.name("interval")))?;
        let count = recurring.int("interval_count")?.unwrap_or(1);
        if count < 1 || (interval == "year" && count > 3) || count > 156 {
            return Err(ApiError::param(
                recurring.name("interval_count"),
                "The interval_count is out of range (at most one year, or three years for yearly prices).",
            ));
        }
        price["type"] = json!("recurring");
        price["recurring"] = json!({
            "interval": interval,
            "interval_count": count,
            "meter": recurring.str("meter")?,
            "trial_period_days": recurring.count("trial_period_days")?,
            "usage_type": recurring.choice("usage_type", &["licensed", "metered"])?.unwrap_or_else(|| "licensed".into()),
        });
    }
    if let Some(scheme) = params.choice("billing_scheme", &["per_unit", "tiered"])? {
        price["billing_scheme"] = json!(scheme);
    }
    apply(state, ctx, &mut price, params)?;
    state.put(Kind::Price, price.clone());
    events::emit(state, ctx, "price.created", price.clone(), None);
    Ok(price)
}

pub fn retrieve(state: &State, id: &str) -> ApiResult<Value> {
    state.find(Kind::Price, id, "id")
}

pub fn update(state: &mut State, ctx: &Ctx, id: &str, params: &Params) -> ApiResult<Value> {
    params.allow(UPDATE)?;
    let old = retrieve(state, id)?;
    let mut price = old.clone();
    apply(state, ctx, &mut price, params)?;
    state.put(Kind::Price, price.clone());
    events::emit_updated(state, ctx, "price.updated", &old, &price);
    Ok(price)
}

pub fn list(state: &State, params: &Params) -> ApiResult<Value> {
    list::allow(
        params,
        &[
            "active",
            "currency",
            "product",
            "type",
            "lookup_keys",
            "recurring",
            "created",
        ],
    )?;
    let active = params.bool("active")?;
    let currency = params.str("currency")?;
    let product = params.str("product")?;
    let type_ = params.choice("type", &["one_time", "recurring"])?;
    let lookup_keys = params.strings("lookup_keys")?;
    if lookup_keys.len() > 10 {
        return Err(ApiError::param(
            "lookup_keys",
            "You may pass at most 10 lookup keys.",
        ));
    }
    let interval = match params.hash("recurring")? {
        Some(r) => r.choice("interval", INTERVALS)?,
        None => None,
    };
    let items = state
        .table(Kind::Price)
        .newest_first()
        .filter(|p| active.is_none_or(|a| p["active"] == json!(a)))
        .filter(|p| currency.as_ref().is_none_or(|c| p["currency"] == json!(c)))
        .filter(|p| product.as_ref().is_none_or(|id| p["product"] == json!(id)))
        .filter(|p| type_.as_ref().is_none_or(|t| p["type"] == json!(t)))
        .filter(|p| {
            lookup_keys.is_empty() || lookup_keys.iter().any(|k| p["lookup_key"] == json!(k))
        })
        .filter(|p| {
            interval
                .as_ref()
                .is_none_or(|i| p["recurring"]["interval"] == json!(i))
        })
        .cloned()
        .collect();
    list::page(items, params, "/v1/prices")
}

pub fn search(state: &State, params: &Params) -> ApiResult<Value> {
    params.allow(&["query", "limit", "page"])?;
    let query = Query::parse(
        &params.required_str("query")?,
        &[
            "active",
            "currency",
            "lookup_key",
            "product",
            "type",
            "created",
        ],
    )?;
    let items = state
        .table(Kind::Price)
        .newest_first()
        .filter(|p| query.matches(p))
        .cloned()
        .collect();
    list::search_page(items, params, "/v1/prices/search")
}

/// The fields create and update share: active, nickname, metadata, tax behaviour and the
/// lookup key (unique in the account unless `transfer_lookup_key` moves it).
fn apply(state: &mut State, ctx: &Ctx, price: &mut Value, params: &Params) -> ApiResult<()> {
    if let Some(active) = params.bool("active")? {
        price["active"] = json!(active);
    }
    set_nullable(price, params, "nickname")?;
    if let Some(behavior) =
        params.choice("tax_behavior", &["exclusive", "inclusive", "unspecified"])?
    {
        price["tax_behavior"] = json!(behavior);
    }
    if let Some(update) = params.metadata("metadata")? {
        apply_metadata(&mut price["metadata"], update, &params.name("metadata"))?;
    }
    let transfer = params.bool("transfer_lookup_key")?.unwrap_or(false);
    if let Some(lookup_key) = params.nullable_str("lookup_key")? {
        if let Some(key) = &lookup_key {
            if key.chars().count() > 200 {
                return Err(ApiError::param(
                    params.name("lookup_key"),
                    "Lookup keys can have up to 200 characters.",
                ));
            }
            let holder = state
                .table(Kind::Price)
                .newest_first()
                .find(|p| p["lookup_key"] == json!(key) && p["id"] != price["id"])
                .cloned();
            if let Some(holder) = holder {
                if !transfer {
                    return Err(ApiError::param(
                        params.name("lookup_key"),
                        format!(
                            "A price (`{}`) already uses that lookup key.",
                            holder["id"].as_str().unwrap_or_default()
                        ),
                    ));
                }
                let mut moved = holder.clone();
                moved["lookup_key"] = Value::Null;
                state.put(Kind::Price, moved.clone());
                events::emit_updated(state, ctx, "price.updated", &holder, &moved);
            }
        }
        price["lookup_key"] = json!(lookup_key);
    }
    Ok(())
}
