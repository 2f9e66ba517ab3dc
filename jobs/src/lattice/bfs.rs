//! Level-synchronous breadth-first search over the implicit lattice, from
//! one source (eccentricity) or from two (bidirectional shortest path).
//!
//! Working state per direction:
//! * a visited bitset ([`AtomicBits`], 1 bit per vertex, blocked vertices
//!   pre-set): the only array the hot loop probes, `2d` times per expanded
//!   vertex (1 MiB per 8M vertices, about one core's L2);
//! * for two-source searches, checkpoints: a copy of every `k`-th level
//!   ([`checkpoint_every`]: 8, or 4 when `d > 5`), as `u32` ids when they
//!   fit, or in the bricked numbering as the level's (brick, bits) pairs
//!   (sequential copies; at most `4 V / k` bytes over both directions for
//!   ids, `12 V / k` for pairs, since the two searches stop as soon as they
//!   meet). Walking a path back
//!   from distance `L` looks (layered BFS in a ball of radius `<= k`) for a
//!   walk of `L - T` edges through visited open vertices, `T` the previous
//!   multiple of `k`, ending at a vertex of checkpoint `T`: the distances
//!   along such a walk are pinned by its two ends (adjacent vertices'
//!   distances differ by at most one), so it is a piece of a shortest path.
//!   A per-vertex `distance mod 3` label array (2 bits per vertex) was
//!   measured first: its writes land on cold cache lines, one per vertex,
//!   and cost a third of the search;
//! * two frontier queues.
//!
//! Numbering ([`Ids`]): two-source searches on open lattices of three or
//! four dimensions number vertices by bricks of 64 ([`Bricks`]: 4 x 4 x 4,
//! 4 x 4 x 2 x 2), one bitset word per brick, keep each level as (brick,
//! bits) pairs and expand it a brick at a time ([`ExpandBricked`]): a search
//! front crosses a brick in several vertices, which move along every axis
//! with a few word operations instead of `2d` probes each (12-22% less time
//! per visited vertex with two threads, more with one; see [`Bricks`]).
//! Otherwise, on open lattices whose padded form has at most
//! twice the vertices, the bitsets and queues number vertices in the
//! lattice padded with one layer of always-set bits on every side (side
//! `n + 2`), so every move is `± (n + 2)^k`: no coordinates, divisions or
//! boundary tests per vertex. Otherwise (periodic, or tiny sides in high
//! dimensions) the vertex index itself, with moves from index arithmetic
//! and moves off the lattice sent to a padding bit past the end.
//!
//! Each array has a single writer at any time, so claiming a vertex is a
//! plain, branch-free load/store (no atomic read-modify-write).
//!
//! Schedule: first a far phase ([`far_phase`]): while `a + b` is below the
//! obstacle-free distance between the sources (a lower bound of the
//! distance) the searches cannot meet with the forward one at level `a`
//! and the backward one at level `b`, so both directions advance with no
//! meeting test, for as long as their sizes stay within a factor 2
//! (checked [`FAR_LAG`] levels behind). With one thread they alternate up
//! to `m = (lower_bound - 1) / 2` each. With two, each direction runs on
//! its own thread as fast as that thread goes, with no hand-off and no
//! wait per level, and the two share the `lower_bound - 1` levels by
//! claiming them one at a time: a thread on a slower (or busier) CPU does
//! fewer of them, instead of holding the other back (until the worker
//! shows up, the leader alternates; the worker then takes the backward
//! side over, however late). Which levels each side reaches then depends
//! on timing, so with two threads the path returned is one shortest path,
//! not always the same one among equally short paths, and the count of
//! visited vertices varies; the distance does not. (An even split was
//! measured here 15-20% slower in the median: the virtual CPUs of this
//! machine often run at different speeds while both are busy.) Then steps:
//! when both frontiers are of similar size (within a factor 2) both
//! directions advance one level in the same step, otherwise only the
//! smaller one does (the classic bidirectional rule). In a two-direction step with enough
//! work the leader publishes the step, expands the forward frontier, and
//! meanwhile a worker takes the backward one (each in its own arrays, so
//! each core mostly works in its own cache). Whoever comes first takes the
//! backward side (`fetch_max` on the step number): if the worker has not
//! shown up when the leader is done (descheduled on a busy machine, or
//! asleep), the leader does it itself, so the leader only ever waits for
//! work a running worker already holds, and two threads are never much
//! slower than one. Splitting one level across threads that write the same
//! bitset words was measured to be slower than one thread (cache-line
//! ping-pong; also with plain stores by layers of bricks in three phases,
//! which balanced the threads but cost a third more per vertex), so
//! one-direction steps, and single-source searches, run on the leader
//! alone. The bitsets (the obstacle rule for every vertex) are built by all
//! threads, taking chunks.
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
//! meeting index of the decisive kind is kept. Meetings are only looked for
//! once `a + b` can reach the obstacle-free distance between the sources (a
//! lower bound of `D`).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::bitset::{AtomicBits, claim_in};
use super::bricks::Bricks;
use super::control::Reporter;
use super::error::LatticeError;
use super::geometry::{Grid, Ids, Padded, Stepper, WithStepper};
use super::obstacles::{blocked_by_rule, fill_blocked, rule_bits};
use super::parallel::{FlagOnPanic, Signal, team, wait_busy};

/// Two-direction steps with fewer frontier vertices in total run on the
/// leader alone (a hand-off would cost more than it saves).
pub(crate) const PAR_MIN_FRONTIER: usize = 256;
/// Bitset words initialised between two progress/cancellation checks.
const INIT_CHUNK_WORDS: usize = 1 << 10;
/// Frontier vertices expanded between two progress/cancellation checks.
const CHECK_EVERY: u64 = 1 << 14;

/// Levels that are multiples of this are kept as checkpoints (see the
/// module docs); walking back explores a ball of radius `k` per `k` levels
/// (at most about 13 000 vertices with these values).
pub(crate) fn checkpoint_every(d: usize) -> u64 {
    if d <= 5 { 8 } else { 4 }
}

/// The vertices of one checkpoint level.
pub(crate) enum Checkpoint {
    Narrow(Vec<u32>),
    Wide(Vec<u64>),
    /// Bricked numbering: the level's (brick, bits) pairs as the search
    /// keeps them (a copy of two slices; expanding them into ids cost more
    /// than the expansion of the level itself).
    Bricks(Vec<u32>, Vec<u64>),
}

