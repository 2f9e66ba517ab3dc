//! The billing engine: subscriptions, their periods and statuses, invoices with their
//! lines, prorations and payments, and the events each step emits. The API routes and the
//! test-control routes both drive it.

use chrono::{DateTime, Days, Months};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::events;
use crate::render;
use crate::state::{Ctx, Kind, State};

/// How the payment of a new invoice goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payment {
    /// Charged successfully (or nothing to charge).
    Succeeds,
    /// The charge is declined.
    Fails,
    /// Left open for the customer to pay (`payment_behavior=default_incomplete`).
    Pending,
}

/// A subscription after a lifecycle step, and the invoice the step made (if any).
pub type Step = ApiResult<(Value, Option<Value>)>;

/// An item of a subscription being created.
pub struct NewItem {
    pub price: Value,
    pub quantity: i64,
    pub metadata: Value,
}

/// Options of a subscription being created.
#[derive(Default)]
pub struct NewSubscription {
    pub metadata: Value,
    pub trial_days: Option<i64>,
    pub trial_end: Option<i64>,
    pub description: Option<String>,
    pub cancel_at_period_end: bool,
    pub default_payment_method: Option<String>,
}

pub const STATUSES: &[&str] = &[
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "canceled",
    "unpaid",
    "paused",
];

/// `ts` moved forward by `count` intervals (calendar months for months and years).
pub fn add_interval(ts: i64, interval: &str, count: i64) -> i64 {
    let Some(start) = DateTime::from_timestamp(ts, 0) else {
        return ts;
    };
    let count = u32::try_from(count.max(1)).unwrap_or(1);
    let moved = match interval {
        "day" => start.checked_add_days(Days::new(count.into())),
        "week" => start.checked_add_days(Days::new(u64::from(count) * 7)),
        "year" => start.checked_add_months(Months::new(count * 12)),
        _ => start.checked_add_months(Months::new(count)),
    };
    moved.map_or(ts, |t| t.timestamp())
}

/// A recurring price's interval and count.
pub fn interval_of(price: &Value) -> (String, i64) {
    let recurring = &price["recurring"];
    (
        recurring["interval"].as_str().unwrap_or("month").to_owned(),
        recurring["interval_count"].as_i64().unwrap_or(1),
    )
}

/// The subscription's current period, as its first item carries it.
pub fn period(subscription: &Value) -> (i64, i64) {
    let item = &subscription["items"]["data"][0];
    (
        item["current_period_start"].as_i64().unwrap_or_default(),
        item["current_period_end"].as_i64().unwrap_or_default(),
    )
}

fn set_period(subscription: &mut Value, start: i64, end: i64) {
    if let Some(items) = subscription["items"]["data"].as_array_mut() {
        for item in items {
            item["current_period_start"] = json!(start);
            item["current_period_end"] = json!(end);
        }
    }
}

fn subscription_interval(subscription: &Value) -> (String, i64) {
    interval_of(&subscription["items"]["data"][0]["price"])
}

fn id_of(value: &Value) -> String {
    value["id"].as_str().unwrap_or_default().to_owned()
}

/// A subscription item of `price` for the current period.
pub fn new_item(state: &State, subscription_id: &str, item: &NewItem, period: (i64, i64)) -> Value {
    let mut value = state.template("subscription_item");
    value["id"] = json!(crate::ids::with_len("si_", 14));
    value["created"] = json!(crate::ids::now());
    value["price"] = item.price.clone();
    value["plan"] = render::plan_of(state, &item.price);
    value["quantity"] = json!(item.quantity);
    value["subscription"] = json!(subscription_id);
    value["metadata"] = item.metadata.clone();
    value["current_period_start"] = json!(period.0);
    value["current_period_end"] = json!(period.1);
    value
}

