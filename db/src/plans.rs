//! Subscription plans and each tenant's subscription.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;

use crate::ids::{PlanId, SubscriptionId, TenantId};
use crate::schema::{subscription_plans, tenant_subscriptions};
use crate::{Conn, DbResult};

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = subscription_plans)]
pub struct Plan {
    pub id: PlanId,
    pub code: String,
    pub name: String,
    pub currency: String,
    pub price_monthly_cents: i64,
    pub price_yearly_cents: i64,
    pub api_calls_per_month: Option<i64>,
    pub max_lattices: Option<i32>,
    pub max_users: Option<i32>,
    pub storage_bytes: Option<i64>,
    pub max_dimensions: i32,
    pub max_size: Option<i64>,
    pub max_vertices: Option<i64>,
    pub rate_limit_per_minute: i32,
    pub sort_order: i32,
    pub stripe_product_id: Option<String>,
    pub stripe_price_monthly_id: Option<String>,
    pub stripe_price_yearly_id: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = tenant_subscriptions)]
pub struct Subscription {
    pub id: SubscriptionId,
    pub tenant_id: TenantId,
    pub plan_id: PlanId,
    pub pending_plan_id: Option<PlanId>,
    pub status: String,
    pub billing_interval: Option<String>,
    pub stripe_subscription_id: Option<String>,
    pub current_period_start: Option<DateTime<Utc>>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    pub trial_end: Option<DateTime<Utc>>,
    pub past_due_since: Option<DateTime<Utc>>,
    /// When the Stripe state in this row was read from Stripe.
    pub stripe_synced_at: Option<DateTime<Utc>>,
}

#[tracing::instrument(skip_all)]
pub async fn list(conn: &mut Conn) -> DbResult<Vec<Plan>> {
    Ok(subscription_plans::table
        .order(subscription_plans::sort_order.asc())
        .select(Plan::as_select())
        .load(conn)
        .await?)
}

#[tracing::instrument(skip_all, fields(plan.code = code))]
pub async fn by_code(conn: &mut Conn, code: &str) -> DbResult<Plan> {
    Ok(subscription_plans::table
        .filter(subscription_plans::code.eq(code))
        .select(Plan::as_select())
        .first(conn)
        .await?)
}

/// The plan a tenant is on now.
#[tracing::instrument(skip_all, fields(tenant.id = %tenant))]
pub async fn for_tenant(conn: &mut Conn, tenant: TenantId) -> DbResult<(Subscription, Plan)> {
    Ok(tenant_subscriptions::table
        .inner_join(
            subscription_plans::table.on(subscription_plans::id.eq(tenant_subscriptions::plan_id)),
        )
        .filter(tenant_subscriptions::tenant_id.eq(tenant))
        .select((Subscription::as_select(), Plan::as_select()))
        .first(conn)
        .await?)
}

/// Creates a tenant's subscription row: active on `plan`, or on Free with `pending`
/// awaiting checkout.
#[tracing::instrument(skip_all, fields(tenant.id = %tenant))]
pub async fn create_subscription(
    conn: &mut Conn,
    tenant: TenantId,
    plan: PlanId,
    pending: Option<PlanId>,
) -> DbResult<SubscriptionId> {
    let id = SubscriptionId::generate();
    diesel::insert_into(tenant_subscriptions::table)
        .values((
            tenant_subscriptions::id.eq(id),
            tenant_subscriptions::tenant_id.eq(tenant),
            tenant_subscriptions::plan_id.eq(plan),
            tenant_subscriptions::pending_plan_id.eq(pending),
            tenant_subscriptions::status.eq("active"),
        ))
        .execute(conn)
        .await?;
    Ok(id)
}

/// Moves a tenant onto `plan` at once (operator CLI, contracts outside Stripe).
#[tracing::instrument(skip_all, fields(tenant.id = %tenant))]
pub async fn set_plan(conn: &mut Conn, tenant: TenantId, plan: PlanId) -> DbResult<()> {
    let n = diesel::update(tenant_subscriptions::table)
        .filter(tenant_subscriptions::tenant_id.eq(tenant))
        .set((
            tenant_subscriptions::plan_id.eq(plan),
            tenant_subscriptions::pending_plan_id.eq(None::<PlanId>),
            tenant_subscriptions::status.eq("active"),
            tenant_subscriptions::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    if n == 0 {
        return Err(crate::DbError::NotFound);
    }
    Ok(())
}

/// Records a plan's Stripe product and prices (`catalytic-api stripe-sync`).
#[tracing::instrument(skip_all, fields(plan.id = %plan))]
pub async fn set_stripe_ids(
    conn: &mut Conn,
    plan: PlanId,
    product: &str,
    monthly: &str,
    yearly: &str,
) -> DbResult<()> {
    diesel::update(subscription_plans::table.find(plan))
        .set((
            subscription_plans::stripe_product_id.eq(product),
            subscription_plans::stripe_price_monthly_id.eq(monthly),
            subscription_plans::stripe_price_yearly_id.eq(yearly),
            subscription_plans::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The plan one of whose prices is `price_id`, with that price's interval (`month` or
/// `year`).
#[tracing::instrument(skip_all, fields(stripe.price = price_id))]
pub async fn by_stripe_price(
    conn: &mut Conn,
    price_id: &str,
) -> DbResult<Option<(Plan, &'static str)>> {
    let plan: Option<Plan> = subscription_plans::table
        .filter(
            subscription_plans::stripe_price_monthly_id
                .eq(price_id)
                .or(subscription_plans::stripe_price_yearly_id.eq(price_id)),
        )
        .select(Plan::as_select())
        .first(conn)
        .await
        .optional()?;
    Ok(plan.map(|p| {
        let interval = if p.stripe_price_monthly_id.as_deref() == Some(price_id) {
            "month"
        } else {
            "year"
        };
        (p, interval)
    }))
}

pub async fn by_id(conn: &mut Conn, id: PlanId) -> DbResult<Plan> {
    Ok(subscription_plans::table
        .find(id)
        .select(Plan::as_select())
        .first(conn)
        .await?)
}
