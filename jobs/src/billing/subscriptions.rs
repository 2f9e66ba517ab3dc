//! A tenant's subscription: read from Stripe, applied to `tenant_subscriptions` (with an
//! audit entry and a notification for each change), and changed through Stripe.

use catalytic_db::audit::{self, NewAudit};
use catalytic_db::ids::{ApiKeyId, TenantId, UserId};
use catalytic_db::subscriptions::{self, StripeState};
use catalytic_db::{Conn, notifications, plans, tenants};
use chrono::{DateTime, Utc};
use serde_json::json;
use stripe_billing::Subscription;
use stripe_billing::subscription::{
    CancelSubscription, RetrieveSubscription, UpdateSubscription, UpdateSubscriptionItems,
    UpdateSubscriptionProrationBehavior,
};
use stripe_product::Price;

use crate::billing::catalog::{self, Interval};
use crate::billing::{BillingError, Stripe, time};

/// A subscription as Stripe described it at `read_at`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub id: String,
    pub customer_id: String,
    /// Stripe's status: active, trialing, past_due, canceled, incomplete, ...
    pub status: String,
    /// The first item and its price (Catalytic subscriptions have one).
    pub item_id: Option<String>,
    pub price: Option<Price>,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    pub trial_end: Option<DateTime<Utc>>,
    /// The `tenant_id` metadata Checkout put on it.
    pub tenant_hint: Option<TenantId>,
    /// When the request that read it was sent.
    pub read_at: DateTime<Utc>,
}

impl Snapshot {
    pub fn of(sub: &Subscription, read_at: DateTime<Utc>) -> Self {
        let item = sub.items.data.first();
        Self {
            id: sub.id.to_string(),
            customer_id: sub.customer.id().to_string(),
            status: sub.status.as_str().to_owned(),
            item_id: item.map(|i| i.id.to_string()),
            price: item.map(|i| i.price.clone()),
            period_start: item.and_then(|i| time(i.current_period_start)),
            period_end: item.and_then(|i| time(i.current_period_end)),
            cancel_at_period_end: sub.cancel_at_period_end || sub.cancel_at.is_some(),
            trial_end: sub.trial_end.and_then(time),
            tenant_hint: sub.metadata.get("tenant_id").and_then(|t| t.parse().ok()),
            read_at,
        }
    }

    /// Over: the tenant is back on Free.
    pub fn ended(&self) -> bool {
        ended(&self.status)
    }
}

/// Statuses of a subscription that is over.
pub fn ended(status: &str) -> bool {
    matches!(status, "canceled" | "incomplete_expired")
}

/// Statuses of an unpaid subscription (the grace period runs, then suspension).
pub fn delinquent(status: &str) -> bool {
    matches!(status, "past_due" | "unpaid")
}

/// Statuses under which the tenant has the subscription's plan.
fn grants_plan(status: &str) -> bool {
    matches!(
        status,
        "active" | "trialing" | "past_due" | "unpaid" | "paused"
    )
}

/// Reads a subscription from Stripe.
pub async fn retrieve(stripe: &Stripe, id: &str) -> Result<Snapshot, BillingError> {
    let read_at = Utc::now();
    let sub = RetrieveSubscription::new(id).send(stripe.client()).await?;
    Ok(Snapshot::of(&sub, read_at))
}

/// Moves a subscription to another price, prorated (Stripe credits the unused time and
/// bills the difference on the next invoice; a new interval restarts the period and bills
/// at once). A pending cancellation is withdrawn.
pub async fn change_price(
    stripe: &Stripe,
    current: &Snapshot,
    price_id: &str,
    plan_code: &str,
    interval: Interval,
    tenant: TenantId,
) -> Result<Snapshot, BillingError> {
    let read_at = Utc::now();
    let sub = UpdateSubscription::new(current.id.as_str())
        .items(vec![UpdateSubscriptionItems {
            id: current.item_id.clone(),
            price: Some(price_id.to_owned()),
            ..UpdateSubscriptionItems::new()
        }])
        .proration_behavior(UpdateSubscriptionProrationBehavior::CreateProrations)
        .cancel_at_period_end(false)
        .metadata([
            ("tenant_id".to_owned(), tenant.to_string()),
            ("plan_code".to_owned(), plan_code.to_owned()),
            ("interval".to_owned(), interval.as_str().to_owned()),
        ])
        .send(stripe.client())
        .await?;
    Ok(Snapshot::of(&sub, read_at))
}

