//! `/v1/subscriptions`: create, retrieve, list, update (plan changes with prorations,
//! cancellation at period end, trial changes, metadata) and cancel.

use serde_json::{Value, json};

use crate::billing::{self, NewItem, NewSubscription, Payment};
use crate::error::{ApiError, ApiResult};
use crate::list;
use crate::params::{Params, apply_metadata};
use crate::render;
use crate::state::{Ctx, Kind, State};

/// Parameters Stripe accepts on create and update that the emulator stores nothing for.
const ACCEPTED: &[&str] = &[
    "add_invoice_items",
    "application_fee_percent",
    "automatic_tax",
    "billing_schedules",
    "billing_thresholds",
    "collection_method",
    "days_until_due",
    "default_source",
    "default_tax_rates",
    "discounts",
    "invoice_settings",
    "off_session",
    "on_behalf_of",
    "payment_settings",
    "pending_invoice_item_interval",
    "transfer_data",
    "trial_settings",
];
const COMMON: &[&str] = &[
    "items",
    "metadata",
    "description",
    "cancel_at_period_end",
    "cancel_at",
    "default_payment_method",
    "payment_behavior",
    "proration_behavior",
    "trial_end",
    "billing_cycle_anchor",
];
const CREATE_ONLY: &[&str] = &[
    "customer",
    "customer_account",
    "currency",
    "trial_period_days",
    "trial_from_plan",
    "backdate_start_date",
    "billing_cycle_anchor_config",
    "billing_mode",
    "test_clock",
];
const UPDATE_ONLY: &[&str] = &[
    "proration_date",
    "pause_collection",
    "cancellation_details",
    "trial_from_plan",
];
const PAYMENT_BEHAVIORS: &[&str] = &[
    "allow_incomplete",
    "default_incomplete",
    "error_if_incomplete",
    "pending_if_incomplete",
];
const PRORATION_BEHAVIORS: &[&str] = &["always_invoice", "create_prorations", "none"];

pub fn create(state: &mut State, ctx: &Ctx, params: &Params) -> ApiResult<Value> {
    params.allow(&[ACCEPTED, COMMON, CREATE_ONLY].concat())?;
    let customer = params.required_str("customer")?;
    crate::customers::live(state, &customer, "customer")?;
    let mut items = Vec::new();
    for item in params.list("items")? {
        item.allow(&[
            "price",
            "plan",
            "quantity",
            "metadata",
            "discounts",
            "tax_rates",
            "billing_thresholds",
            "price_data",
            "current_trial",
        ])?;
        // `plan` is the legacy name of a price id.
        let key = if item.has("plan") && !item.has("price") {
            "plan"
        } else {
            "price"
        };
        let price_id = item.required_str(key)?;
        let price = state.find(Kind::Price, &price_id, &item.name(key))?;
        let mut metadata = json!({});
        if let Some(update) = item.metadata("metadata")? {
            apply_metadata(&mut metadata, update, &item.name("metadata"))?;
        }
        items.push(NewItem {
            price,
            quantity: item.count("quantity")?.unwrap_or(1),
            metadata,
        });
    }
    let mut metadata = json!({});
    if let Some(update) = params.metadata("metadata")? {
        apply_metadata(&mut metadata, update, "metadata")?;
    }
    let trial_end = match params.str("trial_end")?.as_deref() {
        None => None,
        Some("now") => None,
        Some(ts) => Some(
            ts.parse::<i64>()
                .map_err(|_| ApiError::param("trial_end", format!("Invalid timestamp: {ts}")))?,
        ),
    };
    let payment = match params
        .choice("payment_behavior", PAYMENT_BEHAVIORS)?
        .as_deref()
    {
        Some("default_incomplete") => Payment::Pending,
        _ => Payment::Succeeds,
    };
    params.choice("proration_behavior", PRORATION_BEHAVIORS)?;
    let options = NewSubscription {
        metadata,
        trial_days: params.count("trial_period_days")?,
        trial_end,
        description: params.str("description")?,
        cancel_at_period_end: params.bool("cancel_at_period_end")?.unwrap_or(false),
        default_payment_method: params.str("default_payment_method")?,
    };
    let (subscription, _) =
        billing::create_subscription(state, ctx, &customer, &items, options, payment)?;
    Ok(subscription)
}

pub fn retrieve(state: &State, id: &str) -> ApiResult<Value> {
    render::object(state, Kind::Subscription, id)
        .ok_or_else(|| ApiError::no_such("subscription", id, "id"))
}