/// Checks prices for a subscription: recurring, active, one currency and one interval.
pub fn check_prices(items: &[NewItem], param: &str) -> ApiResult<()> {
    let Some(first) = items.first() else {
        return Err(ApiError::missing_param(param));
    };
    for (i, item) in items.iter().enumerate() {
        let param = format!("{param}[{i}][price]");
        if item.price["type"] != json!("recurring") {
            return Err(ApiError::param(
                param,
                format!(
                    "The price `{}` is a one_time price; a subscription requires recurring prices.",
                    id_of(&item.price)
                ),
            ));
        }
        if item.price["active"] != json!(true) {
            return Err(ApiError::param(
                param,
                "The price specified is inactive. This field only accepts active prices.",
            ));
        }
        if interval_of(&item.price) != interval_of(&first.price)
            || item.price["currency"] != first.price["currency"]
        {
            return Err(ApiError::param(
                param,
                "Currency and interval fields must match across all plans on this subscription.",
            ));
        }
    }
    Ok(())
}

/// Creates a subscription and its first invoice, emitting `customer.subscription.created`
/// and the invoice's events. Returns the subscription and the invoice.
pub fn create_subscription(
    state: &mut State,
    ctx: &Ctx,
    customer: &str,
    items: &[NewItem],
    options: NewSubscription,
    payment: Payment,
) -> ApiResult<(Value, Value)> {
    check_prices(items, "items")?;
    let now = crate::ids::now();
    let first_price = &items[0].price;
    let (interval, count) = interval_of(first_price);
    let trial_end = options.trial_end.or(options
        .trial_days
        .filter(|d| *d > 0)
        .map(|d| now + d * 86_400));
    let period = (
        now,
        trial_end.unwrap_or_else(|| add_interval(now, &interval, count)),
    );
    let id = crate::ids::with_len("sub_", 24);
    let mut subscription = state.template("subscription");
    subscription["id"] = json!(id);
    subscription["created"] = json!(now);
    subscription["start_date"] = json!(now);
    subscription["billing_cycle_anchor"] = json!(trial_end.unwrap_or(now));
    subscription["customer"] = json!(customer);
    subscription["currency"] = first_price["currency"].clone();
    subscription["metadata"] = options.metadata.clone();
    subscription["description"] = json!(options.description);
    subscription["default_payment_method"] = json!(options.default_payment_method);
    subscription["items"] = json!({
        "object": "list",
        "data": items.iter().map(|i| new_item(state, &id, i, period)).collect::<Vec<_>>(),
        "has_more": false,
        "total_count": items.len(),
        "url": format!("/v1/subscription_items?subscription={id}"),
    });
    if let Some(trial_end) = trial_end {
        subscription["trial_start"] = json!(now);
        subscription["trial_end"] = json!(trial_end);
    }
    if options.cancel_at_period_end {
        request_cancel_at_period_end(&mut subscription, true);
    }
    let lines: Vec<Value> = subscription["items"]["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|item| {
            let amount = if trial_end.is_some() {
                0
            } else {
                item_amount(item)
            };
            item_line(state, &id, item, amount, period, trial_end.is_some())
        })
        .collect();
    let mut invoice = draft_invoice(state, &subscription, lines, "subscription_create", period)?;
    subscription["latest_invoice"] = invoice["id"].clone();
    subscription["status"] = json!(match (payment, trial_end.is_some()) {
        (_, true) => "trialing",
        (Payment::Succeeds, false) => "active",
        (Payment::Fails | Payment::Pending, false) => "incomplete",
    });
    adopt_currency(state, customer, first_price);
    state.put(Kind::Subscription, subscription.clone());
    let rendered = render::object(state, Kind::Subscription, &id).unwrap_or(subscription);
    events::emit(
        state,
        ctx,
        "customer.subscription.created",
        rendered.clone(),
        None,
    );
    if trial_end.is_some() {
        // A trial's $0 invoice is paid at once, whatever the card would do.
        invoice = issue_invoice(state, ctx, invoice, Payment::Succeeds);
    } else {
        invoice = issue_invoice(state, ctx, invoice, payment);
    }
    Ok((rendered, invoice))
}

/// Stripe sets a customer's currency with their first subscription.
fn adopt_currency(state: &mut State, customer: &str, price: &Value) {
    if let Some(c) = state.get_mut(Kind::Customer, customer)
        && c["currency"].is_null()
    {
        c["currency"] = price["currency"].clone();
    }
}

