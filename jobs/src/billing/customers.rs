//! The tenant's Stripe customer: created on first use, at most once, and its billing
//! details (name, email, address).

use catalytic_db::Pool;
use catalytic_db::stripe_customers::{self, Details, StripeCustomer};
use catalytic_db::tenants::Tenant;
use stripe::{IdempotencyKey, RequestStrategy, StripeRequest as _};
use stripe_core::Customer;
use stripe_core::customer::{
    CreateCustomer, OptionalFieldsCustomerAddress, RetrieveCustomer, RetrieveCustomerReturned,
    UpdateCustomer,
};

use crate::billing::{BillingError, Stripe};

/// A postal address as the API takes it and `stripe_customers.address` stores it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Address {
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    /// Two-letter ISO country code.
    pub country: Option<String>,
}

/// The details Stripe holds for a customer.
pub fn details_of(customer: &Customer) -> Details {
    Details {
        email: customer.email.clone(),
        name: customer.name.clone(),
        address: customer.address.as_ref().map(|a| {
            serde_json::to_value(Address {
                line1: a.line1.clone(),
                line2: a.line2.clone(),
                city: a.city.clone(),
                state: a.state.clone(),
                postal_code: a.postal_code.clone(),
                country: a.country.clone(),
            })
            .unwrap_or_default()
        }),
    }
}

/// The tenant's Stripe customer, created on first use. Two concurrent first uses send the
/// same idempotency key, so Stripe creates one customer, and the first link stored wins.
/// No transaction is open during the Stripe call.
pub async fn ensure(
    stripe: &Stripe,
    db: &Pool,
    tenant: &Tenant,
    email: Option<&str>,
) -> Result<StripeCustomer, BillingError> {
    {
        let mut conn = db.get().await?;
        if let Some(existing) = stripe_customers::for_tenant(&mut conn, tenant.id).await? {
            return Ok(existing);
        }
    }
    let key = IdempotencyKey::new(format!("catalytic-customer-{}", tenant.id))
        .map_err(|e| BillingError::Invalid(format!("idempotency key: {e:?}")))?;
    let mut create = CreateCustomer::new()
        .name(tenant.name.as_str())
        .metadata([("tenant_id".to_owned(), tenant.id.to_string())]);
    if let Some(email) = email {
        create = create.email(email);
    }
    let customer = create
        .customize()
        .request_strategy(RequestStrategy::Idempotent(key))
        .send(stripe.client())
        .await?;
    let mut conn = db.get().await?;
    Ok(stripe_customers::link(
        &mut conn,
        tenant.id,
        customer.id.as_str(),
        &details_of(&customer),
    )
    .await?)
}

/// The customer as Stripe has it now; `None` when it was deleted.
pub async fn retrieve(stripe: &Stripe, id: &str) -> Result<Option<Customer>, BillingError> {
    match RetrieveCustomer::new(id).send(stripe.client()).await? {
        RetrieveCustomerReturned::Customer(c) => Ok(Some(c)),
        RetrieveCustomerReturned::DeletedCustomer(_) => Ok(None),
    }
}

/// Changes the customer's billing details in Stripe; returns them as Stripe now has them.
pub async fn update(
    stripe: &Stripe,
    id: &str,
    name: Option<&str>,
    email: Option<&str>,
    address: Option<&Address>,
) -> Result<Details, BillingError> {
    let mut req = UpdateCustomer::new(id);
    if let Some(name) = name {
        req = req.name(name);
    }
    if let Some(email) = email {
        req = req.email(email);
    }
    if let Some(a) = address {
        req = req.address(OptionalFieldsCustomerAddress {
            line1: a.line1.clone(),
            line2: a.line2.clone(),
            city: a.city.clone(),
            state: a.state.clone(),
            postal_code: a.postal_code.clone(),
            country: a.country.clone(),
        });
    }
    let customer = req.send(stripe.client()).await?;
    Ok(details_of(&customer))
}
