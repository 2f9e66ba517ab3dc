//! `/v1/checkout/sessions`: create, retrieve, list, line items, expire; and completion, as
//! the customer paying on the hosted page (or the test-control route) does it.

use serde_json::{Value, json};

use crate::billing::{self, NewItem, NewSubscription, Payment};
use crate::error::{ApiError, ApiResult};
use crate::events;
use crate::list;
use crate::params::{Params, apply_metadata};
use crate::state::{Ctx, Kind, SessionExtra, State};

const CREATE: &[&str] = &[
    "adaptive_pricing",
    "after_expiration",
    "allow_promotion_codes",
    "allowed_payment_method_types",
    "automatic_tax",
    "billing_address_collection",
    "branding_settings",
    "cancel_url",
    "client_reference_id",
    "consent_collection",
    "currency",
    "custom_fields",
    "custom_text",
    "customer",
    "customer_account",
    "customer_creation",
    "customer_email",
    "customer_update",
    "discounts",
    "excluded_payment_method_types",
    "expires_at",
    "integration_identifier",
    "invoice_creation",
    "line_items",
    "locale",
    "managed_payments",
    "metadata",
    "mode",
    "name_collection",
    "optional_items",
    "origin_context",
    "payment_intent_data",
    "payment_method_collection",
    "payment_method_configuration",
    "payment_method_data",
    "payment_method_options",
    "payment_method_types",
    "permissions",
    "phone_number_collection",
    "redirect_on_completion",
    "return_url",
    "saved_payment_method_options",
    "setup_intent_data",
    "shipping_address_collection",
    "shipping_options",
    "submit_type",
    "subscription_data",
    "success_url",
    "tax_id_collection",
    "ui_mode",
    "wallet_options",
];
const SUBSCRIPTION_DATA: &[&str] = &[
    "application_fee_percent",
    "billing_cycle_anchor",
    "billing_mode",
    "default_tax_rates",
    "description",
    "invoice_settings",
    "metadata",
    "on_behalf_of",
    "proration_behavior",
    "transfer_data",
    "trial_end",
    "trial_period_days",
    "trial_settings",
];

pub fn create(state: &mut State, _ctx: &Ctx, params: &Params) -> ApiResult<Value> {
    params.allow(CREATE)?;
    let mode = params
        .choice("mode", &["payment", "setup", "subscription"])?
        .ok_or_else(|| ApiError::missing_param("mode"))?;
    let customer = params.str("customer")?;
    let customer_email = params.str("customer_email")?;
    if customer.is_some() && customer_email.is_some() {
        return Err(ApiError::param(
            "customer_email",
            "You may only specify one of these parameters: customer, customer_email.",
        ));
    }
    if let Some(id) = &customer {
        crate::customers::live(state, id, "customer")?;
    }
    if params.has("customer_update") && customer.is_none() {
        return Err(ApiError::param(
            "customer_update",
            "`customer_update` can only be used with `customer`.",
        ));
    }
    let items = line_items(state, params, &mode)?;
    let mut extra = SessionExtra {
        subscription_metadata: json!({}),
        ..SessionExtra::default()
    };
    if let Some(data) = params.hash("subscription_data")? {
        if mode != "subscription" {
            return Err(ApiError::param(
                "subscription_data",
                "You can only specify `subscription_data` in `subscription` mode.",
            ));
        }
        data.allow(SUBSCRIPTION_DATA)?;
        if let Some(update) = data.metadata("metadata")? {
            apply_metadata(
                &mut extra.subscription_metadata,
                update,
                &data.name("metadata"),
            )?;
        }
        extra.trial_period_days = data.count("trial_period_days")?;
        extra.subscription_description = data.str("description")?;
    }
    let now = crate::ids::now();
    let expires_at = match params.int("expires_at")? {
        Some(ts) if ts < now + 1800 || ts > now + 86_400 => {
            return Err(ApiError::param(
                "expires_at",
                "The `expires_at` timestamp must be between 30 minutes and 24 hours from now.",
            ));
        }
        Some(ts) => ts,
        None => now + 86_400,
    };
    let id = crate::ids::with_len("cs_test_", 58);
    let mut session = state.template("checkout.session");
    let subtotal: i64 = items
        .iter()
        .map(|i| i["amount_subtotal"].as_i64().unwrap_or_default())
        .sum();
    session["id"] = json!(id);
    session["created"] = json!(now);
    session["expires_at"] = json!(expires_at);
    session["mode"] = json!(mode);
    session["url"] = json!(format!("{}/checkout/{id}", state.base_url));
    session["customer"] = json!(customer);
    session["customer_email"] = json!(customer_email);
    session["customer_creation"] = match (&customer, mode.as_str()) {
        (Some(_), _) => Value::Null,
        (None, "payment") => json!(
            params
                .choice("customer_creation", &["always", "if_required"])?
                .unwrap_or_else(|| "if_required".into())
        ),
        (None, _) => json!("always"),
    };
    if !items.is_empty() {
        session["amount_subtotal"] = json!(subtotal);
        session["amount_total"] = json!(subtotal);
        session["currency"] = items[0]["currency"].clone();
    }
    for key in [
        "success_url",
        "cancel_url",
        "return_url",
        "client_reference_id",
    ] {
        session[key] = json!(params.str(key)?);
    }
    session["locale"] = json!(params.str("locale")?);
    session["allow_promotion_codes"] = json!(params.bool("allow_promotion_codes")?);
    session["billing_address_collection"] =
        json!(params.choice("billing_address_collection", &["auto", "required"])?);
    if params.has("payment_method_types") {
        session["payment_method_types"] = json!(params.strings("payment_method_types")?);
    }
    if let Some(update) = params.metadata("metadata")? {
        apply_metadata(&mut session["metadata"], update, "metadata")?;
    }
    if mode == "payment" {
        session["invoice_creation"] = json!({
            "enabled": false,
            "invoice_data": {"account_tax_ids": null, "custom_fields": null, "description": null,
                             "footer": null, "issuer": null, "metadata": {}, "rendering_options": null},
        });
    }
    if mode == "setup" {
        session["payment_status"] = json!("no_payment_required");
    }
    extra.line_items = items;
    state.sessions.insert(id.clone(), extra);
    state.put(Kind::CheckoutSession, session.clone());
    Ok(session)
}