pub fn list(state: &State, params: &Params) -> ApiResult<Value> {
    list::allow(
        params,
        &[
            "customer",
            "customer_account",
            "plan",
            "price",
            "status",
            "collection_method",
            "created",
            "current_period_end",
            "current_period_start",
            "test_clock",
            "automatic_tax",
        ],
    )?;
    let customer = params.str("customer")?;
    let price = params.str("price")?.or(params.str("plan")?);
    let status = params.str("status")?;
    if let Some(s) = &status
        && s != "all"
        && s != "ended"
        && !billing::STATUSES.contains(&s.as_str())
    {
        return Err(ApiError::param("status", format!("Invalid status: {s}")));
    }
    let items = state
        .table(Kind::Subscription)
        .newest_first()
        .filter_map(|s| {
            render::object(
                state,
                Kind::Subscription,
                s["id"].as_str().unwrap_or_default(),
            )
        })
        .filter(|s| customer.as_ref().is_none_or(|c| s["customer"] == json!(c)))
        .filter(|s| {
            price.as_ref().is_none_or(|p| {
                s["items"]["data"]
                    .as_array()
                    .is_some_and(|items| items.iter().any(|i| i["price"]["id"] == json!(p)))
            })
        })
        .filter(|s| match status.as_deref() {
            // Without a status filter Stripe lists the subscriptions not canceled.
            None => s["status"] != json!("canceled"),
            Some("all") => true,
            Some("ended") => matches!(
                s["status"].as_str(),
                Some("canceled" | "incomplete_expired")
            ),
            Some(want) => s["status"] == json!(want),
        })
        .collect();
    list::page(items, params, "/v1/subscriptions")
}

pub fn update(state: &mut State, ctx: &Ctx, id: &str, params: &Params) -> ApiResult<Value> {
    params.allow(&[ACCEPTED, COMMON, UPDATE_ONLY].concat())?;
    let old = retrieve(state, id)?;
    let status = old["status"].as_str().unwrap_or_default().to_owned();
    if matches!(status.as_str(), "canceled" | "incomplete_expired")
        && params
            .keys()
            .any(|k| k != "metadata" && k != "cancellation_details")
    {
        return Err(ApiError::invalid(
            "A canceled subscription can only update its cancellation_details and metadata.",
        ));
    }
    let behavior = params
        .choice("proration_behavior", PRORATION_BEHAVIORS)?
        .unwrap_or_else(|| "create_prorations".into());
    params.choice("payment_behavior", PAYMENT_BEHAVIORS)?;
    let now = params
        .int("proration_date")?
        .unwrap_or_else(crate::ids::now);
    let mut subscription = old.clone();
    let old_interval = billing::interval_of(&old["items"]["data"][0]["price"]);
    let mut prorations = apply_items(state, id, &mut subscription, params, now)?;

    let new_interval = billing::interval_of(&subscription["items"]["data"][0]["price"]);
    let trialing = status == "trialing";
    if trialing || behavior == "none" {
        prorations.clear();
    }
    let mut invoice_now: Option<(Vec<Value>, (i64, i64))> = None;
    if new_interval != old_interval && !trialing {
        // A new billing interval restarts the period and bills it at once.
        let next = (
            now,
            billing::add_interval(now, &new_interval.0, new_interval.1),
        );
        prorations.retain(|l| l["amount"].as_i64().unwrap_or_default() < 0);
        for item in subscription["items"]["data"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            item["current_period_start"] = json!(next.0);
            item["current_period_end"] = json!(next.1);
        }
        subscription["billing_cycle_anchor"] = json!(now);
        let mut lines = state.pending_lines.remove(id).unwrap_or_default();
        lines.append(&mut prorations);
        for item in subscription["items"]["data"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            lines.push(billing::item_line(
                state,
                id,
                &item,
                billing::item_amount(&item),
                next,
                false,
            ));
        }
        invoice_now = Some((lines, next));
    } else if behavior == "always_invoice" && !prorations.is_empty() {
        let mut lines = state.pending_lines.remove(id).unwrap_or_default();
        lines.append(&mut prorations);
        invoice_now = Some((lines, billing::period(&subscription)));
    } else if !prorations.is_empty() {
        state
            .pending_lines
            .entry(id.to_owned())
            .or_default()
            .append(&mut prorations);
    }

    apply_simple_fields(&mut subscription, params)?;
    if let Some(trial_end) = params.str("trial_end")? {
        apply_trial_end(&mut subscription, &trial_end, trialing)?;
    }
    let ending_trial = trialing && params.str("trial_end")?.as_deref() == Some("now");
    if ending_trial {
        // Other changes first, then the engine ends the trial and bills the first period.
        billing::save_subscription(state, ctx, &old, subscription);
        let (ended, _) = billing::end_trial(state, ctx, id)?;
        return Ok(ended);
    }
    let invoice = match invoice_now {
        Some((lines, period)) => {
            let draft =
                billing::draft_invoice(state, &subscription, lines, "subscription_update", period)?;
            subscription["latest_invoice"] = draft["id"].clone();
            Some(draft)
        }
        None => None,
    };
    let saved = billing::save_subscription(state, ctx, &old, subscription);
    if let Some(draft) = invoice {
        billing::issue_invoice(state, ctx, draft, Payment::Succeeds);
    }
    Ok(saved)
}

