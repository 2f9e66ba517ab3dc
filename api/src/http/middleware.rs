//! The middleware around every route, outermost first: request id and access log,
//! metrics, error normalisation, security headers.

use std::time::Instant;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::OperationId;
use tracing::Instrument;

use crate::error;
use crate::http::{metrics::Metrics, request_id};
use crate::ratelimit;

/// Wraps the whole app: request id, access log, metrics, error shape and security headers.
pub async fn around<E: Endpoint>(
    ep: &E,
    mut req: Request,
    metrics: &Metrics,
    hsts: bool,
    max_body: usize,
) -> poem::Result<Response> {
    let id = request_id::from_header(
        req.headers()
            .get(request_id::HEADER)
            .and_then(|v| v.to_str().ok()),
    );
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let span =
        tracing::info_span!("request", request_id = %id, http.method = %method, http.path = %path);
    let started = Instant::now();
    let fut = async {
        let result = match limit_body(&mut req, max_body).await {
            Ok(()) => ep.call(req).await,
            Err(status) => Err(poem::Error::from_status(status)),
        };
        let mut resp = match result {
            Ok(r) => r.into_response(),
            Err(e) => normalise(e),
        };
        // Poem answers some framework errors (e.g. 405) as plain responses.
        if (resp.status().is_client_error() || resp.status().is_server_error()) && !is_json(&resp) {
            let status = resp.status();
            let ops = resp.data::<OperationId>().cloned();
            resp = error::response_for(status, kind_of(status), default_detail(status));
            if let Some(op) = ops {
                resp.set_data(op);
            }
        }
        resp
    };
    let scoped = ratelimit::scope(async {
        let resp = fut.await;
        (resp, ratelimit::recorded())
    });
    let (mut resp, rate) = request_id::scope(id.clone(), scoped.instrument(span.clone())).await;

    let route = resp
        .data::<OperationId>()
        .map(|op| op.0.to_owned())
        .unwrap_or_else(|| {
            if resp.status() == StatusCode::NOT_FOUND {
                "unmatched".to_owned()
            } else {
                path_label(&path)
            }
        });
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    metrics
        .requests
        .with_label_values(&[&method, &route, &status.to_string()])
        .inc();
    metrics
        .latency
        .with_label_values(&[&method, &route])
        .observe(elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::info!(
            http.status = status,
            http.route = %route,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request served"
        )
    });

    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert(request_id::HEADER, v);
    }
    if let Some(rate) = rate {
        for (name, value) in [
            ("x-ratelimit-limit", u64::from(rate.limit)),
            ("x-ratelimit-remaining", u64::from(rate.remaining)),
            ("x-ratelimit-reset", rate.reset_secs),
        ] {
            headers.insert(name, HeaderValue::from(value));
        }
    }
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(
        "referrer-policy",
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    if hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        );
    }
    Ok(resp)
}

/// Refuses a body over `max` bytes with 413: by its Content-Length when it has one (hyper
/// holds a body to the length it declares, over HTTP/1.1 and HTTP/2), else by reading at
/// most `max` bytes of it. A body without a length is chunked HTTP/1.1 or any HTTP/2 body
/// whose client left the header out (HTTP/2 has no Transfer-Encoding), so every such body
/// is read here, whatever its headers say.
async fn limit_body(req: &mut Request, max: usize) -> Result<(), StatusCode> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > max as u64 => Err(StatusCode::PAYLOAD_TOO_LARGE),
        Some(_) => Ok(()),
        None => match req.take_body().into_bytes_limit(max).await {
            Ok(bytes) => {
                req.set_body(bytes);
                Ok(())
            }
            Err(poem::error::ReadBodyError::PayloadTooLarge) => Err(StatusCode::PAYLOAD_TOO_LARGE),
            Err(_) => Err(StatusCode::BAD_REQUEST),
        },
    }
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"))
}

/// Routes outside the OpenAPI service (docs, spec) are labelled by their fixed path.
fn path_label(path: &str) -> String {
    match path {
        "/metrics" | "/openapi.json" | "/openapi.yaml" => path.to_owned(),
        p if p.starts_with("/docs") => "/docs".to_owned(),
        _ => "other".to_owned(),
    }
}

/// Turns a framework error into the one error shape. 4xx keep poem's explanation (it
/// says which field failed to parse); 5xx get a generic detail.
fn normalise(err: poem::Error) -> Response {
    let status = err.status();
    let message = err.to_string();
    let resp = err.into_response();
    if is_json(&resp) {
        return resp;
    }
    let detail = if status.is_client_error() && !matches!(status.as_u16(), 404 | 405 | 413 | 415) {
        message.chars().take(500).collect()
    } else {
        default_detail(status)
    };
    error::response_for(status, kind_of(status), detail)
}

fn kind_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "validation_error",
        429 => "rate_limited",
        503 => "service_unavailable",
        s if s >= 500 => "internal_error",
        _ => "bad_request",
    }
}

fn default_detail(status: StatusCode) -> String {
    match status.as_u16() {
        404 => "no such route".to_owned(),
        405 => "method not allowed on this route".to_owned(),
        413 => "request body too large".to_owned(),
        415 => "unsupported content type; send application/json".to_owned(),
        s if s >= 500 => "an internal error occurred; it has been logged".to_owned(),
        _ => status
            .canonical_reason()
            .unwrap_or("bad request")
            .to_lowercase(),
    }
}
