//! Level-synchronous breadth-first search over the implicit lattice, from
//! one source (eccentricity) or from two (bidirectional shortest path).
//!
//! Working state: one [`Labels`] array (2 bits per vertex) per direction,
//! with blocked vertices pre-marked, plus frontier queues. A team of threads
//! (the calling thread is the leader) shares the labels as atomic words:
//!
//! * The leader decides every step: it expands the smaller of the two
//!   frontiers (the standard bidirectional rule), one level.
//! * A level of at least [`PAR_MIN_FRONTIER`] vertices is split evenly over
//!   the team; each thread claims neighbours with an atomic `fetch_or` (a
//!   relaxed load first, so already-reached vertices cost no RMW) and pushes
//!   them to its own next-frontier queue. Two spinning barriers per
//!   parallel level.
//! * Smaller levels are expanded by the leader alone with plain
//!   loads/stores while the others wait, so a long thin search (1-D, or the
//!   first levels around a source) costs no synchronisation per level.
//!
//! Termination of the bidirectional search: when expanding side `S` from
//! level `a` to `a + 1` (the other side at level `b`) finds vertices already
//! reached by the other side, no path was shorter than `a + b + 1` (else the
//! searches would have met before) and each such vertex lies on a path of
//! exactly `a + 1 + b`. The level is completed and the smallest meeting index
//! kept, so the result does not depend on the number of threads.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError, RwLock};

use super::bitset::{Labels, level_label};
use super::control::Reporter;
use super::error::LatticeError;
use super::geometry::Grid;
use super::obstacles::{blocked_bits, blocked_by_rule, spread_bits};
use super::parallel::{ReleaseOnPanic, SpinBarrier, split, team};

/// Levels with fewer frontier vertices are expanded by the leader alone.
pub(crate) const PAR_MIN_FRONTIER: usize = 1024;
/// Label words initialised between two progress/cancellation checks.
const INIT_CHUNK_WORDS: usize = 1 << 14;
/// Frontier vertices expanded between two progress/cancellation checks.
const CHECK_EVERY: u64 = 1 << 16;

pub(crate) struct SearchSetup<'a> {
    pub(crate) grid: &'a Grid,
    pub(crate) seed: u64,
    pub(crate) threshold: u64,
    /// One source (single-source BFS) or two distinct ones (bidirectional).
    /// Sources are treated as open whatever the obstacle rule says.
    pub(crate) sources: &'a [u64],
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
    /// Vertices labelled (sources included).
    pub(crate) visited: u64,
    pub(crate) labels: Vec<Labels>,
}

#[derive(Debug, Clone, Copy)]
enum Plan {
    Expand {
        side: usize,
        parity: usize,
        label: u64,
    },
    Exit,
}

type Queue = RwLock<Vec<u64>>;

struct Shared<'a> {
    s: &'a SearchSetup<'a>,
    threads: usize,
    labels: Vec<Labels>,
    /// `bufs[side][parity][thread]`: frontier queues, double-buffered.
    bufs: Vec<[Vec<Queue>; 2]>,
    barrier: SpinBarrier,
    plan: Mutex<Plan>,
    claimed: AtomicU64,
    meet: AtomicU64,
    blocked: AtomicU64,
}

pub(crate) fn run(s: &SearchSetup<'_>) -> Result<Search, LatticeError> {
    let threads = s.threads.max(1);
    let sides = s.sources.len();
    debug_assert!(sides == 1 || (sides == 2 && s.sources[0] != s.sources[1]));
    let bufs = (0..sides)
        .map(|side| {
            let make = |parity: usize| -> Vec<Queue> {
                (0..threads)
                    .map(|t| {
                        RwLock::new(if parity == 0 && t == 0 {
                            vec![s.sources[side]]
                        } else {
                            Vec::new()
                        })
                    })
                    .collect()
            };
            [make(0), make(1)]
        })
        .collect();
    let sh = Shared {
        s,
        threads,
        labels: (0..sides).map(|_| Labels::new(s.grid.vertices)).collect(),
        bufs,
        barrier: SpinBarrier::new(threads),
        plan: Mutex::new(Plan::Exit),
        claimed: AtomicU64::new(0),
        meet: AtomicU64::new(u64::MAX),
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
        labels: sh.labels,
    })
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

