//! Level-synchronous breadth-first search over the implicit lattice, from
//! one source (eccentricity) or from two (bidirectional shortest path).
//!
//! Working state per direction:
//! * a visited bitset ([`AtomicBits`], 1 bit per vertex, blocked vertices
//!   pre-set): the only array the hot loop probes, `2d` times per expanded
//!   vertex (1 MiB per 8M vertices, about one core's L2);
//! * for two-source searches, a [`Labels`] array (2 bits per vertex),
//!   written only for vertices whose distance `L` is a multiple of `k`
//!   ([`label_every`]: 4, 3 or 2 as `d` grows), with `1 + (L / k) mod 3`, when
//!   they are expanded as part of a frontier (one level after they were
//!   reached). Walking a path back from distance `L` then looks for a chain
//!   of `k` (or fewer, down to the previous multiple) edges through visited
//!   open vertices ending at a vertex labelled for `L - k`: the intermediate
//!   vertices' distances are pinned by the two ends (adjacent vertices'
//!   distances differ by at most one), and the three labelled levels such a
//!   chain can reach are distinct mod 3. This writes `1/k` of the labels a
//!   per-level scheme would, the one random write per vertex that the hot
//!   loop cannot share with its probes;
//! * two frontier queues.
//!
//! Each array has a single writer at any time, so claiming a vertex is a
//! plain, branch-free load/store (no atomic read-modify-write).
//!
//! Schedule (the same whatever the thread count, so results are identical):
//! when both frontiers are of similar size (within a factor 2) both
//! directions advance one level in the same step, otherwise only the smaller
//! one does (the classic bidirectional rule). Parallelism is one thread per
//! direction: in a two-direction step with enough work the leader expands
//! the forward frontier while worker 1 expands the backward one, each in its
//! own arrays (so each core mostly works in its own cache), with two
//! barriers per step. Splitting one level across threads that write the
//! same bitset words was measured to be slower than one thread (cache-line
//! ping-pong), so one-direction steps, and single-source searches, run on
//! the leader alone. All threads build the bitsets (the obstacle rule for
//! every vertex) in parallel.
//!
//! Meeting: before a step, side F is at level `a`, side B at level `b`, and
//! no vertex is reached by both, so the distance `D > a + b` (a shortest path
//! would have a vertex at distance `<= a` from one end and `<= b` from the
//! other). After a one-direction step, a new F vertex already reached by B
//! proves `D = a + b + 1` (its B distance must be exactly `b`). After a
//! two-direction step, a new vertex of one side that is in the other side's
//! previous frontier (level `a` or `b`) proves `D = a + b + 1`; failing
//! that, a vertex new on both sides proves `D = a + b + 2` (this membership
//! test runs once, in the step where the sides first touch). The smallest
//! meeting index of the decisive kind is kept, so the path does not depend
//! on the thread count. Meetings are only looked for once `a + b` can reach
//! the obstacle-free distance between the sources (a lower bound of `D`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::bitset::{AtomicBits, Labels, level_label};
use super::control::Reporter;
use super::error::LatticeError;
use super::geometry::{Grid, Stepper, WithStepper};
use super::obstacles::{blocked_bits, blocked_by_rule};
use super::parallel::{ReleaseOnPanic, SpinBarrier, split, team};

/// Two-direction steps with fewer frontier vertices in total run on the
/// leader alone (a barrier round trip would cost more).
pub(crate) const PAR_MIN_FRONTIER: usize = 2048;
/// Bitset words initialised between two progress/cancellation checks.
const INIT_CHUNK_WORDS: usize = 1 << 13;
/// Frontier vertices expanded between two progress/cancellation checks.
const CHECK_EVERY: u64 = 1 << 16;

/// Only levels that are multiples of this are labelled (see the module
/// docs); walking back searches `(2d)^k` chains per `k` levels.
pub(crate) fn label_every(d: usize) -> u64 {
    match d {
        0..=3 => 4,
        4..=5 => 3,
        _ => 2,
    }
}

