//! Stripe billing, shared by the API and the workers: the client, the plan ↔ price
//! catalogue (`catalytic-api stripe-sync`), customers, Checkout and portal sessions, plan
//! changes, webhook verification, and the reconciliation that makes PostgreSQL agree with
//! Stripe.
//!
//! Reconciliation never trusts an event's payload: it reads the current object from the
//! Stripe API and writes what it says, so duplicates and shuffled deliveries converge. A
//! row records when its Stripe state was read (`stripe_synced_at`), and a write from an
//! older read is dropped, so two reconciliations racing cannot leave the older state.
//! No Stripe call is made while a database transaction is open.

pub mod catalog;
pub mod client;
pub mod customers;
pub mod delinquency;
pub mod error;
pub mod invoices;
pub mod notices;
pub mod reconcile;
pub mod sessions;
pub mod subscriptions;
pub mod webhook;

pub use client::{Stripe, StripeSettings};
pub use error::BillingError;

use chrono::{DateTime, Utc};

/// A Stripe timestamp (Unix seconds) as a UTC time.
pub(crate) fn time(ts: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(ts, 0)
}
