//! The one error type of job handlers.

/// How a handler failed, which decides what the queue does next.
///
/// The message is stored on the job (`jobs.error`, `email_outbox.last_error`) and shown to
/// clients, so it must say what a client may know: internal causes are logged where they
/// are converted and replaced by [`INTERNAL_ERROR`] or [`DATABASE_UNAVAILABLE`].
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A transient failure (dependency down, timeout): try again per the queue's policy.
    #[error("{0}")]
    Retry(String),
    /// A permanent failure (bad input, missing row): no further attempts.
    #[error("{0}")]
    Abort(String),
}

/// The stored message of a failure whose cause is internal (a database error, say).
pub const INTERNAL_ERROR: &str = "an internal error occurred; it has been logged";
/// The stored message of a failure because PostgreSQL could not be reached.
pub const DATABASE_UNAVAILABLE: &str = "the database was unavailable";

impl From<catalytic_db::DbError> for JobError {
    fn from(err: catalytic_db::DbError) -> Self {
        use catalytic_db::DbError;
        match err {
            DbError::NotFound => JobError::Abort("row not found".into()),
            // The database's own words (tables, constraints, server text) go to the log
            // only, in the span of the job that met them.
            DbError::Unavailable(cause) => {
                tracing::warn!(error.cause = %cause, "database unavailable during a job");
                JobError::Retry(DATABASE_UNAVAILABLE.into())
            }
            other => {
                tracing::error!(error.cause = %other, "database error during a job");
                JobError::Retry(INTERNAL_ERROR.into())
            }
        }
    }
}
