//! `/v1/invoices`: retrieve, list, lines and pay. Invoices are made by the billing engine.

use serde_json::{Value, json};

use crate::error::ApiResult;
use crate::list;
use crate::params::Params;
use crate::state::{Ctx, Kind, State};

pub fn retrieve(state: &State, id: &str) -> ApiResult<Value> {
    state.find(Kind::Invoice, id, "invoice")
}

pub fn list(state: &State, params: &Params) -> ApiResult<Value> {
    list::allow(
        params,
        &[
            "customer",
            "subscription",
            "status",
            "collection_method",
            "created",
            "due_date",
            "customer_account",
        ],
    )?;
    let customer = params.str("customer")?;
    let subscription = params.str("subscription")?;
    let status = params.choice(
        "status",
        &["draft", "open", "paid", "uncollectible", "void"],
    )?;
    let items = state
        .table(Kind::Invoice)
        .newest_first()
        .filter(|i| customer.as_ref().is_none_or(|c| i["customer"] == json!(c)))
        .filter(|i| {
            subscription
                .as_ref()
                .is_none_or(|s| i["subscription"] == json!(s))
        })
        .filter(|i| status.as_ref().is_none_or(|s| i["status"] == json!(s)))
        .cloned()
        .collect();
    list::page(items, params, "/v1/invoices")
}

pub fn lines(state: &State, id: &str, params: &Params) -> ApiResult<Value> {
    list::allow(params, &[])?;
    let invoice = retrieve(state, id)?;
    let lines = invoice["lines"]["data"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    list::page(lines, params, &format!("/v1/invoices/{id}/lines"))
}

pub fn pay(state: &mut State, ctx: &Ctx, id: &str, params: &Params) -> ApiResult<Value> {
    params.allow(&[
        "forgive",
        "mandate",
        "off_session",
        "paid_out_of_band",
        "payment_method",
        "source",
    ])?;
    crate::billing::pay_invoice(state, ctx, id)
}
