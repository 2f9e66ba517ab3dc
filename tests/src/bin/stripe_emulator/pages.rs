//! The hosted pages a session's `url` opens, so a person can click through locally:
//! Checkout (`/checkout/{id}`: pay or cancel), the billing portal
//! (`/billing_portal/{id}`: switch price, cancel at period end or resume, return) and
//! invoices (`/invoices/{id}`).

use std::fmt::Write as _;
use std::sync::Arc;

use poem::Response;
use poem::http::StatusCode;
use serde_json::{Map, Value, json};

use crate::checkout::{self, Completion};
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::server::{Shared, text};
use crate::state::{Ctx, Kind, State};

pub fn handle(shared: &Arc<Shared>, method: &str, path: &str, body: &[u8]) -> Response {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let form = std::str::from_utf8(body)
        .ok()
        .and_then(|b| crate::form::parse(b).ok())
        .unwrap_or_default();
    let mut state = shared.lock();
    let result = route(&mut state, method, &segments, &form);
    drop(state);
    match result {
        Ok(Page::Html(html)) => Response::builder()
            .content_type("text/html; charset=utf-8")
            .body(html),
        Ok(Page::Redirect(to)) => Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header("location", to)
            .finish(),
        Err(e) => text(
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            &e.message,
        ),
    }
}

enum Page {
    Html(String),
    Redirect(String),
}

