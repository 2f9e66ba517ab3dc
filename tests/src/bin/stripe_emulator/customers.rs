//! `/v1/customers`: create, retrieve, update, delete, list, search.

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::events;
use crate::list;
use crate::params::{Params, apply_metadata, set_nullable};
use crate::render;
use crate::search::Query;
use crate::state::{Ctx, Kind, State};

const WRITABLE: &[&str] = &[
    "address",
    "balance",
    "business_name",
    "cash_balance",
    "coupon",
    "description",
    "email",
    "individual_name",
    "invoice_prefix",
    "invoice_settings",
    "metadata",
    "name",
    "next_invoice_sequence",
    "phone",
    "preferred_locales",
    "promotion_code",
    "shipping",
    "source",
    "tax",
    "tax_exempt",
    "validate",
];
const CREATE_ONLY: &[&str] = &["payment_method", "tax_id_data", "test_clock"];
const UPDATE_ONLY: &[&str] = &["default_source"];
const ADDRESS: &[&str] = &["city", "country", "line1", "line2", "postal_code", "state"];

pub fn create(state: &mut State, ctx: &Ctx, params: &Params) -> ApiResult<Value> {
    params.allow(&[WRITABLE, CREATE_ONLY].concat())?;
    let mut customer = state.template("customer");
    customer["id"] = json!(crate::ids::with_len("cus_", 14));
    customer["created"] = json!(crate::ids::now());
    customer["invoice_prefix"] = json!(crate::ids::invoice_prefix());
    apply(&mut customer, params)?;
    state.put(Kind::Customer, customer.clone());
    events::emit(state, ctx, "customer.created", customer.clone(), None);
    Ok(customer)
}

/// A customer created by Checkout for a session without one.
pub fn create_for_checkout(state: &mut State, ctx: &Ctx, email: &str, name: Option<&str>) -> Value {
    let mut customer = state.template("customer");
    customer["id"] = json!(crate::ids::with_len("cus_", 14));
    customer["created"] = json!(crate::ids::now());
    customer["invoice_prefix"] = json!(crate::ids::invoice_prefix());
    customer["email"] = json!(email);
    customer["name"] = json!(name);
    state.put(Kind::Customer, customer.clone());
    events::emit(state, ctx, "customer.created", customer.clone(), None);
    customer
}

pub fn retrieve(state: &State, id: &str) -> ApiResult<Value> {
    render::object(state, Kind::Customer, id).ok_or_else(|| ApiError::no_such("customer", id, "id"))
}

/// A live (not deleted) customer.
pub fn live(state: &State, id: &str, param: &str) -> ApiResult<Value> {
    if state.is_deleted(id) {
        return Err(ApiError::no_such("customer", id, param));
    }
    state.find(Kind::Customer, id, param)
}

pub fn update(state: &mut State, ctx: &Ctx, id: &str, params: &Params) -> ApiResult<Value> {
    params.allow(&[WRITABLE, UPDATE_ONLY].concat())?;
    let old = live(state, id, "id")?;
    let mut customer = old.clone();
    apply(&mut customer, params)?;
    state.put(Kind::Customer, customer.clone());
    events::emit_updated(state, ctx, "customer.updated", &old, &customer);
    Ok(customer)
}

pub fn delete(state: &mut State, ctx: &Ctx, id: &str) -> ApiResult<Value> {
    let customer = live(state, id, "id")?;
    let subscriptions: Vec<String> = state
        .table(Kind::Subscription)
        .newest_first()
        .filter(|s| s["customer"] == json!(id) && s["status"] != json!("canceled"))
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect();
    for subscription in subscriptions {
        crate::billing::cancel_now(state, ctx, &subscription, "cancellation_requested")?;
    }
    let stub = state.delete(Kind::Customer, id);
    events::emit(state, ctx, "customer.deleted", customer, None);
    Ok(stub)
}

pub fn list(state: &State, params: &Params) -> ApiResult<Value> {
    list::allow(params, &["email", "created", "test_clock"])?;
    let email = params.str("email")?;
    let items = live_customers(state)
        .filter(|c| email.as_ref().is_none_or(|e| c["email"] == json!(e)))
        .cloned()
        .collect();
    list::page(items, params, "/v1/customers")
}

pub fn search(state: &State, params: &Params) -> ApiResult<Value> {
    params.allow(&["query", "limit", "page"])?;
    let query = Query::parse(
        &params.required_str("query")?,
        &["email", "name", "phone", "created"],
    )?;
    let items = live_customers(state)
        .filter(|c| query.matches(c))
        .cloned()
        .collect();
    list::search_page(items, params, "/v1/customers/search")
}

fn live_customers(state: &State) -> impl Iterator<Item = &Value> {
    state
        .table(Kind::Customer)
        .newest_first()
        .filter(|c| !state.is_deleted(c["id"].as_str().unwrap_or_default()))
}

fn apply(customer: &mut Value, params: &Params) -> ApiResult<()> {
    for key in [
        "name",
        "email",
        "phone",
        "description",
        "business_name",
        "individual_name",
    ] {
        set_nullable(customer, params, key)?;
    }
    if let Some(address) = params.object("address")? {
        customer["address"] = match address {
            Some(a) => address_value(&a)?,
            None => Value::Null,
        };
    }
    if let Some(shipping) = params.object("shipping")? {
        customer["shipping"] = match shipping {
            Some(s) => {
                s.allow(&["address", "name", "phone"])?;
                let address = s
                    .hash("address")?
                    .ok_or_else(|| ApiError::missing_param(&s.name("address")))?;
                json!({
                    "address": address_value(&address)?,
                    "name": s.required_str("name")?,
                    "phone": s.str("phone")?,
                })
            }
            None => Value::Null,
        };
    }
    if let Some(update) = params.metadata("metadata")? {
        apply_metadata(&mut customer["metadata"], update, "metadata")?;
    }
    if let Some(balance) = params.int("balance")? {
        customer["balance"] = json!(balance);
    }
    if let Some(prefix) = params.str("invoice_prefix")? {
        customer["invoice_prefix"] = json!(prefix.to_uppercase());
    }
    if let Some(n) = params.count("next_invoice_sequence")? {
        customer["next_invoice_sequence"] = json!(n);
    }
    if params.has("preferred_locales") {
        customer["preferred_locales"] = json!(params.strings("preferred_locales")?);
    }
    if let Some(exempt) = params.choice("tax_exempt", &["none", "exempt", "reverse"])? {
        customer["tax_exempt"] = json!(exempt);
    }
    if let Some(settings) = params.hash("invoice_settings")?
        && let Some(pm) = settings.nullable_str("default_payment_method")?
    {
        customer["invoice_settings"]["default_payment_method"] = json!(pm);
    }
    Ok(())
}

/// An address hash; fields not given are null, as Stripe stores them.
pub fn address_value(params: &Params) -> ApiResult<Value> {
    params.allow(ADDRESS)?;
    let mut address = json!({});
    for field in ADDRESS {
        address[*field] = json!(params.nullable_str(field)?.flatten());
    }
    Ok(address)
}