pub fn item_amount(item: &Value) -> i64 {
    item["price"]["unit_amount"].as_i64().unwrap_or_default()
        * item["quantity"].as_i64().unwrap_or(1)
}

fn product_name(state: &State, price: &Value) -> String {
    price["product"]
        .as_str()
        .and_then(|p| state.get(Kind::Product, p))
        .and_then(|p| p["name"].as_str())
        .unwrap_or("Subscription")
        .to_owned()
}

fn money(amount: i64, currency: &str) -> String {
    let sign = if amount < 0 { "-" } else { "" };
    let abs = amount.unsigned_abs();
    format!(
        "{sign}{}.{:02} {}",
        abs / 100,
        abs % 100,
        currency.to_uppercase()
    )
}

fn date(ts: i64) -> String {
    DateTime::from_timestamp(ts, 0)
        .map(|d| d.format("%d %b %Y").to_string())
        .unwrap_or_default()
}

/// An invoice line for a subscription item over `period`.
pub fn item_line(
    state: &State,
    subscription: &str,
    item: &Value,
    amount: i64,
    period: (i64, i64),
    trial: bool,
) -> Value {
    let price = &item["price"];
    let quantity = item["quantity"].as_i64().unwrap_or(1);
    let name = product_name(state, price);
    let (interval, _) = interval_of(price);
    let description = if trial {
        format!("Trial period for {name}")
    } else {
        format!(
            "{quantity} × {name} (at {} / {interval})",
            money(
                price["unit_amount"].as_i64().unwrap_or_default(),
                price["currency"].as_str().unwrap_or("usd")
            )
        )
    };
    line(
        state,
        subscription,
        &id_of(item),
        price,
        quantity,
        amount,
        description,
        period,
        false,
    )
}

/// A proration line: the unused time of `price` (credit) or the remaining time of the new
/// one (debit), over the rest of the period from `from`.
#[allow(clippy::too_many_arguments)]
pub fn proration_line(
    state: &State,
    subscription: &str,
    item_id: &str,
    price: &Value,
    quantity: i64,
    credit: bool,
    from: i64,
    period: (i64, i64),
) -> Value {
    let total = (period.1 - period.0).max(1) as f64;
    let fraction = ((period.1 - from).max(0) as f64 / total).min(1.0);
    let full = price["unit_amount"].as_i64().unwrap_or_default() * quantity;
    let amount = (full as f64 * fraction).round() as i64;
    let name = product_name(state, price);
    let (amount, description) = if credit {
        (
            -amount,
            format!("Unused time on {quantity} × {name} after {}", date(from)),
        )
    } else {
        (
            amount,
            format!("Remaining time on {quantity} × {name} after {}", date(from)),
        )
    };
    line(
        state,
        subscription,
        item_id,
        price,
        quantity,
        amount,
        description,
        (from, period.1),
        true,
    )
}

#[allow(clippy::too_many_arguments)]
fn line(
    state: &State,
    subscription: &str,
    item_id: &str,
    price: &Value,
    quantity: i64,
    amount: i64,
    description: String,
    period: (i64, i64),
    proration: bool,
) -> Value {
    let mut line = state.template("line_item");
    line["id"] = json!(crate::ids::new("il_"));
    line["amount"] = json!(amount);
    line["subtotal"] = json!(amount);
    line["currency"] = price["currency"].clone();
    line["description"] = json!(description);
    line["period"] = json!({ "start": period.0, "end": period.1 });
    line["quantity"] = json!(quantity);
    line["subscription"] = json!(subscription);
    line["parent"] = json!({
        "type": "subscription_item_details",
        "invoice_item_details": null,
        "subscription_item_details": {
            "invoice_item": null,
            "proration": proration,
            "proration_details": { "credited_items": null },
            "subscription": subscription,
            "subscription_item": item_id,
        },
    });
    line["pricing"] = json!({
        "type": "price_details",
        "price_details": { "price": price["id"], "product": price["product"] },
        "unit_amount_decimal": price["unit_amount_decimal"],
    });
    line
}

