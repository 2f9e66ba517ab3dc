//! Lattice operations as jobs: the payload the API validates and stores in `jobs.params`,
//! and the handler that runs the engine off the async runtime, reporting progress and
//! honouring cancellation between chunks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use catalytic_db::jobs::Job;
use serde::{Deserialize, Serialize};

use crate::JobError;
use crate::handler::{JobHandle, Outcome};
use crate::lattice::{self, Boundary, Control, LatticeError, LatticeSpec};

/// Paths longer than this many vertices are reported by length only.
pub const PATH_LIMIT: usize = 10_000;
/// The most working memory one operation may need (the engine's own figure).
pub const MAX_WORKING_MEMORY: u128 = 4 << 30;

/// How an XOR key is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyFormat {
    #[default]
    Text,
    Hex,
}

/// One operation on a lattice, as submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "operation", content = "params", rename_all = "snake_case")]
pub enum LatticeOp {
    ShortestPath {
        start: Vec<u64>,
        end: Vec<u64>,
    },
    ConnectedComponents,
    XorTransform {
        key: String,
        #[serde(default)]
        key_format: KeyFormat,
        rounds: u32,
    },
    Statistics,
}

impl LatticeOp {
    /// The job kind (`lattice.shortest_path`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            LatticeOp::ShortestPath { .. } => "lattice.shortest_path",
            LatticeOp::ConnectedComponents => "lattice.connected_components",
            LatticeOp::XorTransform { .. } => "lattice.xor_transform",
            LatticeOp::Statistics => "lattice.statistics",
        }
    }

    /// The key bytes of an XOR transform.
    pub fn key_bytes(key: &str, format: KeyFormat) -> Result<Vec<u8>, String> {
        let bytes = match format {
            // The key is stored as given in `jobs.params` (jsonb), which cannot hold a NUL.
            KeyFormat::Text if key.contains('\0') => {
                return Err(
                    "must not contain NUL characters; send a binary key with key_format hex".into(),
                );
            }
            KeyFormat::Text => key.as_bytes().to_vec(),
            KeyFormat::Hex => decode_hex(key).ok_or("must be an even number of hex digits")?,
        };
        if bytes.is_empty() {
            return Err("must not be empty".into());
        }
        if bytes.len() > 1024 {
            return Err("must be at most 1024 bytes".into());
        }
        Ok(bytes)
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The engine's spec of a stored lattice.
pub fn spec_of(row: &catalytic_db::lattices::Lattice) -> Result<LatticeSpec, LatticeError> {
    let boundary = if row.boundary == "periodic" {
        Boundary::Periodic
    } else {
        Boundary::Open
    };
    LatticeSpec::new(
        row.dimensions as u32,
        row.size as u64,
        row.obstacle_density,
        row.seed as u64,
        boundary,
    )
}

/// Checks an operation against a lattice before it is queued: coordinates in range,
/// key and rounds valid. Returns (field, message) on failure.
pub fn validate(spec: &LatticeSpec, op: &LatticeOp) -> Result<(), (String, String)> {
    match op {
        LatticeOp::ShortestPath { start, end } => {
            for (field, coords) in [("params.start", start), ("params.end", end)] {
                spec.coords_to_index(coords)
                    .map_err(|e| (field.to_owned(), e.to_string()))?;
            }
        }
        LatticeOp::XorTransform {
            key,
            key_format,
            rounds,
        } => {
            LatticeOp::key_bytes(key, *key_format).map_err(|m| ("params.key".to_owned(), m))?;
            if !(1..=64).contains(rounds) {
                return Err(("params.rounds".into(), "must be between 1 and 64".into()));
            }
        }
        LatticeOp::ConnectedComponents | LatticeOp::Statistics => {}
    }
    // An obstacle-free shortest path is closed-form and needs no working memory.
    let searches = !matches!(op, LatticeOp::ShortestPath { .. }) || spec.obstacle_density() > 0.0;
    if searches && spec.memory_bytes() > MAX_WORKING_MEMORY {
        return Err((
            "lattice".into(),
            format!(
                "needs {} bytes of working memory; this service runs at most {} per operation",
                spec.memory_bytes(),
                MAX_WORKING_MEMORY
            ),
        ));
    }
    Ok(())
}

/// Runs a lattice job: loads the lattice, runs the engine on a blocking thread, syncs
/// progress and cancellation every 250 ms meanwhile.
pub async fn run(handle: &JobHandle, job: &Job) -> Result<Outcome, JobError> {
    let op: LatticeOp = serde_json::from_value(job.params.clone())
        .map_err(|e| JobError::Abort(format!("invalid lattice job params: {e}")))?;
    let lattice_id = job
        .lattice_id
        .ok_or_else(|| JobError::Abort("the lattice was deleted".into()))?;
    let row = {
        let mut conn = handle.context().db.get().await?;
        catalytic_db::lattices::get_any(&mut conn, lattice_id)
            .await
            .map_err(|e| match e {
                catalytic_db::DbError::NotFound => {
                    JobError::Abort("the lattice was deleted".into())
                }
                other => other.into(),
            })?
    };
    let spec = spec_of(&row).map_err(|e| JobError::Abort(e.to_string()))?;
    let started = Instant::now();
    let worker_handle = handle.clone();
    let abandoned = Arc::new(AtomicBool::new(false));
    let dropped = abandoned.clone();
    let compute = tokio::task::spawn_blocking(move || {
        let progress = |p: u8| worker_handle.set_progress(p);
        let cancelled = || worker_handle.is_cancelled() || dropped.load(Ordering::Relaxed);
        let ctl = Control::new(&progress, &cancelled);
        compute(&spec, &op, &ctl)
    });
    let syncing = Arc::new(tokio::sync::Notify::new());
    let sync_handle = handle.clone();
    let stop = syncing.clone();
    let syncer = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.notified() => break,
                _ = tokio::time::sleep(Duration::from_millis(250)) => sync_handle.sync().await,
            }
        }
    });
    // From here on, a drop of this future (the job timeout, the worker's shutdown timeout)
    // stops the computation at its next chunk and the syncer at once.
    let _abandon = Abandon {
        flag: abandoned,
        syncer: syncer.abort_handle(),
    };
    let result = compute.await;
    syncing.notify_one();
    let _ = syncer.await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match result {
        Err(e) => {
            // The panic's text is ours, not the client's: it goes to the log.
            tracing::error!(error.cause = %e, "lattice computation panicked");
            Err(JobError::Retry(crate::error::INTERNAL_ERROR.into()))
        }
        Ok(Err(ComputeError::Lattice(LatticeError::Cancelled))) => Ok(Outcome::Cancelled),
        Ok(Err(ComputeError::Lattice(e))) => Err(JobError::Abort(e.to_string())),
        Ok(Err(ComputeError::Encode(e))) => Err(JobError::Abort(format!("result encoding: {e}"))),
        Ok(Ok(mut value)) => {
            if let Some(obj) = value.as_object_mut() {
                obj.insert("compute_ms".into(), elapsed_ms.into());
            }
            // Metered once the result is recorded, so never twice for one job.
            handle.meter_on_success(crate::usage::COMPUTE_MS, elapsed_ms.max(1) as i64);
            Ok(Outcome::Done(value))
        }
    }
}

