//! The job kinds and where each runs.

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
    _ctx: &HandlerContext,
    env: &Envelope,
    _attempt: u32,
    _final_attempt: bool,
) -> Result<(), JobError> {
    Err(JobError::Abort(format!("unknown job kind {:?}", env.kind)))
}