pub(crate) struct SearchSetup<'a> {
    pub(crate) grid: &'a Grid,
    pub(crate) seed: u64,
    pub(crate) threshold: u64,
    /// One source (single-source BFS) or two distinct ones (bidirectional).
    /// Sources are treated as open whatever the obstacle rule says.
    pub(crate) sources: &'a [u64],
    /// A lower bound of the distance between two sources (0 if unknown).
    pub(crate) lower_bound: u64,
    pub(crate) threads: usize,
    pub(crate) reporter: &'a Reporter<'a>,
    /// Progress range `[base, base + span]` for this search.
    pub(crate) base: u8,
    pub(crate) span: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The two searches met at `vertex`, `dist[i]` from source `i`.
    Met { vertex: u64, dist: [u64; 2] },
    /// A frontier ran dry before the searches met.
    Unreachable,
    /// Single source: the last level reached and its smallest vertex.
    Exhausted { eccentricity: u64, farthest: u64 },
}

pub(crate) struct Search {
    pub(crate) outcome: Outcome,
    /// Vertices reached (sources included).
    pub(crate) visited: u64,
    /// Per direction: visited sets and labels of the levels that are
    /// multiples of [`label_every`], for [`walk_back`].
    pub(crate) visited_sets: Vec<AtomicBits>,
    pub(crate) labels: Vec<Labels>,
}

#[derive(Debug, Clone, Copy)]
enum Plan {
    /// Worker 1 expands the backward side, whose frontier is at `level`.
    Backward {
        level: u64,
    },
    Exit,
}

/// A frontier queue whose buffer only grows, so pushes are branch-free.
#[derive(Default)]
struct Frontier {
    data: Vec<u64>,
    len: usize,
}

impl Frontier {
    fn as_slice(&self) -> &[u64] {
        &self.data[..self.len]
    }
}

/// The queues of one direction: `cur` is the last completed level, `prev`
/// the one before it (kept for the single-source "farthest" answer).
#[derive(Default)]
struct Queues {
    cur: Frontier,
    prev: Frontier,
}

struct Shared<'a> {
    s: &'a SearchSetup<'a>,
    threads: usize,
    visited: Vec<AtomicBits>,
    labels: Vec<Labels>,
    queues: Vec<Mutex<Queues>>,
    barrier: SpinBarrier,
    plan: Mutex<Plan>,
    blocked: AtomicU64,
}

