//! The HTTP server: one endpoint that sends `/v1/…` to the API, `/_test/…` to the
//! test-control routes and everything else to the hosted pages.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use poem::http::StatusCode;
use poem::{Request, Response};
use serde_json::Value;

use crate::state::State;

/// How webhook deliveries are retried.
#[derive(Debug, Clone)]
pub struct DeliveryPolicy {
    /// Attempts per event, the first included.
    pub attempts: u32,
    /// The wait before the first retry; it doubles for each further one.
    pub backoff: Duration,
}

pub struct Shared {
    state: Mutex<State>,
    pub http: reqwest::Client,
    pub delivery: DeliveryPolicy,
}

impl Shared {
    pub fn new(state: State, delivery: DeliveryPolicy) -> Self {
        Self {
            state: Mutex::new(state),
            http: reqwest::Client::new(),
            delivery,
        }
    }

    /// The account. Handlers never hold it across an `await`.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub async fn handle(shared: Arc<Shared>, mut req: Request) -> Response {
    let body = match req.take_body().into_vec().await {
        Ok(body) => body,
        Err(e) => return text(StatusCode::BAD_REQUEST, &format!("unreadable body: {e}")),
    };
    let path = req.uri().path().to_owned();
    if path == "/v1" || path.starts_with("/v1/") {
        crate::api::handle(&shared, &req, &path, &body)
    } else if let Some(rest) = path.strip_prefix("/_test/") {
        crate::control::handle(
            &shared,
            req.method().as_str(),
            rest,
            req.uri().query(),
            &body,
        )
    } else {
        crate::pages::handle(&shared, req.method().as_str(), &path, &body)
    }
}

pub fn json(status: u16, body: &Value) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("application/json")
        .body(serde_json::to_string_pretty(body).unwrap_or_default())
}

pub fn text(status: StatusCode, body: &str) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/plain; charset=utf-8")
        .body(body.to_owned())
}