/// Stops the work of a lattice run when the run ends or its future is dropped: the blocking
/// computation sees itself cancelled between chunks (and ends, freeing its CPU and memory,
/// and no longer holding up the runtime's shutdown), and the progress syncer is aborted
/// (no stale progress writes after the attempt is over).
struct Abandon {
    flag: Arc<AtomicBool>,
    syncer: tokio::task::AbortHandle,
}

impl Drop for Abandon {
    fn drop(&mut self) {
        self.flag.store(true, Ordering::Relaxed);
        self.syncer.abort();
    }
}

/// Why a computation produced no result.
enum ComputeError {
    Lattice(LatticeError),
    Encode(String),
}

impl From<LatticeError> for ComputeError {
    fn from(e: LatticeError) -> Self {
        ComputeError::Lattice(e)
    }
}

fn compute(
    spec: &LatticeSpec,
    op: &LatticeOp,
    ctl: &Control<'_>,
) -> Result<serde_json::Value, ComputeError> {
    let value = match op {
        LatticeOp::ShortestPath { start, end } => {
            serde_json::to_value(lattice::shortest_path(spec, start, end, PATH_LIMIT, ctl)?)
        }
        LatticeOp::ConnectedComponents => {
            serde_json::to_value(lattice::connected_components(spec, ctl)?)
        }
        LatticeOp::XorTransform {
            key,
            key_format,
            rounds,
        } => {
            let bytes =
                LatticeOp::key_bytes(key, *key_format).map_err(|_| LatticeError::EmptyKey)?;
            let r = lattice::xor_transform(spec, &bytes, *rounds, ctl)?;
            // 64-bit checksums as hex: JSON numbers lose precision above 2^53.
            Ok(serde_json::json!({
                "bytes": r.bytes,
                "rounds": r.rounds,
                "checksum_before": format!("{:016x}", r.checksum_before),
                "checksum_after": format!("{:016x}", r.checksum_after),
                "checksum_restored": format!("{:016x}", r.checksum_restored),
                "changed_bytes": r.changed_bytes,
                "restored": r.restored,
            }))
        }
        LatticeOp::Statistics => serde_json::to_value(lattice::statistics(spec, ctl)?),
    };
    value.map_err(|e| ComputeError::Encode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_round_trip_through_their_stored_form() {
        let op: LatticeOp = serde_json::from_value(serde_json::json!({
            "operation": "shortest_path", "params": {"start": [0, 0], "end": [3, 4]}
        }))
        .unwrap();
        assert_eq!(op.kind(), "lattice.shortest_path");
        let op: LatticeOp =
            serde_json::from_value(serde_json::json!({"operation": "statistics"})).unwrap();
        assert_eq!(op, LatticeOp::Statistics);
        assert!(
            serde_json::from_value::<LatticeOp>(serde_json::json!({"operation": "nope"})).is_err()
        );
    }

    #[test]
    fn hex_keys_decode_and_bad_ones_are_refused() {
        assert_eq!(
            LatticeOp::key_bytes("00ff10", KeyFormat::Hex).unwrap(),
            vec![0, 255, 16]
        );
        assert!(LatticeOp::key_bytes("0g", KeyFormat::Hex).is_err());
        assert!(LatticeOp::key_bytes("abc", KeyFormat::Hex).is_err());
        assert!(LatticeOp::key_bytes("", KeyFormat::Text).is_err());
    }
}