/// `items[N][id|price|quantity|deleted|metadata]`: swaps prices, changes quantities, adds
/// and removes items. Returns the proration lines of the changes.
fn apply_items(
    state: &State,
    id: &str,
    subscription: &mut Value,
    params: &Params,
    now: i64,
) -> ApiResult<Vec<Value>> {
    let period = billing::period(subscription);
    let mut prorations = Vec::new();
    let mut items: Vec<Value> = subscription["items"]["data"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for change in params.list("items")? {
        change.allow(&[
            "id",
            "price",
            "quantity",
            "deleted",
            "metadata",
            "clear_usage",
            "discounts",
            "tax_rates",
            "billing_thresholds",
            "price_data",
            "plan",
            "current_trial",
        ])?;
        let price = match change.str("price")?.or(change.str("plan")?) {
            Some(price_id) => Some(state.find(Kind::Price, &price_id, &change.name("price"))?),
            None => None,
        };
        let quantity = change.count("quantity")?;
        match change.str("id")? {
            Some(item_id) => {
                let position = items
                    .iter()
                    .position(|i| i["id"] == json!(item_id))
                    .ok_or_else(|| {
                        ApiError::no_such("subscription_item", &item_id, &change.name("id"))
                    })?;
                if change.bool("deleted")?.unwrap_or(false) {
                    let removed = items.remove(position);
                    prorations.push(billing::proration_line(
                        state,
                        id,
                        &item_id,
                        &removed["price"],
                        removed["quantity"].as_i64().unwrap_or(1),
                        true,
                        now,
                        period,
                    ));
                    continue;
                }
                let item = &mut items[position];
                let old_price = item["price"].clone();
                let old_quantity = item["quantity"].as_i64().unwrap_or(1);
                let new_price = price.unwrap_or_else(|| old_price.clone());
                let new_quantity = quantity.unwrap_or(old_quantity);
                if new_price["id"] != old_price["id"] || new_quantity != old_quantity {
                    check_price(&new_price, &change.name("price"))?;
                    prorations.push(billing::proration_line(
                        state,
                        id,
                        &item_id,
                        &old_price,
                        old_quantity,
                        true,
                        now,
                        period,
                    ));
                    prorations.push(billing::proration_line(
                        state,
                        id,
                        &item_id,
                        &new_price,
                        new_quantity,
                        false,
                        now,
                        period,
                    ));
                    item["plan"] = render::plan_of(state, &new_price);
                    item["price"] = new_price;
                    item["quantity"] = json!(new_quantity);
                }
                if let Some(update) = change.metadata("metadata")? {
                    apply_metadata(&mut item["metadata"], update, &change.name("metadata"))?;
                }
            }
            None => {
                let price = price.ok_or_else(|| ApiError::missing_param(&change.name("price")))?;
                check_price(&price, &change.name("price"))?;
                let mut metadata = json!({});
                if let Some(update) = change.metadata("metadata")? {
                    apply_metadata(&mut metadata, update, &change.name("metadata"))?;
                }
                let new = NewItem {
                    price,
                    quantity: quantity.unwrap_or(1),
                    metadata,
                };
                let item = billing::new_item(state, id, &new, period);
                prorations.push(billing::proration_line(
                    state,
                    id,
                    item["id"].as_str().unwrap_or_default(),
                    &new.price,
                    new.quantity,
                    false,
                    now,
                    period,
                ));
                items.push(item);
            }
        }
    }
    if items.is_empty() {
        return Err(ApiError::param(
            "items",
            "A subscription must have at least one active item.",
        ));
    }
    let first = billing::interval_of(&items[0]["price"]);
    if items.iter().any(|i| {
        billing::interval_of(&i["price"]) != first
            || i["price"]["currency"] != items[0]["price"]["currency"]
    }) {
        return Err(ApiError::param(
            "items",
            "Currency and interval fields must match across all plans on this subscription.",
        ));
    }
    subscription["items"]["total_count"] = json!(items.len());
    subscription["items"]["data"] = json!(items);
    Ok(prorations)
}

fn check_price(price: &Value, param: &str) -> ApiResult<()> {
    if price["active"] != json!(true) {
        return Err(ApiError::param(
            param,
            "The price specified is inactive. This field only accepts active prices.",
        ));
    }
    if price["type"] != json!("recurring") {
        return Err(ApiError::param(
            param,
            "A subscription item requires a recurring price.",
        ));
    }
    Ok(())
}

fn apply_simple_fields(subscription: &mut Value, params: &Params) -> ApiResult<()> {
    if let Some(update) = params.metadata("metadata")? {
        apply_metadata(&mut subscription["metadata"], update, "metadata")?;
    }
    if let Some(description) = params.nullable_str("description")? {
        subscription["description"] = json!(description);
    }
    if let Some(pm) = params.nullable_str("default_payment_method")? {
        subscription["default_payment_method"] = json!(pm);
    }
    if let Some(cancel) = params.bool("cancel_at_period_end")? {
        billing::request_cancel_at_period_end(subscription, cancel);
    }
    if let Some(cancel_at) = params.nullable_str("cancel_at")? {
        match cancel_at {
            None => billing::request_cancel_at_period_end(subscription, false),
            Some(ts) => {
                let ts: i64 = ts.parse().map_err(|_| {
                    ApiError::param("cancel_at", format!("Invalid timestamp: {ts}"))
                })?;
                subscription["cancel_at_period_end"] = json!(ts == billing::period(subscription).1);
                subscription["cancel_at"] = json!(ts);
                subscription["canceled_at"] = json!(crate::ids::now());
                subscription["cancellation_details"]["reason"] = json!("cancellation_requested");
            }
        }
    }
    if let Some(details) = params.hash("cancellation_details")? {
        details.allow(&["comment", "feedback"])?;
        if let Some(comment) = details.nullable_str("comment")? {
            subscription["cancellation_details"]["comment"] = json!(comment);
        }
        if let Some(feedback) = details.nullable_str("feedback")? {
            subscription["cancellation_details"]["feedback"] = json!(feedback);
        }
    }
    Ok(())
}

/// `trial_end=<unix>` moves a trial's end (and so its period end); `now` is handled by
/// the caller.
fn apply_trial_end(subscription: &mut Value, trial_end: &str, trialing: bool) -> ApiResult<()> {
    if trial_end == "now" {
        return Ok(());
    }
    let ts: i64 = trial_end
        .parse()
        .map_err(|_| ApiError::param("trial_end", format!("Invalid timestamp: {trial_end}")))?;
    if ts <= crate::ids::now() {
        return Err(ApiError::param(
            "trial_end",
            "Invalid timestamp: must be in the future.",
        ));
    }
    if !trialing {
        return Err(ApiError::param(
            "trial_end",
            "Only a trialing subscription's trial can be moved.",
        ));
    }
    subscription["trial_end"] = json!(ts);
    subscription["billing_cycle_anchor"] = json!(ts);
    let start = billing::period(subscription).0;
    for item in subscription["items"]["data"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        item["current_period_start"] = json!(start);
        item["current_period_end"] = json!(ts);
    }
    Ok(())
}

/// `DELETE /v1/subscriptions/{id}`: cancels now; `invoice_now` bills pending prorations
/// (and, with `prorate`, credits the unused time) on a final invoice.
pub fn cancel(state: &mut State, ctx: &Ctx, id: &str, params: &Params) -> ApiResult<Value> {
    params.allow(&["invoice_now", "prorate", "cancellation_details"])?;
    let subscription = retrieve(state, id)?;
    if subscription["status"] == json!("canceled") {
        return Err(ApiError::invalid(
            "A canceled subscription can only update its cancellation_details and metadata.",
        ));
    }
    let invoice_now = params.bool("invoice_now")?.unwrap_or(false);
    let prorate = params.bool("prorate")?.unwrap_or(false);
    let mut staged = subscription.clone();
    if let Some(details) = params.hash("cancellation_details")? {
        details.allow(&["comment", "feedback"])?;
        staged["cancellation_details"]["comment"] =
            json!(details.nullable_str("comment")?.flatten());
        staged["cancellation_details"]["feedback"] =
            json!(details.nullable_str("feedback")?.flatten());
        state.put(Kind::Subscription, staged.clone());
    }
    let mut final_invoice = None;
    if invoice_now {
        let now = crate::ids::now();
        let period = billing::period(&staged);
        let mut lines = state.pending_lines.remove(id).unwrap_or_default();
        if prorate && staged["status"] != json!("trialing") {
            for item in staged["items"]["data"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                lines.push(billing::proration_line(
                    state,
                    id,
                    item["id"].as_str().unwrap_or_default(),
                    &item["price"],
                    item["quantity"].as_i64().unwrap_or(1),
                    true,
                    now,
                    period,
                ));
            }
        }
        if !lines.is_empty() {
            final_invoice = Some(billing::draft_invoice(
                state,
                &staged,
                lines,
                "subscription_update",
                period,
            )?);
        }
    }
    if let Some(draft) = final_invoice {
        if let Some(s) = state.get_mut(Kind::Subscription, id) {
            s["latest_invoice"] = draft["id"].clone();
        }
        billing::issue_invoice(state, ctx, draft, Payment::Succeeds);
    }
    billing::cancel_now(state, ctx, id, "cancellation_requested")
}
