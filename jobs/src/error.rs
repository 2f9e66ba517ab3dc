//! The one error type of job handlers.

/// How a handler failed, which decides what the queue does next.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A transient failure (dependency down, timeout): try again per the queue's policy.
    #[error("{0}")]
    Retry(String),
    /// A permanent failure (bad input, missing row): no further attempts.
    #[error("{0}")]
    Abort(String),
}

impl From<catalytic_db::DbError> for JobError {
    fn from(err: catalytic_db::DbError) -> Self {
        match err {
            catalytic_db::DbError::NotFound => JobError::Abort("row not found".into()),
            other => JobError::Retry(other.to_string()),
        }
    }
}