/// A draft invoice of `lines` for a subscription, with the customer's details copied in.
pub fn draft_invoice(
    state: &State,
    subscription: &Value,
    lines: Vec<Value>,
    reason: &str,
    period: (i64, i64),
) -> ApiResult<Value> {
    let customer_id = subscription["customer"].as_str().unwrap_or_default();
    let customer = state.find(Kind::Customer, customer_id, "customer")?;
    let id = crate::ids::new("in_");
    let lines: Vec<Value> = lines
        .into_iter()
        .map(|mut l| {
            l["invoice"] = json!(id);
            l
        })
        .collect();
    let total: i64 = lines
        .iter()
        .map(|l| l["amount"].as_i64().unwrap_or_default())
        .sum();
    let mut invoice = state.template("invoice");
    invoice["id"] = json!(id);
    invoice["created"] = json!(crate::ids::now());
    invoice["currency"] = subscription["currency"].clone();
    invoice["customer"] = json!(customer_id);
    for (field, from) in [
        ("customer_email", "email"),
        ("customer_name", "name"),
        ("customer_phone", "phone"),
        ("customer_address", "address"),
        ("customer_shipping", "shipping"),
        ("customer_tax_exempt", "tax_exempt"),
    ] {
        invoice[field] = customer[from].clone();
    }
    invoice["billing_reason"] = json!(reason);
    invoice["collection_method"] = json!("charge_automatically");
    invoice["period_start"] = json!(period.0);
    invoice["period_end"] = json!(period.1);
    invoice["subscription"] = subscription["id"].clone();
    invoice["parent"] = json!({
        "type": "subscription_details",
        "quote_details": null,
        "subscription_details": {
            "metadata": subscription["metadata"],
            "subscription": subscription["id"],
            "subscription_proration_date": null,
        },
    });
    invoice["lines"] = json!({
        "object": "list",
        "data": lines,
        "has_more": false,
        "total_count": lines.len(),
        "url": format!("/v1/invoices/{id}/lines"),
    });
    for field in [
        "subtotal",
        "subtotal_excluding_tax",
        "total",
        "total_excluding_tax",
    ] {
        invoice[field] = json!(total);
    }
    invoice["amount_due"] = json!(total.max(0));
    invoice["amount_paid"] = json!(0);
    invoice["amount_remaining"] = json!(total.max(0));
    invoice["status"] = json!("draft");
    invoice["number"] = Value::Null;
    invoice["effective_at"] = Value::Null;
    invoice["hosted_invoice_url"] = Value::Null;
    invoice["status_transitions"] = json!({
        "finalized_at": null, "marked_uncollectible_at": null, "paid_at": null, "voided_at": null,
    });
    Ok(invoice)
}