fn route(
    state: &mut State,
    method: &str,
    segments: &[&str],
    form: &Map<String, Value>,
) -> ApiResult<Page> {
    let ctx = Ctx::automatic();
    let field = |k: &str| {
        form.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    match (method, segments) {
        ("GET", []) => Ok(Page::Html(page(
            "Stripe emulator",
            "<p>A stateful Stripe API emulator: the API is under <code>/v1</code>, test controls under <code>/_test</code>.</p>",
        ))),
        ("GET", ["checkout", id]) => checkout_page(state, id).map(Page::Html),
        ("POST", ["checkout", id, "pay"]) => {
            let completion = Completion {
                email: field("email"),
                name: field("name"),
                trial_days: None,
            };
            let (session, _, _) = checkout::complete(state, &ctx, id, &completion)?;
            let to = session["success_url"]
                .as_str()
                .unwrap_or("/")
                .replace("{CHECKOUT_SESSION_ID}", id);
            Ok(Page::Redirect(to))
        }
        ("GET", ["checkout", id, "cancel"]) => {
            let session = checkout::retrieve(state, id)?;
            Ok(Page::Redirect(
                session["cancel_url"].as_str().unwrap_or("/").to_owned(),
            ))
        }
        ("GET", ["billing_portal", id]) => portal_page(state, id).map(Page::Html),
        ("POST", ["billing_portal", id, "subscriptions", sub, action]) => {
            let session = state.find(Kind::PortalSession, id, "id")?;
            let subscription = crate::subscriptions::retrieve(state, sub)?;
            if subscription["customer"] != session["customer"] {
                return Err(ApiError::no_such("subscription", sub, "id"));
            }
            let mut params = Map::new();
            match *action {
                "cancel" => {
                    params.insert("cancel_at_period_end".into(), json!("true"));
                }
                "resume" => {
                    params.insert("cancel_at_period_end".into(), json!("false"));
                }
                "price" => {
                    let item = subscription["items"]["data"][0]["id"].clone();
                    let price = field("price").ok_or_else(|| ApiError::missing_param("price"))?;
                    params.insert("items".into(), json!([{ "id": item, "price": price }]));
                }
                _ => {
                    return Err(ApiError::unrecognized_url(
                        method,
                        &format!("/billing_portal/{id}"),
                    ));
                }
            }
            crate::subscriptions::update(state, &ctx, sub, &Params::new(params))?;
            Ok(Page::Redirect(format!("/billing_portal/{id}")))
        }
        ("GET", ["invoices", id]) => invoice_page(state, id).map(Page::Html),
        _ => Err(ApiError::unrecognized_url(
            method,
            &format!("/{}", segments.join("/")),
        )),
    }
}

fn checkout_page(state: &State, id: &str) -> ApiResult<String> {
    let session = checkout::retrieve(state, id)?;
    let mut body = String::new();
    let items = state
        .sessions
        .get(id)
        .map(|e| e.line_items.clone())
        .unwrap_or_default();
    body.push_str("<ul>");
    for item in &items {
        let _ = write!(
            body,
            "<li>{} × {} — {}</li>",
            item["quantity"],
            escape(item["description"].as_str().unwrap_or_default()),
            amount(&item["price"])
        );
    }
    body.push_str("</ul>");
    if session["status"] != json!("open") {
        let _ = write!(
            body,
            "<p>This session is {}.</p>",
            escape(session["status"].as_str().unwrap_or_default())
        );
        return Ok(page("Checkout", &body));
    }
    let email = session["customer"]
        .as_str()
        .and_then(|c| state.get(Kind::Customer, c))
        .and_then(|c| c["email"].as_str())
        .or(session["customer_email"].as_str())
        .unwrap_or("customer@example.com");
    let _ = write!(
        body,
        "<form method=post action=\"/checkout/{id}/pay\">\
         <p><label>Email <input name=email value=\"{}\"></label></p>\
         <p><label>Name <input name=name></label></p>\
         <p>Card: 4242 4242 4242 4242 (emulated, always succeeds)</p>\
         <button type=submit>Pay and subscribe</button></form>\
         <p><a href=\"/checkout/{id}/cancel\">Cancel and go back</a></p>",
        escape(email)
    );
    Ok(page("Checkout", &body))
}

fn portal_page(state: &State, id: &str) -> ApiResult<String> {
    let session = state.find(Kind::PortalSession, id, "id")?;
    let customer = session["customer"].as_str().unwrap_or_default();
    let mut body = String::new();
    let prices: Vec<&Value> = state
        .table(Kind::Price)
        .newest_first()
        .filter(|p| p["active"] == json!(true) && p["type"] == json!("recurring"))
        .collect();
    for sub in state
        .table(Kind::Subscription)
        .newest_first()
        .filter(|s| s["customer"] == json!(customer))
    {
        let sub_id = sub["id"].as_str().unwrap_or_default();
        let Some(sub) = crate::render::object(state, Kind::Subscription, sub_id) else {
            continue;
        };
        let price = &sub["items"]["data"][0]["price"];
        let _ = write!(
            body,
            "<h2>{}</h2><p>Status: {} · {} · renews or ends {}</p>",
            escape(sub_id),
            escape(sub["status"].as_str().unwrap_or_default()),
            amount(price),
            crate::billing::period(&sub).1
        );
        if sub["status"] == json!("canceled") {
            continue;
        }
        let (action, label) = if sub["cancel_at_period_end"] == json!(true) {
            ("resume", "Resume subscription")
        } else {
            ("cancel", "Cancel at period end")
        };
        let _ = write!(
            body,
            "<form method=post action=\"/billing_portal/{id}/subscriptions/{sub_id}/{action}\"><button>{label}</button></form>\
             <form method=post action=\"/billing_portal/{id}/subscriptions/{sub_id}/price\"><select name=price>"
        );
        for p in &prices {
            let _ = write!(
                body,
                "<option value=\"{}\">{} {}</option>",
                escape(p["id"].as_str().unwrap_or_default()),
                escape(
                    p["lookup_key"]
                        .as_str()
                        .or(p["nickname"].as_str())
                        .unwrap_or_default()
                ),
                amount(p)
            );
        }
        body.push_str("</select> <button>Switch plan</button></form>");
        let _ = write!(
            body,
            "<p>Invoices: {}</p>",
            state
                .table(Kind::Invoice)
                .newest_first()
                .filter(|i| i["subscription"] == json!(sub_id))
                .map(|i| {
                    let iid = escape(i["id"].as_str().unwrap_or_default());
                    format!(
                        "<a href=\"/invoices/{iid}\">{iid}</a> ({})",
                        escape(i["status"].as_str().unwrap_or_default())
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(url) = session["return_url"].as_str() {
        let _ = write!(body, "<p><a href=\"{}\">Return</a></p>", escape(url));
    }
    Ok(page("Billing portal", &body))
}

fn invoice_page(state: &State, id: &str) -> ApiResult<String> {
    let invoice = state.find(Kind::Invoice, id, "id")?;
    let mut body = format!(
        "<p>{} · {} · due {}</p><ul>",
        escape(invoice["number"].as_str().unwrap_or(id)),
        escape(invoice["status"].as_str().unwrap_or_default()),
        invoice["amount_due"]
    );
    for line in invoice["lines"]["data"].as_array().into_iter().flatten() {
        let _ = write!(
            body,
            "<li>{} — {}</li>",
            escape(line["description"].as_str().unwrap_or_default()),
            line["amount"]
        );
    }
    body.push_str("</ul>");
    Ok(page("Invoice", &body))
}

fn amount(price: &Value) -> String {
    let cents = price["unit_amount"].as_i64().unwrap_or_default();
    let currency = price["currency"].as_str().unwrap_or("usd").to_uppercase();
    let interval = price["recurring"]["interval"]
        .as_str()
        .map(|i| format!(" / {i}"))
        .unwrap_or_default();
    format!("{}.{:02} {currency}{interval}", cents / 100, cents % 100)
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=utf-8><title>{title} · Stripe emulator</title>\
         <style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}</style></head>\
         <body><h1>{title}</h1><p><em>Test mode · Stripe emulator</em></p>{body}</body></html>"
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
