//! The entry point of every delivery: PostgreSQL bookkeeping around the job's own work.
//!
//! A delivery of a job with a `jobs` row claims the row (`queued`/`running` → `running`,
//! one more attempt); a row already finished or cancelled is acknowledged without
//! running again, so duplicate deliveries are harmless. The outcome is written back, and
//! a terminal state is published for clients waiting on the job.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use catalytic_db::ids::JobId;
use tokio::sync::Mutex;

use crate::context::HandlerContext;
use crate::{Envelope, JobError, kinds, notify};

/// What a job's work may report while it runs.
#[derive(Clone)]
pub struct JobHandle {
    pub job_id: JobId,
    pub attempt: u32,
    ctx: HandlerContext,
    progress: Arc<AtomicU8>,
    cancelled: Arc<AtomicBool>,
    last_sync: Arc<Mutex<Instant>>,
    usage: Arc<std::sync::Mutex<Vec<(&'static str, i64)>>>,
}

/// How often progress is written and cancellation read, at most.
const SYNC_EVERY: Duration = Duration::from_millis(250);

impl JobHandle {
    /// The handle of attempt `attempt` of job `job_id` (the delivery path makes one per
    /// attempt; tests make their own to run a job's work directly).
    pub fn new(ctx: HandlerContext, job_id: JobId, attempt: u32) -> Self {
        Self {
            job_id,
            attempt,
            ctx,
            progress: Arc::new(AtomicU8::new(0)),
            cancelled: Arc::new(AtomicBool::new(false)),
            last_sync: Arc::new(Mutex::new(Instant::now() - SYNC_EVERY)),
            usage: Arc::default(),
        }
    }

    /// Usage to meter for the job's tenant when this attempt's result is recorded: only
    /// then, so an attempt whose result is not recorded (a failed write, then a retry; a
    /// duplicate delivery that finished second; a cancel that won) meters nothing.
    pub fn meter_on_success(&self, metric: &'static str, amount: i64) {
        if let Ok(mut usage) = self.usage.lock() {
            usage.push((metric, amount));
        }
    }

    /// Meters what [`JobHandle::meter_on_success`] collected, once.
    async fn record_usage(&self, tenant: Option<catalytic_db::ids::TenantId>) {
        let usage = match self.usage.lock() {
            Ok(mut usage) => std::mem::take(&mut *usage),
            Err(_) => return,
        };
        let Some(tenant) = tenant else {
            return;
        };
        for (metric, amount) in usage {
            if let Err(e) = crate::usage::record(&self.ctx.queue, tenant, metric, amount).await {
                tracing::warn!(job.id = %self.job_id, metric, error = %e, "could not meter usage");
            }
        }
    }

    /// Records progress (0..=100). Cheap: the value is stored now and synced to
    /// PostgreSQL by [`JobHandle::sync`].
    pub fn set_progress(&self, pct: u8) {
        self.progress.fetch_max(pct.min(100), Ordering::Relaxed);
    }

    /// Whether a cancellation was seen at the last sync.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Writes progress and reads the cancellation flag, at most every 250 ms.
    pub async fn sync(&self) {
        let mut last = self.last_sync.lock().await;
        if last.elapsed() < SYNC_EVERY {
            return;
        }
        *last = Instant::now();
        let pct = self.progress.load(Ordering::Relaxed);
        let Ok(mut conn) = self.ctx.db.get().await else {
            return;
        };
        if let Err(e) =
            catalytic_db::jobs::set_progress(&mut conn, self.job_id, i16::from(pct)).await
        {
            tracing::warn!(job.id = %self.job_id, error = %e, "could not record progress");
        }
        match catalytic_db::jobs::cancel_requested(&mut conn, self.job_id).await {
            Ok(true) => self.cancelled.store(true, Ordering::Relaxed),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(job.id = %self.job_id, error = %e, "could not read cancellation")
            }
        }
    }

