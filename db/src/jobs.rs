//! The `jobs` table: the client-visible truth of every job and the outbox of the queue.
//! A row commits first; the push to Redis follows; the sweeper re-pushes rows left queued.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::ids::{JobId, LatticeId, TenantId, UserId};
use crate::schema::jobs;
use crate::{Conn, DbResult};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = jobs)]
pub struct Job {
    pub id: JobId,
    pub tenant_id: Option<TenantId>,
    pub lattice_id: Option<LatticeId>,
    pub queue: String,
    pub kind: String,
    pub params: serde_json::Value,
    pub status: String,
    pub progress: i16,
    pub attempts: i32,
    pub max_attempts: i32,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub cancel_requested: bool,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub request_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub enqueued_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Job {
    pub fn is_terminal(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed" | "cancelled")
    }
}

pub struct NewJob<'a> {
    pub id: JobId,
    pub tenant_id: Option<TenantId>,
    pub lattice_id: Option<LatticeId>,
    pub queue: &'a str,
    pub kind: &'a str,
    pub params: serde_json::Value,
    pub max_attempts: i32,
    pub idempotency_key: Option<&'a str>,
    pub request_hash: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub created_by: Option<UserId>,
}

/// Inserts a queued job; a reused idempotency key is `Conflict("jobs_idempotency_key")`.
#[tracing::instrument(skip_all, fields(job.id = %new.id, job.kind = new.kind))]
pub async fn insert(conn: &mut Conn, new: NewJob<'_>) -> DbResult<Job> {
    Ok(diesel::insert_into(jobs::table)
        .values((
            jobs::id.eq(new.id),
            jobs::tenant_id.eq(new.tenant_id),
            jobs::lattice_id.eq(new.lattice_id),
            jobs::queue.eq(new.queue),
            jobs::kind.eq(new.kind),
            jobs::params.eq(new.params),
            jobs::max_attempts.eq(new.max_attempts),
            jobs::idempotency_key.eq(new.idempotency_key),
            jobs::request_hash.eq(new.request_hash),
            jobs::request_id.eq(new.request_id),
            jobs::created_by.eq(new.created_by),
        ))
        .returning(Job::as_returning())
        .get_result(conn)
        .await?)
}

/// A tenant's job; another tenant's is NotFound.
pub async fn get(conn: &mut Conn, tenant: TenantId, id: JobId) -> DbResult<Job> {
    Ok(jobs::table
        .filter(jobs::id.eq(id).and(jobs::tenant_id.eq(tenant)))
        .select(Job::as_select())
        .first(conn)
        .await?)
}

/// A job by id, for workers.
pub async fn get_any(conn: &mut Conn, id: JobId) -> DbResult<Job> {
    Ok(jobs::table
        .find(id)
        .select(Job::as_select())
        .first(conn)
        .await?)
}

