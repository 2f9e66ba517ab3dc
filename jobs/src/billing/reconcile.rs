//! `stripe.reconcile` (queue `webhooks`): settles one stored Stripe event by reading the
//! objects it names from the Stripe API and writing what they say now. Stripe being
//! unreachable retries the job and leaves the event pending (the sweeper pushes it again
//! after the queue's attempts); a permanent failure marks it failed with the reason.

use catalytic_db::audit::{self, NewAudit};
use catalytic_db::ids::{EmailId, StripeEventId, TenantId};
use catalytic_db::stripe_customers;
use catalytic_db::stripe_events::{self, StripeEvent};
use catalytic_db::{AsyncConnection as _, Conn, invoices, notifications, plans, subscriptions};
use serde::Deserialize;
use serde_json::json;
use stripe_checkout::checkout_session::RetrieveCheckoutSession;
use tracing::Instrument as _;

use crate::billing::invoices::InvoiceSnapshot;
use crate::billing::subscriptions::{Actor, Snapshot};
use crate::billing::{self, BillingError, Stripe, customers, delinquency, notices};
use crate::context::HandlerContext;
use crate::{Envelope, JobError};

/// The job kind.
pub const STRIPE_RECONCILE: &str = "stripe.reconcile";

/// The event types reconciled; others are stored as `ignored` and acknowledged.
pub const HANDLED: &[&str] = &[
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.trial_will_end",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "customer.updated",
];

pub fn handles(event_type: &str) -> bool {
    HANDLED.contains(&event_type)
}

#[derive(Debug, Deserialize)]
struct Payload {
    event_id: uuid::Uuid,
}

/// Runs one attempt at an event.
pub async fn run(ctx: &HandlerContext, env: &Envelope) -> Result<(), JobError> {
    let payload: Payload = serde_json::from_value(env.payload.clone())
        .map_err(|e| JobError::Abort(format!("bad {STRIPE_RECONCILE} payload: {e}")))?;
    let id = StripeEventId::from_uuid(payload.event_id);
    let event = {
        let mut conn = ctx.db.get().await?;
        match stripe_events::begin_attempt(&mut conn, id).await? {
            Some(event) => event,
            None => {
                tracing::info!(stripe_event.id = %id, "event already settled; acknowledged");
                return Ok(());
            }
        }
    };
    let span = tracing::info_span!("stripe_event", stripe.event = %event.stripe_event_id, stripe.type = %event.event_type);
    let result = match &ctx.stripe {
        Some(stripe) => {
            reconcile(ctx, stripe, &event)
                .instrument(span.clone())
                .await
        }
        None => Err(BillingError::NotConfigured),
    };
    match result {
        Ok(emails) => {
            notices::push(&ctx.queue, &emails).await;
            tracing::info!(stripe.event = %event.stripe_event_id, attempt = event.attempts, "stripe event reconciled");
            Ok(())
        }
        Err(e) if e.is_transient() => {
            let mut conn = ctx.db.get().await?;
            stripe_events::record_error(&mut conn, id, &e.to_string()).await?;
            tracing::warn!(
                stripe.event = %event.stripe_event_id,
                error = %e,
                attempt = event.attempts,
                "stripe event not reconciled yet; will retry"
            );
            Err(JobError::Retry(e.to_string()))
        }
        Err(e) => {
            let mut conn = ctx.db.get().await?;
            stripe_events::mark_failed(&mut conn, id, &e.to_string()).await?;
            tracing::error!(stripe.event = %event.stripe_event_id, error = %e, "stripe event failed for good");
            Err(JobError::Abort(e.to_string()))
        }
    }
}

/// The id of the event's object.
fn object_id(event: &StripeEvent) -> Result<String, BillingError> {
    event
        .payload
        .pointer("/data/object/id")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or_else(|| BillingError::Invalid("event without data.object.id".into()))
}

/// Reads what the event names from Stripe, then applies it and settles the event in one
/// transaction. Returns the emails to push.
async fn reconcile(
    ctx: &HandlerContext,
    stripe: &Stripe,
    event: &StripeEvent,
) -> Result<Vec<EmailId>, BillingError> {
    let object = object_id(event)?;
    match event.event_type.as_str() {
        "checkout.session.completed" => checkout_completed(ctx, stripe, event, &object).await,
        "customer.updated" => customer_updated(ctx, stripe, event, &object).await,
        "invoice.payment_succeeded" | "invoice.payment_failed" => {
            invoice_event(ctx, stripe, event, &object).await
        }
        t if t.starts_with("customer.subscription.") => {
            let snap = billing::subscriptions::retrieve(stripe, &object).await?;
            let tenant = tenant_of(
                ctx,
                snap.tenant_hint,
                Some(&snap.customer_id),
                Some(&snap.id),
            )
            .await?;
            settle(ctx, event, tenant, Some(&snap), None).await
        }
        other => Err(BillingError::Invalid(format!(
            "no reconciliation for {other}"
        ))),
    }
}