    pub fn context(&self) -> &HandlerContext {
        &self.ctx
    }
}

/// How a job's work ended.
#[derive(Debug)]
pub enum Outcome {
    Done(serde_json::Value),
    Cancelled,
}

/// Handles one delivery. `attempt` is 1-based; `final_attempt` says no retry follows a
/// failure. Returns `Err(Retry)` to have the queue retry per policy.
#[tracing::instrument(skip_all, fields(job.kind = %env.kind, job.id = ?env.job_id, attempt, request_id = ?env.request_id))]
pub async fn handle(
    ctx: &HandlerContext,
    env: Envelope,
    attempt: u32,
    final_attempt: bool,
) -> Result<(), JobError> {
    match env.job_id {
        Some(id) => handle_row_job(ctx, JobId::from_uuid(id), &env, attempt, final_attempt).await,
        None => kinds::run_unbacked(ctx, &env, attempt, final_attempt).await,
    }
}

async fn handle_row_job(
    ctx: &HandlerContext,
    id: JobId,
    env: &Envelope,
    attempt: u32,
    final_attempt: bool,
) -> Result<(), JobError> {
    let job = {
        let mut conn = ctx.db.get().await?;
        match catalytic_db::jobs::start_attempt(&mut conn, id).await? {
            Some(job) => job,
            None => {
                // Finished, cancelled or gone: a duplicate delivery. Settle a cancel that
                // arrived while queued or running, then acknowledge.
                if let Ok(true) =
                    catalytic_db::jobs::mark_cancelled_if_requested(&mut conn, id).await
                {
                    tracing::info!("job cancelled before it ran again");
                    notify::publish_status(&ctx.queue, id.as_uuid(), "cancelled").await;
                } else {
                    tracing::info!("job already settled; acknowledged without running");
                }
                return Ok(());
            }
        }
    };
    let handle = JobHandle::new(ctx.clone(), id, attempt);
    let started = Instant::now();
    let outcome = kinds::run_row_job(&handle, &job, env).await;
    let mut conn = ctx.db.get().await?;
    match outcome {
        Ok(Outcome::Done(result)) => {
            if catalytic_db::jobs::succeed(&mut conn, id, result).await? {
                tracing::info!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "job succeeded"
                );
                handle.record_usage(job.tenant_id).await;
                notify::publish_status(&ctx.queue, id.as_uuid(), "succeeded").await;
            } else if catalytic_db::jobs::mark_cancelled_if_requested(&mut conn, id).await? {
                // The cancel was accepted (202) before the result was recorded: it wins.
                tracing::info!("job cancelled as it finished; result discarded");
                notify::publish_status(&ctx.queue, id.as_uuid(), "cancelled").await;
            } else {
                tracing::info!("job settled elsewhere meanwhile; result discarded");
            }
            Ok(())
        }
        Ok(Outcome::Cancelled) => {
            if catalytic_db::jobs::mark_cancelled(&mut conn, id).await? {
                tracing::info!("job cancelled");
                notify::publish_status(&ctx.queue, id.as_uuid(), "cancelled").await;
            }
            Ok(())
        }
        Err(JobError::Retry(msg)) => {
            let last = final_attempt || job.attempts >= job.max_attempts;
            catalytic_db::jobs::fail_attempt(&mut conn, id, &msg, last).await?;
            tracing::warn!(error = %msg, last, "job attempt failed");
            if last {
                notify::publish_status(&ctx.queue, id.as_uuid(), "failed").await;
                Err(JobError::Abort(msg))
            } else {
                Err(JobError::Retry(msg))
            }
        }
        Err(JobError::Abort(msg)) => {
            catalytic_db::jobs::fail_attempt(&mut conn, id, &msg, true).await?;
            tracing::warn!(error = %msg, "job failed permanently");
            notify::publish_status(&ctx.queue, id.as_uuid(), "failed").await;
            Err(JobError::Abort(msg))
        }
    }
}