/// Takes a draft through finalization and payment, storing each step and emitting
/// `invoice.created`, `invoice.finalized` and `invoice.paid` + `invoice.payment_succeeded`
/// or `invoice.payment_failed`. The customer's credit balance is applied on finalization.
pub fn issue_invoice(state: &mut State, ctx: &Ctx, mut invoice: Value, payment: Payment) -> Value {
    let id = id_of(&invoice);
    state.put(Kind::Invoice, invoice.clone());
    events::emit(state, ctx, "invoice.created", invoice.clone(), None);

    let now = crate::ids::now();
    let customer_id = invoice["customer"].as_str().unwrap_or_default().to_owned();
    let total = invoice["total"].as_i64().unwrap_or_default();
    if let Some(old) = state.get(Kind::Customer, &customer_id).cloned() {
        let mut customer = old.clone();
        let balance = customer["balance"].as_i64().unwrap_or_default();
        let sequence = customer["next_invoice_sequence"].as_i64().unwrap_or(1);
        let prefix = customer["invoice_prefix"]
            .as_str()
            .unwrap_or("INV")
            .to_owned();
        // A negative balance is credit: it pays invoices first; a negative total adds to it.
        let applied = if total > 0 {
            total.min((-balance).max(0))
        } else {
            total
        };
        let ending = balance + applied;
        invoice["starting_balance"] = json!(balance);
        invoice["ending_balance"] = json!(ending);
        invoice["amount_due"] = json!((total - applied).max(0));
        invoice["amount_remaining"] = invoice["amount_due"].clone();
        invoice["number"] = json!(format!("{prefix}-{sequence:04}"));
        customer["balance"] = json!(ending);
        customer["next_invoice_sequence"] = json!(sequence + 1);
        state.put(Kind::Customer, customer.clone());
        if ending != balance {
            events::emit_updated(state, ctx, "customer.updated", &old, &customer);
        }
    }
    invoice["status"] = json!("open");
    invoice["effective_at"] = json!(now);
    invoice["status_transitions"]["finalized_at"] = json!(now);
    invoice["hosted_invoice_url"] = json!(format!("{}/invoices/{id}", state.base_url));
    state.put(Kind::Invoice, invoice.clone());
    events::emit(state, ctx, "invoice.finalized", invoice.clone(), None);

    match payment {
        Payment::Succeeds => mark_paid(state, ctx, invoice),
        Payment::Fails => mark_failed(state, ctx, invoice),
        Payment::Pending => invoice,
    }
}

fn mark_paid(state: &mut State, ctx: &Ctx, mut invoice: Value) -> Value {
    let now = crate::ids::now();
    let due = invoice["amount_due"].as_i64().unwrap_or_default();
    if due > 0 {
        invoice["attempted"] = json!(true);
        invoice["attempt_count"] = json!(invoice["attempt_count"].as_i64().unwrap_or_default() + 1);
    }
    invoice["amount_paid"] = json!(due);
    invoice["amount_remaining"] = json!(0);
    invoice["status"] = json!("paid");
    invoice["next_payment_attempt"] = Value::Null;
    invoice["status_transitions"]["paid_at"] = json!(now);
    invoice["webhooks_delivered_at"] = json!(now);
    state.put(Kind::Invoice, invoice.clone());
    events::emit(state, ctx, "invoice.paid", invoice.clone(), None);
    events::emit(
        state,
        ctx,
        "invoice.payment_succeeded",
        invoice.clone(),
        None,
    );
    invoice
}

fn mark_failed(state: &mut State, ctx: &Ctx, mut invoice: Value) -> Value {
    let now = crate::ids::now();
    invoice["attempted"] = json!(true);
    invoice["attempt_count"] = json!(invoice["attempt_count"].as_i64().unwrap_or_default() + 1);
    invoice["next_payment_attempt"] = json!(now + 3 * 86_400);
    invoice["webhooks_delivered_at"] = json!(now);
    state.put(Kind::Invoice, invoice.clone());
    events::emit(state, ctx, "invoice.payment_failed", invoice.clone(), None);
    invoice
}

/// A live subscription, or the error Stripe gives for a canceled one.
fn live_subscription(state: &State, id: &str) -> ApiResult<Value> {
    let subscription = render::object(state, Kind::Subscription, id)
        .ok_or_else(|| ApiError::no_such("subscription", id, "id"))?;
    if matches!(
        subscription["status"].as_str(),
        Some("canceled" | "incomplete_expired")
    ) {
        return Err(ApiError::invalid(format!(
            "This subscription is {} and can no longer be changed.",
            subscription["status"].as_str().unwrap_or_default()
        )));
    }
    Ok(subscription)
}

/// Stores a changed subscription and emits `customer.subscription.updated` if it changed.
pub fn save_subscription(state: &mut State, ctx: &Ctx, old: &Value, new: Value) -> Value {
    let id = id_of(&new);
    state.put(Kind::Subscription, new.clone());
    let rendered = render::object(state, Kind::Subscription, &id).unwrap_or(new);
    events::emit_updated(state, ctx, "customer.subscription.updated", old, &rendered);
    rendered
}

