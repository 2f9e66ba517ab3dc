//! Stream entries and the per-task metadata handlers can extract.

use std::time::{SystemTime, UNIX_EPOCH};

use apalis_core::task::{Task, from_request::FromRequest};
use redis::streams::StreamId;

/// Field names of a stream entry (see `scripts`).
pub(crate) const F_ID: &str = "i";
pub(crate) const F_ATTEMPTS: &str = "a";
pub(crate) const F_PAYLOAD: &str = "p";
pub(crate) const F_DEDUPE: &str = "d";
pub(crate) const F_ERROR: &str = "e";
pub(crate) const F_ORIGIN: &str = "o";

/// What the queue knows about the task being run; every task carries one.
///
/// Extract it in a handler (`async fn run(env: Envelope, meta: JobMeta)`) or read it with
/// `task.ctx().data().get::<JobMeta>()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobMeta {
    /// The queue the task was read from.
    pub queue: String,
    /// The job id, stable across retries (not the stream entry id).
    pub job_id: String,
    /// The stream entry id (changes on every retry).
    pub stream_id: String,
    /// This attempt, 1-based.
    pub attempt: u32,
    /// The queue policy's maximum number of attempts.
    pub max_attempts: u32,
    /// The dedupe key released when this job ends, if any.
    pub dedupe_key: Option<String>,
    /// The error of the previous attempt, if this is a retry.
    pub last_error: Option<String>,
}

impl JobMeta {
    /// Whether this is the last attempt the policy allows (a failure now is final).
    pub fn is_final_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }
}

impl<Args: Sync> FromRequest<Task<Args>> for JobMeta {
    type Error = MissingJobMeta;

    async fn from_request(task: &Task<Args>) -> Result<Self, Self::Error> {
        task.ctx()
            .data()
            .get::<JobMeta>()
            .cloned()
            .ok_or(MissingJobMeta)
    }
}

/// The task was not produced by [`RedisStreamBackend`](super::RedisStreamBackend).
#[derive(Debug, thiserror::Error)]
#[error("task carries no JobMeta: it was not read from a catalytic queue")]
pub struct MissingJobMeta;

/// A stream entry as read by a consumer.
#[derive(Debug, Clone)]
pub(crate) struct RawEntry {
    pub stream_id: String,
    pub job_id: String,
    pub attempts: u32,
    pub dedupe_key: Option<String>,
    pub last_error: Option<String>,
    pub payload: Vec<u8>,
}

impl RawEntry {
    /// Parses an entry; `None` when a field the queue writes is missing.
    pub(crate) fn from_stream_id(entry: &StreamId) -> Option<Self> {
        Some(Self {
            stream_id: entry.id.clone(),
            job_id: entry.get(F_ID)?,
            attempts: entry.get(F_ATTEMPTS).unwrap_or(0),
            dedupe_key: entry.get(F_DEDUPE),
            last_error: entry.get(F_ERROR),
            payload: entry.get(F_PAYLOAD)?,
        })
    }

    /// How long ago the entry became available (its id is the server time it was added).
    pub(crate) fn waited_secs(&self) -> Option<f64> {
        let added_ms: u64 = self.stream_id.split('-').next()?.parse().ok()?;
        let now_ms = u64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .ok()?
                .as_millis(),
        )
        .ok()?;
        Some(now_ms.saturating_sub(added_ms) as f64 / 1_000.0)
    }
}
