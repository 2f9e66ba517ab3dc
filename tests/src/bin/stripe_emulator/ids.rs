//! Stripe-style identifiers (`cus_…`, `cs_test_…`) and the clock.

use rand::Rng;
use rand::distr::Alphanumeric;

/// `prefix` followed by `len` random alphanumerics.
pub fn with_len(prefix: &str, len: usize) -> String {
    let tail: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect();
    format!("{prefix}{tail}")
}

/// The usual Stripe id: prefix and 24 characters.
pub fn new(prefix: &str) -> String {
    with_len(prefix, 24)
}

/// A customer's invoice prefix: eight upper-case hexadecimal characters.
pub fn invoice_prefix() -> String {
    let n: u32 = rand::rng().random();
    format!("{n:08X}")
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
