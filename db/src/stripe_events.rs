//! The Stripe webhook inbox: one row per event id, written by the webhook endpoint and
//! settled by the reconciliation job.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;

use crate::ids::StripeEventId;
use crate::schema::stripe_events;
use crate::{Conn, DbResult};

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = stripe_events)]
pub struct StripeEvent {
    pub id: StripeEventId,
    pub stripe_event_id: String,
    pub event_type: String,
    pub livemode: bool,
    pub payload: serde_json::Value,
    /// pending, processed, failed or ignored.
    pub status: String,
    pub attempts: i32,
    pub error: Option<String>,
    pub event_created: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
}

/// An event to store.
pub struct NewEvent<'a> {
    pub stripe_event_id: &'a str,
    pub event_type: &'a str,
    pub livemode: bool,
    pub payload: serde_json::Value,
    pub event_created: Option<DateTime<Utc>>,
    /// `pending` (to reconcile) or `ignored` (a type Catalytic does not act on).
    pub status: &'a str,
}

/// Stores an event unless its Stripe id is already stored; returns the new row's id, or
/// `None` for a duplicate.
#[tracing::instrument(skip_all, fields(stripe.event = new.stripe_event_id))]
pub async fn insert_once(conn: &mut Conn, new: NewEvent<'_>) -> DbResult<Option<StripeEventId>> {
    let id = StripeEventId::generate();
    let processed = (new.status != "pending").then(Utc::now);
    Ok(diesel::insert_into(stripe_events::table)
        .values((
            stripe_events::id.eq(id),
            stripe_events::stripe_event_id.eq(new.stripe_event_id),
            stripe_events::event_type.eq(new.event_type),
            stripe_events::livemode.eq(new.livemode),
            stripe_events::payload.eq(new.payload),
            stripe_events::status.eq(new.status),
            stripe_events::event_created.eq(new.event_created),
            stripe_events::processed_at.eq(processed),
        ))
        .on_conflict(stripe_events::stripe_event_id)
        .do_nothing()
        .returning(stripe_events::id)
        .get_result(conn)
        .await
        .optional()?)
}

pub async fn get(conn: &mut Conn, id: StripeEventId) -> DbResult<StripeEvent> {
    Ok(stripe_events::table
        .find(id)
        .select(StripeEvent::as_select())
        .first(conn)
        .await?)
}

/// Counts one more attempt at a pending event and returns it; `None` when the event is
/// settled (processed, failed, ignored) or unknown.
#[tracing::instrument(skip_all, fields(stripe_event.id = %id))]
pub async fn begin_attempt(conn: &mut Conn, id: StripeEventId) -> DbResult<Option<StripeEvent>> {
    Ok(diesel::update(
        stripe_events::table.filter(
            stripe_events::id
                .eq(id)
                .and(stripe_events::status.eq("pending")),
        ),
    )
    .set((
        stripe_events::attempts.eq(stripe_events::attempts + 1),
        stripe_events::updated_at.eq(diesel::dsl::now),
    ))
    .returning(StripeEvent::as_returning())
    .get_result(conn)
    .await
    .optional()?)
}

/// Settles an event as processed (call in the transaction that applied it).
pub async fn mark_processed(conn: &mut Conn, id: StripeEventId) -> DbResult<()> {
    settle(conn, id, "processed", None).await
}

/// Settles an event as failed for good, with the reason.
pub async fn mark_failed(conn: &mut Conn, id: StripeEventId, error: &str) -> DbResult<()> {
    settle(conn, id, "failed", Some(error)).await
}

async fn settle(
    conn: &mut Conn,
    id: StripeEventId,
    status: &str,
    error: Option<&str>,
) -> DbResult<()> {
    diesel::update(stripe_events::table.find(id))
        .set((
            stripe_events::status.eq(status),
            stripe_events::error.eq(error),
            stripe_events::processed_at.eq(diesel::dsl::now),
            stripe_events::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Records why an attempt failed; the event stays pending for the next one.
pub async fn record_error(conn: &mut Conn, id: StripeEventId, error: &str) -> DbResult<()> {
    diesel::update(
        stripe_events::table.filter(
            stripe_events::id
                .eq(id)
                .and(stripe_events::status.eq("pending")),
        ),
    )
    .set((
        stripe_events::error.eq(error),
        stripe_events::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// Pending events untouched since `older_than` (the sweeper pushes them again).
pub async fn stale_pending(
    conn: &mut Conn,
    older_than: DateTime<Utc>,
    limit: i64,
) -> DbResult<Vec<StripeEventId>> {
    Ok(stripe_events::table
        .filter(
            stripe_events::status
                .eq("pending")
                .and(stripe_events::updated_at.lt(older_than)),
        )
        .order(stripe_events::updated_at.asc())
        .limit(limit)
        .select(stripe_events::id)
        .load(conn)
        .await?)
}

/// Restarts a pending event's staleness clock after a push.
pub async fn mark_pushed(conn: &mut Conn, id: StripeEventId) -> DbResult<()> {
    diesel::update(
        stripe_events::table.filter(
            stripe_events::id
                .eq(id)
                .and(stripe_events::status.eq("pending")),
        ),
    )
    .set(stripe_events::updated_at.eq(diesel::dsl::now))
    .execute(conn)
    .await?;
    Ok(())
}

/// Every stored event, oldest first (tests and operators).
pub async fn list(conn: &mut Conn) -> DbResult<Vec<StripeEvent>> {
    Ok(stripe_events::table
        .order(stripe_events::received_at.asc())
        .select(StripeEvent::as_select())
        .load(conn)
        .await?)
}
