//! Invoices of a tenant, as Stripe last described them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;
use serde::Serialize;

use crate::ids::{InvoiceId, TenantId};
use crate::schema::invoices;
use crate::{Conn, DbResult};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = invoices)]
pub struct Invoice {
    pub id: InvoiceId,
    pub tenant_id: TenantId,
    pub stripe_invoice_id: String,
    pub stripe_subscription_id: Option<String>,
    pub number: Option<String>,
    /// draft, open, paid, uncollectible or void.
    pub status: String,
    pub currency: String,
    pub amount_due_cents: i64,
    pub amount_paid_cents: i64,
    pub hosted_invoice_url: Option<String>,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// An invoice as read from Stripe.
#[derive(Debug, Clone)]
pub struct StripeInvoice {
    pub tenant_id: TenantId,
    pub stripe_invoice_id: String,
    pub stripe_subscription_id: Option<String>,
    pub number: Option<String>,
    pub status: String,
    pub currency: String,
    pub amount_due_cents: i64,
    pub amount_paid_cents: i64,
    pub hosted_invoice_url: Option<String>,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
}

/// Inserts or updates an invoice read from Stripe at `synced_at`; a row already written
/// from a more recent read is left alone. Returns whether the row was written.
#[tracing::instrument(skip_all, fields(stripe.invoice = %inv.stripe_invoice_id))]
pub async fn upsert(
    conn: &mut Conn,
    inv: &StripeInvoice,
    synced_at: DateTime<Utc>,
) -> DbResult<bool> {
    // `filter` on an upsert is the WHERE of its DO UPDATE.
    use diesel::query_dsl::methods::FilterDsl as _;
    let n = diesel::insert_into(invoices::table)
        .values((
            invoices::id.eq(InvoiceId::generate()),
            invoices::tenant_id.eq(inv.tenant_id),
            invoices::stripe_invoice_id.eq(&inv.stripe_invoice_id),
            invoices::stripe_subscription_id.eq(&inv.stripe_subscription_id),
            invoices::number.eq(&inv.number),
            invoices::status.eq(&inv.status),
            invoices::currency.eq(&inv.currency),
            invoices::amount_due_cents.eq(inv.amount_due_cents),
            invoices::amount_paid_cents.eq(inv.amount_paid_cents),
            invoices::hosted_invoice_url.eq(&inv.hosted_invoice_url),
            invoices::period_start.eq(inv.period_start),
            invoices::period_end.eq(inv.period_end),
            invoices::stripe_synced_at.eq(synced_at),
        ))
        .on_conflict(invoices::stripe_invoice_id)
        .do_update()
        .set((
            invoices::stripe_subscription_id.eq(excluded(invoices::stripe_subscription_id)),
            invoices::number.eq(excluded(invoices::number)),
            invoices::status.eq(excluded(invoices::status)),
            invoices::currency.eq(excluded(invoices::currency)),
            invoices::amount_due_cents.eq(excluded(invoices::amount_due_cents)),
            invoices::amount_paid_cents.eq(excluded(invoices::amount_paid_cents)),
            invoices::hosted_invoice_url.eq(excluded(invoices::hosted_invoice_url)),
            invoices::period_start.eq(excluded(invoices::period_start)),
            invoices::period_end.eq(excluded(invoices::period_end)),
            invoices::stripe_synced_at.eq(excluded(invoices::stripe_synced_at)),
            invoices::updated_at.eq(diesel::dsl::now),
        ))
        .filter(
            invoices::stripe_synced_at
                .is_null()
                .or(invoices::stripe_synced_at.le(synced_at)),
        )
        .execute(conn)
        .await?;
    Ok(n == 1)
}

/// A tenant's invoices, newest first, and how many there are.
#[tracing::instrument(skip_all, fields(tenant.id = %tenant))]
pub async fn list(
    conn: &mut Conn,
    tenant: TenantId,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<Invoice>, i64)> {
    let items = invoices::table
        .filter(invoices::tenant_id.eq(tenant))
        .order((invoices::created_at.desc(), invoices::id.desc()))
        .limit(limit)
        .offset(offset)
        .select(Invoice::as_select())
        .load(conn)
        .await?;
    let total = invoices::table
        .filter(invoices::tenant_id.eq(tenant))
        .count()
        .get_result(conn)
        .await?;
    Ok((items, total))
}