impl Checkpoint {
    fn new<T: Vid>(level: &Frontier<T>) -> Self {
        if level.bricked && T::NARROW {
            // Bricks are ids / 128, so they fit when the ids do.
            let bricks = level.as_slice().iter().map(|b| b.index() as u32).collect();
            Checkpoint::Bricks(bricks, level.bits[..level.len].to_vec())
        } else if T::NARROW {
            Checkpoint::Narrow(level.indices().map(|v| v as u32).collect())
        } else {
            Checkpoint::Wide(level.indices().collect())
        }
    }

    /// The members of `candidates` in this level.
    fn members(&self, candidates: &FastSet) -> FastSet {
        match self {
            Checkpoint::Narrow(vs) => ids_in(vs.iter().map(|&v| u64::from(v)), candidates),
            Checkpoint::Wide(vs) => ids_in(vs.iter().copied(), candidates),
            Checkpoint::Bricks(bricks, bits) => {
                // Candidate bits per brick, then one pass over the pairs.
                let mut want: HashMap<u64, u64, BuildHasherDefault<VertexHasher>> =
                    HashMap::default();
                for &c in candidates {
                    *want.entry(c >> 7).or_default() |= 1 << (c & 63);
                }
                let lo = want.keys().copied().min().unwrap_or(u64::MAX);
                let hi = want.keys().copied().max().unwrap_or(0);
                let mut out = FastSet::default();
                for (&b, &w) in bricks.iter().zip(bits) {
                    let b = u64::from(b);
                    if b < lo || b > hi {
                        continue;
                    }
                    if let Some(&c) = want.get(&b) {
                        out.extend(BitIds(b * 128, c & w));
                    }
                }
                out
            }
        }
    }
}

/// The ids of `level` that are in `candidates`. Ids outside the
/// candidates' range, or missing from a 64 Kbit filter of them, are skipped
/// without a hash lookup.
fn ids_in(level: impl Iterator<Item = u64>, candidates: &FastSet) -> FastSet {
    let lo = candidates.iter().copied().min().unwrap_or(u64::MAX);
    let hi = candidates.iter().copied().max().unwrap_or(0);
    let slot = |v: u64| (v.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48) as usize;
    let mut filter = vec![0u64; 1 << 10];
    for &c in candidates {
        filter[slot(c) >> 6] |= 1 << (slot(c) & 63);
    }
    level
        .filter(|&v| {
            v >= lo
                && v <= hi
                && (filter[slot(v) >> 6] >> (slot(v) & 63)) & 1 == 1
                && candidates.contains(&v)
        })
        .collect()
}

/// A multiplicative hasher for `u64` vertex ids (the default SipHash costs
/// more than the rest of a path walk-back).
#[derive(Default, Clone, Copy)]
pub(crate) struct VertexHasher(u64);

impl Hasher for VertexHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517C_C1B7_2722_0A95);
    }
}

pub(crate) type FastSet = HashSet<u64, BuildHasherDefault<VertexHasher>>;

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
    /// Per direction: visited sets and checkpoints (levels `0, k, 2k, ...`
    /// of [`checkpoint_every`]), for [`walk_back`].
    pub(crate) visited_sets: Vec<AtomicBits>,
    pub(crate) checkpoints: Vec<Vec<Checkpoint>>,
    /// The numbering of `visited_sets` and `checkpoints`.
    pub(crate) ids: Ids,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// A worker may take the backward side's expansion of this step.
    Backward,
    /// A worker may take the backward side's far phase ([`far_phase`]).
    Far,
    Exit,
}

/// A vertex id in a frontier queue: `u32` when every index fits (half the
/// memory of the queues, which are most of a search's memory), else `u64`.
pub(crate) trait Vid: Copy + Default + Send + Sync + 'static {
    const NARROW: bool;
    fn from_index(v: u64) -> Self;
    fn index(self) -> u64;
}

impl Vid for u32 {
    const NARROW: bool = true;
    #[inline(always)]
    fn from_index(v: u64) -> Self {
        v as u32
    }
    #[inline(always)]
    fn index(self) -> u64 {
        u64::from(self)
    }
}

impl Vid for u64 {
    const NARROW: bool = false;
    #[inline(always)]
    fn from_index(v: u64) -> Self {
        v
    }
    #[inline(always)]
    fn index(self) -> u64 {
        self
    }
}

/// A frontier queue whose buffers only grow, so pushes are branch-free:
/// `len` ids, or in the bricked numbering `len` (brick, bits) pairs
/// (`data` the bricks, `bits` the words of vertex bits); `count` vertices.
#[derive(Default)]
struct Frontier<T> {
    data: Vec<T>,
    bits: Vec<u64>,
    len: usize,
    count: usize,
    bricked: bool,
}

impl<T: Vid> Frontier<T> {
    /// The level of one vertex, `id`.
    fn single(ids: &Ids, id: u64) -> Self {
        let bricked = matches!(ids, Ids::Bricked(_));
        let (entry, bits) = if bricked {
            (T::from_index(id >> 7), vec![1u64 << (id & 63)])
        } else {
            (T::from_index(id), Vec::new())
        };
        Frontier {
            data: vec![entry],
            bits,
            len: 1,
            count: 1,
            bricked,
        }
    }

    fn as_slice(&self) -> &[T] {
        &self.data[..self.len]
    }

    /// The ids of the level.
    fn indices(&self) -> impl Iterator<Item = u64> + '_ {
        let plain = (!self.bricked).then(|| self.as_slice().iter().map(|v| v.index()));
        let bricked = self.bricked.then(|| {
            self.as_slice()
                .iter()
                .zip(&self.bits)
                .flat_map(|(b, &w)| BitIds(b.index() * 128, w))
        });
        plain
            .into_iter()
            .flatten()
            .chain(bricked.into_iter().flatten())
    }
}

/// The ids of the set bits of a brick word (base `128 * brick`).
struct BitIds(u64, u64);

impl Iterator for BitIds {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        if self.1 == 0 {
            return None;
        }
        let id = self.0 + u64::from(self.1.trailing_zeros());
        self.1 &= self.1 - 1;
        Some(id)
    }
}

/// The queues of one direction: `cur` is the last completed level, `prev`
/// the one before it (kept for the single-source "farthest" answer and the
/// meeting test), and the checkpoints so far.
#[derive(Default)]
struct Queues<T> {
    cur: Frontier<T>,
    prev: Frontier<T>,
    checkpoints: Vec<Checkpoint>,
    level: u64,
    /// Bricked numbering only: the bricks the level being built has
    /// reached (a scratch list).
    touched: Vec<T>,
}