/// `line_items[N][price]` + `[quantity]` as Checkout `item` objects.
fn line_items(state: &State, params: &Params, mode: &str) -> ApiResult<Vec<Value>> {
    let given = params.list("line_items")?;
    if given.is_empty() && mode != "setup" {
        return Err(ApiError::missing_param("line_items"));
    }
    let mut items = Vec::new();
    let mut recurring = false;
    for (i, item) in given.iter().enumerate() {
        item.allow(&[
            "price",
            "quantity",
            "adjustable_quantity",
            "dynamic_tax_rates",
            "tax_rates",
            "price_data",
            "metadata",
        ])?;
        if item.has("price_data") {
            return Err(ApiError::param(
                item.name("price_data"),
                "The Stripe emulator supports `line_items[][price]` only; create the price first.",
            ));
        }
        let price_id = item.required_str("price")?;
        let price = state.find(Kind::Price, &price_id, &item.name("price"))?;
        if price["active"] != json!(true) {
            return Err(ApiError::param(
                item.name("price"),
                "The price specified is inactive. This field only accepts active prices.",
            ));
        }
        let quantity = item.count("quantity")?.ok_or_else(|| {
            ApiError::param(
                item.name("quantity"),
                format!("Quantity is required. Add `quantity` to `line_items[{i}]`"),
            )
        })?;
        let is_recurring = price["type"] == json!("recurring");
        if mode == "payment" && is_recurring {
            return Err(ApiError::param(
                item.name("price"),
                "You specified `payment` mode but passed a recurring price. Either switch to \
                 `subscription` mode or use only one-time prices.",
            ));
        }
        recurring |= is_recurring;
        let amount = price["unit_amount"].as_i64().unwrap_or_default() * quantity;
        let description = price["product"]
            .as_str()
            .and_then(|p| state.get(Kind::Product, p))
            .and_then(|p| p["name"].as_str())
            .unwrap_or_default()
            .to_owned();
        let mut value = state.template("item");
        value["id"] = json!(crate::ids::new("li_"));
        value["amount_subtotal"] = json!(amount);
        value["amount_total"] = json!(amount);
        value["currency"] = price["currency"].clone();
        value["description"] = json!(description);
        value["price"] = price;
        value["quantity"] = json!(quantity);
        items.push(value);
    }
    if mode == "subscription" && !recurring {
        return Err(ApiError::param(
            "line_items",
            "You must provide at least one recurring price in `subscription` mode when using prices.",
        ));
    }
    Ok(items)
}

pub fn retrieve(state: &State, id: &str) -> ApiResult<Value> {
    state.find(Kind::CheckoutSession, id, "session")
}

/// The session's line items as a list object.
pub fn line_items_list(state: &State, id: &str) -> Value {
    let items = state
        .sessions
        .get(id)
        .map(|e| e.line_items.clone())
        .unwrap_or_default();
    json!({
        "object": "list",
        "data": items,
        "has_more": false,
        "url": format!("/v1/checkout/sessions/{id}/line_items"),
    })
}

pub fn line_items_page(state: &State, id: &str, params: &Params) -> ApiResult<Value> {
    list::allow(params, &[])?;
    retrieve(state, id)?;
    let items = state
        .sessions
        .get(id)
        .map(|e| e.line_items.clone())
        .unwrap_or_default();
    list::page(
        items,
        params,
        &format!("/v1/checkout/sessions/{id}/line_items"),
    )
}

