//! The one error type of the database layer.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// What went wrong talking to PostgreSQL, classified so the API can map it centrally:
/// not found → 404, a named unique violation → 409, unavailable → 503, anything else → 500.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("row not found")]
    NotFound,
    /// A unique constraint was violated; carries the constraint's name.
    #[error("unique constraint {0} violated")]
    Conflict(String),
    /// A foreign key or check constraint rejected the write.
    #[error("constraint {0} violated")]
    Constraint(String),
    /// The database could not be reached (pool timeout, connection refused or lost).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Other(String),
}

impl DbError {
    /// True when the error names the given unique constraint.
    pub fn is_conflict_on(&self, constraint: &str) -> bool {
        matches!(self, DbError::Conflict(name) if name == constraint)
    }
}

impl From<DieselError> for DbError {
    fn from(err: DieselError) -> Self {
        match err {
            DieselError::NotFound => DbError::NotFound,
            DieselError::DatabaseError(kind, info) => {
                let name = info.constraint_name().unwrap_or("unknown").to_owned();
                match kind {
                    DatabaseErrorKind::UniqueViolation => DbError::Conflict(name),
                    DatabaseErrorKind::ForeignKeyViolation | DatabaseErrorKind::CheckViolation => {
                        DbError::Constraint(name)
                    }
                    DatabaseErrorKind::ClosedConnection => {
                        DbError::Unavailable(info.message().to_owned())
                    }
                    _ => DbError::Other(info.message().to_owned()),
                }
            }
            DieselError::BrokenTransactionManager => {
                DbError::Unavailable("broken transaction manager".into())
            }
            other => DbError::Other(other.to_string()),
        }
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for DbError {
    fn from(err: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        DbError::Unavailable(err.to_string())
    }
}
