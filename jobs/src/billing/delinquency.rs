//! Suspension for an unpaid subscription: once a subscription has been past due for
//! longer than the grace period, the tenant is suspended (writes answer 402, reads work)
//! and its owners are told. A payment lifts it ([`super::subscriptions::apply`]). Checked
//! when an event is reconciled and on every sweeper tick, so it happens without an event.

use std::time::Duration;

use catalytic_db::audit::{self, NewAudit};
use catalytic_db::ids::{EmailId, TenantId};
use catalytic_db::{AsyncConnection as _, Conn, notifications, subscriptions, tenants};
use chrono::Utc;
use serde_json::json;

use crate::billing::subscriptions::delinquent;
use crate::billing::{BillingError, notices};
use crate::context::HandlerContext;

/// Suspends the tenant if its subscription is past due beyond `grace`; call inside a
/// transaction. Returns the emails to push after commit, or `None` when the tenant was
/// not suspended now.
pub async fn enforce(
    conn: &mut Conn,
    tenant: TenantId,
    grace: Duration,
    message_domain: &str,
) -> Result<Option<Vec<EmailId>>, BillingError> {
    let row = subscriptions::lock(conn, tenant).await?;
    let Some(since) = row.past_due_since else {
        return Ok(None);
    };
    let grace_over = chrono::Duration::from_std(grace)
        .map(|g| since + g <= Utc::now())
        .unwrap_or(false);
    if !delinquent(&row.status)
        || !grace_over
        || !tenants::suspend_for_billing(conn, tenant).await?
    {
        return Ok(None);
    }
    audit::record(
        conn,
        NewAudit {
            tenant_id: Some(tenant),
            action: "tenant.suspended",
            target_type: Some("tenant"),
            target_id: Some(tenant.to_string()),
            details: json!({
                "by": "billing",
                "reason": "subscription past due beyond the grace period",
                "subscription": row.stripe_subscription_id,
                "past_due_since": since,
                "grace_secs": grace.as_secs(),
            }),
            ..Default::default()
        },
    )
    .await?;
    notifications::insert(
        conn,
        tenant,
        "billing.account_suspended",
        "Your account is suspended",
        "The subscription is unpaid: data stays readable, changes are refused until the open invoice is paid.",
        json!({ "subscription": row.stripe_subscription_id, "past_due_since": since }),
    )
    .await?;
    let emails = notices::to_owners(
        conn,
        tenant,
        "account_suspended",
        json!({ "reason": "Your subscription payment is overdue." }),
        message_domain,
    )
    .await?;
    Ok(Some(emails))
}

/// Suspends every tenant whose grace period is over (the sweeper's tick); returns how
/// many were suspended.
pub async fn suspend_overdue(ctx: &HandlerContext) -> Result<usize, BillingError> {
    let grace = ctx.config.billing_grace;
    let cutoff = Utc::now()
        - chrono::Duration::from_std(grace).map_err(|e| BillingError::Invalid(e.to_string()))?;
    let domain = ctx.config.message_domain();
    let mut conn = ctx.db.get().await?;
    let due = subscriptions::overdue(&mut conn, cutoff, 100).await?;
    let mut suspended = 0;
    for tenant in due {
        let emails = conn
            .transaction::<_, BillingError, _>(async |c| enforce(c, tenant, grace, &domain).await)
            .await?;
        if let Some(emails) = emails {
            suspended += 1;
            tracing::info!(tenant.id = %tenant, "tenant suspended: subscription past due beyond the grace period");
            notices::push(&ctx.queue, &emails).await;
        }
    }
    Ok(suspended)
}