pub async fn by_idempotency_key(
    conn: &mut Conn,
    tenant: TenantId,
    key: &str,
) -> DbResult<Option<Job>> {
    Ok(jobs::table
        .filter(
            jobs::tenant_id
                .eq(tenant)
                .and(jobs::idempotency_key.eq(key)),
        )
        .select(Job::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Filters of the job listing.
#[derive(Debug, Default, Clone)]
pub struct JobFilter {
    pub status: Option<String>,
    pub lattice_id: Option<LatticeId>,
}

pub async fn list(
    conn: &mut Conn,
    tenant: TenantId,
    filter: &JobFilter,
    limit: i64,
    offset: i64,
) -> DbResult<Vec<Job>> {
    let mut q = jobs::table
        .filter(jobs::tenant_id.eq(tenant))
        .select(Job::as_select())
        .order((jobs::created_at.desc(), jobs::id.desc()))
        .limit(limit)
        .offset(offset)
        .into_boxed();
    if let Some(s) = &filter.status {
        q = q.filter(jobs::status.eq(s.clone()));
    }
    if let Some(l) = filter.lattice_id {
        q = q.filter(jobs::lattice_id.eq(l));
    }
    Ok(q.load(conn).await?)
}

/// Records that the push to Redis happened (the sweeper's clock starts again).
pub async fn mark_enqueued(conn: &mut Conn, id: JobId) -> DbResult<()> {
    diesel::update(jobs::table.find(id))
        .set(jobs::enqueued_at.eq(diesel::dsl::now))
        .execute(conn)
        .await?;
    Ok(())
}

/// Claims a delivery: a queued (or interrupted running) job becomes running with one more
/// attempt. Returns `None` when the job is already finished or cancelled, so a duplicate
/// delivery is acknowledged without running again.
pub async fn start_attempt(conn: &mut Conn, id: JobId) -> DbResult<Option<Job>> {
    Ok(diesel::update(
        jobs::table.filter(
            jobs::id
                .eq(id)
                .and(jobs::status.eq_any(["queued", "running"]))
                .and(jobs::cancel_requested.eq(false)),
        ),
    )
    .set((
        jobs::status.eq("running"),
        jobs::attempts.eq(jobs::attempts + 1),
        jobs::started_at.eq(diesel::dsl::now),
        jobs::updated_at.eq(diesel::dsl::now),
    ))
    .returning(Job::as_returning())
    .get_result(conn)
    .await
    .optional()?)
}

pub async fn set_progress(conn: &mut Conn, id: JobId, progress: i16) -> DbResult<()> {
    diesel::update(jobs::table.filter(jobs::id.eq(id).and(jobs::status.eq("running"))))
        .set((
            jobs::progress.eq(progress.clamp(0, 100)),
            jobs::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn cancel_requested(conn: &mut Conn, id: JobId) -> DbResult<bool> {
    Ok(jobs::table
        .find(id)
        .select(jobs::cancel_requested)
        .first(conn)
        .await?)
}

/// Records the result of a running job whose cancel was not requested. Returns whether it
/// did: `false` when the row was no longer running (a duplicate delivery finished first, the
/// sweeper settled it) or its cancel was accepted meanwhile, which wins over the result.
pub async fn succeed(conn: &mut Conn, id: JobId, result: serde_json::Value) -> DbResult<bool> {
    let n = diesel::update(
        jobs::table.filter(
            jobs::id
                .eq(id)
                .and(jobs::status.eq("running"))
                .and(jobs::cancel_requested.eq(false)),
        ),
    )
    .set((
        jobs::status.eq("succeeded"),
        jobs::progress.eq(100),
        jobs::result.eq(Some(result)),
        jobs::error.eq(None::<String>),
        jobs::finished_at.eq(diesel::dsl::now),
        jobs::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Records a failed attempt: `failed` when it was the last, else back to `queued` with the
/// error kept for the client while the retry waits. Only a `running` row changes; returns
/// whether it did.
pub async fn fail_attempt(conn: &mut Conn, id: JobId, error: &str, last: bool) -> DbResult<bool> {
    let status = if last { "failed" } else { "queued" };
    let n = diesel::update(jobs::table.filter(jobs::id.eq(id).and(jobs::status.eq("running"))))
        .set((
            jobs::status.eq(status),
            jobs::error.eq(Some(error)),
            jobs::finished_at.eq(if last { Some(Utc::now()) } else { None }),
            jobs::enqueued_at.eq(diesel::dsl::now),
            jobs::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(n == 1)
}

/// Marks a running job cancelled (the handler saw the request between chunks). Returns
/// whether it did.
pub async fn mark_cancelled(conn: &mut Conn, id: JobId) -> DbResult<bool> {
    let n = diesel::update(
        jobs::table.filter(
            jobs::id
                .eq(id)
                .and(jobs::status.eq_any(["queued", "running"])),
        ),
    )
    .set((
        jobs::status.eq("cancelled"),
        jobs::finished_at.eq(diesel::dsl::now),
        jobs::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// A client's cancel: a queued job is cancelled at once, a running one is asked to stop.
/// Finished jobs are returned unchanged.
pub async fn request_cancel(conn: &mut Conn, tenant: TenantId, id: JobId) -> DbResult<Job> {
    let job = get(conn, tenant, id).await?;
    if job.is_terminal() {
        return Ok(job);
    }
    let updated = diesel::update(
        jobs::table.filter(
            jobs::id
                .eq(id)
                .and(jobs::status.eq_any(["queued", "running"])),
        ),
    )
    .set((
        jobs::cancel_requested.eq(true),
        jobs::status.eq(diesel::dsl::sql::<diesel::sql_types::Text>(
            "CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END",
        )),
        jobs::finished_at.eq(diesel::dsl::sql::<
            diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
        >(
            "CASE WHEN status = 'queued' THEN now() ELSE finished_at END",
        )),
        jobs::updated_at.eq(diesel::dsl::now),
    ))
    .returning(Job::as_returning())
    .get_result(conn)
    .await
    .optional()?;
    match updated {
        Some(j) => Ok(j),
        None => get(conn, tenant, id).await,
    }
}

/// Jobs still `queued` whose last push is older than `older_than`: the push may never
/// have reached Redis. The sweeper re-pushes them (handlers are idempotent).
pub async fn stale_queued(
    conn: &mut Conn,
    older_than: DateTime<Utc>,
    limit: i64,
) -> DbResult<Vec<Job>> {
    Ok(jobs::table
        .filter(
            jobs::status
                .eq("queued")
                .and(
                    jobs::enqueued_at
                        .is_null()
                        .or(jobs::enqueued_at.lt(older_than)),
                )
                .and(jobs::created_at.lt(older_than)),
        )
        .order(jobs::created_at.asc())
        .limit(limit)
        .select(Job::as_select())
        .load(conn)
        .await?)
}

/// Jobs of `queue` still `running` whose row has not changed since `older_than`: no attempt
/// can still be running them (an attempt ends at the queue's job timeout, and a running
/// lattice job writes its progress every 250 ms), so the attempt ended without recording
/// its outcome. The sweeper settles them with [`settle_stale_running`].
pub async fn stale_running(
    conn: &mut Conn,
    queue: &str,
    older_than: DateTime<Utc>,
    limit: i64,
) -> DbResult<Vec<Job>> {
    Ok(jobs::table
        .filter(
            jobs::status
                .eq("running")
                .and(jobs::updated_at.lt(older_than))
                .and(jobs::queue.eq(queue)),
        )
        .order(jobs::updated_at.asc())
        .limit(limit)
        .select(Job::as_select())
        .load(conn)
        .await?)
}

/// Settles a row found by [`stale_running`], unless it changed since (an attempt started or
/// finished meanwhile): `failed` with `error` when `last`, else back to `queued` with the
/// error kept, for a re-push. Returns whether it changed the row.
pub async fn settle_stale_running(
    conn: &mut Conn,
    id: JobId,
    older_than: DateTime<Utc>,
    error: &str,
    last: bool,
) -> DbResult<bool> {
    let status = if last { "failed" } else { "queued" };
    let n = diesel::update(
        jobs::table.filter(
            jobs::id
                .eq(id)
                .and(jobs::status.eq("running"))
                .and(jobs::updated_at.lt(older_than)),
        ),
    )
    .set((
        jobs::status.eq(status),
        jobs::error.eq(Some(error)),
        jobs::finished_at.eq(if last { Some(Utc::now()) } else { None }),
        jobs::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Settles a job whose cancel was requested while it was queued or running (before its
/// result was recorded). Returns whether it did.
pub async fn mark_cancelled_if_requested(conn: &mut Conn, id: JobId) -> DbResult<bool> {
    let n = diesel::update(
        jobs::table.filter(
            jobs::id
                .eq(id)
                .and(jobs::cancel_requested.eq(true))
                .and(jobs::status.eq_any(["queued", "running"])),
        ),
    )
    .set((
        jobs::status.eq("cancelled"),
        jobs::finished_at.eq(diesel::dsl::now),
        jobs::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Bytes of stored job results of a tenant (the storage figure of the usage summary).
pub async fn result_bytes(conn: &mut Conn, tenant: TenantId) -> DbResult<i64> {
    use diesel::sql_types::{BigInt, Nullable};
    let total: Option<i64> = jobs::table
        .filter(jobs::tenant_id.eq(tenant))
        .select(diesel::dsl::sql::<Nullable<BigInt>>(
            "sum(octet_length(coalesce(result::text, '')) + octet_length(params::text))::bigint",
        ))
        .first(conn)
        .await?;
    Ok(total.unwrap_or(0))
}

/// Puts a `failed` job back to `queued` for a re-drive from the dead letters; its attempt
/// count starts again. Returns whether the row was failed.
pub async fn requeue_failed(conn: &mut Conn, id: JobId) -> DbResult<bool> {
    let n = diesel::update(jobs::table.filter(jobs::id.eq(id).and(jobs::status.eq("failed"))))
        .set((
            jobs::status.eq("queued"),
            jobs::attempts.eq(0),
            jobs::progress.eq(0),
            jobs::finished_at.eq(None::<DateTime<Utc>>),
            jobs::enqueued_at.eq(diesel::dsl::now),
            jobs::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(n == 1)
}
