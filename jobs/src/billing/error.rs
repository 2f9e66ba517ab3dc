//! How a billing operation failed, classified for the caller: the API answers 503 for
//! an unavailable Stripe, a job retries it; anything else is permanent.

use catalytic_db::DbError;

use crate::JobError;

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    /// No `STRIPE_SECRET_KEY` in this process.
    #[error("Stripe is not configured (STRIPE_SECRET_KEY is not set)")]
    NotConfigured,
    /// Stripe could not be reached, timed out, or answered 429 or 5xx: try again later.
    #[error("Stripe is unavailable: {0}")]
    Unavailable(String),
    /// Stripe has no such object (404).
    #[error("Stripe has no such object: {0}")]
    NotFound(String),
    /// Stripe refused the request (another 4xx); `param` names the Stripe parameter at
    /// fault when Stripe says (`address[country]`).
    #[error("Stripe refused the request ({status}): {message}")]
    Refused {
        status: u16,
        message: String,
        param: Option<String>,
    },
    /// What Stripe returned cannot be used (no tenant, unknown price, ...).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<catalytic_db::DieselError> for BillingError {
    fn from(err: catalytic_db::DieselError) -> Self {
        BillingError::Db(err.into())
    }
}

impl From<stripe::StripeError> for BillingError {
    fn from(err: stripe::StripeError) -> Self {
        use stripe::StripeError as E;
        match err {
            E::Stripe(api, status) => {
                let message = api
                    .message
                    .clone()
                    .unwrap_or_else(|| format!("{:?}", api.type_));
                match status {
                    404 => BillingError::NotFound(message),
                    429 | 500.. => BillingError::Unavailable(format!("{status}: {message}")),
                    _ => BillingError::Refused {
                        status,
                        message,
                        param: api.param.clone(),
                    },
                }
            }
            E::ClientError(m) => BillingError::Unavailable(m),
            E::Timeout => BillingError::Unavailable("timed out".into()),
            E::JSONDeserialize(m) => {
                BillingError::Unavailable(format!("unreadable Stripe response: {m}"))
            }
            E::ConfigError(m) => BillingError::Invalid(format!("Stripe client: {m}")),
        }
    }
}

impl BillingError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            BillingError::NotConfigured | BillingError::Unavailable(_) => true,
            BillingError::Db(
                DbError::NotFound | DbError::Constraint(_) | DbError::InvalidText(_),
            ) => false,
            BillingError::Db(_) => true,
            _ => false,
        }
    }
}

impl From<BillingError> for JobError {
    fn from(err: BillingError) -> Self {
        if err.is_transient() {
            JobError::Retry(err.to_string())
        } else {
            JobError::Abort(err.to_string())
        }
    }
}