struct Shared<'a, T> {
    s: &'a SearchSetup<'a>,
    ids: Ids,
    threads: usize,
    visited: Vec<AtomicBits>,
    /// Keep checkpoints (two-source searches).
    checkpoints: bool,
    queues: Vec<Mutex<Queues<T>>>,
    /// Initialisation: next chunk to take, chunks finished, stop flag.
    init_next: AtomicUsize,
    init_done: AtomicUsize,
    init_stop: AtomicBool,
    blocked: AtomicU64,
    /// Step number published by the leader, with its plan.
    step: Signal,
    plan: Mutex<Plan>,
    /// Highest step whose backward expansion was taken (`fetch_max`
    /// decides who takes it) and highest one a worker finished.
    taken: AtomicU64,
    finished: AtomicU64,
    /// A thread panicked: nobody waits any more.
    poisoned: AtomicBool,
    /// Far phase: the lowest level at which a direction ran dry so far
    /// (`u64::MAX`: none), a stop flag (cancelled), and the vertices
    /// reached (for progress).
    far_limit: AtomicU64,
    far_stop: AtomicBool,
    far_visited: AtomicU64,
    /// Far phase: the last level it may reach (lowered when the two sides'
    /// sizes part, see [`FAR_LAG`]), per side the levels done and their
    /// sizes, and the levels claimed by both sides (at most
    /// `lower_bound - 1`).
    far_end: AtomicU64,
    far_done: [AtomicU64; 2],
    far_sizes: [Mutex<Vec<usize>>; 2],
    far_claimed: AtomicU64,
    /// Far phase with two threads: who runs the backward side
    /// ([`Backward`]).
    far_backward: AtomicU8,
}

/// Who runs the backward side of a two-thread far phase: the leader
/// expands its levels between its forward ones until the worker shows up
/// and takes it over, however late, unless the leader has closed the far
/// phase by then.
struct Backward;

impl Backward {
    /// Nobody now: the leader may expand a level, the worker take it over.
    const FREE: u8 = 0;
    /// The leader is expanding a level (the worker waits for it).
    const LEADER: u8 = 1;
    /// The worker has it, to the end of the far phase.
    const WORKER: u8 = 2;
    /// The far phase is over without the worker.
    const CLOSED: u8 = 3;
}

pub(crate) fn run(s: &SearchSetup<'_>) -> Result<Search, LatticeError> {
    let ids = Ids::for_search(s.grid, s.sources.len());
    if ids.count(s.grid) < 1 << 32 {
        run_with::<u32>(s, ids)
    } else {
        run_with::<u64>(s, ids)
    }
}