/// Initialises this thread's share of the label words: blocked vertices
/// (and padding) get label 1, the rest 0; sources in the share are forced
/// open and labelled as level 0 of their own side. Returns false if the
/// leader saw a cancellation.
fn init_share(sh: &Shared<'_>, tid: usize) -> bool {
    let s = sh.s;
    let words = sh.labels[0].word_count();
    let (lo, hi) = split(words as u64, sh.threads, tid);
    let (lo, hi) = (lo as usize, hi as usize);
    let vertices = s.grid.vertices;
    let mut blocked = 0u64;
    let mut w = lo;
    while w < hi {
        let end = (w + INIT_CHUNK_WORDS).min(hi);
        for i in w..end {
            let first = (i as u64) * 32;
            let bits = blocked_bits(s.seed, s.threshold, first, vertices, 32);
            let real = vertices.saturating_sub(first).min(32);
            let real_mask = if real == 32 { u32::MAX } else { (1u32 << real) - 1 };
            blocked += u64::from((bits as u32 & real_mask).count_ones());
            let spread = spread_bits(bits as u32);
            for l in &sh.labels {
                l.store_word(i, spread);
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
    let owns = |v: u64| ((v >> 5) as usize) >= lo && ((v >> 5) as usize) < hi;
    for &src in s.sources {
        if owns(src) {
            for l in &sh.labels {
                l.set(src, 0);
            }
            if blocked_by_rule(s.seed, s.threshold, src) {
                blocked -= 1;
            }
        }
    }
    for (side, &src) in s.sources.iter().enumerate() {
        if owns(src) {
            sh.labels[side].set(src, level_label(0));
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
        let plan = *sh.plan.lock().unwrap_or_else(PoisonError::into_inner);
        match plan {
            Plan::Exit => return,
            Plan::Expand {
                side,
                parity,
                label,
            } => {
                expand_share(sh, tid, side, parity, label, true);
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
    *sh.plan.lock().unwrap_or_else(PoisonError::into_inner) = Plan::Exit;
    sh.barrier.wait();
    result
}

fn frontier_len(sh: &Shared<'_>, side: usize, parity: usize) -> usize {
    sh.bufs[side][parity].iter().map(|q| read(q).len()).sum()
}

/// The leader's loop: one level per iteration.
fn drive(sh: &Shared<'_>) -> Result<(Outcome, u64), LatticeError> {
    let s = sh.s;
    let sides = sh.labels.len();
    let open_total = s.grid.vertices - sh.blocked.load(Relaxed);
    let mut parity = [0usize; 2];
    let mut level = [0u64; 2];
    let mut size = [1usize; 2];
    let mut visited = sides as u64;
    let mut since_check = 0u64;
    loop {
        let side = if sides == 2 {
            if size[0] == 0 || size[1] == 0 {
                return Ok((Outcome::Unreachable, visited));
            }
            usize::from(size[1] < size[0])
        } else {
            0
        };
        since_check += size[side] as u64;
        if since_check >= CHECK_EVERY {
            since_check = 0;
            let span = s.span - s.span / 10;
            s.reporter
                .phase(s.base + s.span / 10, span, visited, open_total);
            if s.reporter.ctl().cancelled() {
                return Err(LatticeError::Cancelled);
            }
        }
        let label = level_label(level[side] + 1);
        sh.claimed.store(0, Relaxed);
        sh.meet.store(u64::MAX, Relaxed);
        if sh.threads > 1 && size[side] >= PAR_MIN_FRONTIER {
            *sh.plan.lock().unwrap_or_else(PoisonError::into_inner) = Plan::Expand {
                side,
                parity: parity[side],
                label,
            };
            sh.barrier.wait();
            expand_share(sh, 0, side, parity[side], label, true);
            sh.barrier.wait();
            if sh.barrier.is_released() {
                // A worker panicked; the panic is propagated by the team.
                return Err(LatticeError::Cancelled);
            }
        } else {
            expand_share(sh, 0, side, parity[side], label, false);
            for q in &sh.bufs[side][parity[side] ^ 1][1..] {
                write(q).clear();
            }
        }
        let next = parity[side] ^ 1;
        let new_size = frontier_len(sh, side, next);
        visited += sh.claimed.load(Relaxed);
        if sides == 1 && new_size == 0 {
            let farthest = sh.bufs[0][parity[0]]
                .iter()
                .filter_map(|q| read(q).iter().copied().min())
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
        parity[side] = next;
        level[side] += 1;
        size[side] = new_size;
        let meet = sh.meet.load(Relaxed);
        if meet != u64::MAX {
            return Ok((
                Outcome::Met {
                    vertex: meet,
                    dist: level,
                },
                visited,
            ));
        }
    }
}

/// Expands this thread's share of the frontier of `side` (all of it when
/// `!parallel`) into its own next-frontier queue.
fn expand_share(
    sh: &Shared<'_>,
    tid: usize,
    side: usize,
    parity: usize,
    label: u64,
    parallel: bool,
) {
    let cur: Vec<_> = sh.bufs[side][parity].iter().map(read).collect();
    let total: usize = cur.iter().map(|q| q.len()).sum();
    let (lo, hi) = if parallel {
        let (a, b) = split(total as u64, sh.threads, tid);
        (a as usize, b as usize)
    } else {
        (0, total)
    };
    let mut next = write(&sh.bufs[side][parity ^ 1][tid]);
    next.clear();
    let mine = &sh.labels[side];
    let other = if sh.labels.len() == 2 {
        Some(&sh.labels[side ^ 1])
    } else {
        None
    };
    let grid = sh.s.grid;
    let mut meet = u64::MAX;
    let mut pos = 0usize;
    for q in &cur {
        let a = lo.max(pos);
        let b = hi.min(pos + q.len());
        if a < b {
            let slice = &q[a - pos..b - pos];
            if parallel {
                expand::<true>(grid, slice, mine, label, other, &mut next, &mut meet);
            } else {
                expand::<false>(grid, slice, mine, label, other, &mut next, &mut meet);
            }
        }
        pos += q.len();
    }
    sh.claimed.fetch_add(next.len() as u64, Relaxed);
    if meet != u64::MAX {
        sh.meet.fetch_min(meet, Relaxed);
    }
}

#[inline(always)]
fn expand<const ATOMIC: bool>(
    grid: &Grid,
    frontier: &[u64],
    mine: &Labels,
    label: u64,
    other: Option<&Labels>,
    next: &mut Vec<u64>,
    meet: &mut u64,
) {
    match other {
        Some(other) => {
            for &v in frontier {
                grid.neighbours(v, |w| {
                    if mine.claim::<ATOMIC>(w, label) {
                        next.push(w);
                        if other.get(w) != 0 && w < *meet {
                            *meet = w;
                        }
                    }
                });
            }
        }
        None => {
            for &v in frontier {
                grid.neighbours(v, |w| {
                    if mine.claim::<ATOMIC>(w, label) {
                        next.push(w);
                    }
                });
            }
        }
    }
}

/// Walks from `from` (at distance `dist` of the labels' source) back to the
/// source, returning `[from, ..., source]`: each step goes to the first
/// neighbour (fixed order) that is open and labelled one level lower.
pub(crate) fn walk_back(
    grid: &Grid,
    labels: &Labels,
    from: u64,
    dist: u64,
    open: impl Fn(u64) -> bool,
) -> Vec<u64> {
    let mut out = Vec::with_capacity(usize::try_from(dist).unwrap_or(0).saturating_add(1));
    out.push(from);
    let mut cur = from;
    for lvl in (0..dist).rev() {
        let want = level_label(lvl);
        let mut found = None;
        grid.neighbours(cur, |w| {
            if found.is_none() && labels.get(w) == want && open(w) {
                found = Some(w);
            }
        });
        match found {
            Some(w) => {
                out.push(w);
                cur = w;
            }
            None => {
                debug_assert!(false, "BFS labels lost the parent of {cur}");
                break;
            }
        }
    }
    out
}
