//! Invoices read from Stripe.

use catalytic_db::ids::TenantId;
use catalytic_db::invoices::StripeInvoice;
use chrono::{DateTime, Utc};
use stripe_billing::Invoice;
use stripe_billing::invoice::RetrieveInvoice;

use crate::billing::{BillingError, Stripe, time};

/// An invoice as Stripe described it at `read_at`.
#[derive(Debug, Clone)]
pub struct InvoiceSnapshot {
    pub id: String,
    pub customer_id: Option<String>,
    pub subscription_id: Option<String>,
    /// The `tenant_id` metadata of its subscription.
    pub tenant_hint: Option<TenantId>,
    pub number: Option<String>,
    /// draft, open, paid, uncollectible or void.
    pub status: String,
    pub currency: String,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub amount_remaining: i64,
    pub hosted_invoice_url: Option<String>,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub next_payment_attempt: Option<DateTime<Utc>>,
    pub read_at: DateTime<Utc>,
}

impl InvoiceSnapshot {
    pub fn of(inv: &Invoice, read_at: DateTime<Utc>) -> Result<Self, BillingError> {
        let id = inv
            .id
            .as_ref()
            .ok_or_else(|| BillingError::Invalid("invoice without an id".into()))?
            .to_string();
        let details = inv
            .parent
            .as_ref()
            .and_then(|p| p.subscription_details.as_ref());
        let subscription_id = details
            .map(|d| d.subscription.id().to_string())
            .or_else(|| inv.subscription.as_ref().map(|s| s.id().to_string()));
        let tenant_hint = details
            .and_then(|d| d.metadata.as_ref())
            .and_then(|m| m.get("tenant_id"))
            .and_then(|t| t.parse().ok());
        Ok(Self {
            id,
            customer_id: inv.customer.as_ref().map(|c| c.id().to_string()),
            subscription_id,
            tenant_hint,
            number: inv.number.clone(),
            status: inv
                .status
                .as_ref()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_else(|| "draft".into()),
            currency: inv.currency.to_string(),
            amount_due: inv.amount_due,
            amount_paid: inv.amount_paid,
            amount_remaining: inv.amount_remaining,
            hosted_invoice_url: inv.hosted_invoice_url.clone(),
            period_start: time(inv.period_start),
            period_end: time(inv.period_end),
            next_payment_attempt: inv.next_payment_attempt.and_then(time),
            read_at,
        })
    }

    /// The row to store for `tenant`.
    pub fn row(&self, tenant: TenantId) -> StripeInvoice {
        StripeInvoice {
            tenant_id: tenant,
            stripe_invoice_id: self.id.clone(),
            stripe_subscription_id: self.subscription_id.clone(),
            number: self.number.clone(),
            status: self.status.clone(),
            currency: self.currency.clone(),
            amount_due_cents: self.amount_due,
            amount_paid_cents: self.amount_paid,
            hosted_invoice_url: self.hosted_invoice_url.clone(),
            period_start: self.period_start,
            period_end: self.period_end,
        }
    }
}

/// Reads an invoice from Stripe.
pub async fn retrieve(stripe: &Stripe, id: &str) -> Result<InvoiceSnapshot, BillingError> {
    let read_at = Utc::now();
    let inv = RetrieveInvoice::new(id).send(stripe.client()).await?;
    InvoiceSnapshot::of(&inv, read_at)
}