fn run_with<T: Vid>(s: &SearchSetup<'_>, ids: Ids) -> Result<Search, LatticeError> {
    let threads = s.threads.max(1);
    let sides = s.sources.len();
    debug_assert!(sides == 1 || (sides == 2 && s.sources[0] != s.sources[1]));
    let queues = s
        .sources
        .iter()
        .map(|&src| {
            let cur = Frontier::<T>::single(&ids, ids.id(src));
            Mutex::new(Queues {
                checkpoints: if sides == 2 {
                    vec![Checkpoint::new(&cur)]
                } else {
                    Vec::new()
                },
                prev: Frontier {
                    bricked: cur.bricked,
                    ..Frontier::default()
                },
                cur,
                level: 0,
                touched: Vec::new(),
            })
        })
        .collect();
    let sh = Shared {
        s,
        ids,
        threads,
        visited: (0..sides)
            // One bit past the last id is always set (padding): the
            // target of moves that leave the lattice.
            .map(|_| AtomicBits::new(ids.count(s.grid) + 1))
            .collect(),
        checkpoints: sides == 2,
        queues,
        init_next: AtomicUsize::new(0),
        init_done: AtomicUsize::new(0),
        init_stop: AtomicBool::new(false),
        blocked: AtomicU64::new(0),
        step: Signal::new(),
        plan: Mutex::new(Plan::Exit),
        taken: AtomicU64::new(0),
        finished: AtomicU64::new(0),
        poisoned: AtomicBool::new(false),
        far_limit: AtomicU64::new(u64::MAX),
        far_stop: AtomicBool::new(false),
        far_visited: AtomicU64::new(0),
        far_end: AtomicU64::new(u64::MAX),
        far_done: [AtomicU64::new(0), AtomicU64::new(0)],
        far_sizes: [Mutex::new(Vec::new()), Mutex::new(Vec::new())],
        far_claimed: AtomicU64::new(0),
        far_backward: AtomicU8::new(Backward::FREE),
    };
    let mut results = team(threads, |tid| {
        let _flag = FlagOnPanic(&sh.poisoned);
        if tid == 0 {
            Some(leader(&sh))
        } else {
            worker(&sh);
            None
        }
    });
    let (outcome, visited) = results
        .swap_remove(0)
        .unwrap_or(Err(LatticeError::Cancelled))?;
    let outcome = match outcome {
        Outcome::Met { vertex, dist } => Outcome::Met {
            vertex: ids.vertex(vertex),
            dist,
        },
        Outcome::Exhausted {
            eccentricity,
            farthest,
        } => Outcome::Exhausted {
            eccentricity,
            farthest: ids.vertex(farthest),
        },
        Outcome::Unreachable => Outcome::Unreachable,
    };
    let checkpoints = sh
        .queues
        .into_iter()
        .map(|q| {
            q.into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .checkpoints
        })
        .collect();
    Ok(Search {
        outcome,
        visited,
        visited_sets: sh.visited,
        checkpoints,
        ids,
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Initialises visited words, taking chunks of [`INIT_CHUNK_WORDS`] until
/// none is left (so a thread that is descheduled delays only the chunk it
/// holds): blocked vertices (and padding) set, the rest clear. The leader
/// reports progress and polls cancellation between its chunks.
fn init_chunks<T: Vid>(sh: &Shared<'_, T>, leader: bool) {
    let s = sh.s;
    let words = sh.visited[0].word_count();
    let chunks = words.div_ceil(INIT_CHUNK_WORDS);
    let vertices = s.grid.vertices;
    let mut buf = [0u64; INIT_CHUNK_WORDS];
    while !sh.init_stop.load(Relaxed) {
        let c = sh.init_next.fetch_add(1, Relaxed);
        if c >= chunks {
            break;
        }
        let lo = c * INIT_CHUNK_WORDS;
        let hi = ((c + 1) * INIT_CHUNK_WORDS).min(words);
        let buf = &mut buf[..hi - lo];
        let blocked = match &sh.ids {
            Ids::Plain => fill_blocked(s.seed, s.threshold, lo as u64 * 64, vertices, buf),
            Ids::Padded(p) => fill_padded(p, s.seed, s.threshold, lo as u64 * 64, buf),
            Ids::Bricked(b) => b.fill(s.seed, s.threshold, lo as u64, buf),
        };
        for v in &sh.visited {
            for (i, &bits) in buf.iter().enumerate() {
                v.store_word(lo + i, bits);
            }
        }
        sh.blocked.fetch_add(blocked, Relaxed);
        let done = sh.init_done.fetch_add(1, Release) + 1;
        if leader {
            s.reporter
                .phase(s.base, s.span / 10, done as u64, chunks as u64);
            if s.reporter.ctl().cancelled() {
                sh.init_stop.store(true, Relaxed);
            }
        }
    }
}

fn worker<T: Vid>(sh: &Shared<'_, T>) {
    init_chunks(sh, false);
    let mut seen = 0;
    loop {
        seen = sh.step.wait_past(seen, || sh.poisoned.load(Relaxed));
        let plan = *lock(&sh.plan);
        if sh.poisoned.load(Relaxed) || plan == Plan::Exit {
            return;
        }
        if plan == Plan::Far {
            if take_backward(sh) {
                // Only the leader polls cancellation (and sets far_stop).
                while let Ok(true) = far_level(sh, 1, None, false) {}
                sh.finished.store(seen, Release);
            }
        } else if sh.taken.fetch_max(seen, AcqRel) < seen {
            expand(sh, 1);
            sh.finished.store(seen, Release);
        }
    }
}

fn leader<T: Vid>(sh: &Shared<'_, T>) -> Result<(Outcome, u64), LatticeError> {
    let result = start(sh).and_then(|()| drive(sh));
    *lock(&sh.plan) = Plan::Exit;
    sh.step.publish(u64::MAX);
    result
}

/// Finishes the initialisation and forces the sources open.
fn start<T: Vid>(sh: &Shared<'_, T>) -> Result<(), LatticeError> {
    init_chunks(sh, true);
    if sh.init_stop.load(Relaxed) {
        return Err(LatticeError::Cancelled);
    }
    let chunks = sh.visited[0].word_count().div_ceil(INIT_CHUNK_WORDS);
    wait_busy(|| sh.init_done.load(Acquire) >= chunks || sh.poisoned.load(Relaxed));
    if sh.poisoned.load(Relaxed) {
        return Err(LatticeError::Cancelled);
    }
    let s = sh.s;
    for &src in s.sources {
        for v in &sh.visited {
            v.set_to(sh.ids.id(src), false);
        }
        if blocked_by_rule(s.seed, s.threshold, src) {
            sh.blocked.fetch_sub(1, Relaxed);
        }
    }
    for (side, &src) in s.sources.iter().enumerate() {
        sh.visited[side].set_to(sh.ids.id(src), true);
    }
    Ok(())
}

/// The meeting point after a two-direction step from levels `a` and `b`
/// (see the module docs): the smallest new forward vertex in the backward
/// side's previous level (`f_exact`), else the smallest new backward
/// vertex in the forward side's previous level (`b_exact`), whichever is
/// smaller, else the smallest vertex new on both sides (`both`).
fn decide_meeting(f_exact: u64, b_exact: u64, both: u64, a: u64, b: u64) -> (u64, [u64; 2]) {
    if f_exact.min(b_exact) != u64::MAX {
        if f_exact < b_exact {
            (f_exact, [a + 1, b])
        } else {
            (b_exact, [a, b + 1])
        }
    } else {
        (both, [a + 1, b + 1])
    }
}

/// The smallest id of the set bits of word `w` of brick `b` (`u64::MAX`
/// when none).
fn first_id(b: u64, w: u64) -> u64 {
    if w == 0 {
        u64::MAX
    } else {
        b * 128 + u64::from(w.trailing_zeros())
    }
}

/// The meeting test of a two-direction step in the bricked numbering, on
/// words: `[f_exact, both, b_exact]` of [`decide_meeting`], or `None`
/// when the two sides do not touch. Each side's previous level is marked
/// in its next-level words (all clear between steps) for the test, then
/// cleared again.
fn meet_bricked<T: Vid>(sh: &Shared<'_, T>) -> Option<[u64; 3]> {
    let q = [lock(&sh.queues[0]), lock(&sh.queues[1])];
    let words = [sh.visited[0].words(), sh.visited[1].words()];
    let mark = |side: usize, on: bool| {
        let level = &q[side].prev;
        for (b, &bits) in level.as_slice().iter().zip(&level.bits) {
            words[side][(2 * b.index() + 1) as usize].store(if on { bits } else { 0 }, Relaxed);
        }
    };
    mark(0, true);
    mark(1, true);
    let mut found = [u64::MAX; 3];
    let mut touch = false;
    for side in 0..2 {
        let other = words[side ^ 1];
        let level = &q[side].cur;
        for (b, &bits) in level.as_slice().iter().zip(&level.bits) {
            let b = b.index();
            let met = bits & other[(2 * b) as usize].load(Relaxed);
            if met == 0 {
                continue;
            }
            touch = true;
            let in_prev = met & other[(2 * b + 1) as usize].load(Relaxed);
            if side == 0 {
                found[0] = found[0].min(first_id(b, in_prev));
                found[1] = found[1].min(first_id(b, met & !in_prev));
            } else {
                found[2] = found[2].min(first_id(b, in_prev));
            }
        }
    }
    mark(0, false);
    mark(1, false);
    touch.then_some(found)
}

/// The meeting after a two-direction step from levels `a` and `b`
/// ([`decide_meeting`]), or `None` when the sides do not touch.
fn meet_both<T: Vid>(sh: &Shared<'_, T>, a: u64, b: u64) -> Option<(u64, [u64; 2])> {
    let [f_exact, both, b_exact] = if matches!(sh.ids, Ids::Bricked(_)) {
        meet_bricked(sh)?
    } else {
        let f_touch = touching(sh, 0);
        let b_touch = touching(sh, 1);
        if f_touch.is_empty() && b_touch.is_empty() {
            return None;
        }
        // Sides touch: decide between a + b + 1 and a + b + 2.
        let (f_exact, both) = split_by_previous(sh, 1, &f_touch);
        let (b_exact, _) = split_by_previous(sh, 0, &b_touch);
        [f_exact, both, b_exact]
    };
    Some(decide_meeting(f_exact, b_exact, both, a, b))
}

/// New vertices of `side` already reached by the other side.
fn touching<T: Vid>(sh: &Shared<'_, T>, side: usize) -> Vec<u64> {
    let q = lock(&sh.queues[side]);
    let other = &sh.visited[side ^ 1];
    if q.cur.bricked {
        // A word per pair: the level's bits that the other side has.
        let words = other.words();
        let mut out = Vec::new();
        for (b, &bits) in q.cur.as_slice().iter().zip(&q.cur.bits) {
            let b = b.index();
            let seen = words[(2 * b) as usize].load(Relaxed);
            out.extend(BitIds(b * 128, bits & seen));
        }
        return out;
    }
    q.cur.indices().filter(|&w| other.get(w)).collect()
}

/// The smallest of `candidates` that is in `side`'s previous frontier, and
/// the smallest that is not.
fn split_by_previous<T: Vid>(sh: &Shared<'_, T>, side: usize, candidates: &[u64]) -> (u64, u64) {
    let q = lock(&sh.queues[side]);
    let set: FastSet = candidates.iter().copied().collect();
    let mut inside = FastSet::default();
    for w in q.prev.indices() {
        if set.contains(&w) {
            inside.insert(w);
        }
    }
    let (mut min_in, mut min_out) = (u64::MAX, u64::MAX);
    for &w in candidates {
        if inside.contains(&w) {
            min_in = min_in.min(w);
        } else {
            min_out = min_out.min(w);
        }
    }
    (min_in, min_out)
}

/// Levels each direction of a two-source search advances in the far
/// phase with one thread: `m` with `2 m < lower_bound`, so no vertex can
/// be reached from both sides by then (the two searches cannot meet before
/// level `m`).
fn far_levels(lower_bound: u64) -> u64 {
    lower_bound.saturating_sub(1) / 2
}

/// The far phase of a two-source search: the directions advance with no
/// meeting test while `a + b < lower_bound`. With one thread they
/// alternate level by level up to [`far_levels`]; when a direction runs
/// dry at level `d` (no path), the other still advances to level `d`, and
/// the vertices reported are those of the levels the alternation reaches
/// up to the first dry level. With two, each direction runs on its own
/// thread, with no hand-off per level (the steps' hand-offs and the wait
/// for the slower side of every step were measured at a sixth of a
/// search), both taking levels from the shared budget of
/// `lower_bound - 1` until it is spent; until the worker shows up (woken
/// late, or its CPU busy) the leader alternates, and the worker takes the
/// backward side over whenever it comes ([`Backward`]). When a direction
/// runs dry the other stops, and every vertex reached is reported.
/// Returns that count when a direction ran dry.
fn far_phase<T: Vid>(sh: &Shared<'_, T>, step: u64) -> Result<Option<u64>, LatticeError> {
    let shared = sh.threads >= 2;
    if shared {
        *lock(&sh.plan) = Plan::Far;
        // Not a step to take with `taken` ([`Backward`] decides): a worker
        // that sees this step number only after the next plan is set must
        // not take that plan's backward expansion as this step's.
        sh.taken.fetch_max(step, AcqRel);
        sh.step.publish(step);
        let mut ran = far_shared(sh);
        // The backward side is the leader's (closed) or the worker's, who
        // must be done with it before the steps.
        let closed =
            sh.far_backward
                .compare_exchange(Backward::FREE, Backward::CLOSED, AcqRel, Acquire);
        if closed.is_err() {
            if ran.is_err() {
                sh.far_stop.store(true, Relaxed);
            }
            wait_busy(|| sh.finished.load(Acquire) >= step || sh.poisoned.load(Relaxed));
            if sh.poisoned.load(Relaxed) {
                ran = Err(LatticeError::Cancelled);
            }
        }
        ran?;
    } else {
        for l in 1..=far_levels(sh.s.lower_bound) {
            while far_level(sh, 0, Some(l), true)? {}
            while far_level(sh, 1, Some(l), true)? {}
            if sh.far_done[0].load(Relaxed) < l {
                break;
            }
        }
    }
    let dry = sh.far_limit.load(Acquire);
    if dry == u64::MAX {
        return Ok(None);
    }
    let sizes = [lock(&sh.far_sizes[0]), lock(&sh.far_sizes[1])];
    if shared {
        let reached: usize = sizes.iter().map(|l| l.iter().sum::<usize>()).sum();
        return Ok(Some(2 + reached as u64));
    }
    // The first dry (level, side) in alternation order, and the levels up
    // to it.
    let first_dry_side = (0..2)
        .find(|&side| sizes[side].get(dry as usize - 1) == Some(&0))
        .unwrap_or(0);
    let mut visited = 2u64;
    for (side, levels) in sizes.iter().enumerate() {
        let upto = if side <= first_dry_side { dry } else { dry - 1 };
        visited += levels.iter().take(upto as usize).sum::<usize>() as u64;
    }
    Ok(Some(visited))
}

/// The leader's part of a two-thread far phase: the forward side, and a
/// backward level after each forward one for as long as the worker has
/// not taken that side over.
fn far_shared<T: Vid>(sh: &Shared<'_, T>) -> Result<(), LatticeError> {
    let (mut forward, mut backward) = (true, true);
    while forward || backward {
        if forward {
            forward = far_level(sh, 0, None, true)?;
        }
        if backward {
            match sh.far_backward.compare_exchange(
                Backward::FREE,
                Backward::LEADER,
                AcqRel,
                Acquire,
            ) {
                Ok(_) => {
                    let level = far_level(sh, 1, None, true);
                    sh.far_backward.store(Backward::FREE, Release);
                    backward = level?;
                }
                // The worker has it.
                Err(_) => backward = false,
            }
        }
    }
    Ok(())
}

/// The worker's claim on the backward side of a two-thread far phase
/// ([`Backward`]): false when the leader closed the far phase first.
fn take_backward<T: Vid>(sh: &Shared<'_, T>) -> bool {
    loop {
        match sh.far_backward.compare_exchange_weak(
            Backward::FREE,
            Backward::WORKER,
            AcqRel,
            Acquire,
        ) {
            Ok(_) => return true,
            Err(Backward::CLOSED) => return false,
            // The leader is expanding a level of it (or a spurious failure).
            Err(_) => std::hint::spin_loop(),
        }
    }
}

/// How far behind the far phase compares the two sides' sizes: level `t`
/// is expanded only if the sizes at level `t - FAR_LAG` are within a factor
/// 2 or not both known yet (the rule of the later steps, which otherwise
/// advance the smaller side alone). When they are not, the far phase ends
/// at level `t - 1` (sides already past it stop there too); with one thread
/// it thus runs at most `FAR_LAG` levels past the point where the sides
/// part. The lag lets each thread go on without waiting for the other.
const FAR_LAG: u64 = 4;

/// Expands the next level of `side` in the far phase, unless it is done:
/// at level `target` (`None`: when the shared budget of levels is spent, or
/// as soon as either direction ran dry), at the level where a direction
/// ran dry, or where the sides parted ([`FAR_LAG`]), or when the far phase
/// is stopped. Returns whether it expanded a level (false: this side is
/// done). The leader reports progress and polls cancellation first.
fn far_level<T: Vid>(
    sh: &Shared<'_, T>,
    side: usize,
    target: Option<u64>,
    leader: bool,
) -> Result<bool, LatticeError> {
    let s = sh.s;
    let dry = sh.far_limit.load(Acquire);
    let end = match target {
        Some(level) => level.min(dry),
        None if dry != u64::MAX => 0,
        None => u64::MAX,
    }
    .min(sh.far_end.load(Acquire));
    let level = sh.far_done[side].load(Relaxed);
    if level >= end || sh.far_stop.load(Relaxed) || sh.poisoned.load(Relaxed) {
        return Ok(false);
    }
    if leader {
        let open_total = s.grid.vertices - sh.blocked.load(Relaxed);
        let span = s.span - s.span / 10;
        let done = sh.far_visited.load(Relaxed);
        s.reporter
            .phase(s.base + s.span / 10, span, done, open_total);
        if s.reporter.ctl().cancelled() {
            sh.far_stop.store(true, Relaxed);
            return Err(LatticeError::Cancelled);
        }
    }
    if let Some(j) = (level + 1).checked_sub(FAR_LAG).filter(|&j| j >= 1) {
        let other = side ^ 1;
        if sh.far_done[other].load(Acquire) >= j {
            let size = |side: usize| lock(&sh.far_sizes[side])[(j - 1) as usize];
            let (a, b) = (size(side), size(other));
            if a.max(b) > 2 * a.min(b) {
                sh.far_end.fetch_min(j + FAR_LAG - 1, AcqRel);
                return Ok(false);
            }
        }
    }
    // `a + b < lower_bound` whoever takes the levels.
    if sh.far_claimed.fetch_add(1, AcqRel) >= s.lower_bound - 1 {
        return Ok(false);
    }
    let new = expand(sh, side);
    lock(&sh.far_sizes[side]).push(new);
    sh.far_done[side].store(level + 1, Release);
    sh.far_visited.fetch_add(new as u64, Relaxed);
    if new == 0 {
        sh.far_limit.fetch_min(level + 1, AcqRel);
        return Ok(false);
    }
    Ok(true)
}

/// The leader's loop: one step (one or two levels) per iteration.
fn drive<T: Vid>(sh: &Shared<'_, T>) -> Result<(Outcome, u64), LatticeError> {
    let s = sh.s;
    let sides = sh.visited.len();
    let open_total = s.grid.vertices - sh.blocked.load(Relaxed);
    let mut level = [0u64; 2];
    let mut size = [1usize; 2];
    let mut visited = sides as u64;
    let mut since_check = 0u64;
    let mut step = 0u64;
    if sides == 2 && far_levels(s.lower_bound) > 0 {
        step += 1;
        if let Some(unreachable) = far_phase(sh, step)? {
            return Ok((Outcome::Unreachable, unreachable));
        }
        for side in 0..2 {
            let q = lock(&sh.queues[side]);
            level[side] = q.level;
            size[side] = q.cur.count;
            visited += lock(&sh.far_sizes[side]).iter().sum::<usize>() as u64;
        }
    }
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
            let new = expand(sh, 0);
            if new == 0 {
                let q = lock(&sh.queues[0]);
                let farthest = q.prev.indices().min().unwrap_or(sh.ids.id(s.sources[0]));
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
                // Offer the backward side to a worker, expand the forward
                // one, then take the backward one back if nobody has.
                step += 1;
                *lock(&sh.plan) = Plan::Backward;
                sh.step.publish(step);
                let f = expand(sh, 0);
                if sh.taken.fetch_max(step, AcqRel) < step {
                    [f, expand(sh, 1)]
                } else {
                    wait_busy(|| sh.finished.load(Acquire) >= step || sh.poisoned.load(Relaxed));
                    if sh.poisoned.load(Relaxed) {
                        // A worker panicked; the team propagates the panic.
                        return Err(LatticeError::Cancelled);
                    }
                    [f, lock(&sh.queues[1]).cur.count]
                }
            } else {
                let f = expand(sh, 0);
                [f, expand(sh, 1)]
            };
            level = [a + 1, b + 1];
            visited += (size[0] + size[1]) as u64;
            if a + b + 2 >= s.lower_bound
                && let Some((vertex, dist)) = meet_both(sh, a, b)
            {
                return Ok((Outcome::Met { vertex, dist }, visited));
            }
        } else {
            let side = usize::from(size[1] < size[0]);
            size[side] = expand(sh, side);
            level[side] += 1;
            visited += size[side] as u64;
            if a + b + 1 >= s.lower_bound
                && let Some(vertex) = touching(sh, side).into_iter().min()
            {
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

/// Expands the frontier of `side` by one level (keeping a checkpoint of
/// the new level when due). Returns the size of the new frontier.
fn expand<T: Vid>(sh: &Shared<'_, T>, side: usize) -> usize {
    let mut guard = lock(&sh.queues[side]);
    let q = &mut *guard;
    std::mem::swap(&mut q.cur, &mut q.prev);
    let (frontier, next) = (&q.prev, &mut q.cur);
    (next.len, next.count) = match &sh.ids {
        Ids::Bricked(b) => sh.s.grid.with_stepper(ExpandBricked {
            bricks: b,
            frontier: (frontier.as_slice(), &frontier.bits),
            next: (&mut next.data, &mut next.bits),
            visited: &sh.visited[side],
            touched: &mut q.touched,
        }),
        Ids::Plain => {
            let len = sh.s.grid.with_stepper(ExpandLevel {
                outside: sh.s.grid.vertices,
                frontier: frontier.as_slice(),
                next: &mut next.data,
                visited: &sh.visited[side],
            });
            (len, len)
        }
        Ids::Padded(p) => {
            let len = sh.s.grid.with_stepper(ExpandPadded {
                strides: &p.strides,
                frontier: frontier.as_slice(),
                next: &mut next.data,
                visited: &sh.visited[side],
            });
            (len, len)
        }
    };
    q.level += 1;
    if sh.checkpoints && q.level.is_multiple_of(checkpoint_every(sh.s.grid.d)) {
        q.checkpoints.push(Checkpoint::new(&q.cur));
    }
    q.cur.count
}

/// One level of expansion: every unvisited neighbour of `frontier` is
/// claimed and appended to `next`; returns how many.
struct ExpandLevel<'a, T> {
    /// A vertex index whose visited bit is always set (padding).
    outside: u64,
    frontier: &'a [T],
    next: &'a mut Vec<T>,
    visited: &'a AtomicBits,
}

impl<T: Vid> WithStepper for ExpandLevel<'_, T> {
    type Output = usize;

    fn run<const D: usize>(self, st: Stepper<D>) -> usize {
        let degree = 2 * D;
        let visited = self.visited.words();
        let outside = self.outside;
        let next = self.next;
        let mut len = 0usize;
        let mut data: &mut [T] = next.as_mut_slice();
        for &v in self.frontier {
            if data.len() < len + degree {
                let grow = (len + degree).max(data.len() * 2);
                next.resize(grow, T::default());
                data = next.as_mut_slice();
            }
            st.neighbours_all(v.index(), 0, st.n(), st.wraps(), outside, |w| {
                data[len] = T::from_index(w);
                len += claim_in(visited, w) as usize;
            });
        }
        len
    }
}

/// Candidate slots per expanded vertex in [`ExpandPadded`] (a power of two,
/// at least `2 * MAX_DIMENSIONS`).
const WINDOW: usize = 32;

/// [`ExpandLevel`] in the padded numbering: every move is `± side^k`.
struct ExpandPadded<'a, T> {
    strides: &'a [u64],
    frontier: &'a [T],
    next: &'a mut Vec<T>,
    visited: &'a AtomicBits,
}

impl<T: Vid> WithStepper for ExpandPadded<'_, T> {
    type Output = usize;

    fn run<const D: usize>(self, _: Stepper<D>) -> usize {
        let mut strides = [0u64; D];
        strides.copy_from_slice(&self.strides[..D]);
        let visited = self.visited.words();
        let frontier = self.frontier;
        let next = self.next;
        let mut len = 0usize;
        let mut data: &mut [T] = next.as_mut_slice();
        for &v in frontier {
            if data.len() < len + WINDOW {
                let grow = (len + WINDOW).max(data.len() * 2);
                next.resize(grow, T::default());
                data = next.as_mut_slice();
            }
            // One bounds check per vertex: the candidates go to a window of
            // WINDOW >= 2d slots, indexed under a mask.
            let Some(win) = data.get_mut(len..len + WINDOW) else {
                break;
            };
            let v = v.index();
            let mut got = 0usize;
            for s in strides {
                let (a, b) = (v - s, v + s);
                win[got & (WINDOW - 1)] = T::from_index(a);
                got += claim_in(visited, a) as usize;
                win[got & (WINDOW - 1)] = T::from_index(b);
                got += claim_in(visited, b) as usize;
            }
            len += got;
        }
        len
    }
}

/// [`ExpandLevel`] in the bricked numbering ([`Bricks`]): a level is a list
/// of (brick, bits) pairs, so each entry is one word of frontier bits,
/// moved along every axis at once: a shift and a mask inside the brick, and
/// one read-modify-write per neighbouring brick. New bits gather in the
/// next-level word beside each visited word (same cache line), and a brick
/// is listed in `touched` when it first gets some; the new level is then
/// read off those words, which are cleared. No branch depends on the data
/// (a level costs the same whatever its bits), and no id is written or
/// grouped per vertex.
struct ExpandBricked<'a, T> {
    bricks: &'a Bricks,
    frontier: (&'a [T], &'a [u64]),
    next: (&'a mut Vec<T>, &'a mut Vec<u64>),
    visited: &'a AtomicBits,
    touched: &'a mut Vec<T>,
}

