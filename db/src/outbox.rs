//! The email outbox: a row per email, written in the transaction of the event that causes
//! it; the `email` queue delivers it.

use chrono::{DateTime, Utc};
use diesel::data_types::PgInterval;
use diesel::dsl::now;
use diesel::prelude::*;
use diesel::sql_types::Timestamptz;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::Serialize;

use crate::ids::{EmailId, TenantId};
use crate::schema::email_outbox;
use crate::{Conn, DbError, DbResult};

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

/// Restarts a pending email's staleness clock after a push. A `sending` row keeps its
/// clock: it is the lease of the attempt that claimed it (see [`claim_for_sending`]).
pub async fn mark_pushed(conn: &mut Conn, id: EmailId) -> DbResult<()> {
    diesel::update(
        email_outbox::table.filter(
            email_outbox::id
                .eq(id)
                .and(email_outbox::status.eq("pending")),
        ),
    )
    .set(email_outbox::updated_at.eq(diesel::dsl::now))
    .execute(conn)
    .await?;
    Ok(())
}

/// What a delivery attempt found when it claimed an email.
#[derive(Debug)]
pub enum Claim {
    /// No such row: the transaction that wrote it never committed.
    Missing,
    /// Already `sent` or `failed`: nothing to do.
    Settled(OutboxEmail),
    /// `sending`, claimed less than the lease ago: that attempt may still be talking to
    /// the SMTP server.
    InFlight(OutboxEmail),
    /// Now `sending` for this attempt, with `attempts` counting it. `resumed`: the row was
    /// found `sending` past its lease, so an earlier attempt died between claiming it and
    /// recording the outcome, and may or may not have handed it to the server.
    Claimed { email: OutboxEmail, resumed: bool },
}

/// Claims an email for one send attempt: `pending` (or `sending` past `lease`) becomes
/// `sending` with one more attempt, before any SMTP traffic.
#[tracing::instrument(skip_all, fields(email.id = %id))]
pub async fn claim_for_sending(
    conn: &mut Conn,
    id: EmailId,
    lease: std::time::Duration,
) -> DbResult<Claim> {
    let lease = PgInterval::from_microseconds(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX));
    conn.transaction::<_, DbError, _>(async |c| {
        let found: Option<(OutboxEmail, bool)> = email_outbox::table
            .find(id)
            .select((
                OutboxEmail::as_select(),
                email_outbox::updated_at.gt(now.into_sql::<Timestamptz>() - lease),
            ))
            .for_update()
            .first(c)
            .await
            .optional()?;
        let Some((email, recent)) = found else {
            return Ok(Claim::Missing);
        };
        match email.status.as_str() {
            "sent" | "failed" => return Ok(Claim::Settled(email)),
            "sending" if recent => return Ok(Claim::InFlight(email)),
            _ => {}
        }
        let resumed = email.status == "sending";
        // A resumed claim says so on the row: the send that follows may be a second copy.
        let note = resumed.then(|| {
            format!(
                "attempt {} was interrupted before its outcome was recorded; re-sent with the same Message-ID",
                email.attempts
            )
        });
        let claimed = diesel::update(email_outbox::table.find(id))
            .set((
                email_outbox::status.eq("sending"),
                email_outbox::attempts.eq(email_outbox::attempts + 1),
                email_outbox::updated_at.eq(now),
                email_outbox::last_error.eq(note.or(email.last_error.clone())),
            ))
            .returning(OutboxEmail::as_returning())
            .get_result(c)
            .await?;
        Ok(Claim::Claimed {
            email: claimed,
            resumed,
        })
    })
    .await
}

/// Records a send the SMTP server accepted, with its response.
#[tracing::instrument(skip_all, fields(email.id = %id))]
pub async fn mark_sent(conn: &mut Conn, id: EmailId, smtp_response: &str) -> DbResult<()> {
    diesel::update(
        email_outbox::table.filter(email_outbox::id.eq(id).and(email_outbox::status.ne("sent"))),
    )
    .set((
        email_outbox::status.eq("sent"),
        email_outbox::sent_at.eq(now),
        email_outbox::smtp_response.eq(smtp_response),
        email_outbox::updated_at.eq(now),
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a failed attempt: back to `pending` for a retry, or `failed` after the last.
/// Only the attempt that holds the claim (`attempt` = the row's attempts) writes.
#[tracing::instrument(skip_all, fields(email.id = %id))]
pub async fn record_failure(
    conn: &mut Conn,
    id: EmailId,
    attempt: i32,
    error: &str,
    last: bool,
) -> DbResult<()> {
    diesel::update(
        email_outbox::table.filter(
            email_outbox::id
                .eq(id)
                .and(email_outbox::status.eq("sending"))
                .and(email_outbox::attempts.eq(attempt)),
        ),
    )
    .set((
        email_outbox::status.eq(if last { "failed" } else { "pending" }),
        email_outbox::last_error.eq(error),
        email_outbox::updated_at.eq(now),
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// Settles an email whose delivery job was dead-lettered without the outcome recorded (its
/// last attempt timed out, panicked, or could not write): a row still `pending` or
/// `sending` becomes `failed` with `error`; `sent` and `failed` rows are left alone.
/// Returns whether it changed the row.
#[tracing::instrument(skip_all, fields(email.id = %id))]
pub async fn fail_unsettled(conn: &mut Conn, id: EmailId, error: &str) -> DbResult<bool> {
    let n = diesel::update(
        email_outbox::table.filter(
            email_outbox::id
                .eq(id)
                .and(email_outbox::status.eq_any(["pending", "sending"])),
        ),
    )
    .set((
        email_outbox::status.eq("failed"),
        email_outbox::last_error.eq(error),
        email_outbox::updated_at.eq(now),
    ))
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Puts a `failed` email back to `pending` with fresh attempts (an operator re-drives its
/// dead-lettered delivery); other states are left alone.
pub async fn requeue_failed(conn: &mut Conn, id: EmailId) -> DbResult<bool> {
    let n = diesel::update(
        email_outbox::table.filter(
            email_outbox::id
                .eq(id)
                .and(email_outbox::status.eq("failed")),
        ),
    )
    .set((
        email_outbox::status.eq("pending"),
        email_outbox::attempts.eq(0),
        email_outbox::updated_at.eq(now),
    ))
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// A tenant's emails by delivery state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    /// `pending` or `sending`.
    pub pending: i64,
    pub sent: i64,
    pub failed: i64,
}

pub async fn counts_for_tenant(conn: &mut Conn, tenant: TenantId) -> DbResult<StatusCounts> {
    let rows: Vec<(String, i64)> = email_outbox::table
        .filter(email_outbox::tenant_id.eq(tenant))
        .group_by(email_outbox::status)
        .select((email_outbox::status, diesel::dsl::count_star()))
        .load(conn)
        .await?;
    let mut counts = StatusCounts::default();
    for (status, n) in rows {
        match status.as_str() {
            "pending" | "sending" => counts.pending += n,
            "sent" => counts.sent += n,
            "failed" => counts.failed += n,
            _ => {}
        }
    }
    Ok(counts)
}
