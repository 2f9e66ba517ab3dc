//! Tenants (organisations).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;

use crate::ids::TenantId;
use crate::schema::{subscription_plans, tenant_subscriptions, tenants};
use crate::{Conn, DbResult};

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = tenants)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub slug: String,
    pub status: String,
    pub suspended_at: Option<DateTime<Utc>>,
    /// `billing` (lifted by a payment) or `operator` (lifted only by an operator).
    pub suspension_reason: Option<String>,
    pub limit_overrides: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl Tenant {
    pub fn is_suspended(&self) -> bool {
        self.status == "suspended"
    }
}

/// Inserts a tenant; a taken slug is `DbError::Conflict("tenants_slug_key")`.
#[tracing::instrument(skip_all, fields(tenant.slug = slug))]
pub async fn insert(conn: &mut Conn, id: TenantId, name: &str, slug: &str) -> DbResult<Tenant> {
    Ok(diesel::insert_into(tenants::table)
        .values((
            tenants::id.eq(id),
            tenants::name.eq(name),
            tenants::slug.eq(slug),
        ))
        .returning(Tenant::as_returning())
        .get_result(conn)
        .await?)
}

#[tracing::instrument(skip_all, fields(tenant.id = %id))]
pub async fn get(conn: &mut Conn, id: TenantId) -> DbResult<Tenant> {
    Ok(tenants::table
        .find(id)
        .select(Tenant::as_select())
        .first(conn)
        .await?)
}

#[tracing::instrument(skip_all, fields(tenant.slug = slug))]
pub async fn by_slug(conn: &mut Conn, slug: &str) -> DbResult<Tenant> {
    Ok(tenants::table
        .filter(tenants::slug.eq(slug))
        .select(Tenant::as_select())
        .first(conn)
        .await?)
}

/// Whether a slug is taken (used to pick a free one before inserting).
pub async fn slug_exists(conn: &mut Conn, slug: &str) -> DbResult<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        tenants::table.filter(tenants::slug.eq(slug)),
    ))
    .get_result(conn)
    .await?)
}

/// A row of `tenants list`: the tenant and its plan code.
#[derive(Debug, Clone, Serialize)]
pub struct TenantWithPlan {
    pub tenant: Tenant,
    pub plan_code: String,
    pub subscription_status: String,
}

pub async fn list_with_plans(conn: &mut Conn) -> DbResult<Vec<TenantWithPlan>> {
    let rows: Vec<(Tenant, String, String)> = tenants::table
        .inner_join(tenant_subscriptions::table.on(tenant_subscriptions::tenant_id.eq(tenants::id)))
        .inner_join(
            subscription_plans::table.on(subscription_plans::id.eq(tenant_subscriptions::plan_id)),
        )
        .order(tenants::created_at.asc())
        .select((
            Tenant::as_select(),
            subscription_plans::code,
            tenant_subscriptions::status,
        ))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(tenant, plan_code, subscription_status)| TenantWithPlan {
            tenant,
            plan_code,
            subscription_status,
        })
        .collect())
}

/// Suspends (`true`) or resumes (`false`) a tenant, as an operator.
#[tracing::instrument(skip_all, fields(tenant.id = %id))]
pub async fn set_suspended(conn: &mut Conn, id: TenantId, suspended: bool) -> DbResult<()> {
    let n = diesel::update(tenants::table.find(id))
        .set((
            tenants::status.eq(if suspended { "suspended" } else { "active" }),
            tenants::suspended_at.eq(if suspended { Some(Utc::now()) } else { None }),
            tenants::suspension_reason.eq(suspended.then_some("operator")),
            tenants::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    if n == 0 {
        return Err(crate::DbError::NotFound);
    }
    Ok(())
}

/// Locks the tenant's row for the rest of the transaction: serialises writes that check
/// a per-tenant count against a plan limit.
pub async fn lock(conn: &mut Conn, id: TenantId) -> DbResult<()> {
    tenants::table
        .find(id)
        .select(tenants::id)
        .for_update()
        .first::<TenantId>(conn)
        .await?;
    Ok(())
}

/// Suspends an active tenant for an unpaid subscription; false when it was not active
/// (already suspended, for billing or by an operator).
#[tracing::instrument(skip_all, fields(tenant.id = %id))]
pub async fn suspend_for_billing(conn: &mut Conn, id: TenantId) -> DbResult<bool> {
    let n =
        diesel::update(tenants::table.filter(tenants::id.eq(id).and(tenants::status.eq("active"))))
            .set((
                tenants::status.eq("suspended"),
                tenants::suspended_at.eq(diesel::dsl::now),
                tenants::suspension_reason.eq("billing"),
                tenants::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
    Ok(n == 1)
}

/// Lifts a billing suspension (an operator's stays); false when there was none.
#[tracing::instrument(skip_all, fields(tenant.id = %id))]
pub async fn lift_billing_suspension(conn: &mut Conn, id: TenantId) -> DbResult<bool> {
    let n = diesel::update(
        tenants::table.filter(
            tenants::id
                .eq(id)
                .and(tenants::status.eq("suspended"))
                .and(tenants::suspension_reason.eq("billing")),
        ),
    )
    .set((
        tenants::status.eq("active"),
        tenants::suspended_at.eq(None::<DateTime<Utc>>),
        tenants::suspension_reason.eq(None::<String>),
        tenants::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Replaces a tenant's limit overrides (platform administrators).
#[tracing::instrument(skip_all, fields(tenant.id = %id))]
pub async fn set_limit_overrides(
    conn: &mut Conn,
    id: TenantId,
    overrides: serde_json::Value,
) -> DbResult<Tenant> {
    Ok(diesel::update(tenants::table.find(id))
        .set((
            tenants::limit_overrides.eq(overrides),
            tenants::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Tenant::as_returning())
        .get_result(conn)
        .await?)
}