impl<T: Vid> WithStepper for ExpandBricked<'_, T> {
    /// Pairs and vertices in the new level.
    type Output = (usize, usize);

    fn run<const D: usize>(self, _: Stepper<D>) -> (usize, usize) {
        let b = self.bricks;
        let stride: [u64; D] = std::array::from_fn(|k| b.stride[k]);
        let step: [u32; D] = std::array::from_fn(|k| 1 << b.shift[k]);
        let span: [u32; D] = std::array::from_fn(|k| b.span(k));
        let lo: [u64; D] = std::array::from_fn(|k| b.lo[k]);
        let hi: [u64; D] = std::array::from_fn(|k| b.hi[k]);
        // (visited word, next-level word) of each brick.
        let pairs = self.visited.words().as_chunks::<2>().0;
        let touched = self.touched;
        let mut count = 0usize;
        let mut list: &mut [T] = touched.as_mut_slice();
        let (bricks, bits) = self.frontier;
        for (&brick, &f) in bricks.iter().zip(bits) {
            let brick = brick.index();
            if list.len() < count + WINDOW {
                let grow = (count + WINDOW).max(list.len() * 2);
                touched.resize(grow, T::default());
                list = touched.as_mut_slice();
            }
            let Some(win) = list.get_mut(count..count + WINDOW) else {
                break;
            };
            let mut got = 0usize;
            // Claims `c` in brick `j`; lists `j` the first time it gets bits.
            let mut claim = |j: u64, c: u64| {
                let Some([vw, nw]) = pairs.get(j as usize) else {
                    return;
                };
                let old = vw.load(Relaxed);
                let new = c & !old;
                vw.store(old | c, Relaxed);
                let before = nw.load(Relaxed);
                nw.store(before | new, Relaxed);
                win[got & (WINDOW - 1)] = T::from_index(j);
                got += usize::from((before == 0) & (new != 0));
            };
            // In ascending brick order, so that a level read in about
            // ascending order lists the next one in ascending streams and
            // memory is walked upwards whichever way a front moves (with
            // the plus-side claims first, a front moving down was measured
            // 25-40% slower than one moving up).
            let mut inner = 0u64;
            for k in 0..D {
                inner |= ((f & !hi[k]) << step[k]) | ((f & !lo[k]) >> step[k]);
            }
            for k in (0..D).rev() {
                claim(brick - stride[k], (f & lo[k]) << span[k]);
            }
            claim(brick, inner);
            for k in 0..D {
                claim(brick + stride[k], (f & hi[k]) >> span[k]);
            }
            count += got;
        }
        // The new level: one pair per touched brick.
        let (next, next_bits) = self.next;
        if next.len() < count {
            next.resize(count, T::default());
            next_bits.resize(count, 0);
        }
        let mut vertices = 0usize;
        for ((j, out), out_bits) in touched[..count]
            .iter()
            .zip(next.iter_mut())
            .zip(next_bits.iter_mut())
        {
            // Load and store, not an atomic swap: this thread is the
            // words' only writer.
            let w = pairs.get(j.index() as usize).map_or(0, |[_, nw]| {
                let w = nw.load(Relaxed);
                nw.store(0, Relaxed);
                w
            });
            *out = *j;
            *out_bits = w;
            vertices += w.count_ones() as usize;
        }
        (count, vertices)
    }
}