/// Cancels a subscription at the end of its period, or at once.
pub async fn cancel(
    stripe: &Stripe,
    id: &str,
    immediately: bool,
) -> Result<Snapshot, BillingError> {
    let read_at = Utc::now();
    let sub = if immediately {
        CancelSubscription::new(id).send(stripe.client()).await?
    } else {
        UpdateSubscription::new(id)
            .cancel_at_period_end(true)
            .send(stripe.client())
            .await?
    };
    Ok(Snapshot::of(&sub, read_at))
}

/// Reads subscription `id` from Stripe and applies it to the tenant's row (what a
/// webhook's reconciliation does, without the event).
pub async fn refresh(
    stripe: &Stripe,
    db: &catalytic_db::Pool,
    tenant: TenantId,
    id: &str,
) -> Result<Applied, BillingError> {
    use catalytic_db::AsyncConnection as _;
    let snap = retrieve(stripe, id).await?;
    let mut conn = db.get().await?;
    conn.transaction::<_, BillingError, _>(async |c| {
        apply(c, tenant, &snap, &Actor::default()).await
    })
    .await
}

/// Who caused a change, for the audit log; the default is Stripe itself (a webhook).
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub user_id: Option<UserId>,
    pub api_key_id: Option<ApiKeyId>,
    pub request_id: Option<String>,
}

impl Actor {
    fn entry(
        &self,
        tenant: TenantId,
        action: &'static str,
        details: serde_json::Value,
    ) -> NewAudit {
        let by = if self.user_id.is_some() || self.api_key_id.is_some() {
            "api"
        } else {
            "stripe"
        };
        let mut details = details;
        details["by"] = json!(by);
        NewAudit {
            tenant_id: Some(tenant),
            actor_user_id: self.user_id,
            actor_api_key_id: self.api_key_id,
            action,
            target_type: Some("subscription"),
            target_id: None,
            request_id: self.request_id.clone(),
            details,
            ..Default::default()
        }
    }
}

/// What applying a snapshot did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The row now holds this snapshot (false: a more recent read was already applied,
    /// or the snapshot is of an ended subscription the tenant has replaced).
    pub written: bool,
    /// Something the tenant sees changed.
    pub changed: bool,
    pub plan_changed: bool,
    /// A billing suspension was lifted.
    pub resumed: bool,
}

/// Writes a snapshot to the tenant's subscription row; call inside a transaction (it locks
/// the row). Plan, status, period, cancellation, trial and the past-due clock follow the
/// snapshot; a subscription that is over puts the tenant on Free; a paid-up one lifts a
/// billing suspension.
pub async fn apply(
    conn: &mut Conn,
    tenant: TenantId,
    snap: &Snapshot,
    actor: &Actor,
) -> Result<Applied, BillingError> {
    let row = subscriptions::lock(conn, tenant).await?;
    if row.stripe_synced_at.is_some_and(|at| at > snap.read_at) {
        return Ok(Applied::default());
    }
    let replaced = row
        .stripe_subscription_id
        .as_deref()
        .is_some_and(|current| current != snap.id);
    if snap.ended() && replaced {
        return Ok(Applied::default());
    }
    let target = match &snap.price {
        Some(price) => catalog::plan_of_price(conn, price).await?,
        None => None,
    };
    let old = StripeState::of(&row);
    let (plan_id, pending_plan_id) = if snap.ended() {
        (plans::by_code(conn, "free").await?.id, None)
    } else if grants_plan(&snap.status) {
        let (plan, _) = target.as_ref().ok_or_else(|| {
            BillingError::Invalid(format!(
                "subscription {} bills a price that is no Catalytic plan",
                snap.id
            ))
        })?;
        (plan.id, None)
    } else {
        // incomplete: the first payment is outstanding; the plan waits for it.
        (row.plan_id, target.as_ref().map(|(p, _)| p.id))
    };
    let new = StripeState {
        plan_id,
        pending_plan_id,
        status: snap.status.clone(),
        billing_interval: target
            .as_ref()
            .map(|(_, i)| i.as_str().to_owned())
            .or(old.billing_interval.clone()),
        stripe_subscription_id: Some(snap.id.clone()),
        current_period_start: snap.period_start,
        current_period_end: snap.period_end,
        cancel_at_period_end: !snap.ended() && snap.cancel_at_period_end,
        trial_end: snap.trial_end,
        past_due_since: if delinquent(&snap.status) {
            old.past_due_since.or(Some(Utc::now()))
        } else {
            None
        },
    };
    subscriptions::write(conn, tenant, &new, snap.read_at).await?;
    let mut applied = Applied {
        written: true,
        changed: new != old,
        plan_changed: new.plan_id != old.plan_id,
        resumed: false,
    };
    if applied.changed {
        record_change(conn, tenant, snap, &old, &new, actor).await?;
    }
    if !delinquent(&new.status) && tenants::lift_billing_suspension(conn, tenant).await? {
        applied.resumed = true;
        audit::record(
            conn,
            NewAudit {
                target_type: Some("tenant"),
                target_id: Some(tenant.to_string()),
                ..actor.entry(
                    tenant,
                    "tenant.resumed",
                    json!({ "reason": "billing", "subscription": snap.id, "status": new.status }),
                )
            },
        )
        .await?;
        notifications::insert(
            conn,
            tenant,
            "billing.account_resumed",
            "Your account is active again",
            "Thank you for your payment: changes are allowed again.",
            json!({ "subscription": snap.id }),
        )
        .await?;
    }
    Ok(applied)
}

