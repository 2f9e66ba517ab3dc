//! The task payload of every queue.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What travels through Redis: which job to run and its input. When the job has a row in
/// PostgreSQL (`job_id`), that row is the truth and the handler reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The `jobs` row, when the job has one.
    pub job_id: Option<Uuid>,
    /// What to run, e.g. `lattice.shortest_path`, `email.send`, `usage.rollup`.
    pub kind: String,
    /// The kind's input.
    #[serde(default)]
    pub payload: serde_json::Value,
    /// The API request that caused it, carried into the worker's logs.
    #[serde(default)]
    pub request_id: Option<String>,
}

impl Envelope {
    pub fn new(kind: impl Into<String>, payload: serde_json::Value) -> Self {
        Self {
            job_id: None,
            kind: kind.into(),
            payload,
            request_id: None,
        }
    }

    pub fn for_job(job_id: Uuid, kind: impl Into<String>, request_id: Option<String>) -> Self {
        Self {
            job_id: Some(job_id),
            kind: kind.into(),
            payload: serde_json::Value::Null,
            request_id,
        }
    }
}