/// The renewal at the end of the current period (or of the trial): the period moves one
/// interval forward and a new invoice, with any pending prorations, is charged. A
/// subscription set to cancel at period end is canceled instead.
pub fn renew(state: &mut State, ctx: &Ctx, id: &str, payment: Payment) -> Step {
    let old = live_subscription(state, id)?;
    let (_, end) = period(&old);
    if old["cancel_at_period_end"] == json!(true) {
        let canceled = end_subscription(state, ctx, &old, end, None);
        return Ok((canceled, None));
    }
    let (interval, count) = subscription_interval(&old);
    let next = (end, add_interval(end, &interval, count));
    let mut subscription = old.clone();
    set_period(&mut subscription, next.0, next.1);
    let mut lines = state.pending_lines.remove(id).unwrap_or_default();
    for item in subscription["items"]["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        lines.push(item_line(state, id, &item, item_amount(&item), next, false));
    }
    let invoice = draft_invoice(state, &subscription, lines, "subscription_cycle", next)?;
    subscription["latest_invoice"] = invoice["id"].clone();
    let invoice = issue_invoice(state, ctx, invoice, payment);
    subscription["status"] = json!(match payment {
        Payment::Succeeds => "active",
        Payment::Fails | Payment::Pending => "past_due",
    });
    let saved = save_subscription(state, ctx, &old, subscription);
    Ok((saved, Some(invoice)))
}

/// A declined charge: the subscription's open invoice is attempted again and fails, or,
/// when it has none, the renewal happens and its charge fails. The subscription becomes
/// past_due (an incomplete first payment stays incomplete).
pub fn fail_payment(state: &mut State, ctx: &Ctx, id: &str) -> Step {
    let old = live_subscription(state, id)?;
    let open = old["latest_invoice"]
        .as_str()
        .and_then(|i| state.get(Kind::Invoice, i))
        .filter(|i| i["status"] == json!("open"))
        .cloned();
    let Some(open) = open else {
        return renew(state, ctx, id, Payment::Fails);
    };
    let invoice = mark_failed(state, ctx, open);
    let mut subscription = old.clone();
    if old["status"] != json!("incomplete") {
        subscription["status"] = json!("past_due");
    }
    let saved = save_subscription(state, ctx, &old, subscription);
    Ok((saved, Some(invoice)))
}

/// Pays every open invoice of the subscription; it becomes active.
pub fn pay(state: &mut State, ctx: &Ctx, id: &str) -> Step {
    let old = live_subscription(state, id)?;
    let mut open: Vec<Value> = state
        .table(Kind::Invoice)
        .newest_first()
        .filter(|i| i["subscription"] == json!(id) && i["status"] == json!("open"))
        .cloned()
        .collect();
    if open.is_empty() {
        return Err(ApiError::invalid(format!(
            "Subscription {id} has no open invoice to pay."
        )));
    }
    open.reverse();
    let mut last = None;
    for invoice in open {
        last = Some(mark_paid(state, ctx, invoice));
    }
    let mut subscription = old.clone();
    if matches!(
        old["status"].as_str(),
        Some("past_due" | "unpaid" | "incomplete")
    ) {
        subscription["status"] = json!("active");
    }
    let saved = save_subscription(state, ctx, &old, subscription);
    Ok((saved, last))
}

/// `POST /v1/invoices/{id}/pay`: pays one open invoice; its subscription recovers when it
/// has nothing else open.
pub fn pay_invoice(state: &mut State, ctx: &Ctx, id: &str) -> ApiResult<Value> {
    let invoice = state.find(Kind::Invoice, id, "id")?;
    if invoice["status"] != json!("open") {
        return Err(ApiError::invalid(format!(
            "Invoice is already {}",
            invoice["status"].as_str().unwrap_or_default()
        ))
        .with_code("invoice_not_open"));
    }
    let invoice = mark_paid(state, ctx, invoice);
    if let Some(sub_id) = invoice["subscription"].as_str()
        && let Some(old) = render::object(state, Kind::Subscription, sub_id)
    {
        let still_open = state
            .table(Kind::Invoice)
            .newest_first()
            .any(|i| i["subscription"] == json!(sub_id) && i["status"] == json!("open"));
        if !still_open
            && matches!(
                old["status"].as_str(),
                Some("past_due" | "unpaid" | "incomplete")
            )
        {
            let mut subscription = old.clone();
            subscription["status"] = json!("active");
            save_subscription(state, ctx, &old, subscription);
        }
    }
    Ok(invoice)
}

