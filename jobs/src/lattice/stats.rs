//! Whole-lattice statistics.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::bfs::{self, Outcome, SearchSetup};
use super::bitset::bit;
use super::control::{Control, Reporter, StopFlag};
use super::error::LatticeError;
use super::geometry::Grid;
use super::obstacles::fill_blocked;
use super::parallel::{split, team, threads_for};
use super::spec::{Boundary, LatticeSpec};

/// How `diameter` was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiameterMethod {
    /// No vertex is blocked: `d * (n - 1)` (open) or `d * floor(n / 2)`
    /// (periodic). Exact.
    ExactFormula,
    /// Obstacles present: a BFS from the lowest-index open vertex finds the
    /// (lowest-index) farthest vertex `u`; a second BFS from `u` gives its
    /// eccentricity. That is a lower bound on the diameter of `u`'s
    /// component (exact on trees, usually exact or close on lattices), not
    /// the diameter itself.
    DoubleSweepLowerBound,
    /// Every vertex is blocked; `diameter` is `None`.
    NoOpenVertices,
}

/// Result of [`statistics`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatisticsResult {
    pub vertices: u64,
    /// Edges of the full lattice, ignoring obstacles.
    pub edges: u64,
    /// Edges between two unblocked vertices.
    pub open_edges: u64,
    pub blocked: u64,
    pub open_vertices: u64,
    pub diameter: Option<u64>,
    pub diameter_method: DiameterMethod,
    /// `degree_histogram[k]`: unblocked vertices with exactly `k` unblocked
    /// neighbours, `k` in `0..=2d`.
    pub degree_histogram: Vec<u64>,
    /// See [`LatticeSpec::memory_bytes`].
    pub memory_bytes: u64,
    /// See [`LatticeSpec::explicit_memory_bytes`] (saturating).
    pub explicit_memory_bytes: u64,
    pub memory_reduction: f64,
}

const CHUNK: u64 = 1 << 14;

/// Counts, degree histogram and diameter (see [`DiameterMethod`]). Uses a
/// 1-bit-per-vertex obstacle bitset for the scan (in parallel on large
/// lattices), frees it, then (only when obstacles exist) runs two BFS
/// sweeps with a 1-bit visited set each; a single-source BFS runs on one
/// thread (see the `bfs` module), only its initialisation is parallel.
pub fn statistics(spec: &LatticeSpec, ctl: &Control<'_>) -> Result<StatisticsResult, LatticeError> {
    spec.check_engine_limit()?;
    let rep = Reporter::start(ctl);
    rep.check()?;
    let grid = Grid::new(spec);
    let threads = threads_for(ctl, spec.vertices());
    let vertices = spec.vertices();
    let stop = StopFlag::default();

    // Phase 1 (0..20%): obstacle bitset.
    let mut blocked_set = vec![0u64; vertices.div_ceil(64) as usize];
    {
        let per = blocked_set.len().div_ceil(threads).max(1);
        let parts: Vec<Mutex<&mut [u64]>> = blocked_set.chunks_mut(per).map(Mutex::new).collect();
        let (seed, thr) = (spec.seed(), spec.obstacle_threshold());
        team(parts.len(), |t| {
            let mut part = parts[t].lock().unwrap_or_else(|e| e.into_inner());
            let first_word = t * per;
            let len = part.len();
            for (c, chunk) in part.chunks_mut(1 << 10).enumerate() {
                let word = first_word + (c << 10);
                fill_blocked(seed, thr, word as u64 * 64, vertices, chunk);
                if t == 0 {
                    rep.phase(0, 20, ((c + 1) << 10) as u64, len as u64);
                }
                if stop.poll(ctl) {
                    return;
                }
            }
        });
    }
    stop.result()?;

    // Phase 2 (20..40%): blocked count and degree histogram.
    let d = grid.d;
    let scans = team(threads, |t| {
        let (lo, hi) = split(vertices, threads, t);
        let mut hist = vec![0u64; 2 * d + 1];
        let mut blocked = 0u64;
        let mut v = lo;
        while v < hi {
            let end = (v + CHUNK).min(hi);
            for v in v..end {
                if bit(&blocked_set, v) {
                    blocked += 1;
                } else {
                    let mut deg = 0usize;
                    grid.neighbours(v, |w| deg += usize::from(!bit(&blocked_set, w)));
                    hist[deg] += 1;
                }
            }
            v = end;
            if t == 0 {
                rep.phase(20, 20, v - lo, hi - lo);
            }
            if stop.poll(ctl) {
                break;
            }
        }
        (hist, blocked)
    });
    stop.result()?;
    let mut degree_histogram = vec![0u64; 2 * d + 1];
    let mut blocked = 0;
    for (hist, b) in scans {
        blocked += b;
        for (acc, h) in degree_histogram.iter_mut().zip(hist) {
            *acc += h;
        }
    }
    let degree_sum: u64 = degree_histogram
        .iter()
        .enumerate()
        .map(|(k, &c)| k as u64 * c)
        .sum();
    let open_vertices = vertices - blocked;

    // Phase 3 (40..99%): diameter.
    let (diameter, diameter_method) = if open_vertices == 0 {
        (None, DiameterMethod::NoOpenVertices)
    } else if blocked == 0 {
        let n = spec.size();
        let per_axis = match spec.boundary() {
            Boundary::Open => n - 1,
            Boundary::Periodic => n / 2,
        };
        (
            Some(u64::from(spec.dimensions()) * per_axis),
            DiameterMethod::ExactFormula,
        )
    } else {
        let first_open = blocked_set
            .iter()
            .position(|&w| w != !0)
            .map(|i| i as u64 * 64 + u64::from((!blocked_set[i]).trailing_zeros()))
            .unwrap_or(0);
        drop(blocked_set);
        let sweep = |source: u64, base: u8| -> Result<(u64, u64), LatticeError> {
            let sources = [source];
            let setup = SearchSetup {
                grid: &grid,
                seed: spec.seed(),
                threshold: spec.obstacle_threshold(),
                sources: &sources,
                lower_bound: 0,
                threads,
                reporter: &rep,
                base,
                span: 29,
            };
            match bfs::run(&setup)?.outcome {
                Outcome::Exhausted {
                    eccentricity,
                    farthest,
                } => Ok((eccentricity, farthest)),
                _ => Ok((0, source)),
            }
        };
        let (_, far) = sweep(first_open, 40)?;
        let (ecc, _) = sweep(far, 70)?;
        (Some(ecc), DiameterMethod::DoubleSweepLowerBound)
    };

    let sat = |x: u128| u64::try_from(x).unwrap_or(u64::MAX);
    let result = StatisticsResult {
        vertices,
        edges: sat(spec.edges()),
        open_edges: degree_sum / 2,
        blocked,
        open_vertices,
        diameter,
        diameter_method,
        degree_histogram,
        memory_bytes: sat(spec.memory_bytes()),
        explicit_memory_bytes: sat(spec.explicit_memory_bytes()),
        memory_reduction: spec.memory_reduction(),
    };
    rep.finish();
    Ok(result)
}
