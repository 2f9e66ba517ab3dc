//! Each tenant's subscription as Stripe last described it: the reconciliation writes it,
//! the delinquency check reads it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::ids::{PlanId, TenantId};
use crate::plans::Subscription;
use crate::schema::{tenant_subscriptions, tenants};
use crate::{Conn, DbError, DbResult};

/// The row's Stripe-derived fields, as one reconciliation computed them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeState {
    pub plan_id: PlanId,
    pub pending_plan_id: Option<PlanId>,
    /// active, trialing, past_due, canceled, incomplete, incomplete_expired, unpaid, paused.
    pub status: String,
    /// `month` or `year`.
    pub billing_interval: Option<String>,
    pub stripe_subscription_id: Option<String>,
    pub current_period_start: Option<DateTime<Utc>>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    pub trial_end: Option<DateTime<Utc>>,
    pub past_due_since: Option<DateTime<Utc>>,
}

impl StripeState {
    /// The state a row holds now.
    pub fn of(row: &Subscription) -> Self {
        Self {
            plan_id: row.plan_id,
            pending_plan_id: row.pending_plan_id,
            status: row.status.clone(),
            billing_interval: row.billing_interval.clone(),
            stripe_subscription_id: row.stripe_subscription_id.clone(),
            current_period_start: row.current_period_start,
            current_period_end: row.current_period_end,
            cancel_at_period_end: row.cancel_at_period_end,
            trial_end: row.trial_end,
            past_due_since: row.past_due_since,
        }
    }
}

/// A tenant's subscription row, locked for the rest of the transaction.
#[tracing::instrument(skip_all, fields(tenant.id = %tenant))]
pub async fn lock(conn: &mut Conn, tenant: TenantId) -> DbResult<Subscription> {
    Ok(tenant_subscriptions::table
        .filter(tenant_subscriptions::tenant_id.eq(tenant))
        .select(Subscription::as_select())
        .for_update()
        .first(conn)
        .await?)
}

/// Writes the Stripe state read at `synced_at`.
#[tracing::instrument(skip_all, fields(tenant.id = %tenant))]
pub async fn write(
    conn: &mut Conn,
    tenant: TenantId,
    state: &StripeState,
    synced_at: DateTime<Utc>,
) -> DbResult<()> {
    let n = diesel::update(
        tenant_subscriptions::table.filter(tenant_subscriptions::tenant_id.eq(tenant)),
    )
    .set((
        tenant_subscriptions::plan_id.eq(state.plan_id),
        tenant_subscriptions::pending_plan_id.eq(state.pending_plan_id),
        tenant_subscriptions::status.eq(&state.status),
        tenant_subscriptions::billing_interval.eq(&state.billing_interval),
        tenant_subscriptions::stripe_subscription_id.eq(&state.stripe_subscription_id),
        tenant_subscriptions::current_period_start.eq(state.current_period_start),
        tenant_subscriptions::current_period_end.eq(state.current_period_end),
        tenant_subscriptions::cancel_at_period_end.eq(state.cancel_at_period_end),
        tenant_subscriptions::trial_end.eq(state.trial_end),
        tenant_subscriptions::past_due_since.eq(state.past_due_since),
        tenant_subscriptions::stripe_synced_at.eq(synced_at),
        tenant_subscriptions::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

/// The tenant whose row holds Stripe subscription `id`.
pub async fn tenant_of(conn: &mut Conn, id: &str) -> DbResult<Option<TenantId>> {
    Ok(tenant_subscriptions::table
        .filter(tenant_subscriptions::stripe_subscription_id.eq(id))
        .select(tenant_subscriptions::tenant_id)
        .first(conn)
        .await
        .optional()?)
}

/// Active tenants whose subscription has been past due (or unpaid) since before `cutoff`:
/// the grace period is over and they are due for suspension.
#[tracing::instrument(skip_all)]
pub async fn overdue(
    conn: &mut Conn,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> DbResult<Vec<TenantId>> {
    Ok(tenant_subscriptions::table
        .inner_join(tenants::table.on(tenants::id.eq(tenant_subscriptions::tenant_id)))
        .filter(
            tenant_subscriptions::past_due_since
                .le(cutoff)
                .and(tenant_subscriptions::status.eq_any(["past_due", "unpaid"]))
                .and(tenants::status.eq("active")),
        )
        .order(tenant_subscriptions::past_due_since.asc())
        .limit(limit)
        .select(tenant_subscriptions::tenant_id)
        .load(conn)
        .await?)
}
