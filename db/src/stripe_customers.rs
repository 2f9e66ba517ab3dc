//! The Stripe customer of each tenant (at most one: the tenant id is the key).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;

use crate::ids::TenantId;
use crate::schema::stripe_customers;
use crate::{Conn, DbResult};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = stripe_customers)]
pub struct StripeCustomer {
    pub tenant_id: TenantId,
    pub stripe_customer_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub address: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

/// The billing details Stripe holds for a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Details {
    pub email: Option<String>,
    pub name: Option<String>,
    pub address: Option<serde_json::Value>,
}

impl StripeCustomer {
    pub fn details(&self) -> Details {
        Details {
            email: self.email.clone(),
            name: self.name.clone(),
            address: self.address.clone(),
        }
    }
}

#[tracing::instrument(skip_all, fields(tenant.id = %tenant))]
pub async fn for_tenant(conn: &mut Conn, tenant: TenantId) -> DbResult<Option<StripeCustomer>> {
    Ok(stripe_customers::table
        .find(tenant)
        .select(StripeCustomer::as_select())
        .first(conn)
        .await
        .optional()?)
}

#[tracing::instrument(skip_all, fields(stripe.customer = customer))]
pub async fn by_customer_id(conn: &mut Conn, customer: &str) -> DbResult<Option<StripeCustomer>> {
    Ok(stripe_customers::table
        .filter(stripe_customers::stripe_customer_id.eq(customer))
        .select(StripeCustomer::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Links `customer` to the tenant unless it already has one; returns the tenant's
/// customer either way (the first one linked wins).
#[tracing::instrument(skip_all, fields(tenant.id = %tenant, stripe.customer = customer))]
pub async fn link(
    conn: &mut Conn,
    tenant: TenantId,
    customer: &str,
    details: &Details,
) -> DbResult<StripeCustomer> {
    diesel::insert_into(stripe_customers::table)
        .values((
            stripe_customers::tenant_id.eq(tenant),
            stripe_customers::stripe_customer_id.eq(customer),
            stripe_customers::email.eq(&details.email),
            stripe_customers::name.eq(&details.name),
            stripe_customers::address.eq(&details.address),
        ))
        .on_conflict(stripe_customers::tenant_id)
        .do_nothing()
        .execute(conn)
        .await?;
    Ok(stripe_customers::table
        .find(tenant)
        .select(StripeCustomer::as_select())
        .first(conn)
        .await?)
}

/// Stores the details Stripe holds for `customer`; returns the row as it was before, or
/// `None` when no tenant has this customer.
#[tracing::instrument(skip_all, fields(stripe.customer = customer))]
pub async fn update_details(
    conn: &mut Conn,
    customer: &str,
    details: &Details,
) -> DbResult<Option<StripeCustomer>> {
    let before: Option<StripeCustomer> = stripe_customers::table
        .filter(stripe_customers::stripe_customer_id.eq(customer))
        .select(StripeCustomer::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?;
    if before.is_some() {
        diesel::update(
            stripe_customers::table.filter(stripe_customers::stripe_customer_id.eq(customer)),
        )
        .set((
            stripe_customers::email.eq(&details.email),
            stripe_customers::name.eq(&details.name),
            stripe_customers::address.eq(&details.address),
            stripe_customers::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    }
    Ok(before)
}

/// Number of customer rows of a tenant (0 or 1; tests).
pub async fn count_for_tenant(conn: &mut Conn, tenant: TenantId) -> DbResult<i64> {
    Ok(stripe_customers::table
        .filter(stripe_customers::tenant_id.eq(tenant))
        .count()
        .get_result(conn)
        .await?)
}