pub(crate) fn run(s: &SearchSetup<'_>) -> Result<Search, LatticeError> {
    let threads = s.threads.max(1);
    let sides = s.sources.len();
    debug_assert!(sides == 1 || (sides == 2 && s.sources[0] != s.sources[1]));
    let queues = s
        .sources
        .iter()
        .map(|&src| {
            Mutex::new(Queues {
                cur: Frontier {
                    data: vec![src],
                    len: 1,
                },
                prev: Frontier::default(),
            })
        })
        .collect();
    let labelled = if sides == 2 { 2 } else { 0 };
    let sh = Shared {
        s,
        threads,
        visited: (0..sides)
            .map(|_| AtomicBits::new(s.grid.vertices))
            .collect(),
        labels: (0..labelled)
            .map(|_| Labels::new(s.grid.vertices))
            .collect(),
        queues,
        barrier: SpinBarrier::new(threads),
        plan: Mutex::new(Plan::Exit),
        blocked: AtomicU64::new(0),
    };
    let mut results = team(threads, |tid| {
        if tid == 0 {
            Some(leader(&sh))
        } else {
            worker(&sh, tid);
            None
        }
    });
    let (outcome, visited) = results
        .swap_remove(0)
        .unwrap_or(Err(LatticeError::Cancelled))?;
    Ok(Search {
        outcome,
        visited,
        visited_sets: sh.visited,
        labels: sh.labels,
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Initialises this thread's share of the visited words: blocked vertices
/// (and padding) set, the rest clear; sources in the share are forced open
/// and marked visited on their own side. Returns false if the leader saw a
/// cancellation.
fn init_share(sh: &Shared<'_>, tid: usize) -> bool {
    let s = sh.s;
    let words = sh.visited[0].word_count();
    let (lo, hi) = split(words as u64, sh.threads, tid);
    let (lo, hi) = (lo as usize, hi as usize);
    let vertices = s.grid.vertices;
    let mut blocked = 0u64;
    let mut w = lo;
    while w < hi {
        let end = (w + INIT_CHUNK_WORDS).min(hi);
        for i in w..end {
            let first = (i as u64) * 64;
            let bits = blocked_bits(s.seed, s.threshold, first, vertices, 64);
            let real = vertices.saturating_sub(first).min(64);
            let real_mask = if real == 64 { !0 } else { (1u64 << real) - 1 };
            blocked += u64::from((bits & real_mask).count_ones());
            for v in &sh.visited {
                v.store_word(i, bits);
            }
        }
        w = end;
        if tid == 0 {
            s.reporter
                .phase(s.base, s.span / 10, (w - lo) as u64, (hi - lo) as u64);
            if s.reporter.ctl().cancelled() {
                return false;
            }
        }
    }
    let owns = |v: u64| ((v >> 6) as usize) >= lo && ((v >> 6) as usize) < hi;
    for &src in s.sources {
        if owns(src) {
            for v in &sh.visited {
                v.set_to(src, false);
            }
            if blocked_by_rule(s.seed, s.threshold, src) {
                blocked -= 1;
            }
        }
    }
    for (side, &src) in s.sources.iter().enumerate() {
        if owns(src) {
            sh.visited[side].set_to(src, true);
        }
    }
    sh.blocked.fetch_add(blocked, Relaxed);
    true
}

fn worker(sh: &Shared<'_>, tid: usize) {
    let _release = ReleaseOnPanic(&sh.barrier);
    init_share(sh, tid);
    sh.barrier.wait();
    loop {
        sh.barrier.wait();
        if sh.barrier.is_released() {
            return;
        }
        let plan = *lock(&sh.plan);
        match plan {
            Plan::Exit => return,
            Plan::Backward { level } => {
                if tid == 1 {
                    expand(sh, 1, Some(level));
                }
                sh.barrier.wait();
            }
        }
    }
}

fn leader(sh: &Shared<'_>) -> Result<(Outcome, u64), LatticeError> {
    let _release = ReleaseOnPanic(&sh.barrier);
    let ok = init_share(sh, 0);
    sh.barrier.wait();
    let result = if ok {
        drive(sh)
    } else {
        Err(LatticeError::Cancelled)
    };
    *lock(&sh.plan) = Plan::Exit;
    sh.barrier.wait();
    result
}

/// New vertices of `side` already reached by the other side.
fn touching(sh: &Shared<'_>, side: usize) -> Vec<u64> {
    let q = lock(&sh.queues[side]);
    let other = &sh.visited[side ^ 1];
    q.cur
        .as_slice()
        .iter()
        .copied()
        .filter(|&w| other.get(w))
        .collect()
}

/// The smallest of `candidates` that is in `side`'s previous frontier, and
/// the smallest that is not.
fn split_by_previous(sh: &Shared<'_>, side: usize, candidates: &[u64]) -> (u64, u64) {
    let q = lock(&sh.queues[side]);
    let set: std::collections::HashSet<u64> = candidates.iter().copied().collect();
    let mut inside = std::collections::HashSet::new();
    for &w in q.prev.as_slice() {
        if set.contains(&w) {
            inside.insert(w);
        }
    }
    let min_in = candidates
        .iter()
        .copied()
        .filter(|w| inside.contains(w))
        .min()
        .unwrap_or(u64::MAX);
    let min_out = candidates
        .iter()
        .copied()
        .filter(|w| !inside.contains(w))
        .min()
        .unwrap_or(u64::MAX);
    (min_in, min_out)
}

/// The leader's loop: one step (one or two levels) per iteration.
fn drive(sh: &Shared<'_>) -> Result<(Outcome, u64), LatticeError> {
    let s = sh.s;
    let sides = sh.visited.len();
    let open_total = s.grid.vertices - sh.blocked.load(Relaxed);
    let mut level = [0u64; 2];
    let mut size = [1usize; 2];
    let mut visited = sides as u64;
    let mut since_check = 0u64;
    loop {
        if sides == 2 && (size[0] == 0 || size[1] == 0) {
            return Ok((Outcome::Unreachable, visited));
        }
        since_check += (size[0] + if sides == 2 { size[1] } else { 0 }) as u64;
        if since_check >= CHECK_EVERY {
            since_check = 0;
            let span = s.span - s.span / 10;
            s.reporter
                .phase(s.base + s.span / 10, span, visited, open_total);
            if s.reporter.ctl().cancelled() {
                return Err(LatticeError::Cancelled);
            }
        }
        if sides == 1 {
            let new = expand(sh, 0, None);
            if new == 0 {
                let q = lock(&sh.queues[0]);
                let farthest = q
                    .prev
                    .as_slice()
                    .iter()
                    .copied()
                    .min()
                    .unwrap_or(s.sources[0]);
                return Ok((
                    Outcome::Exhausted {
                        eccentricity: level[0],
                        farthest,
                    },
                    visited,
                ));
            }
            visited += new as u64;
            level[0] += 1;
            size[0] = new;
            continue;
        }
        let (a, b) = (level[0], level[1]);
        let (small, large) = (size[0].min(size[1]), size[0].max(size[1]));
        if large <= 2 * small {
            // Both directions advance one level.
            size = if sh.threads >= 2 && size[0] + size[1] >= PAR_MIN_FRONTIER {
                *lock(&sh.plan) = Plan::Backward { level: b };
                sh.barrier.wait();
                let f = expand(sh, 0, Some(a));
                sh.barrier.wait();
                if sh.barrier.is_released() {
                    // A worker panicked; the team propagates the panic.
                    return Err(LatticeError::Cancelled);
                }
                [f, lock(&sh.queues[1]).cur.len]
            } else {
                let f = expand(sh, 0, Some(a));
                [f, expand(sh, 1, Some(b))]
            };
            level = [a + 1, b + 1];
            visited += (size[0] + size[1]) as u64;
            if a + b + 2 >= s.lower_bound {
                let f_touch = touching(sh, 0);
                let b_touch = touching(sh, 1);
                if !f_touch.is_empty() || !b_touch.is_empty() {
                    // Sides touch: decide between a + b + 1 and a + b + 2.
                    let (f_exact, both) = split_by_previous(sh, 1, &f_touch);
                    let (b_exact, _) = split_by_previous(sh, 0, &b_touch);
                    let (vertex, dist) = if f_exact.min(b_exact) != u64::MAX {
                        if f_exact < b_exact {
                            (f_exact, [a + 1, b])
                        } else {
                            (b_exact, [a, b + 1])
                        }
                    } else {
                        (both, [a + 1, b + 1])
                    };
                    return Ok((Outcome::Met { vertex, dist }, visited));
                }
            }
        } else {
            let side = usize::from(size[1] < size[0]);
            size[side] = expand(sh, side, Some(level[side]));
            level[side] += 1;
            visited += size[side] as u64;
            if a + b + 1 >= s.lower_bound {
                if let Some(vertex) = touching(sh, side).into_iter().min() {
                    return Ok((
                        Outcome::Met {
                            vertex,
                            dist: level,
                        },
                        visited,
                    ));
                }
            }
        }
    }
}

/// Expands the frontier of `side` by one level. With `Some(level)` (the
/// frontier's level) and `level` a multiple of [`label_every`], the
/// frontier vertices are labelled on the way. Returns the size of the new
/// frontier.
fn expand(sh: &Shared<'_>, side: usize, level: Option<u64>) -> usize {
    let every = label_every(sh.s.grid.d);
    let label = level
        .filter(|l| l % every == 0)
        .map(|l| level_label(l / every));
    let mut guard = lock(&sh.queues[side]);
    let q = &mut *guard;
    std::mem::swap(&mut q.cur, &mut q.prev);
    let (frontier, next) = (&q.prev, &mut q.cur);
    next.len = sh.s.grid.with_stepper(ExpandLevel {
        frontier: frontier.as_slice(),
        next: &mut next.data,
        visited: &sh.visited[side],
        labels: label.map(|l| (&sh.labels[side], l)),
    });
    next.len
}

/// One level of expansion: every unvisited neighbour of `frontier` is
/// claimed and appended to `next`; returns how many.
struct ExpandLevel<'a> {
    frontier: &'a [u64],
    next: &'a mut Vec<u64>,
    visited: &'a AtomicBits,
    labels: Option<(&'a Labels, u64)>,
}

impl WithStepper for ExpandLevel<'_> {
    type Output = usize;

    fn run<const D: usize>(self, st: Stepper<D>) -> usize {
        match self.labels {
            Some((labels, label)) => {
                expand_level(st, self.frontier, self.next, self.visited, |v| {
                    labels.set(v, label)
                })
            }
            None => expand_level(st, self.frontier, self.next, self.visited, |_| {}),
        }
    }
}

#[inline(always)]
fn expand_level<const D: usize>(
    st: Stepper<D>,
    frontier: &[u64],
    next: &mut Vec<u64>,
    visited: &AtomicBits,
    mut on_frontier: impl FnMut(u64),
) -> usize {
    let degree = 2 * D;
    let mut len = 0usize;
    let mut data: &mut [u64] = next.as_mut_slice();
    for &v in frontier {
        if data.len() < len + degree {
            let grow = (len + degree).max(data.len() * 2);
            next.resize(grow, 0);
            data = next.as_mut_slice();
        }
        on_frontier(v);
        st.neighbours(v, |w| {
            data[len] = w;
            len += visited.claim(w) as usize;
        });
    }
    len
}

/// Walks from `from` (at distance `dist` of the source of `visited` and
/// `labels`) back to the source, returning `[from, ..., source]`. Each leg
/// goes down to the previous multiple `T` of `k = label_every(d)` along the
/// first chain (fixed neighbour order) of visited open vertices that ends
/// at a vertex labelled for `T` (see the module docs for why such a chain
/// is a shortest-path segment).
pub(crate) fn walk_back(
    grid: &Grid,
    visited: &AtomicBits,
    labels: &Labels,
    from: u64,
    dist: u64,
    open: impl Fn(u64) -> bool,
) -> Vec<u64> {
    let every = label_every(grid.d);
    let mut out = Vec::with_capacity(usize::try_from(dist).unwrap_or(0).saturating_add(1));
    out.push(from);
    let mut lvl = dist;
    while lvl > 0 {
        let step = if lvl % every == 0 { every } else { lvl % every };
        let want = level_label((lvl - step) / every);
        let cur = *out.last().unwrap_or(&from);
        let mut chain = Vec::with_capacity(step as usize);
        let chained = find_chain(grid, visited, labels, &open, cur, step, want, &mut chain);
        if !chained {
            if cfg!(debug_assertions) {
                panic!("BFS labels lost the way back from {cur} at distance {lvl}");
            }
            break;
        }
        out.extend_from_slice(&chain);
        lvl -= step;
    }
    out
}

/// Depth-first search for a chain of exactly `steps` edges from `cur`
/// through visited open vertices to an open vertex labelled `want`.
#[allow(clippy::too_many_arguments)]
fn find_chain(
    grid: &Grid,
    visited: &AtomicBits,
    labels: &Labels,
    open: &impl Fn(u64) -> bool,
    cur: u64,
    steps: u64,
    want: u64,
    chain: &mut Vec<u64>,
) -> bool {
    let mut next = Vec::with_capacity(2 * grid.d);
    grid.neighbours(cur, |w| next.push(w));
    for w in next {
        if !open(w) {
            continue;
        }
        if steps == 1 {
            if labels.get(w) == want {
                chain.push(w);
                return true;
            }
        } else if visited.get(w) {
            chain.push(w);
            if find_chain(grid, visited, labels, open, w, steps - 1, want, chain) {
                return true;
            }
            chain.pop();
        }
    }
    false
}