/// Visited words `first / 64 ..` of the padded numbering: padding set,
/// real vertices by the obstacle rule. Returns the real blocked count.
pub(crate) fn fill_padded(
    p: &Padded,
    seed: u64,
    threshold: u64,
    first: u64,
    out: &mut [u64],
) -> u64 {
    let side = p.side();
    let mut blocked = 0u64;
    for (i, word) in out.iter_mut().enumerate() {
        let lo = first + 64 * i as u64;
        let mut w = !0u64;
        let mut pos = lo;
        while pos < lo + 64 {
            let row = p.row_of(pos);
            let row_first = row * side;
            let seg_end = (row_first + side).min(lo + 64);
            if let Some(start) = p.row_start(row) {
                // Real columns 1..=n of the row, within [pos, seg_end).
                let a = (pos - row_first).max(1);
                let b = (seg_end - row_first).min(p.n() + 1);
                if a < b && threshold != 0 {
                    let count = (b - a) as u32;
                    let mask = if count == 64 { !0 } else { (1u64 << count) - 1 };
                    let bits = rule_bits(seed, threshold, start + a - 1, count) & mask;
                    blocked += u64::from(bits.count_ones());
                    let at = row_first + a - lo;
                    w = (w & !(mask << at)) | (bits << at);
                } else if a < b {
                    let mask = if b - a == 64 {
                        !0
                    } else {
                        (1u64 << (b - a)) - 1
                    };
                    w &= !(mask << (row_first + a - lo));
                }
            }
            pos = seg_end;
        }
        *word = w;
    }
    blocked
}

