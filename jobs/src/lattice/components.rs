//! Connected components of the unblocked vertices.
//!
//! The lattice is cut into slabs along the last axis, one per thread. Each
//! thread flood-fills its slab over *runs*: its open vertices are kept as
//! rows along axis 0 (each row padded to whole 64-bit words; a bit is
//! cleared once reached), and a queue entry is one word with the bits just
//! reached. Along axis 0 a reached bit takes the rest of its run of open
//! bits with one addition (and one on the reversed word for the other
//! direction); along any other axis its neighbours are the same bits of
//! another row, one AND. So 64 vertices cost a few word operations per axis,
//! not `2d` probes each, and threads share nothing while filling.
//!
//! A component that touches the first or last hyperplane of its slab gets a
//! boundary id, written into `u32` arrays of one hyperplane; the leader then
//! unions ids across neighbouring slabs (and across the wrap when periodic)
//! with a union-find over boundary components only. Components not touching
//! a slab boundary are final as soon as they are filled. Each slab has at
//! least two hyperplanes; only the boundary arrays that are joined are kept
//! (`4 V / n` bytes per joined boundary; 0.8 MB for `d = 6, n = 10`).
//!
//! Without obstacles the lattice is connected: answered without a search.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

use super::control::{Control, Reporter, StopFlag};
use super::error::LatticeError;
use super::geometry::{FastDiv, Grid};
use super::obstacles::fill_blocked;
use super::parallel::{split, team, threads_for};
use super::spec::LatticeSpec;

/// `components` components have `size` vertices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentSizeCount {
    pub size: u64,
    pub components: u64,
}

/// Result of [`connected_components`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentsResult {
    /// Number of components (0 when every vertex is blocked).
    pub count: u64,
    /// Vertices in the largest component.
    pub largest: u64,
    pub open_vertices: u64,
    pub blocked: u64,
    /// Exact size histogram, ascending by size (at most ~sqrt(2V) entries,
    /// since distinct sizes sum to at most V).
    pub sizes: Vec<ComponentSizeCount>,
}

const NONE: u32 = u32::MAX;
const MIN_SLAB_PLANES: u64 = 2;
const CHECK_EVERY: u64 = 1 << 14;

/// Connected components of the unblocked vertices (edges between
/// neighbouring unblocked vertices).
pub fn connected_components(
    spec: &LatticeSpec,
    ctl: &Control<'_>,
) -> Result<ComponentsResult, LatticeError> {
    connected_components_in(spec, ctl, threads_for(ctl, spec.vertices()))
}

/// [`connected_components`] with an explicit thread count (tests use it to
/// exercise the slab merge on small lattices).
pub(crate) fn connected_components_in(
    spec: &LatticeSpec,
    ctl: &Control<'_>,
    threads: usize,
) -> Result<ComponentsResult, LatticeError> {
    spec.check_engine_limit()?;
    let rep = Reporter::start(ctl);
    rep.check()?;
    if spec.obstacle_threshold() == 0 {
        // Nothing is blocked: the lattice is connected (every vertex reaches
        // vertex 0 by moves along the axes), so there is nothing to search.
        rep.finish();
        let v = spec.vertices();
        return Ok(ComponentsResult {
            count: 1,
            largest: v,
            open_vertices: v,
            blocked: 0,
            sizes: vec![ComponentSizeCount {
                size: v,
                components: 1,
            }],
        });
    }
    let grid = Grid::new(spec);
    // Each slab gets at least MIN_SLAB_PLANES hyperplanes of the last axis
    // (d == 1: a single slab, the line is one row).
    let threads = if spec.dimensions() == 1 {
        1
    } else {
        threads
            .max(1)
            .min((spec.size() / MIN_SLAB_PLANES).max(1) as usize)
    };
    let stop = StopFlag::default();
    let done = AtomicU64::new(0);
    let job = SlabJob {
        grid: &grid,
        spec,
        slabs: threads,
        rep: &rep,
        stop: &stop,
        done: &done,
    };
    let slabs = team(threads, |t| job.fill(t));
    stop.result()?;
    let result = merge(&grid, slabs);
    rep.finish();
    Ok(result)
}

struct Slab {
    /// Final components of this slab: size -> count.
    hist: BTreeMap<u64, u64>,
    /// Sizes of components touching the slab's boundary planes, by id.
    boundary: Vec<u64>,
    /// Boundary id per vertex of the first / last plane (NONE if blocked).
    first: Vec<u32>,
    last: Vec<u32>,
    blocked: u64,
}

struct SlabJob<'a> {
    grid: &'a Grid,
    spec: &'a LatticeSpec,
    slabs: usize,
    rep: &'a Reporter<'a>,
    stop: &'a StopFlag,
    done: &'a AtomicU64,
}