pub fn list(state: &State, params: &Params) -> ApiResult<Value> {
    list::allow(
        params,
        &[
            "customer",
            "customer_details",
            "status",
            "subscription",
            "payment_intent",
            "payment_link",
            "created",
            "customer_account",
        ],
    )?;
    let customer = params.str("customer")?;
    let status = params.choice("status", &["open", "complete", "expired"])?;
    let subscription = params.str("subscription")?;
    let items = state
        .table(Kind::CheckoutSession)
        .newest_first()
        .filter(|s| customer.as_ref().is_none_or(|c| s["customer"] == json!(c)))
        .filter(|s| status.as_ref().is_none_or(|st| s["status"] == json!(st)))
        .filter(|s| {
            subscription
                .as_ref()
                .is_none_or(|sub| s["subscription"] == json!(sub))
        })
        .cloned()
        .collect();
    list::page(items, params, "/v1/checkout/sessions")
}

pub fn expire(state: &mut State, ctx: &Ctx, id: &str) -> ApiResult<Value> {
    let mut session = retrieve(state, id)?;
    if session["status"] != json!("open") {
        return Err(ApiError::invalid(
            "Only Checkout Sessions with a status in [\"open\"] can be expired.",
        ));
    }
    session["status"] = json!("expired");
    session["url"] = Value::Null;
    state.put(Kind::CheckoutSession, session.clone());
    events::emit(
        state,
        ctx,
        "checkout.session.expired",
        session.clone(),
        None,
    );
    Ok(session)
}

/// How the customer completes the hosted page.
#[derive(Debug, Default, Clone)]
pub struct Completion {
    pub email: Option<String>,
    pub name: Option<String>,
    pub trial_days: Option<i64>,
}

/// The customer pays: a customer is created if the session had none, a subscription-mode
/// session starts its subscription (with its first, paid invoice), and
/// `checkout.session.completed` is emitted. Returns the session, subscription and invoice.
pub fn complete(
    state: &mut State,
    ctx: &Ctx,
    id: &str,
    completion: &Completion,
) -> ApiResult<(Value, Option<Value>, Option<Value>)> {
    let mut session = retrieve(state, id)?;
    if session["status"] != json!("open") {
        return Err(ApiError::invalid(format!(
            "Checkout Session {id} is {}; only an open session can be completed.",
            session["status"].as_str().unwrap_or_default()
        )));
    }
    if session["expires_at"].as_i64().unwrap_or(i64::MAX) < crate::ids::now() {
        return Err(ApiError::invalid(format!(
            "Checkout Session {id} has expired."
        )));
    }
    let extra = state.sessions.get(id).cloned().unwrap_or_default();
    let customer = match session["customer"].as_str() {
        Some(customer) => crate::customers::live(state, customer, "customer")?,
        None => {
            let email = completion
                .email
                .clone()
                .or_else(|| session["customer_email"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "customer@example.com".into());
            crate::customers::create_for_checkout(state, ctx, &email, completion.name.as_deref())
        }
    };
    let customer_id = customer["id"].as_str().unwrap_or_default().to_owned();
    let (mut subscription, mut invoice) = (None, None);
    let mut payment_status = "paid";
    if session["mode"] == json!("subscription") {
        let items: Vec<NewItem> = extra
            .line_items
            .iter()
            .map(|i| NewItem {
                price: state
                    .get(Kind::Price, i["price"]["id"].as_str().unwrap_or_default())
                    .cloned()
                    .unwrap_or_else(|| i["price"].clone()),
                quantity: i["quantity"].as_i64().unwrap_or(1),
                metadata: json!({}),
            })
            .collect();
        let trial_days = completion
            .trial_days
            .or(extra.trial_period_days)
            .or_else(|| {
                items
                    .first()
                    .and_then(|i| i.price["recurring"]["trial_period_days"].as_i64())
            });
        let options = NewSubscription {
            metadata: extra.subscription_metadata.clone(),
            trial_days,
            description: extra.subscription_description.clone(),
            ..NewSubscription::default()
        };
        let (sub, inv) = billing::create_subscription(
            state,
            ctx,
            &customer_id,
            &items,
            options,
            Payment::Succeeds,
        )?;
        if sub["status"] == json!("trialing") || inv["amount_due"] == json!(0) {
            payment_status = "no_payment_required";
        }
        session["subscription"] = sub["id"].clone();
        session["invoice"] = inv["id"].clone();
        subscription = Some(sub);
        invoice = Some(inv);
    } else if session["mode"] == json!("setup") {
        payment_status = "no_payment_required";
    }
    session["status"] = json!("complete");
    session["payment_status"] = json!(payment_status);
    session["customer"] = json!(customer_id);
    session["url"] = Value::Null;
    session["customer_details"] = json!({
        "address": customer["address"].clone(),
        "email": customer["email"].clone(),
        "name": customer["name"].clone(),
        "phone": customer["phone"].clone(),
        "tax_exempt": customer["tax_exempt"].clone(),
        "tax_ids": [],
        "business_name": null,
        "individual_name": null,
    });
    state.put(Kind::CheckoutSession, session.clone());
    events::emit(
        state,
        ctx,
        "checkout.session.completed",
        session.clone(),
        None,
    );
    Ok((session, subscription, invoice))
}