/// Walks from `from` (at distance `dist` of `source`, the source of
/// `visited` and `checkpoints`) back to the source, returning `[from, ...,
/// source]`. Each leg goes down to the previous multiple `T` of `k =
/// checkpoint_every(d)` along the first walk (layer order, fixed neighbour
/// order) of visited open vertices that ends in checkpoint `T` (see the
/// module docs for why such a walk is a piece of a shortest path).
#[allow(clippy::too_many_arguments)]
pub(crate) fn walk_back(
    grid: &Grid,
    ids: &Ids,
    visited: &AtomicBits,
    checkpoints: &[Checkpoint],
    source: u64,
    from: u64,
    dist: u64,
    open: impl Fn(u64) -> bool,
) -> Vec<u64> {
    let every = checkpoint_every(grid.d);
    let mut out = Vec::with_capacity(usize::try_from(dist).unwrap_or(0).saturating_add(1));
    out.push(from);
    let mut lvl = dist;
    while lvl > 0 {
        let step = if lvl.is_multiple_of(every) {
            every
        } else {
            lvl % every
        };
        let target = &checkpoints[((lvl - step) / every) as usize];
        let cur = *out.last().unwrap_or(&from);
        let leg = Leg {
            grid,
            ids,
            visited,
            target,
            source,
        };
        match leg.find_walk(&open, cur, lvl, step) {
            Some(walk) => out.extend_from_slice(&walk),
            None => {
                if cfg!(debug_assertions) {
                    panic!("no way back from {cur} at distance {lvl}");
                }
                break;
            }
        }
        lvl -= step;
    }
    out
}

