//! The Stripe client: one per process, built from the secret key and API base.

use std::fmt;
use std::time::Duration;

use crate::billing::BillingError;

/// Bound of one Stripe request (a retried job or a 503 follows a timeout).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Where Stripe is and the key to it (`STRIPE_SECRET_KEY`, `STRIPE_API_BASE`).
#[derive(Clone, PartialEq, Eq)]
pub struct StripeSettings {
    pub secret_key: String,
    /// `https://api.stripe.com` in production; the emulator in tests and local runs.
    pub api_base: String,
}

impl fmt::Debug for StripeSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeSettings")
            .field("secret_key", &"****")
            .field("api_base", &self.api_base)
            .finish()
    }
}

impl StripeSettings {
    /// Reads `STRIPE_SECRET_KEY` and `STRIPE_API_BASE` through `lookup`; `None` without a key.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        Some(Self {
            secret_key: get("STRIPE_SECRET_KEY")?.trim().to_owned(),
            api_base: get("STRIPE_API_BASE").unwrap_or_else(|| "https://api.stripe.com".into()),
        })
    }
}

/// A cloneable Stripe API client.
#[derive(Clone)]
pub struct Stripe {
    client: stripe::Client,
}

impl fmt::Debug for Stripe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Stripe")
    }
}

impl Stripe {
    pub fn new(settings: &StripeSettings) -> Result<Self, BillingError> {
        let mut base = settings.api_base.trim().to_owned();
        if !base.ends_with('/') {
            base.push('/');
        }
        let client = stripe::ClientBuilder::new(settings.secret_key.as_str())
            .url(base)
            .timeout(REQUEST_TIMEOUT)
            .app_info(
                "catalytic",
                Some(env!("CARGO_PKG_VERSION").to_owned()),
                None,
            )
            .build()
            .map_err(|e| BillingError::Invalid(format!("Stripe client: {e}")))?;
        Ok(Self { client })
    }

    pub fn client(&self) -> &stripe::Client {
        &self.client
    }
}