/// Ends a trial now: the subscription becomes active, a new period starts and its first
/// real invoice is charged.
pub fn end_trial(state: &mut State, ctx: &Ctx, id: &str) -> Step {
    let old = live_subscription(state, id)?;
    if old["status"] != json!("trialing") {
        return Err(ApiError::invalid(format!(
            "Subscription {id} is not trialing."
        )));
    }
    let now = crate::ids::now();
    let (interval, count) = subscription_interval(&old);
    let next = (now, add_interval(now, &interval, count));
    let mut subscription = old.clone();
    subscription["trial_end"] = json!(now);
    subscription["billing_cycle_anchor"] = json!(now);
    set_period(&mut subscription, next.0, next.1);
    if subscription["cancel_at_period_end"] == json!(true) {
        subscription["cancel_at"] = json!(next.1);
    }
    let lines = subscription["items"]["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|item| item_line(state, id, item, item_amount(item), next, false))
        .collect();
    let invoice = draft_invoice(state, &subscription, lines, "subscription_cycle", next)?;
    subscription["latest_invoice"] = invoice["id"].clone();
    subscription["status"] = json!("active");
    let invoice = issue_invoice(state, ctx, invoice, Payment::Succeeds);
    let saved = save_subscription(state, ctx, &old, subscription);
    Ok((saved, Some(invoice)))
}

/// Stripe's notice three days before a trial ends.
pub fn trial_will_end(state: &mut State, ctx: &Ctx, id: &str) -> ApiResult<Value> {
    let subscription = live_subscription(state, id)?;
    if subscription["status"] != json!("trialing") {
        return Err(ApiError::invalid(format!(
            "Subscription {id} is not trialing."
        )));
    }
    events::emit(
        state,
        ctx,
        "customer.subscription.trial_will_end",
        subscription.clone(),
        None,
    );
    Ok(subscription)
}

/// Sets or clears cancellation at the end of the current period.
pub fn request_cancel_at_period_end(subscription: &mut Value, cancel: bool) {
    subscription["cancel_at_period_end"] = json!(cancel);
    if cancel {
        subscription["cancel_at"] = json!(period(subscription).1);
        subscription["canceled_at"] = json!(crate::ids::now());
        subscription["cancellation_details"]["reason"] = json!("cancellation_requested");
    } else {
        subscription["cancel_at"] = Value::Null;
        subscription["canceled_at"] = Value::Null;
        subscription["cancellation_details"]["reason"] = Value::Null;
    }
}

/// Cancels at once (`DELETE /v1/subscriptions/{id}`, a deleted customer).
pub fn cancel_now(state: &mut State, ctx: &Ctx, id: &str, reason: &str) -> ApiResult<Value> {
    let old = live_subscription(state, id)?;
    Ok(end_subscription(
        state,
        ctx,
        &old,
        crate::ids::now(),
        Some(reason),
    ))
}

fn end_subscription(
    state: &mut State,
    ctx: &Ctx,
    old: &Value,
    at: i64,
    reason: Option<&str>,
) -> Value {
    let id = id_of(old);
    let mut subscription = old.clone();
    subscription["status"] = json!("canceled");
    subscription["ended_at"] = json!(at);
    if subscription["canceled_at"].is_null() {
        subscription["canceled_at"] = json!(crate::ids::now());
    }
    if let Some(reason) = reason {
        subscription["cancellation_details"]["reason"] = json!(reason);
    }
    state.pending_lines.remove(&id);
    state.put(Kind::Subscription, subscription);
    let rendered = render::object(state, Kind::Subscription, &id).unwrap_or_default();
    events::emit(
        state,
        ctx,
        "customer.subscription.deleted",
        rendered.clone(),
        None,
    );
    rendered
}