async fn checkout_completed(
    ctx: &HandlerContext,
    stripe: &Stripe,
    event: &StripeEvent,
    session_id: &str,
) -> Result<Vec<EmailId>, BillingError> {
    let session = RetrieveCheckoutSession::new(session_id)
        .send(stripe.client())
        .await?;
    let hint: Option<TenantId> = session
        .metadata
        .as_ref()
        .and_then(|m| m.get("tenant_id"))
        .or(session.client_reference_id.as_ref())
        .and_then(|t| t.parse().ok());
    let customer = session.customer.as_ref().map(|c| c.id().to_string());
    let snap = match &session.subscription {
        Some(sub) => Some(billing::subscriptions::retrieve(stripe, sub.id().as_str()).await?),
        None => None,
    };
    let tenant = tenant_of(
        ctx,
        hint.or(snap.as_ref().and_then(|s| s.tenant_hint)),
        customer.as_deref(),
        snap.as_ref().map(|s| s.id.as_str()),
    )
    .await?;
    // Checkout may have created the customer (no customer on the session): link it.
    if let Some(customer) = &customer {
        let mut conn = ctx.db.get().await?;
        if stripe_customers::for_tenant(&mut conn, tenant)
            .await?
            .is_none()
        {
            drop(conn);
            let details = match customers::retrieve(stripe, customer).await? {
                Some(c) => customers::details_of(&c),
                None => stripe_customers::Details {
                    email: None,
                    name: None,
                    address: None,
                },
            };
            let mut conn = ctx.db.get().await?;
            stripe_customers::link(&mut conn, tenant, customer, &details).await?;
        }
    }
    settle(ctx, event, tenant, snap.as_ref(), None).await
}

async fn customer_updated(
    ctx: &HandlerContext,
    stripe: &Stripe,
    event: &StripeEvent,
    customer_id: &str,
) -> Result<Vec<EmailId>, BillingError> {
    let customer = customers::retrieve(stripe, customer_id).await?;
    let mut conn = ctx.db.get().await?;
    conn.transaction::<_, BillingError, _>(async |c| {
        if let Some(customer) = &customer {
            let details = customers::details_of(customer);
            if let Some(before) = stripe_customers::update_details(c, customer_id, &details).await?
                && before.details() != details
            {
                audit::record(
                    c,
                    NewAudit {
                        tenant_id: Some(before.tenant_id),
                        action: "billing.customer_updated",
                        target_type: Some("stripe_customer"),
                        target_id: Some(customer_id.to_owned()),
                        details: json!({
                            "by": "stripe",
                            "email": details.email,
                            "name": details.name,
                            "address": details.address,
                        }),
                        ..Default::default()
                    },
                )
                .await?;
                notifications::insert(
                    c,
                    before.tenant_id,
                    "billing.customer_updated",
                    "Billing details updated",
                    "The name, email or address on your invoices changed.",
                    json!({ "customer": customer_id }),
                )
                .await?;
            }
        }
        stripe_events::mark_processed(c, event.id).await?;
        Ok(Vec::new())
    })
    .await
}

async fn invoice_event(
    ctx: &HandlerContext,
    stripe: &Stripe,
    event: &StripeEvent,
    invoice_id: &str,
) -> Result<Vec<EmailId>, BillingError> {
    let invoice = billing::invoices::retrieve(stripe, invoice_id).await?;
    let snap = match &invoice.subscription_id {
        Some(id) => Some(billing::subscriptions::retrieve(stripe, id).await?),
        None => None,
    };
    let tenant = tenant_of(
        ctx,
        invoice
            .tenant_hint
            .or(snap.as_ref().and_then(|s| s.tenant_hint)),
        invoice.customer_id.as_deref(),
        invoice.subscription_id.as_deref(),
    )
    .await?;
    settle(ctx, event, tenant, snap.as_ref(), Some(&invoice)).await
}

/// Applies what was read in one transaction: the invoice, the subscription, the emails the
/// event calls for (once per event), the suspension check; then marks the event processed.
async fn settle(
    ctx: &HandlerContext,
    event: &StripeEvent,
    tenant: TenantId,
    snap: Option<&Snapshot>,
    invoice: Option<&InvoiceSnapshot>,
) -> Result<Vec<EmailId>, BillingError> {
    let grace = ctx.config.billing_grace;
    let domain = ctx.config.message_domain();
    let mut conn = ctx.db.get().await?;
    conn.transaction::<_, BillingError, _>(async |c| {
        let mut emails = Vec::new();
        if let Some(inv) = invoice {
            invoices::upsert(c, &inv.row(tenant), inv.read_at).await?;
            emails.extend(invoice_notice(c, event, tenant, inv, snap, &domain).await?);
        }
        if let Some(snap) = snap {
            billing::subscriptions::apply(c, tenant, snap, &Actor::default()).await?;
            if event.event_type == "customer.subscription.trial_will_end" {
                emails.extend(trial_notice(c, event, tenant, snap, &domain).await?);
            }
        }
        if let Some(suspended) = delinquency::enforce(c, tenant, grace, &domain).await? {
            emails.extend(suspended);
        }
        stripe_events::mark_processed(c, event.id).await?;
        Ok(emails)
    })
    .await
}