impl SlabJob<'_> {
    fn tick(&self, amount: u64) -> bool {
        let done = self.done.fetch_add(amount, Relaxed) + amount;
        self.rep.phase(0, 99, done, self.grid.vertices);
        self.stop.poll(self.rep.ctl())
    }

    fn fill(&self, t: usize) -> Slab {
        let grid = self.grid;
        let (n, d) = (grid.n, grid.d);
        let (p_lo, p_hi) = split(n, self.slabs, t);
        let plane = grid.plane();
        let multi = self.slabs > 1;
        // The boundary planes joined with a neighbouring slab.
        let has_first = multi && (t > 0 || grid.wrap);
        let has_last = multi && (t + 1 < self.slabs || grid.wrap);
        let mut slab = Slab {
            hist: BTreeMap::new(),
            boundary: Vec::new(),
            first: if has_first {
                vec![NONE; plane as usize]
            } else {
                Vec::new()
            },
            last: if has_last {
                vec![NONE; plane as usize]
            } else {
                Vec::new()
            },
            blocked: 0,
        };
        // Rows along axis 0, `n^(d-2)` per hyperplane of the last axis; one
        // row when d == 1 (then there is a single slab).
        let plane_rows = if d >= 2 { plane / n } else { 1 };
        let (row0, rows) = if d >= 2 {
            (p_lo * plane_rows, (p_hi - p_lo) * plane_rows)
        } else {
            (0, 1)
        };
        let w = n.div_ceil(64) as usize;
        let mut open = vec![0u64; rows as usize * w];
        let (seed, thr) = (self.spec.seed(), self.spec.obstacle_threshold());
        let mut pending = 0u64;
        for (r, row) in open.chunks_mut(w).enumerate() {
            let first = (row0 + r as u64) * n;
            let blocked = fill_blocked(seed, thr, first, first + n, row);
            for x in row.iter_mut() {
                *x = !*x;
            }
            slab.blocked += blocked;
            pending += blocked;
            if pending >= CHECK_EVERY {
                if self.tick(pending) {
                    return slab;
                }
                pending = 0;
            }
        }
        if self.tick(pending) {
            return slab;
        }
        let mut fill = RunFill {
            job: self,
            div: FastDiv::new(n),
            slab: &mut slab,
            open,
            queue: Vec::new(),
            n,
            d,
            w,
            row0,
            rows,
            plane_rows,
            p_lo,
            p_hi,
            multi,
            has_first,
            has_last,
            size: 0,
            id: NONE,
            pending: 0,
        };
        fill.run();
        slab
    }
}

/// Runs of open bits of `open` (one word) that contain a bit of `seeds`.
#[inline(always)]
fn runs_with(open: u64, seeds: u64) -> u64 {
    let s = seeds & open;
    if s == 0 {
        return 0;
    }
    // Seeds spread up to the end of their run with one addition ...
    let up = (open.wrapping_add(s) ^ open | s) & open;
    // ... and down to its start the same way on the reversed word.
    let (o, s) = (open.reverse_bits(), s.reverse_bits());
    let down = ((o.wrapping_add(s) ^ o | s) & o).reverse_bits();
    up | down
}

/// The flood fill of one slab over runs: the slab's open vertices as rows
/// along axis 0 (each row padded to whole words), cleared as they are
/// reached. A queue entry is one word of one row with the bits just
/// reached; its neighbours along axis 0 are the rest of their runs (one
/// addition), along any other axis the same bits of another row (an AND),
/// so a word of up to 64 vertices costs a few word operations per axis
/// instead of `2d` probes per vertex.
struct RunFill<'a, 'j> {
    job: &'a SlabJob<'j>,
    div: FastDiv,
    slab: &'a mut Slab,
    /// Open and not yet reached, `w` words per row.
    open: Vec<u64>,
    /// (row * w + word, bits reached).
    queue: Vec<(u64, u64)>,
    n: u64,
    d: usize,
    w: usize,
    /// First row of the slab (in the lattice's row numbering) and count.
    row0: u64,
    rows: u64,
    plane_rows: u64,
    p_lo: u64,
    p_hi: u64,
    multi: bool,
    has_first: bool,
    has_last: bool,
    /// The component being filled: vertices so far, boundary id.
    size: u64,
    id: u32,
    pending: u64,
}

impl RunFill<'_, '_> {
    fn run(&mut self) {
        for j in 0..self.open.len() {
            while self.open[j] != 0 {
                let lowest = self.open[j] & self.open[j].wrapping_neg();
                self.size = 0;
                self.id = NONE;
                self.queue.clear();
                self.claim(j as u64, lowest);
                let mut head = 0;
                while head < self.queue.len() {
                    let (at, bits) = self.queue[head];
                    head += 1;
                    self.expand(at, bits);
                    if head > 4096 && head * 2 > self.queue.len() {
                        self.queue.drain(..head);
                        head = 0;
                    }
                    if self.pending >= CHECK_EVERY {
                        if self.job.tick(self.pending) {
                            return;
                        }
                        self.pending = 0;
                    }
                }
                if self.id == NONE {
                    *self.slab.hist.entry(self.size).or_insert(0) += 1;
                } else {
                    self.slab.boundary[self.id as usize] = self.size;
                }
            }
        }
        self.job.tick(self.pending);
    }

