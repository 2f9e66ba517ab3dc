//! The API's one error type and the one place it becomes an HTTP response.
//!
//! Every error answers `{"type", "detail", "status", "request_id"}` (plus `errors` for
//! field validation). Internal causes are logged once here and never sent to a client.

use chrono::{DateTime, Utc};
use poem::http::{HeaderValue, StatusCode};
use poem::{IntoResponse, Response};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiResponse, Object};

use crate::http::request_id;

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Object, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    /// The field's name as sent, e.g. `password`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// The body of every error response.
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// A stable machine-readable code: `not_found`, `validation_error`, `rate_limited`, ...
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
    /// A human-readable explanation.
    pub detail: String,
    /// The HTTP status, repeated.
    pub status: u16,
    /// The request's id (also in the `X-Request-Id` header).
    pub request_id: String,
    /// Field errors, for `validation_error`.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// The limit that was reached, for `quota_exceeded` and `plan_limit_exceeded`.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// When the quota resets, for `quota_exceeded`.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset_at: Option<DateTime<Utc>>,
}

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request validation failed")]
    Validation(Vec<FieldError>),
    /// A plan limit (lattices, users, dimensions, ...) would be exceeded.
    #[error("{detail}")]
    PlanLimit { detail: String, limit: Option<i64> },
    #[error("rate limit exceeded")]
    RateLimited { retry_after_secs: u64 },
    #[error("monthly API call quota exceeded")]
    QuotaExceeded { limit: i64, reset_at: DateTime<Utc> },
    #[error("the account is suspended")]
    Suspended,
    /// A dependency (database, Redis, Stripe, SMTP) is down: 503, retry later.
    #[error("{0} is unavailable")]
    Unavailable(&'static str, String),
    /// Anything unexpected: logged with its cause, answered with a generic 500.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(format!("{what} not found"))
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        ApiError::Internal(err.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PlanLimit { .. } => StatusCode::FORBIDDEN,
            ApiError::RateLimited { .. } | ApiError::QuotaExceeded { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Suspended => StatusCode::PAYMENT_REQUIRED,
            ApiError::Unavailable(..) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Validation(_) => "validation_error",
            ApiError::PlanLimit { .. } => "plan_limit_exceeded",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::QuotaExceeded { .. } => "quota_exceeded",
            ApiError::Suspended => "account_suspended",
            ApiError::Unavailable(..) => "service_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    /// The body a client sees. Causes of 5xx stay in the log.
    pub fn body(&self) -> ErrorBody {
        let detail = match self {
            ApiError::Internal(_) => "an internal error occurred; it has been logged".to_owned(),
            ApiError::Unavailable(dep, _) => {
                format!("{dep} is temporarily unavailable; retry shortly")
            }
            ApiError::Validation(errors) => errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; "),
            ApiError::RateLimited { retry_after_secs } => {
                format!("rate limit exceeded; retry in {retry_after_secs} s")
            }
            ApiError::QuotaExceeded { limit, reset_at } => format!(
                "the plan's {limit} API calls this month are used up; the quota resets at {}; upgrade the plan for more",
                reset_at.to_rfc3339()
            ),
            ApiError::Suspended => {
                "the account is suspended for an unpaid subscription: reads still work; pay the open invoice to write again".to_owned()
            }
            other => other.to_string(),
        };
        ErrorBody {
            kind: self.kind().to_owned(),
            detail,
            status: self.status().as_u16(),
            request_id: request_id::current(),
            errors: match self {
                ApiError::Validation(errors) => Some(errors.clone()),
                _ => None,
            },
            limit: match self {
                ApiError::QuotaExceeded { limit, .. } => Some(*limit),
                ApiError::PlanLimit { limit, .. } => *limit,
                _ => None,
            },
            reset_at: match self {
                ApiError::QuotaExceeded { reset_at, .. } => Some(*reset_at),
                _ => None,
            },
        }
    }
}

/// Builds an error response of the one shape from a status and detail (for errors raised
/// by the framework itself: unknown route, body too large, unparsable JSON).
pub fn response_for(status: StatusCode, kind: &str, detail: String) -> Response {
    json_response(ErrorBody {
        kind: kind.to_owned(),
        detail,
        status: status.as_u16(),
        request_id: request_id::current(),
        errors: None,
        limit: None,
        reset_at: None,
    })
}

fn json_response(body: ErrorBody) -> Response {
    let status = StatusCode::from_u16(body.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(json)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(cause) => tracing::error!(error.cause = %cause, "internal error"),
            ApiError::Unavailable(dep, cause) => {
                tracing::warn!(dependency = dep, error.cause = %cause, "dependency unavailable")
            }
            _ => {}
        }
        let mut resp = json_response(self.body());
        if let ApiError::RateLimited { retry_after_secs } = self
            && let Ok(v) = HeaderValue::from_str(&retry_after_secs.max(1).to_string())
        {
            resp.headers_mut().insert("retry-after", v);
        }
        resp
    }
}

impl From<ApiError> for poem::Error {
    fn from(err: ApiError) -> Self {
        poem::Error::from_response(err.into_response())
    }
}

impl From<catalytic_db::DbError> for ApiError {
    fn from(err: catalytic_db::DbError) -> Self {
        use catalytic_db::DbError;
        match err {
            DbError::NotFound => ApiError::NotFound("resource not found".into()),
            DbError::Conflict(name) => ApiError::Conflict(conflict_message(&name)),
            DbError::Unavailable(cause) => ApiError::Unavailable("database", cause),
            // A safety net: handlers refuse NUL and other control characters first.
            DbError::InvalidText(cause) => {
                tracing::info!(error.cause = %cause, "the database refused a text value");
                ApiError::invalid(
                    "request",
                    "contains a character that cannot be stored (such as NUL)",
                )
            }
            DbError::Constraint(name) => ApiError::Internal(format!("constraint {name} violated")),
            DbError::Other(cause) => ApiError::Internal(cause),
        }
    }
}

impl From<catalytic_db::DieselError> for ApiError {
    fn from(err: catalytic_db::DieselError) -> Self {
        catalytic_db::DbError::from(err).into()
    }
}

impl From<catalytic_jobs::billing::BillingError> for ApiError {
    fn from(err: catalytic_jobs::billing::BillingError) -> Self {
        use catalytic_jobs::billing::BillingError;
        match err {
            BillingError::NotConfigured => {
                ApiError::Unavailable("stripe", "STRIPE_SECRET_KEY is not set".into())
            }
            BillingError::Unavailable(cause) => ApiError::Unavailable("stripe", cause),
            // Stripe's own words stay in the log: they may describe our account or catalogue.
            BillingError::Refused {
                status: 400,
                message,
                param,
            } => {
                tracing::warn!(stripe.param = ?param, stripe.message = %message, "Stripe refused the request");
                let field = param
                    .as_deref()
                    .map_or_else(|| "request".to_owned(), stripe_field);
                ApiError::Validation(vec![FieldError::new(
                    &field,
                    "was refused by the payment provider",
                )])
            }
            BillingError::Refused {
                status: 402,
                message,
                ..
            } => {
                tracing::warn!(stripe.message = %message, "Stripe declined the payment");
                ApiError::Conflict(
                    "the payment provider declined the payment; update the payment method \
                     (POST /api/stripe/portal) and try again"
                        .into(),
                )
            }
            BillingError::Db(e) => e.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(err: redis::RedisError) -> Self {
        ApiError::Unavailable("redis", err.to_string())
    }
}

impl From<deadpool_redis::PoolError> for ApiError {
    fn from(err: deadpool_redis::PoolError) -> Self {
        ApiError::Unavailable("redis", err.to_string())
    }
}

/// A Stripe parameter as a field name: `address[country]` → `address.country`.
fn stripe_field(param: &str) -> String {
    param
        .replace("][", ".")
        .replace(['[', ']'], ".")
        .trim_end_matches('.')
        .to_owned()
}

/// The client-facing message of a named unique constraint.
fn conflict_message(constraint: &str) -> String {
    match constraint {
        "users_email_key" => "this email is already registered".into(),
        "tenants_slug_key" => "this organisation slug is taken".into(),
        "lattices_tenant_name_key" => "a lattice with this name already exists".into(),
        "jobs_idempotency_key" => "this Idempotency-Key was used with another request".into(),
        _ => "the resource already exists".into(),
    }
}

/// The statuses every operation may answer with an [`ErrorBody`].
const ERROR_STATUSES: &[(u16, &str)] = &[
    (400, "Malformed request"),
    (401, "Missing or invalid credentials"),
    (402, "Account suspended"),
    (403, "Role or plan does not allow this"),
    (404, "Not found"),
    (409, "Conflict"),
    (413, "Request body too large"),
    (415, "Unsupported media type"),
    (422, "Validation failed"),
    (429, "Rate limit or quota exceeded"),
    (500, "Internal error"),
    (503, "A dependency is unavailable"),
];

impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: ERROR_STATUSES
                .iter()
                .map(|(status, description)| MetaResponse {
                    description,
                    status: Some(*status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: "application/json",
                        schema: ErrorBody::schema_ref(),
                    }],
                    headers: vec![],
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        ErrorBody::register(registry);
    }
}

/// The result type of every handler.
pub type ApiResult<T> = Result<T, ApiError>;
