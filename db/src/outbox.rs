//! The email outbox: a row per email, written in the transaction of the event that causes
//! it; the `email` queue delivers it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;

use crate::ids::{EmailId, TenantId};
use crate::schema::email_outbox;
use crate::{Conn, DbResult};

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = email_outbox)]
pub struct OutboxEmail {
    pub id: EmailId,
    pub tenant_id: Option<TenantId>,
    pub to_address: String,
    pub template: String,
    pub data: serde_json::Value,
    pub status: String,
    pub message_id: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub smtp_response: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// Writes an email to the outbox; `message_id` is fixed now, before any send attempt.
#[tracing::instrument(skip_all, fields(email.template = template))]
pub async fn insert(
    conn: &mut Conn,
    tenant: Option<TenantId>,
    to: &str,
    template: &str,
    data: serde_json::Value,
    message_domain: &str,
) -> DbResult<EmailId> {
    let id = EmailId::generate();
    diesel::insert_into(email_outbox::table)
        .values((
            email_outbox::id.eq(id),
            email_outbox::tenant_id.eq(tenant),
            email_outbox::to_address.eq(to),
            email_outbox::template.eq(template),
            email_outbox::data.eq(data),
            email_outbox::message_id.eq(format!("<{id}@{message_domain}>")),
        ))
        .execute(conn)
        .await?;
    Ok(id)
}

pub async fn get(conn: &mut Conn, id: EmailId) -> DbResult<OutboxEmail> {
    Ok(email_outbox::table
        .find(id)
        .select(OutboxEmail::as_select())
        .first(conn)
        .await?)
}

/// A tenant's email by id; another tenant's is NotFound.
pub async fn get_for_tenant(
    conn: &mut Conn,
    tenant: TenantId,
    id: EmailId,
) -> DbResult<OutboxEmail> {
    Ok(email_outbox::table
        .filter(
            email_outbox::id
                .eq(id)
                .and(email_outbox::tenant_id.eq(tenant)),
        )
        .select(OutboxEmail::as_select())
        .first(conn)
        .await?)
}

/// Emails of a tenant (tests and the status endpoint).
pub async fn list_for_tenant(conn: &mut Conn, tenant: TenantId) -> DbResult<Vec<OutboxEmail>> {
    Ok(email_outbox::table
        .filter(email_outbox::tenant_id.eq(tenant))
        .order(email_outbox::created_at.asc())
        .select(OutboxEmail::as_select())
        .load(conn)
        .await?)
}

/// Pending emails untouched since `older_than` (the sweeper re-pushes them).
pub async fn stale_pending(
    conn: &mut Conn,
    older_than: DateTime<Utc>,
    limit: i64,
) -> DbResult<Vec<EmailId>> {
    Ok(email_outbox::table
        .filter(
            email_outbox::status
                .eq_any(["pending", "sending"])
                .and(email_outbox::updated_at.lt(older_than)),
        )
        .order(email_outbox::created_at.asc())
        .limit(limit)
        .select(email_outbox::id)
        .load(conn)
        .await?)
}

/// Restarts an email's staleness clock after a push.
pub async fn mark_pushed(conn: &mut Conn, id: EmailId) -> DbResult<()> {
    diesel::update(email_outbox::table.find(id))
        .set(email_outbox::updated_at.eq(diesel::dsl::now))
        .execute(conn)
        .await?;
    Ok(())
}