/// The payment email of an invoice event, once per event, and only while the invoice is
/// still in the state the event reports (a failure already paid since sends nothing).
async fn invoice_notice(
    conn: &mut Conn,
    event: &StripeEvent,
    tenant: TenantId,
    inv: &InvoiceSnapshot,
    snap: Option<&Snapshot>,
    domain: &str,
) -> Result<Vec<EmailId>, BillingError> {
    let succeeded = event.event_type == "invoice.payment_succeeded";
    let current = if succeeded {
        inv.status == "paid" && inv.amount_paid > 0
    } else {
        inv.status == "open"
    };
    if !current {
        return Ok(Vec::new());
    }
    let plan_name = match snap.and_then(|s| s.price.as_ref()) {
        Some(price) => billing::catalog::plan_of_price(conn, price)
            .await?
            .map(|(p, _)| p.name),
        None => None,
    }
    .unwrap_or_else(|| "Catalytic".to_owned());
    let (kind, title, template, action) = if succeeded {
        (
            "billing.payment_succeeded",
            "Payment received",
            "payment_success",
            "invoice.paid",
        )
    } else {
        (
            "billing.payment_failed",
            "Payment failed",
            "payment_failed",
            "invoice.payment_failed",
        )
    };
    let amount = if succeeded {
        inv.amount_paid
    } else {
        inv.amount_remaining.max(inv.amount_due)
    };
    let first = notifications::insert_once(
        conn,
        tenant,
        kind,
        title,
        &format!(
            "Invoice {}: {}.{:02} {}.",
            inv.number.as_deref().unwrap_or(&inv.id),
            amount / 100,
            amount % 100,
            inv.currency.to_uppercase()
        ),
        json!({
            "invoice": inv.id,
            "amount_cents": amount,
            "currency": inv.currency,
            "event": event.stripe_event_id,
        }),
        &format!("stripe:{}", event.stripe_event_id),
    )
    .await?;
    if !first {
        return Ok(Vec::new());
    }
    audit::record(
        conn,
        NewAudit {
            tenant_id: Some(tenant),
            action,
            target_type: Some("invoice"),
            target_id: Some(inv.id.clone()),
            details: json!({
                "by": "stripe",
                "amount_cents": amount,
                "currency": inv.currency,
                "status": inv.status,
            }),
            ..Default::default()
        },
    )
    .await?;
    let data = if succeeded {
        json!({
            "plan_name": plan_name,
            "amount_cents": amount,
            "currency": inv.currency,
            "invoice_url": inv.hosted_invoice_url,
            "period_end": snap.and_then(|s| s.period_end).or(inv.period_end),
        })
    } else {
        json!({
            "plan_name": plan_name,
            "amount_cents": amount,
            "currency": inv.currency,
            "next_attempt_at": inv.next_payment_attempt,
        })
    };
    Ok(notices::to_owners(conn, tenant, template, data, domain).await?)
}

/// The trial-ending email, once per event, while the subscription is still trialing.
async fn trial_notice(
    conn: &mut Conn,
    event: &StripeEvent,
    tenant: TenantId,
    snap: &Snapshot,
    domain: &str,
) -> Result<Vec<EmailId>, BillingError> {
    let Some(trial_end) = snap.trial_end.filter(|_| snap.status == "trialing") else {
        return Ok(Vec::new());
    };
    let plan_name = plans::for_tenant(conn, tenant).await?.1.name;
    let first = notifications::insert_once(
        conn,
        tenant,
        "billing.trial_ending",
        "Your trial ends soon",
        &format!(
            "The {plan_name} trial ends on {}.",
            trial_end.format("%-d %B %Y")
        ),
        json!({ "subscription": snap.id, "trial_end": trial_end }),
        &format!("stripe:{}", event.stripe_event_id),
    )
    .await?;
    if !first {
        return Ok(Vec::new());
    }
    Ok(notices::to_owners(
        conn,
        tenant,
        "trial_ending",
        json!({ "plan_name": plan_name, "trial_end": trial_end }),
        domain,
    )
    .await?)
}

/// The tenant an object belongs to: the `tenant_id` metadata Catalytic put on it, else the
/// tenant linked to its customer, else the tenant whose row holds the subscription.
async fn tenant_of(
    ctx: &HandlerContext,
    hint: Option<TenantId>,
    customer: Option<&str>,
    subscription: Option<&str>,
) -> Result<TenantId, BillingError> {
    let mut conn = ctx.db.get().await?;
    if let Some(t) = hint {
        match catalytic_db::tenants::get(&mut conn, t).await {
            Ok(_) => return Ok(t),
            Err(catalytic_db::DbError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(c) = customer
        && let Some(row) = stripe_customers::by_customer_id(&mut conn, c).await?
    {
        return Ok(row.tenant_id);
    }
    if let Some(s) = subscription
        && let Some(t) = subscriptions::tenant_of(&mut conn, s).await?
    {
        return Ok(t);
    }
    Err(BillingError::Invalid(format!(
        "no tenant for customer {customer:?} / subscription {subscription:?}"
    )))
}
