//! In-app notifications of a tenant.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;

use crate::ids::{NotificationId, TenantId, UserId};
use crate::schema::notifications;
use crate::{Conn, DbResult};

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = notifications)]
pub struct Notification {
    pub id: NotificationId,
    pub tenant_id: TenantId,
    pub user_id: Option<UserId>,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub data: serde_json::Value,
    pub dedupe_key: Option<String>,
    pub read_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Inserts a notification unless one with the same `dedupe_key` exists for the tenant;
/// returns whether it was inserted.
pub async fn insert_once(
    conn: &mut Conn,
    tenant: TenantId,
    kind: &str,
    title: &str,
    body: &str,
    data: serde_json::Value,
    dedupe_key: &str,
) -> DbResult<bool> {
    let n = diesel::insert_into(notifications::table)
        .values((
            notifications::id.eq(NotificationId::generate()),
            notifications::tenant_id.eq(tenant),
            notifications::kind.eq(kind),
            notifications::title.eq(title),
            notifications::body.eq(body),
            notifications::data.eq(data),
            notifications::dedupe_key.eq(dedupe_key),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(n == 1)
}

/// Inserts a notification (no deduplication).
pub async fn insert(
    conn: &mut Conn,
    tenant: TenantId,
    kind: &str,
    title: &str,
    body: &str,
    data: serde_json::Value,
) -> DbResult<()> {
    diesel::insert_into(notifications::table)
        .values((
            notifications::id.eq(NotificationId::generate()),
            notifications::tenant_id.eq(tenant),
            notifications::kind.eq(kind),
            notifications::title.eq(title),
            notifications::body.eq(body),
            notifications::data.eq(data),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn list(
    conn: &mut Conn,
    tenant: TenantId,
    kind: Option<&str>,
) -> DbResult<Vec<Notification>> {
    let mut q = notifications::table
        .filter(notifications::tenant_id.eq(tenant))
        .order(notifications::created_at.desc())
        .select(Notification::as_select())
        .into_boxed();
    if let Some(k) = kind {
        q = q.filter(notifications::kind.eq(k));
    }
    Ok(q.load(conn).await?)
}
