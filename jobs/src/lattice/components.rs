//! Connected components of the unblocked vertices.
//!
//! The lattice is cut into slabs along the last axis, one per thread. Each
//! thread flood-fills (BFS, queue bounded by a level) its slab using a
//! private visited bitset of 1 bit per vertex (blocked vertices pre-marked),
//! so threads share nothing while filling. A component that touches the
//! first or last hyperplane of its slab gets a boundary id, written into two
//! `u32` arrays of one hyperplane each; the leader then unions ids across
//! neighbouring slabs (and across the wrap when periodic) with a union-find
//! over boundary components only. Components not touching a slab boundary
//! are final as soon as they are filled.
//!
//! Each slab has at least two hyperplanes. Only the boundary arrays that
//! are joined are kept (`4 * V / n` bytes per slab boundary; for `d = 6,
//! n = 10` and two slabs that is 0.8 MB, against 125 KB of bitsets).
//!
//! Without obstacles the lattice is connected: answered without a search.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

use super::control::{Control, Reporter, StopFlag};
use super::error::LatticeError;
use super::geometry::{Grid, Stepper, WithStepper};
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
    // Each slab gets at least MIN_SLAB_PLANES hyperplanes.
    let threads = threads
        .max(1)
        .min((spec.size() / MIN_SLAB_PLANES).max(1) as usize);
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
        let (p_lo, p_hi) = split(grid.n, self.slabs, t);
        let plane = grid.plane();
        let base = p_lo * plane;
        let len = (p_hi - p_lo) * plane;
        let multi = self.slabs > 1;
        let last_wrap = !multi && grid.wrap;
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
        // One padding bit past the slab (always set): the target of moves
        // that leave the slab.
        let words = (len + 1).div_ceil(64) as usize;
        let mut vis = vec![0u64; words];
        let (seed, thr) = (self.spec.seed(), self.spec.obstacle_threshold());
        for (i, chunk) in vis.chunks_mut(1 << 10).enumerate() {
            let first = base + ((i << 10) as u64) * 64;
            let blocked = fill_blocked(seed, thr, first, base + len, chunk);
            slab.blocked += blocked;
            if self.tick(blocked) {
                return slab;
            }
        }
        let fill = FillSlab {
            job: self,
            slab: &mut slab,
            vis: &mut vis,
            p_lo,
            p_hi,
            base,
            len,
            plane,
            multi,
            has_first,
            has_last,
            last_wrap,
        };
        grid.with_stepper(fill);
        slab
    }
}

/// The flood fill of one slab, with the lattice dimension as a constant.
struct FillSlab<'a, 'j> {
    job: &'a SlabJob<'j>,
    slab: &'a mut Slab,
    vis: &'a mut [u64],
    p_lo: u64,
    p_hi: u64,
    base: u64,
    len: u64,
    plane: u64,
    multi: bool,
    has_first: bool,
    has_last: bool,
    last_wrap: bool,
}

impl WithStepper for FillSlab<'_, '_> {
    type Output = ();

    fn run<const D: usize>(self, st: Stepper<D>) {
        let FillSlab {
            job,
            slab,
            vis,
            p_lo,
            p_hi,
            base,
            len,
            plane,
            multi,
            has_first,
            has_last,
            last_wrap,
        } = self;
        // FIFO in a Vec: `queue[head..tail]`, compacted when the consumed
        // prefix is over half of it; pushes are branch-free (written, then
        // kept only if the vertex was new).
        let mut queue: Vec<u64> = Vec::new();
        let mut pending = 0u64;
        for wi in 0..vis.len() {
            loop {
                let free = !vis[wi];
                if free == 0 {
                    break;
                }
                let b = free.trailing_zeros();
                vis[wi] |= 1 << b;
                queue.clear();
                queue.push(base + (wi as u64) * 64 + u64::from(b));
                let (mut head, mut tail) = (0usize, 1usize);
                let mut size = 0u64;
                let mut id = NONE;
                while head < tail {
                    let v = queue[head];
                    head += 1;
                    size += 1;
                    if multi {
                        let rel = v - base;
                        let in_first = has_first && rel < plane;
                        let in_last = has_last && rel >= len - plane;
                        if in_first || in_last {
                            if id == NONE {
                                id = slab.boundary.len() as u32;
                                slab.boundary.push(0);
                            }
                            if in_first {
                                slab.first[rel as usize] = id;
                            }
                            if in_last {
                                slab.last[(rel - (len - plane)) as usize] = id;
                            }
                        }
                    }
                    if queue.len() < tail + 2 * D {
                        if head > tail / 2 {
                            queue.copy_within(head..tail, 0);
                            tail -= head;
                            head = 0;
                        }
                        if queue.len() < tail + 2 * D {
                            let grow = (tail + 2 * D).max(queue.len() * 2);
                            queue.resize(grow, 0);
                        }
                    }
                    let data = queue.as_mut_slice();
                    st.neighbours_all(v, p_lo, p_hi, last_wrap, base + len, |w| {
                        let r = w - base;
                        let (i, m) = ((r >> 6) as usize, 1u64 << (r & 63));
                        let cur = vis[i];
                        vis[i] = cur | m;
                        data[tail] = w;
                        tail += usize::from(cur & m == 0);
                    });
                    pending += 1;
                    if pending >= CHECK_EVERY {
                        if job.tick(pending) {
                            return;
                        }
                        pending = 0;
                    }
                }
                if id == NONE {
                    *slab.hist.entry(size).or_insert(0) += 1;
                } else {
                    slab.boundary[id as usize] = size;
                }
            }
        }
        job.tick(pending);
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