/// The audit entries and the notification of one change.
async fn record_change(
    conn: &mut Conn,
    tenant: TenantId,
    snap: &Snapshot,
    old: &StripeState,
    new: &StripeState,
    actor: &Actor,
) -> Result<(), BillingError> {
    let from_code = plans::by_id(conn, old.plan_id).await?.code;
    let to = plans::by_id(conn, new.plan_id).await?;
    let (to_code, to_name) = (to.code, to.name);
    let target = |mut e: NewAudit| {
        e.target_id = Some(snap.id.clone());
        e
    };
    if old.plan_id != new.plan_id {
        audit::record(
            conn,
            target(actor.entry(
                tenant,
                "plan.changed",
                json!({ "from": from_code, "to": to_code, "subscription": snap.id }),
            )),
        )
        .await?;
    }
    audit::record(
        conn,
        target(actor.entry(
            tenant,
            if snap.ended() {
                "subscription.canceled"
            } else {
                "subscription.updated"
            },
            json!({
                "subscription": snap.id,
                "plan": to_code,
                "status": { "from": old.status, "to": new.status },
                "interval": new.billing_interval,
                "current_period_end": new.current_period_end,
                "cancel_at_period_end": new.cancel_at_period_end,
                "trial_end": new.trial_end,
            }),
        )),
    )
    .await?;
    let day = |t: Option<DateTime<Utc>>| {
        t.map(|t| t.format("%-d %B %Y").to_string())
            .unwrap_or_else(|| "the end of the period".into())
    };
    let (title, body) = if snap.ended() {
        (
            "Your subscription has ended".to_owned(),
            "Your organisation is on the Free plan now; existing data stays readable.".to_owned(),
        )
    } else if old.plan_id != new.plan_id {
        (
            format!("Your plan is now {to_name}"),
            format!("The {to_name} plan's limits apply from now on."),
        )
    } else if new.status == "past_due" && old.status != "past_due" {
        (
            "Your payment is past due".to_owned(),
            "Update the payment method in the billing portal to keep your account active."
                .to_owned(),
        )
    } else if new.cancel_at_period_end && !old.cancel_at_period_end {
        (
            format!("Your subscription ends on {}", day(new.current_period_end)),
            "It will not renew; you can resume it until then.".to_owned(),
        )
    } else {
        (
            format!("Your subscription is {}", new.status.replace('_', " ")),
            format!("Current period ends on {}.", day(new.current_period_end)),
        )
    };
    notifications::insert(
        conn,
        tenant,
        "billing.subscription_updated",
        &title,
        &body,
        json!({
            "subscription": snap.id,
            "plan": to_code,
            "status": new.status,
            "previous_status": old.status,
        }),
    )
    .await?;
    Ok(())
}
