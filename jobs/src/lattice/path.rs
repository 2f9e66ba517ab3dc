//! Point-to-point shortest paths: a closed form without obstacles; with
//! obstacles a sweep for a path as short as without them (see `monotone`),
//! and a bidirectional BFS when there is none.

use serde::{Deserialize, Serialize};

use super::bfs::{self, Outcome, SearchSetup, walk_back};
use super::control::{Control, Reporter};
use super::error::{Endpoint, LatticeError};
use super::geometry::Grid;
use super::monotone;
use super::parallel::threads_for;
use super::spec::LatticeSpec;

/// How a path was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathMethod {
    /// No obstacles: per-axis distances (`|a - b|`, or `min(|a - b|, n - |a - b|)`
    /// when periodic), path built axis by axis; nothing is searched.
    ClosedForm,
    /// Obstacles leave a path as short as without them: found by one sweep
    /// over the box between the endpoints (its length is the obstacle-free
    /// lower bound, so it is shortest); nothing is searched.
    MonotoneSweep,
    /// Bidirectional level-synchronous BFS.
    BidirectionalBfs,
}

/// Result of [`shortest_path`]. Unreachable is a result, not an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathResult {
    pub reachable: bool,
    /// Edges on a shortest path.
    pub distance: Option<u64>,
    /// Vertices on that path (`distance + 1`).
    pub path_length: Option<u64>,
    /// The path's vertex coordinates, start first; `None` when unreachable
    /// or when `path_length > path_limit`.
    pub path: Option<Vec<Vec<u64>>>,
    /// Vertices the search labelled (0 for the closed form; for the
    /// monotone sweep, the vertices of the box it examined, 64 at a time).
    pub visited: u64,
    pub method: PathMethod,
}

/// Shortest path from `start` to `end` (coordinates). The endpoints are
/// never blocked. With `obstacle_density == 0` (open or periodic) the answer
/// is computed in closed form; otherwise by bidirectional BFS, using
/// `ctl.threads` threads on lattices of at least
/// [`PARALLEL_MIN_VERTICES`](super::PARALLEL_MIN_VERTICES) vertices. The
/// path is returned only if it has at most `path_limit` vertices.
pub fn shortest_path(
    spec: &LatticeSpec,
    start: &[u64],
    end: &[u64],
    path_limit: usize,
    ctl: &Control<'_>,
) -> Result<PathResult, LatticeError> {
    let threads = threads_for(ctl, spec.vertices());
    shortest_path_on(spec, start, end, path_limit, ctl, threads)
}

