//! The `/v1` pipeline: authentication (any test-mode secret key), the emulated outage,
//! form parsing, idempotent replays, routing, `expand[]`, and Stripe's headers.

use std::sync::Arc;

use base64::Engine;
use poem::http::HeaderMap;
use poem::{Request, Response};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::server::{Shared, json};
use crate::state::{Ctx, State, StoredReply};
use crate::{
    checkout, customers, events, invoices, portal, prices, products, render, subscriptions,
};

pub fn handle(shared: &Arc<Shared>, req: &Request, path: &str, body: &[u8]) -> Response {
    let request_id = crate::ids::with_len("req_", 14);
    let method = req.method().as_str().to_owned();
    let idempotency_key = header(req.headers(), "idempotency-key");
    let ctx = Ctx {
        request_id: Some(request_id.clone()),
        idempotency_key: idempotency_key.clone(),
    };
    let mut state = shared.lock();
    let (status, body, replayed) = match run(&mut state, req, &method, path, body, &ctx) {
        Ok(outcome) => outcome,
        Err(e) => (e.status, e.body(&request_id), false),
    };
    let version =
        header(req.headers(), "stripe-version").unwrap_or_else(|| state.api_version.clone());
    drop(state);
    tracing::info!(%method, %path, status, %request_id, "api request");
    let mut response = json(status, &body);
    let headers = response.headers_mut();
    for (name, value) in [
        ("request-id", Some(request_id)),
        ("stripe-version", Some(version)),
        ("idempotency-key", idempotency_key),
        ("idempotent-replayed", replayed.then(|| "true".to_owned())),
    ] {
        if let Some(value) = value.and_then(|v| v.parse().ok()) {
            headers.insert(name, value);
        }
    }
    response
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The status, the body, and whether it is an idempotent replay.
fn run(
    state: &mut State,
    req: &Request,
    method: &str,
    path: &str,
    body: &[u8],
    ctx: &Ctx,
) -> ApiResult<(u16, Value, bool)> {
    authenticate(req.headers())?;
    if state.down {
        return Err(ApiError::unavailable());
    }
    let body = std::str::from_utf8(body)
        .map_err(|_| ApiError::invalid("The request body is not UTF-8."))?;
    let query = req.uri().query().unwrap_or_default();
    let mut map = crate::form::parse(query).map_err(ApiError::invalid)?;
    map.extend(crate::form::parse(body).map_err(ApiError::invalid)?);
    let mut params = Params::new(map);
    let expand = params.strings("expand")?;
    params.remove("expand");

    let key = ctx
        .idempotency_key
        .clone()
        .filter(|_| method == "POST" || method == "DELETE");
    let fingerprint = format!("{method} {path}?{query}\n{body}");
    if let Some(key) = &key
        && let Some(stored) = state.idempotency.get(key)
    {
        if stored.fingerprint != fingerprint {
            return Err(ApiError::idempotency(format!(
                "Keys for idempotent requests can only be used with the same parameters they were \
                 first used with. Try using a key other than '{key}' if you meant to execute a \
                 different request."
            )));
        }
        return Ok((stored.status, stored.body.clone(), true));
    }

    let segments: Vec<&str> = path
        .trim_start_matches("/v1")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let result = route(state, ctx, method, &segments, &params).and_then(|mut value| {
        render::expand(state, &mut value, &expand)?;
        Ok(value)
    });
    let (status, body) = match result {
        Ok(value) => (200, value),
        Err(e) => (
            e.status,
            e.body(ctx.request_id.as_deref().unwrap_or_default()),
        ),
    };
    if let Some(key) = key
        && status < 500
    {
        state.idempotency.insert(
            key,
            StoredReply {
                fingerprint,
                status,
                body: body.clone(),
            },
        );
    }
    Ok((status, body, false))
}

/// Any test-mode secret or restricted key, as a bearer token or a basic-auth user.
fn authenticate(headers: &HeaderMap) -> ApiResult<()> {
    let Some(auth) = header(headers, "authorization") else {
        return Err(ApiError::unauthorized(
            "You did not provide an API key. You need to provide your API key in the \
             Authorization header, using Bearer auth (e.g. 'Authorization: Bearer \
             YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, \
             or we can help at https://support.stripe.com/.",
        ));
    };
    let key = if let Some(token) = auth.strip_prefix("Bearer ") {
        token.trim().to_owned()
    } else if let Some(basic) = auth.strip_prefix("Basic ") {
        base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .map(|s| s.split(':').next().unwrap_or_default().to_owned())
            .unwrap_or_default()
    } else {
        String::new()
    };
    let valid = (key.starts_with("sk_test_") || key.starts_with("rk_test_")) && key.len() > 8;
    if valid {
        Ok(())
    } else {
        let shown: String = key.chars().take(8).collect();
        Err(ApiError::unauthorized(format!(
            "Invalid API Key provided: {shown}****. The Stripe emulator accepts any test-mode \
             secret key (sk_test_…)."
        )))
    }
}

fn route(
    state: &mut State,
    ctx: &Ctx,
    method: &str,
    segments: &[&str],
    p: &Params,
) -> ApiResult<Value> {
    let no_params = || p.allow(&[]);
    match (method, segments) {
        ("GET", ["customers"]) => customers::list(state, p),
        ("POST", ["customers"]) => customers::create(state, ctx, p),
        ("GET", ["customers", "search"]) => customers::search(state, p),
        ("GET", ["customers", id]) => no_params().and_then(|()| customers::retrieve(state, id)),
        ("POST", ["customers", id]) => customers::update(state, ctx, id, p),
        ("DELETE", ["customers", id]) => {
            no_params().and_then(|()| customers::delete(state, ctx, id))
        }

        ("GET", ["products"]) => products::list(state, p),
        ("POST", ["products"]) => products::create(state, ctx, p),
        ("GET", ["products", "search"]) => products::search(state, p),
        ("GET", ["products", id]) => no_params().and_then(|()| products::retrieve(state, id)),
        ("POST", ["products", id]) => products::update(state, ctx, id, p),
        ("DELETE", ["products", id]) => no_params().and_then(|()| products::delete(state, ctx, id)),

        ("GET", ["prices"]) => prices::list(state, p),
        ("POST", ["prices"]) => prices::create(state, ctx, p),
        ("GET", ["prices", "search"]) => prices::search(state, p),
        ("GET", ["prices", id]) => no_params().and_then(|()| prices::retrieve(state, id)),
        ("POST", ["prices", id]) => prices::update(state, ctx, id, p),

        ("GET", ["checkout", "sessions"]) => checkout::list(state, p),
        ("POST", ["checkout", "sessions"]) => checkout::create(state, ctx, p),
        ("GET", ["checkout", "sessions", id]) => {
            no_params().and_then(|()| checkout::retrieve(state, id))
        }
        ("GET", ["checkout", "sessions", id, "line_items"]) => {
            checkout::line_items_page(state, id, p)
        }
        ("POST", ["checkout", "sessions", id, "expire"]) => {
            no_params().and_then(|()| checkout::expire(state, ctx, id))
        }

        ("POST", ["billing_portal", "sessions"]) => portal::create(state, ctx, p),

        ("GET", ["subscriptions"]) => subscriptions::list(state, p),
        ("POST", ["subscriptions"]) => subscriptions::create(state, ctx, p),
        ("GET", ["subscriptions", id]) => {
            no_params().and_then(|()| subscriptions::retrieve(state, id))
        }
        ("POST", ["subscriptions", id]) => subscriptions::update(state, ctx, id, p),
        ("DELETE", ["subscriptions", id]) => subscriptions::cancel(state, ctx, id, p),

        ("GET", ["invoices"]) => invoices::list(state, p),
        ("GET", ["invoices", id]) => no_params().and_then(|()| invoices::retrieve(state, id)),
        ("GET", ["invoices", id, "lines"]) => invoices::lines(state, id, p),
        ("POST", ["invoices", id, "pay"]) => invoices::pay(state, ctx, id, p),

        ("GET", ["events"]) => events::list(state, p),
        ("GET", ["events", id]) => no_params().and_then(|()| events::retrieve(state, id)),

        _ => Err(ApiError::unrecognized_url(
            method,
            &format!("/v1/{}", segments.join("/")),
        )),
    }
}
