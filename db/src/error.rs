//! The one error type of the database layer.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// What went wrong talking to PostgreSQL, classified so the API can map it centrally:
/// not found → 404, a named unique violation → 409, text PostgreSQL cannot store → 422,
/// unavailable → 503, anything else → 500.
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
    /// A value PostgreSQL cannot store: a NUL character in text (SQLSTATE 22021) or in
    /// jsonb (22P05). The input is at fault, so it is a client error, not an outage.
    #[error("text the database cannot store: {0}")]
    InvalidText(String),
    /// The database could not be reached (pool timeout, connection refused or lost, the
    /// server shutting down or terminating the session).
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
                    // diesel-async reports every error without a SQLSTATE as
                    // UnableToSendCommand: the connection closed or broken, I/O errors
                    // (the class 08 connection exceptions, detected by the client).
                    DatabaseErrorKind::ClosedConnection
                    | DatabaseErrorKind::UnableToSendCommand => {
                        DbError::Unavailable(info.message().to_owned())
                    }
                    _ => classify(info.message()),
                }
            }
            DieselError::BrokenTransactionManager => {
                DbError::Unavailable("broken transaction manager".into())
            }
            // The commit failed (the connection lost, say) and so did the rollback after it.
            DieselError::RollbackErrorOnCommit { commit_error, .. } => DbError::from(*commit_error),
            other => DbError::Other(other.to_string()),
        }
    }
}

/// The primary messages PostgreSQL sends with the SQLSTATEs this layer tells apart among
/// the errors diesel leaves `Unknown`. diesel's error information carries no SQLSTATE
/// (diesel-async reads it only to choose a `DatabaseErrorKind`), so these are recognised by
/// their message as the server words it in English (`lc_messages` C or en, what a cluster
/// initialised with a C or English locale uses); a translated message falls back to
/// `Other` (500), as before.
const INVALID_TEXT: &[&str] = &[
    // 22021 character_not_in_repertoire: a NUL byte in a text value.
    "invalid byte sequence for encoding",
    // 22P05 untranslatable_character: \u0000 in a jsonb value.
    "unsupported Unicode escape sequence",
];
const UNAVAILABLE: &[&str] = &[
    // 57P01 admin_shutdown, 57P02 crash_shutdown, 57P05 idle_session_timeout: "terminating
    // connection due to administrator command", "... because of crash of another server
    // process", ...
    "terminating connection",
    // 57P03 cannot_connect_now: "the database system is starting up", "... is shutting
    // down", "... is in recovery mode", "... is not yet accepting connections".
    "the database system is",
];

fn classify(message: &str) -> DbError {
    if INVALID_TEXT.iter().any(|m| message.starts_with(m)) {
        DbError::InvalidText(message.to_owned())
    } else if UNAVAILABLE.iter().any(|m| message.starts_with(m)) {
        DbError::Unavailable(message.to_owned())
    } else {
        DbError::Other(message.to_owned())
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for DbError {
    fn from(err: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        DbError::Unavailable(err.to_string())
    }
}