/// [`shortest_path`] on `threads` threads whatever the lattice's size.
pub(crate) fn shortest_path_on(
    spec: &LatticeSpec,
    start: &[u64],
    end: &[u64],
    path_limit: usize,
    ctl: &Control<'_>,
    threads: usize,
) -> Result<PathResult, LatticeError> {
    let s = spec.index_of(Endpoint::Start, start)?;
    let e = spec.index_of(Endpoint::End, end)?;
    if spec.obstacle_density() == 0.0 {
        let rep = Reporter::start(ctl);
        let result = closed_form(spec, start, end, path_limit);
        rep.finish();
        return Ok(result);
    }
    spec.check_engine_limit()?;
    let rep = Reporter::start(ctl);
    rep.check()?;
    if s == e {
        rep.finish();
        return Ok(PathResult {
            reachable: true,
            distance: Some(0),
            path_length: Some(1),
            path: (path_limit >= 1).then(|| vec![start.to_vec()]),
            visited: 1,
            method: PathMethod::BidirectionalBfs,
        });
    }
    let grid = Grid::new(spec);
    let lower_bound = grid.distance(s, e);
    let mut bfs_progress = 0;
    if ctl.sweep && monotone::applies(spec, start, end, lower_bound) {
        let want_path = lower_bound < path_limit as u64;
        if let Some(m) = monotone::monotone_path(spec, start, end, want_path, &rep, (0, 50))? {
            rep.finish();
            return Ok(PathResult {
                reachable: true,
                distance: Some(lower_bound),
                path_length: Some(lower_bound + 1),
                path: m
                    .path
                    .map(|p| p.into_iter().map(|v| spec.coords_unchecked(v)).collect()),
                visited: m.swept,
                method: PathMethod::MonotoneSweep,
            });
        }
        bfs_progress = 50;
    }
    let sources = [s, e];
    let setup = SearchSetup {
        grid: &grid,
        seed: spec.seed(),
        threshold: spec.obstacle_threshold(),
        sources: &sources,
        lower_bound,
        threads,
        reporter: &rep,
        base: bfs_progress,
        span: 99 - bfs_progress,
    };
    let search = bfs::run(&setup)?;
    let result = match search.outcome {
        Outcome::Met { vertex, dist } => {
            let distance = dist[0] + dist[1];
            let path_length = distance + 1;
            let path = (path_length <= path_limit as u64).then(|| {
                let open = |w: u64| w == s || w == e || !spec.is_blocked(w);
                let walk = |side: usize| {
                    walk_back(
                        &grid,
                        &search.ids,
                        &search.visited_sets[side],
                        &search.checkpoints[side],
                        sources[side],
                        vertex,
                        dist[side],
                        open,
                    )
                };
                // One thread walks both halves: with the legs pruned to
                // their obstacle-free distance a walk costs a fraction of
                // a millisecond (on two pool threads it measured no faster).
                let mut vertices = walk(0);
                vertices.reverse();
                let back = walk(1);
                vertices.extend_from_slice(back.get(1..).unwrap_or_default());
                vertices
                    .into_iter()
                    .map(|v| spec.coords_unchecked(v))
                    .collect()
            });
            PathResult {
                reachable: true,
                distance: Some(distance),
                path_length: Some(path_length),
                path,
                visited: search.visited,
                method: PathMethod::BidirectionalBfs,
            }
        }
        Outcome::Unreachable | Outcome::Exhausted { .. } => PathResult {
            reachable: false,
            distance: None,
            path_length: None,
            path: None,
            visited: search.visited,
            method: PathMethod::BidirectionalBfs,
        },
    };
    rep.finish();
    Ok(result)
}

/// Per-axis moves `(axis, plus, steps)` of a shortest path without obstacles.
fn axis_moves(spec: &LatticeSpec, start: &[u64], end: &[u64]) -> Vec<(usize, bool, u64)> {
    let n = spec.size();
    let wrap = spec.wraps();
    start
        .iter()
        .zip(end)
        .enumerate()
        .map(|(axis, (&a, &b))| {
            if wrap {
                let forward = (b + (n - a)) % n;
                let backward = (n - forward) % n;
                if forward <= backward {
                    (axis, true, forward)
                } else {
                    (axis, false, backward)
                }
            } else if b >= a {
                (axis, true, b - a)
            } else {
                (axis, false, a - b)
            }
        })
        .collect()
}

fn closed_form(spec: &LatticeSpec, start: &[u64], end: &[u64], path_limit: usize) -> PathResult {
    let n = spec.size();
    let moves = axis_moves(spec, start, end);
    let distance: u64 = moves.iter().map(|m| m.2).sum();
    let path_length = distance + 1;
    let path = (path_length <= path_limit as u64).then(|| {
        let mut cur = start.to_vec();
        let mut path = Vec::with_capacity(path_length as usize);
        path.push(cur.clone());
        for &(axis, plus, steps) in &moves {
            for _ in 0..steps {
                cur[axis] = if plus {
                    (cur[axis] + 1) % n
                } else {
                    (cur[axis] + n - 1) % n
                };
                path.push(cur.clone());
            }
        }
        path
    });
    PathResult {
        reachable: true,
        distance: Some(distance),
        path_length: Some(path_length),
        path,
        visited: 0,
        method: PathMethod::ClosedForm,
    }
}
