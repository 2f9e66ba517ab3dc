//! The organisation's invoices, as Stripe last reported them.

use catalytic_db::invoices::{self, Invoice};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

use crate::auth::Credentials;
use crate::auth::principal::authenticate;
use crate::error::ApiResult;
use crate::routes::{ApiTags, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::state::AppState;

#[derive(Debug, Object)]
pub struct InvoiceView {
    pub id: Uuid,
    pub stripe_invoice_id: String,
    pub number: Option<String>,
    /// draft, open, paid, uncollectible or void.
    pub status: String,
    pub currency: String,
    pub amount_due_cents: i64,
    pub amount_paid_cents: i64,
    /// Stripe's page to view and pay the invoice.
    pub hosted_invoice_url: Option<String>,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<Invoice> for InvoiceView {
    fn from(i: Invoice) -> Self {
        Self {
            id: i.id.as_uuid(),
            stripe_invoice_id: i.stripe_invoice_id,
            number: i.number,
            status: i.status,
            currency: i.currency,
            amount_due_cents: i.amount_due_cents,
            amount_paid_cents: i.amount_paid_cents,
            hosted_invoice_url: i.hosted_invoice_url,
            period_start: i.period_start,
            period_end: i.period_end,
            created_at: i.created_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct InvoicePage {
    pub items: Vec<InvoiceView>,
    pub total: i64,
    pub limit: u32,
    pub offset: u32,
}

pub struct InvoicesApi;

#[OpenApi(tag = "ApiTags::Billing")]
impl InvoicesApi {
    /// The organisation's invoices, newest first.
    #[oai(path = "/api/invoices", method = "get", operation_id = "invoices_list")]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))] limit: Query<Option<u32>>,
        offset: Query<Option<u32>>,
    ) -> ApiResult<Json<InvoicePage>> {
        let p = authenticate(&state, &auth, "invoices_list").await?;
        let limit = limit.0.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE);
        let offset = offset.0.unwrap_or(0);
        let mut conn = state.db.get().await?;
        let (rows, total) =
            invoices::list(&mut conn, p.tenant_id, i64::from(limit), i64::from(offset)).await?;
        Ok(Json(InvoicePage {
            items: rows.into_iter().map(Into::into).collect(),
            total,
            limit,
            offset,
        }))
    }
}