/// What one leg of [`walk_back`] searches in.
struct Leg<'a> {
    grid: &'a Grid,
    ids: &'a Ids,
    visited: &'a AtomicBits,
    target: &'a Checkpoint,
    source: u64,
}

impl Leg<'_> {
    /// Breadth-first search, layer by layer, for a walk of exactly `steps`
    /// edges from `cur` (at distance `lvl` of the source) through visited
    /// open vertices to a vertex of `target`; returns the walk without
    /// `cur`. Layers are sets, so the cost is the size of a ball of radius
    /// `steps`, not the number of walks. Such a walk loses one unit of
    /// distance per edge, so its `i`-th vertex is at distance `lvl - i`,
    /// which is at least its obstacle-free distance from the source:
    /// vertices farther than that are left out (on a path with little
    /// detour, most of the ball).
    fn find_walk(
        &self,
        open: &impl Fn(u64) -> bool,
        cur: u64,
        lvl: u64,
        steps: u64,
    ) -> Option<Vec<u64>> {
        let (grid, ids) = (self.grid, self.ids);
        // layers[i] = (vertex, index of its parent in layers[i - 1]).
        let mut layers: Vec<Vec<(u64, usize)>> = vec![vec![(cur, 0)]];
        for i in 1..=steps {
            let prev = &layers[(i - 1) as usize];
            let room = prev.len() * 2 * grid.d;
            let mut seen = FastSet::with_capacity_and_hasher(room, Default::default());
            let mut layer = Vec::with_capacity(room);
            for (parent, &(v, _)) in prev.iter().enumerate() {
                grid.neighbours(v, |w| {
                    if grid.distance(w, self.source) <= lvl - i
                        && open(w)
                        && self.visited.get(ids.id(w))
                        && seen.insert(w)
                    {
                        layer.push((w, parent));
                    }
                });
            }
            if layer.is_empty() {
                return None;
            }
            layers.push(layer);
        }
        let last = &layers[steps as usize];
        let candidates: FastSet = last.iter().map(|&(w, _)| ids.id(w)).collect();
        let members = self.target.members(&candidates);
        let mut index = last
            .iter()
            .position(|(w, _)| members.contains(&ids.id(*w)))?;
        let mut walk = Vec::with_capacity(steps as usize);
        for l in (1..=steps as usize).rev() {
            let (v, parent) = layers[l][index];
            walk.push(v);
            index = parent;
        }
        walk.reverse();
        Some(walk)
    }
}
