//! Jobs: submit an operation on a lattice, poll or wait for it, list, cancel; and the
//! original synchronous endpoints, which submit and wait up to a bound.

use std::time::Duration;

use catalytic_db::ids::JobId;
use catalytic_db::jobs::{Job, JobFilter};
use catalytic_jobs::kinds::lattice::{self as lattice_jobs, KeyFormat, LatticeOp};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use uuid::Uuid;

use crate::auth::principal::authenticate;
use crate::auth::{Credentials, Principal};
use crate::error::{ApiError, ApiResult};
use crate::jobs_service::{self, MAX_WAIT};
use crate::routes::lattices::{check_plan_bounds, load, spec_of};
use crate::routes::{ApiTags, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::state::AppState;

/// How long the synchronous endpoints wait before answering 202 with the job.
const SYNC_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum Operation {
    ShortestPath,
    ConnectedComponents,
    XorTransform,
    Statistics,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum KeyEncoding {
    Text,
    Hex,
}

/// Parameters of an operation; which fields apply depends on the operation.
#[derive(Debug, Clone, Default, Object)]
pub struct OperationParams {
    /// shortest_path: start coordinates (one per dimension).
    pub start: Option<Vec<u64>>,
    /// shortest_path: end coordinates.
    pub end: Option<Vec<u64>>,
    /// xor_transform: the key.
    pub key: Option<String>,
    /// xor_transform: how `key` is written (default text).
    pub key_format: Option<KeyEncoding>,
    /// xor_transform: 1 to 64.
    pub rounds: Option<u32>,
}

#[derive(Debug, Object)]
pub struct SubmitJobRequest {
    pub operation: Operation,
    pub params: Option<OperationParams>,
}

#[derive(Debug, Object)]
pub struct JobLinks {
    /// Poll here; add `?wait=30` to wait for completion.
    #[oai(rename = "self")]
    pub self_: String,
    pub lattice: String,
}

#[derive(Debug, Object)]
pub struct JobAccepted {
    pub job_id: Uuid,
    pub status: String,
    pub links: JobLinks,
}

#[derive(Debug, Object)]
pub struct JobView {
    pub id: Uuid,
    pub lattice_id: Option<Uuid>,
    pub operation: String,
    /// queued, running, succeeded, failed or cancelled.
    pub status: String,
    /// 0 to 100.
    pub progress: i16,
    pub attempts: i32,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        Self {
            id: j.id.as_uuid(),
            lattice_id: j.lattice_id.map(|l| l.as_uuid()),
            operation: j
                .kind
                .strip_prefix("lattice.")
                .unwrap_or(&j.kind)
                .to_owned(),
            status: j.status,
            progress: j.progress,
            attempts: j.attempts,
            result: j.result,
            error: j.error,
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct JobPage {
    pub items: Vec<JobView>,
    pub limit: u32,
    pub offset: u32,
}

#[derive(ApiResponse)]
pub enum Submitted {
    /// Queued (or, with a reused Idempotency-Key, the job that key created).
    #[oai(status = 202)]
    Accepted(Json<JobAccepted>),
}

#[derive(ApiResponse)]
pub enum CancelResponse {
    /// The job as it stands: cancelled if it was queued; a running job stops at its next
    /// chunk boundary.
    #[oai(status = 202)]
    Accepted(Json<JobView>),
}

#[derive(Debug, Object)]
pub struct PathRequest {
    pub lattice_id: Uuid,
    pub start: Vec<u64>,
    pub end: Vec<u64>,
}

#[derive(Debug, Object)]
pub struct TransformRequest {
    pub key: String,
    pub key_format: Option<KeyEncoding>,
    /// 1 to 64 (default 1).
    pub rounds: Option<u32>,
}

#[derive(ApiResponse)]
pub enum SyncResponse {
    /// Finished in time: the job with its result.
    #[oai(status = 200)]
    Done(Json<JobView>),
    /// Still running: poll `links.self`.
    #[oai(status = 202)]
    Pending(Json<JobAccepted>),
}

fn op_from(req: &SubmitJobRequest) -> ApiResult<LatticeOp> {
    let p = req.params.clone().unwrap_or_default();
    let missing =
        |f: &str| ApiError::invalid(&format!("params.{f}"), "is required for this operation");
    Ok(match req.operation {
        Operation::ShortestPath => LatticeOp::ShortestPath {
            start: p.start.ok_or_else(|| missing("start"))?,
            end: p.end.ok_or_else(|| missing("end"))?,
        },
        Operation::ConnectedComponents => LatticeOp::ConnectedComponents,
        Operation::Statistics => LatticeOp::Statistics,
        Operation::XorTransform => LatticeOp::XorTransform {
            key: p.key.ok_or_else(|| missing("key"))?,
            key_format: key_format(p.key_format),
            rounds: p.rounds.ok_or_else(|| missing("rounds"))?,
        },
    })
}

fn key_format(k: Option<KeyEncoding>) -> KeyFormat {
    match k {
        Some(KeyEncoding::Hex) => KeyFormat::Hex,
        _ => KeyFormat::Text,
    }
}

fn accepted(job: &Job) -> JobAccepted {
    JobAccepted {
        job_id: job.id.as_uuid(),
        status: job.status.clone(),
        links: JobLinks {
            self_: format!("/api/jobs/{}", job.id),
            lattice: job
                .lattice_id
                .map(|l| format!("/api/lattices/{l}"))
                .unwrap_or_default(),
        },
    }
}

/// Validates and submits `op` on the tenant's lattice `lattice`.
async fn submit(
    state: &AppState,
    p: &Principal,
    lattice: Uuid,
    op: LatticeOp,
    idempotency_key: Option<&str>,
) -> ApiResult<Job> {
    let row = load(state, p, lattice).await?;
    let spec = spec_of(&row)?;
    check_plan_bounds(p, &spec).map_err(ApiError::Validation)?;
    lattice_jobs::validate(&spec, &op).map_err(|(field, msg)| ApiError::invalid(&field, msg))?;
    Ok(
        jobs_service::submit_lattice_job(state, p, row.id, &op, idempotency_key)
            .await?
            .job,
    )
}

pub struct JobsApi;

#[OpenApi(tag = "ApiTags::Jobs")]
impl JobsApi {
    /// Runs an operation on a lattice as a job. With `Idempotency-Key`, the same key and
    /// body return the same job; the same key with another body is 409.
    #[oai(
        path = "/api/lattices/:id/jobs",
        method = "post",
        operation_id = "jobs_submit"
    )]
    async fn submit(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
        id: Path<Uuid>,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
        body: Json<SubmitJobRequest>,
    ) -> ApiResult<Submitted> {
        let p = authenticate(&state, &auth, "jobs_submit").await?;
        let op = op_from(&body.0)?;
        let job = submit(&state, &p, id.0, op, idempotency_key.0.as_deref()).await?;
        Ok(Submitted::Accepted(Json(accepted(&job))))
    }

    /// A job. `wait` (seconds, at most 60) holds the request until the job finishes or
    /// the time passes.
    #[oai(path = "/api/jobs/:id", method = "get", operation_id = "jobs_get")]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
        id: Path<Uuid>,
        #[oai(validator(maximum(value = "60")))] wait: Query<Option<u32>>,
    ) -> ApiResult<Json<JobView>> {
        let p = authenticate(&state, &auth, "jobs_get").await?;
        let wait = Duration::from_secs(u64::from(wait.0.unwrap_or(0))).min(MAX_WAIT);
        let job = jobs_service::wait_for(&state, &p, JobId::from_uuid(id.0), wait).await?;
        Ok(Json(job.into()))
    }

    /// The tenant's jobs, newest first, optionally filtered.
    #[oai(path = "/api/jobs", method = "get", operation_id = "jobs_list")]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
        /// queued, running, succeeded, failed or cancelled.
        status: Query<Option<String>>,
        lattice_id: Query<Option<Uuid>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))] limit: Query<Option<u32>>,
        offset: Query<Option<u32>>,
    ) -> ApiResult<Json<JobPage>> {
        let p = authenticate(&state, &auth, "jobs_list").await?;
        if let Some(s) = &status.0
            && !["queued", "running", "succeeded", "failed", "cancelled"].contains(&s.as_str())
        {
            return Err(ApiError::invalid(
                "status",
                "must be queued, running, succeeded, failed or cancelled",
            ));
        }
        let limit = limit.0.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE);
        let offset = offset.0.unwrap_or(0);
        let mut conn = state.db.get().await?;
        let filter = JobFilter {
            status: status.0,
            lattice_id: lattice_id.0.map(Into::into),
        };
        let jobs = catalytic_db::jobs::list(
            &mut conn,
            p.tenant_id,
            &filter,
            i64::from(limit),
            i64::from(offset),
        )
        .await?;
        Ok(Json(JobPage {
            items: jobs.into_iter().map(Into::into).collect(),
            limit,
            offset,
        }))
    }

    /// Cancels a queued or running job.
    #[oai(
        path = "/api/jobs/:id",
        method = "delete",
        operation_id = "jobs_cancel"
    )]
    async fn cancel(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
        id: Path<Uuid>,
    ) -> ApiResult<CancelResponse> {
        let p = authenticate(&state, &auth, "jobs_cancel").await?;
        let mut conn = state.db.get().await?;
        let job =
            catalytic_db::jobs::request_cancel(&mut conn, p.tenant_id, JobId::from_uuid(id.0))
                .await
                .map_err(|e| match e {
                    catalytic_db::DbError::NotFound => ApiError::not_found("job"),
                    other => other.into(),
                })?;
        if job.status == "cancelled" {
            jobs_service::publish(&state, job.id, "cancelled").await;
        }
        Ok(CancelResponse::Accepted(Json(job.into())))
    }

    /// Shortest path, synchronously: 200 with the result when it finishes within 10 s,
    /// else 202 with the job to poll.
    #[oai(
        path = "/api/lattices/path",
        method = "post",
        operation_id = "lattices_path"
    )]
    async fn path(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
        body: Json<PathRequest>,
    ) -> ApiResult<SyncResponse> {
        let p = authenticate(&state, &auth, "lattices_path").await?;
        let b = body.0;
        let op = LatticeOp::ShortestPath {
            start: b.start,
            end: b.end,
        };
        let job = submit(&state, &p, b.lattice_id, op, None).await?;
        sync_answer(&state, &p, job).await
    }

    /// XOR transform, synchronously: 200 with the result when it finishes within 10 s,
    /// else 202 with the job to poll.
    #[oai(
        path = "/api/lattices/:id/transform",
        method = "post",
        operation_id = "lattices_transform"
    )]
    async fn transform(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
        id: Path<Uuid>,
        body: Json<TransformRequest>,
    ) -> ApiResult<SyncResponse> {
        let p = authenticate(&state, &auth, "lattices_transform").await?;
        let b = body.0;
        let op = LatticeOp::XorTransform {
            key: b.key,
            key_format: key_format(b.key_format),
            rounds: b.rounds.unwrap_or(1),
        };
        let job = submit(&state, &p, id.0, op, None).await?;
        sync_answer(&state, &p, job).await
    }
}

async fn sync_answer(state: &AppState, p: &Principal, job: Job) -> ApiResult<SyncResponse> {
    let job = jobs_service::wait_for(state, p, job.id, SYNC_WAIT).await?;
    if job.is_terminal() {
        Ok(SyncResponse::Done(Json(job.into())))
    } else {
        Ok(SyncResponse::Pending(Json(accepted(&job))))
    }
}
