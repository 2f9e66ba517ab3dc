//! The audit log: who did what, when, from where.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;

use crate::ids::{ApiKeyId, AuditLogId, TenantId, UserId};
use crate::schema::audit_logs;
use crate::{Conn, DbResult};

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = audit_logs)]
pub struct AuditLog {
    pub id: AuditLogId,
    pub tenant_id: Option<TenantId>,
    pub actor_user_id: Option<UserId>,
    pub actor_api_key_id: Option<ApiKeyId>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub details: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// An entry to write. `action` is dotted: `auth.login_succeeded`, `user.role_changed`, ...
#[derive(Debug, Clone, Default)]
pub struct NewAudit {
    pub tenant_id: Option<TenantId>,
    pub actor_user_id: Option<UserId>,
    pub actor_api_key_id: Option<ApiKeyId>,
    pub action: &'static str,
    pub target_type: Option<&'static str>,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub details: serde_json::Value,
}

#[tracing::instrument(skip_all, fields(audit.action = entry.action))]
pub async fn record(conn: &mut Conn, entry: NewAudit) -> DbResult<()> {
    let details = if entry.details.is_null() {
        serde_json::json!({})
    } else {
        entry.details
    };
    diesel::insert_into(audit_logs::table)
        .values((
            audit_logs::id.eq(AuditLogId::generate()),
            audit_logs::tenant_id.eq(entry.tenant_id),
            audit_logs::actor_user_id.eq(entry.actor_user_id),
            audit_logs::actor_api_key_id.eq(entry.actor_api_key_id),
            audit_logs::action.eq(entry.action),
            audit_logs::target_type.eq(entry.target_type),
            audit_logs::target_id.eq(entry.target_id),
            audit_logs::ip.eq(entry.ip),
            audit_logs::request_id.eq(entry.request_id),
            audit_logs::details.eq(details),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// A tenant's entries, newest first.
#[tracing::instrument(skip_all, fields(tenant.id = %tenant))]
pub async fn list(
    conn: &mut Conn,
    tenant: TenantId,
    action: Option<&str>,
    limit: i64,
    offset: i64,
) -> DbResult<Vec<AuditLog>> {
    let mut q = audit_logs::table
        .filter(audit_logs::tenant_id.eq(tenant))
        .select(AuditLog::as_select())
        .order((audit_logs::created_at.desc(), audit_logs::id.desc()))
        .limit(limit)
        .offset(offset)
        .into_boxed();
    if let Some(a) = action {
        q = q.filter(audit_logs::action.eq(a));
    }
    Ok(q.load(conn).await?)
}
