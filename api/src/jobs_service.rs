//! Submitting and watching jobs: the row commits first (with the idempotency key), the
//! push follows; waiting is woken by Redis pub/sub, not a sleep loop.

use std::time::Duration;

use catalytic_db::ids::{JobId, LatticeId};
use catalytic_db::jobs::{Job, NewJob};
use catalytic_db::{AsyncConnection as _, DbError};
use catalytic_jobs::QueueName;
use catalytic_jobs::kinds::lattice::LatticeOp;
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::http::request_id;
use crate::state::AppState;

/// What a submission produced.
pub struct Submitted {
    pub job: Job,
    /// False when the Idempotency-Key matched an earlier submission.
    pub created: bool,
}

/// Creates the job row of a lattice operation (or returns the one an idempotency key
/// already made) and pushes it after the commit.
pub async fn submit_lattice_job(
    state: &AppState,
    p: &Principal,
    lattice: LatticeId,
    op: &LatticeOp,
    idempotency_key: Option<&str>,
) -> ApiResult<Submitted> {
    let params = serde_json::to_value(op).map_err(ApiError::internal)?;
    let hash = hex::encode(Sha256::digest(
        format!(
            "{lattice}:{}",
            serde_json::to_string(&params).unwrap_or_default()
        )
        .as_bytes(),
    ));
    if let Some(key) = idempotency_key
        && (key.is_empty() || key.len() > 200)
    {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            "must be 1 to 200 characters",
        ));
    }
    let queue = QueueName::Lattice;
    let mut conn = state.db.get().await?;
    if let Some(key) = idempotency_key
        && let Some(existing) =
            catalytic_db::jobs::by_idempotency_key(&mut conn, p.tenant_id, key).await?
    {
        return same_request(existing, &hash);
    }
    let id = JobId::generate();
    let rid = request_id::current();
    let inserted = conn
        .transaction::<_, ApiError, _>(async |c| {
            let job = catalytic_db::jobs::insert(
                c,
                NewJob {
                    id,
                    tenant_id: Some(p.tenant_id),
                    lattice_id: Some(lattice),
                    queue: queue.as_str(),
                    kind: op.kind(),
                    params: params.clone(),
                    max_attempts: queue.policy().max_attempts as i32,
                    idempotency_key,
                    request_hash: Some(&hash),
                    request_id: Some(&rid),
                    created_by: p.user_id,
                },
            )
            .await?;
            Ok(job)
        })
        .await;
    let job = match inserted {
        Ok(job) => job,
        // A concurrent submission with the same key won the race.
        Err(ApiError::Conflict(_)) if idempotency_key.is_some() => {
            let key = idempotency_key.unwrap_or_default();
            let existing = catalytic_db::jobs::by_idempotency_key(&mut conn, p.tenant_id, key)
                .await?
                .ok_or_else(|| ApiError::internal("idempotent job vanished"))?;
            return same_request(existing, &hash);
        }
        Err(e) => return Err(e),
    };
    push(state, queue, &job).await;
    state
        .metrics
        .jobs_enqueued
        .with_label_values(&[queue.as_str(), op.kind()])
        .inc();
    Ok(Submitted { job, created: true })
}

fn same_request(existing: Job, hash: &str) -> ApiResult<Submitted> {
    if existing.request_hash.as_deref() == Some(hash) {
        Ok(Submitted {
            job: existing,
            created: false,
        })
    } else {
        Err(ApiError::Conflict(
            "this Idempotency-Key was used with a different request".into(),
        ))
    }
}

/// Pushes a committed job; a failure leaves it to the worker's sweeper.
async fn push(state: &AppState, queue: QueueName, job: &Job) {
    match catalytic_jobs::enqueue::push_job(
        &state.queue,
        queue,
        job.id.as_uuid(),
        &job.kind,
        job.request_id.clone(),
    )
    .await
    {
        Ok(_) => {
            if let Ok(mut conn) = state.db.get().await
                && let Err(e) = catalytic_db::jobs::mark_enqueued(&mut conn, job.id).await
            {
                tracing::warn!(job.id = %job.id, error = %e, "could not record the push");
            }
        }
        Err(e) => {
            tracing::warn!(job.id = %job.id, error = %e, "push failed; the sweeper will enqueue the job");
        }
    }
}

/// The longest a client may wait on a job.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// Returns the job once it is finished or `wait` has passed, whichever is first.
pub async fn wait_for(
    state: &AppState,
    p: &Principal,
    id: JobId,
    wait: Duration,
) -> ApiResult<Job> {
    let load = || async {
        let mut conn = state.db.get().await?;
        catalytic_db::jobs::get(&mut conn, p.tenant_id, id)
            .await
            .map_err(|e| match e {
                DbError::NotFound => ApiError::not_found("job"),
                other => other.into(),
            })
    };
    let job = load().await?;
    if job.is_terminal() || wait.is_zero() {
        return Ok(job);
    }
    let channel = catalytic_jobs::notify::job_channel(&state.config.redis_key_prefix, id.as_uuid());
    let mut pubsub = match state.redis_client.get_async_pubsub().await {
        Ok(ps) => ps,
        Err(e) => return Err(e.into()),
    };
    pubsub.subscribe(&channel).await?;
    // Subscribed first, then re-read: a finish between the two reads is not missed.
    let job = load().await?;
    if job.is_terminal() {
        return Ok(job);
    }
    let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
    let mut messages = pubsub.on_message();
    loop {
        match tokio::time::timeout_at(deadline, messages.next()).await {
            Err(_) | Ok(None) => return load().await,
            Ok(Some(_)) => {
                let job = load().await?;
                if job.is_terminal() {
                    return Ok(job);
                }
            }
        }
    }
}

/// Publishes a state change (a cancel of a queued job) for waiting clients.
pub async fn publish(state: &AppState, id: JobId, status: &str) {
    catalytic_jobs::notify::publish_status(&state.queue, id.as_uuid(), status).await;
}
