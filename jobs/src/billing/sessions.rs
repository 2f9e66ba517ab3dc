//! Stripe-hosted pages: a Checkout session to start a subscription and a billing portal
//! session to manage it.

use catalytic_db::ids::TenantId;
use stripe_billing::billing_portal_session::CreateBillingPortalSession;
use stripe_checkout::CheckoutSessionMode;
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionSubscriptionData,
};

use crate::billing::catalog::Interval;
use crate::billing::{BillingError, Stripe};

/// What a Checkout session sells and to whom.
pub struct CheckoutRequest<'a> {
    pub tenant: TenantId,
    pub customer_id: &'a str,
    pub price_id: &'a str,
    pub plan_code: &'a str,
    pub interval: Interval,
    /// Where Stripe sends the customer after paying (`{CHECKOUT_SESSION_ID}` is filled in).
    pub success_url: &'a str,
    pub cancel_url: &'a str,
}

/// A created Checkout session.
#[derive(Debug, Clone)]
pub struct CheckoutSession {
    pub id: String,
    pub url: String,
}

/// Creates a subscription Checkout session; the session and the subscription it creates
/// carry the tenant id in their metadata.
pub async fn checkout(
    stripe: &Stripe,
    req: CheckoutRequest<'_>,
) -> Result<CheckoutSession, BillingError> {
    let metadata = [
        ("tenant_id".to_owned(), req.tenant.to_string()),
        ("plan_code".to_owned(), req.plan_code.to_owned()),
        ("interval".to_owned(), req.interval.as_str().to_owned()),
    ];
    let session = CreateCheckoutSession::new()
        .mode(CheckoutSessionMode::Subscription)
        .customer(req.customer_id)
        .client_reference_id(req.tenant.to_string())
        .line_items(vec![CreateCheckoutSessionLineItems {
            price: Some(req.price_id.to_owned()),
            quantity: Some(1),
            ..CreateCheckoutSessionLineItems::new()
        }])
        .success_url(req.success_url)
        .cancel_url(req.cancel_url)
        .metadata(metadata.clone())
        .subscription_data(CreateCheckoutSessionSubscriptionData {
            metadata: Some(metadata.into()),
            ..CreateCheckoutSessionSubscriptionData::new()
        })
        .send(stripe.client())
        .await?;
    let url = session
        .url
        .clone()
        .ok_or_else(|| BillingError::Invalid("Checkout session without a URL".into()))?;
    Ok(CheckoutSession {
        id: session.id.to_string(),
        url,
    })
}

/// Creates a billing portal session for the customer; returns its URL.
pub async fn portal(
    stripe: &Stripe,
    customer_id: &str,
    return_url: &str,
) -> Result<String, BillingError> {
    let session = CreateBillingPortalSession::new()
        .customer(customer_id)
        .return_url(return_url)
        .send(stripe.client())
        .await?;
    Ok(session.url)
}