    /// Reaches the runs of word `at` that contain a bit of `seeds`.
    #[inline]
    fn claim(&mut self, at: u64, seeds: u64) {
        let word = &mut self.open[at as usize];
        let got = runs_with(*word, seeds);
        if got == 0 {
            return;
        }
        *word &= !got;
        let count = u64::from(got.count_ones());
        self.size += count;
        self.pending += count;
        if self.multi {
            self.mark_boundary(at, got);
        }
        self.queue.push((at, got));
    }

    /// Records the boundary id of vertices in the slab's joined planes.
    fn mark_boundary(&mut self, at: u64, got: u64) {
        let r = at / self.w as u64;
        let in_first = self.has_first && r < self.plane_rows;
        let in_last = self.has_last && r >= self.rows - self.plane_rows;
        if !in_first && !in_last {
            return;
        }
        if self.id == NONE {
            self.id = self.slab.boundary.len() as u32;
            self.slab.boundary.push(0);
        }
        let base = (r % self.plane_rows) * self.n + (at % self.w as u64) * 64;
        let mut bits = got;
        while bits != 0 {
            let pos = (base + u64::from(bits.trailing_zeros())) as usize;
            bits &= bits - 1;
            if in_first {
                self.slab.first[pos] = self.id;
            }
            if in_last {
                self.slab.last[pos] = self.id;
            }
        }
    }

    fn expand(&mut self, at: u64, bits: u64) {
        let (n, w) = (self.n, self.w as u64);
        let (r, i) = (at / w, at % w);
        // Axis 0: runs continue into the next and previous word of the row,
        // and around the row when periodic.
        if bits >> 63 == 1 && i + 1 < w {
            self.claim(at + 1, 1);
        }
        if bits & 1 == 1 && i > 0 {
            self.claim(at - 1, 1 << 63);
        }
        let wrap = self.job.grid.wrap;
        if wrap {
            let (last_word, last_bit) = ((n - 1) / 64, (n - 1) % 64);
            if i == 0 && bits & 1 == 1 {
                self.claim(r * w + last_word, 1 << last_bit);
            }
            if i == last_word && (bits >> last_bit) & 1 == 1 {
                self.claim(r * w, 1);
            }
        }
        // Other axes: the same bits of the neighbouring rows.
        let mut q = self.row0 + r;
        let mut stride = 1u64;
        for k in 1..self.d {
            let last = k + 1 == self.d;
            let c = if last {
                q
            } else {
                let nq = self.div.div(q);
                let c = q - nq * n;
                q = nq;
                c
            };
            let (lo, hi, wraps) = if last {
                (self.p_lo, self.p_hi, wrap && !self.multi)
            } else {
                (0, n, wrap)
            };
            if c > lo {
                self.claim(at - stride * w, bits);
            } else if wraps {
                self.claim(at + (n - 1) * stride * w, bits);
            }
            if c + 1 < hi {
                self.claim(at + stride * w, bits);
            } else if wraps {
                self.claim(at - (n - 1) * stride * w, bits);
            }
            stride *= n;
        }
    }
}

fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

fn union(parent: &mut [usize], a: usize, b: usize) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        parent[hi] = lo;
    }
}

fn merge(grid: &Grid, slabs: Vec<Slab>) -> ComponentsResult {
    let mut hist: BTreeMap<u64, u64> = BTreeMap::new();
    let mut blocked = 0;
    let mut offsets = Vec::with_capacity(slabs.len());
    let mut total = 0usize;
    for s in &slabs {
        offsets.push(total);
        total += s.boundary.len();
        blocked += s.blocked;
        for (&size, &count) in &s.hist {
            *hist.entry(size).or_insert(0) += count;
        }
    }
    if slabs.len() > 1 {
        let mut parent: Vec<usize> = (0..total).collect();
        let mut join = |a: usize, b: usize| {
            let (sa, sb) = (&slabs[a], &slabs[b]);
            for (&x, &y) in sa.last.iter().zip(&sb.first) {
                if x != NONE && y != NONE {
                    union(
                        &mut parent,
                        offsets[a] + x as usize,
                        offsets[b] + y as usize,
                    );
                }
            }
        };
        for a in 0..slabs.len() - 1 {
            join(a, a + 1);
        }
        if grid.wrap {
            join(slabs.len() - 1, 0);
        }
        let mut sizes = vec![0u64; total];
        for (s, off) in slabs.iter().zip(&offsets) {
            for (i, &size) in s.boundary.iter().enumerate() {
                let r = find(&mut parent, off + i);
                sizes[r] += size;
            }
        }
        for (i, &size) in sizes.iter().enumerate() {
            if parent[i] == i {
                *hist.entry(size).or_insert(0) += 1;
            }
        }
    } else {
        for &size in &slabs[0].boundary {
            *hist.entry(size).or_insert(0) += 1;
        }
    }
    ComponentsResult {
        count: hist.values().sum(),
        largest: hist.keys().next_back().copied().unwrap_or(0),
        open_vertices: grid.vertices - blocked,
        blocked,
        sizes: hist
            .into_iter()
            .map(|(size, components)| ComponentSizeCount { size, components })
            .collect(),
    }
}
