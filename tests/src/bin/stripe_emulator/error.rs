//! Errors in Stripe's shape: `{"error": {"type", "message", "param", "code"}}` with the
//! status code Stripe uses for each kind.

use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub kind: &'static str,
    pub message: String,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(status: u16, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            param: None,
            code: None,
        }
    }

    /// A 400 `invalid_request_error` without a parameter.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", message)
    }

    /// A 400 `invalid_request_error` naming the parameter at fault.
    pub fn param(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::invalid(message).with_param(param)
    }

    pub fn missing_param(param: &str) -> Self {
        Self::param(param, format!("Missing required param: {param}."))
            .with_code("parameter_missing")
    }

    pub fn unknown_param(param: &str) -> Self {
        Self::param(param, format!("Received unknown parameter: {param}"))
            .with_code("parameter_unknown")
    }

    /// `No such customer: 'cus_123'`, a 404 as Stripe answers for a missing object.
    pub fn no_such(noun: &str, id: &str, param: &str) -> Self {
        Self::new(
            404,
            "invalid_request_error",
            format!("No such {noun}: '{id}'"),
        )
        .with_param(param)
        .with_code("resource_missing")
    }

    pub fn unrecognized_url(method: &str, path: &str) -> Self {
        Self::new(
            404,
            "invalid_request_error",
            format!(
                "Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs \
                 or we can help at https://support.stripe.com/."
            ),
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "invalid_request_error", message)
    }

    pub fn unavailable() -> Self {
        Self::new(
            503,
            "api_error",
            "The Stripe API is temporarily unavailable (emulated outage: POST /_test/up ends it).",
        )
    }

    pub fn idempotency(message: impl Into<String>) -> Self {
        Self::new(400, "idempotency_error", message)
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub fn body(&self, request_id: &str) -> Value {
        let mut error = json!({
            "type": self.kind,
            "message": self.message,
            "request_log_url": format!("https://dashboard.stripe.com/test/logs/{request_id}"),
        });
        if let Some(param) = &self.param {
            error["param"] = Value::String(param.clone());
        }
        if let Some(code) = self.code {
            error["code"] = Value::String(code.to_owned());
            error["doc_url"] = Value::String(format!(
                "https://stripe.com/docs/error-codes/{}",
                code.replace('_', "-")
            ));
        }
        json!({ "error": error })
    }
}
