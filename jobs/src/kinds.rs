//! The job kinds and where each runs.

pub mod email;
pub mod lattice;
pub mod system;

use catalytic_db::jobs::Job;

use crate::context::HandlerContext;
use crate::handler::{JobHandle, Outcome};
use crate::{Envelope, JobError};

/// Runs the work of a job that has a `jobs` row.
pub async fn run_row_job(
    handle: &JobHandle,
    job: &Job,
    env: &Envelope,
) -> Result<Outcome, JobError> {
    match job.kind.as_str() {
        system::PING => system::ping(handle, job).await,
        kind if kind.starts_with("lattice.") => lattice::run(handle, job).await,
        other => Err(JobError::Abort(format!(
            "unknown job kind {other:?} (envelope kind {:?})",
            env.kind
        ))),
    }
}

/// Runs a job without a `jobs` row (email delivery, webhook reconciliation, rollups):
/// their own tables hold their state.
pub async fn run_unbacked(
    ctx: &HandlerContext,
    env: &Envelope,
    attempt: u32,
    final_attempt: bool,
) -> Result<(), JobError> {
    match env.kind.as_str() {
        email::EMAIL_SEND => email::send(ctx, env, attempt, final_attempt).await,
        USAGE_ROLLUP => crate::usage::rollup(ctx).await.map(|_| ()),
        crate::billing::reconcile::STRIPE_RECONCILE => {
            crate::billing::reconcile::run(ctx, env).await
        }
        other => Err(JobError::Abort(format!("unknown job kind {other:?}"))),
    }
}

/// The kind of the per-minute usage rollup (pushed by the worker's cron).
pub const USAGE_ROLLUP: &str = "usage.rollup";
