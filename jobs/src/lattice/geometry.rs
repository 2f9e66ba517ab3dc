//! Neighbours from index arithmetic: strides `n^k` and a division by `n`
//! turned into a multiplication (the hot loop splits every frontier vertex
//! into coordinates to know which of its `2d` moves stay inside).

use super::bricks::{Bricks, searches_use};
use super::spec::{LatticeSpec, MAX_DIMENSIONS};

/// Exact `x / n` for `x < 2^63` and `2 <= n <= 2^63`, as a multiplication
/// (Granlund & Montgomery's "round-up" method with a 65-bit multiplier whose
/// top bit is implicit): `m = ceil(2^(64+l) / n) - 2^64`, `l = ceil(log2 n)`,
/// `x / n = (x + mulhi(x, m)) >> l` (`m = 0` for powers of two). Vertex
/// indices are far below 2^63 (the engine refuses more than 2^34 vertices).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FastDiv {
    m: u64,
    l: u32,
}

impl FastDiv {
    pub(crate) fn new(n: u64) -> Self {
        assert!((2..=1 << 63).contains(&n), "FastDiv needs 2 <= n <= 2^63");
        let l = 64 - (n - 1).leading_zeros();
        let m_full = (1u128 << (64 + l)).div_ceil(u128::from(n));
        FastDiv {
            m: (m_full - (1u128 << 64)) as u64,
            l,
        }
    }

    /// `x / n` for `x < 2^63`.
    #[inline(always)]
    pub(crate) fn div(&self, x: u64) -> u64 {
        let hi = ((u128::from(x) * u128::from(self.m)) >> 64) as u64;
        (x + hi) >> self.l
    }
}

/// Calls `f(k, c_k)` for the `d` coordinates of `x` in base `base` (`div`
/// divides by it), lowest axis first; the last axis takes the rest.
#[inline(always)]
pub(crate) fn for_each_coord(
    x: u64,
    d: usize,
    base: u64,
    div: &FastDiv,
    mut f: impl FnMut(usize, u64),
) {
    let mut q = x;
    for k in 0..d {
        let c = if k + 1 == d {
            q
        } else {
            let nq = div.div(q);
            let c = q - nq * base;
            q = nq;
            c
        };
        f(k, c);
    }
}

/// Neighbour enumeration with the dimension as a constant, so the per-axis
/// loop unrolls and strides stay in registers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stepper<const D: usize> {
    n: u64,
    div: FastDiv,
    wrap: bool,
    strides: [u64; D],
}

impl<const D: usize> Stepper<D> {
    fn new(grid: &Grid) -> Self {
        debug_assert_eq!(grid.d, D);
        let mut strides = [0u64; D];
        strides.copy_from_slice(&grid.strides[..D]);
        Stepper {
            n: grid.n,
            div: grid.div,
            wrap: grid.wrap,
            strides,
        }
    }

    pub(crate) fn n(&self) -> u64 {
        self.n
    }

    pub(crate) fn wraps(&self) -> bool {
        self.wrap
    }

    /// Like [`Grid::neighbours_in`] (same order), but calls `f` exactly
    /// `2 D` times, with `outside` for a move that leaves the lattice (or
    /// the slab), and without a branch per move: the hot loops pass the
    /// index of a bit that is always set (a padding bit past the last
    /// vertex), so such a move claims nothing. Boundary branches are
    /// unpredictable on small sides (`n = 10`: one coordinate in five is on
    /// a face), this is a conditional move.
    #[inline(always)]
    pub(crate) fn neighbours_all(
        &self,
        v: u64,
        last_lo: u64,
        last_hi: u64,
        last_wrap: bool,
        outside: u64,
        mut f: impl FnMut(u64),
    ) {
        let n = self.n;
        let mut q = v;
        for k in 0..D {
            let last = k + 1 == D;
            let c = if !last {
                let nq = self.div.div(q);
                let c = q - nq * n;
                q = nq;
                c
            } else {
                q
            };
            let (lo, hi, wrap) = if last {
                (last_lo, last_hi, last_wrap)
            } else {
                (0, n, self.wrap)
            };
            let s = self.strides[k];
            let span = (n - 1) * s;
            let down_alt = if wrap { v.wrapping_add(span) } else { outside };
            let up_alt = if wrap { v.wrapping_sub(span) } else { outside };
            f(if c > lo { v.wrapping_sub(s) } else { down_alt });
            f(if c + 1 < hi {
                v.wrapping_add(s)
            } else {
                up_alt
            });
        }
    }
}

/// The numbering a search uses for its bitsets and queues: the vertex index
/// itself, or (open boundaries) the index in the lattice padded with one
/// layer of always-set vertices on every side (side `n + 2`), where every
/// move is `± N^k` with no coordinate, division or boundary test at all.
// Built once per search and passed by reference: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ids {
    Plain,
    Padded(Padded),
    Bricked(Bricks),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Padded {
    d: usize,
    n: u64,
    /// `n + 2`, and dividing by it.
    side: u64,
    div_side: FastDiv,
    div_n: FastDiv,
    /// Strides of the padded lattice (`side^k`) and of the lattice.
    pub(crate) strides: [u64; MAX_DIMENSIONS as usize],
    real: [u64; MAX_DIMENSIONS as usize],
    /// `side^d`: ids below it (the rest is padding).
    pub(crate) ids: u64,
}

impl Ids {
    /// Padded when the boundary is open and the padded lattice has at most
    /// twice the vertices (so at most twice the bitset memory).
    pub(crate) fn for_grid(grid: &Grid) -> Self {
        if grid.wrap {
            return Ids::Plain;
        }
        let side = grid.n + 2;
        let ids = (0..grid.d).try_fold(1u64, |acc, _| acc.checked_mul(side));
        match ids {
            Some(ids) if ids <= grid.vertices.saturating_mul(2) && ids < 1 << 40 => {
                let mut strides = [0u64; MAX_DIMENSIONS as usize];
                let mut st = 1u64;
                for x in strides.iter_mut().take(grid.d) {
                    *x = st;
                    st *= side;
                }
                Ids::Padded(Padded {
                    d: grid.d,
                    n: grid.n,
                    side,
                    div_side: FastDiv::new(side),
                    div_n: grid.div,
                    strides,
                    real: grid.strides,
                    ids,
                })
            }
            _ => Ids::Plain,
        }
    }

    /// The numbering of a search from `sources` sources: bricked for
    /// two-source searches where [`searches_use`] says so, else
    /// [`Ids::for_grid`].
    pub(crate) fn for_search(grid: &Grid, sources: usize) -> Self {
        if sources != 2 || !searches_use(grid.d, grid.wrap) {
            return Ids::for_grid(grid);
        }
        Bricks::new(grid).map_or_else(|| Ids::for_grid(grid), Ids::Bricked)
    }

    /// Bits a search's bitsets need.
    pub(crate) fn count(&self, grid: &Grid) -> u64 {
        match self {
            Ids::Plain => grid.vertices,
            Ids::Padded(p) => p.ids,
            Ids::Bricked(b) => b.words * 64,
        }
    }

    #[inline]
    pub(crate) fn id(&self, v: u64) -> u64 {
        match self {
            Ids::Plain => v,
            Ids::Bricked(b) => b.id(v),
            Ids::Padded(p) => {
                let mut id = 0;
                for_each_coord(v, p.d, p.n, &p.div_n, |k, c| id += (c + 1) * p.strides[k]);
                id
            }
        }
    }

    /// The vertex of an id of a real vertex (plain and padded ids preserve
    /// the order of vertices; bricked ones do not).
    #[inline]
    pub(crate) fn vertex(&self, id: u64) -> u64 {
        match self {
            Ids::Plain => id,
            Ids::Bricked(b) => b.vertex(id),
            Ids::Padded(p) => {
                let mut v = 0;
                for_each_coord(id, p.d, p.side, &p.div_side, |k, c| {
                    v += (c - 1) * p.real[k]
                });
                v
            }
        }
    }
}

impl Padded {
    /// The vertex index of the first real vertex of padded row `row` (rows
    /// along axis 0, numbered by the other padded coordinates), or `None`
    /// if the row is padding.
    pub(crate) fn row_start(&self, row: u64) -> Option<u64> {
        let mut q = row;
        let mut v = 0;
        for k in 1..self.d {
            let c = if k + 1 == self.d {
                q
            } else {
                let nq = self.div_side.div(q);
                let c = q - nq * self.side;
                q = nq;
                c
            };
            if c == 0 || c > self.n {
                return None;
            }
            v += (c - 1) * self.real[k];
        }
        if self.d == 1 && row > 0 {
            return None;
        }
        Some(v)
    }

    pub(crate) fn side(&self) -> u64 {
        self.side
    }

    pub(crate) fn n(&self) -> u64 {
        self.n
    }

    /// `x / side`.
    pub(crate) fn row_of(&self, x: u64) -> u64 {
        self.div_side.div(x)
    }
}

/// Something to run with a [`Stepper`] of the lattice's dimension.
pub(crate) trait WithStepper {
    type Output;
    fn run<const D: usize>(self, stepper: Stepper<D>) -> Self::Output;
}

/// The lattice as index arithmetic.
#[derive(Debug, Clone)]
pub(crate) struct Grid {
    pub(crate) d: usize,
    pub(crate) n: u64,
    pub(crate) vertices: u64,
    pub(crate) strides: [u64; MAX_DIMENSIONS as usize],
    /// Periodic with `n > 2` (with `n == 2` the wrap edge is the ordinary edge).
    pub(crate) wrap: bool,
    div: FastDiv,
}

impl Grid {
    /// Only for lattices within the engine's vertex ceiling (`n <= 2^63`).
    pub(crate) fn new(spec: &LatticeSpec) -> Self {
        let d = spec.dimensions() as usize;
        let n = spec.size();
        let mut strides = [0u64; MAX_DIMENSIONS as usize];
        let mut s = 1u64;
        for stride in strides.iter_mut().take(d) {
            *stride = s;
            s = s.saturating_mul(n);
        }
        Grid {
            d,
            n,
            vertices: spec.vertices(),
            strides,
            wrap: spec.wraps(),
            div: FastDiv::new(n),
        }
    }

    /// Calls `job` with the [`Stepper`] for this dimension.
    pub(crate) fn with_stepper<J: WithStepper>(&self, job: J) -> J::Output {
        match self.d {
            1 => job.run(Stepper::<1>::new(self)),
            2 => job.run(Stepper::<2>::new(self)),
            3 => job.run(Stepper::<3>::new(self)),
            4 => job.run(Stepper::<4>::new(self)),
            5 => job.run(Stepper::<5>::new(self)),
            6 => job.run(Stepper::<6>::new(self)),
            7 => job.run(Stepper::<7>::new(self)),
            8 => job.run(Stepper::<8>::new(self)),
            9 => job.run(Stepper::<9>::new(self)),
            _ => job.run(Stepper::<10>::new(self)),
        }
    }

    /// Edges on a shortest path from `a` to `b` without obstacles: the sum
    /// of the axis distances (the shorter way round when periodic).
    pub(crate) fn distance(&self, a: u64, b: u64) -> u64 {
        let mut ca = [0u64; MAX_DIMENSIONS as usize];
        for_each_coord(a, self.d, self.n, &self.div, |k, c| ca[k] = c);
        let mut total = 0;
        for_each_coord(b, self.d, self.n, &self.div, |k, c| {
            let gap = ca[k].abs_diff(c);
            total += if self.wrap {
                gap.min(self.n - gap)
            } else {
                gap
            };
        });
        total
    }

    /// Vertices per hyperplane of the last axis (`n^(d-1)`).
    pub(crate) fn plane(&self) -> u64 {
        self.strides[self.d - 1]
    }

    /// Calls `f` for every neighbour of `v`, in the fixed order axis 0 `-`,
    /// axis 0 `+`, axis 1 `-`, ...
    #[inline(always)]
    pub(crate) fn neighbours(&self, v: u64, f: impl FnMut(u64)) {
        self.neighbours_in(v, 0, self.n, self.wrap, f)
    }

    /// Like [`neighbours`](Self::neighbours) with the last coordinate
    /// restricted to `[last_lo, last_hi)` (a slab), wrapping along the last
    /// axis only if `last_wrap`.
    #[inline(always)]
    pub(crate) fn neighbours_in(
        &self,
        v: u64,
        last_lo: u64,
        last_hi: u64,
        last_wrap: bool,
        mut f: impl FnMut(u64),
    ) {
        let n = self.n;
        let last = self.d - 1;
        let mut q = v;
        for k in 0..last {
            let nq = self.div.div(q);
            let c = q - nq * n;
            q = nq;
            let s = self.strides[k];
            if c > 0 {
                f(v - s);
            } else if self.wrap {
                f(v + (n - 1) * s);
            }
            if c + 1 < n {
                f(v + s);
            } else if self.wrap {
                f(v - (n - 1) * s);
            }
        }
        let c = q;
        let s = self.strides[last];
        if c > last_lo {
            f(v - s);
        } else if last_wrap {
            f(v + (n - 1) * s);
        }
        if c + 1 < last_hi {
            f(v + s);
        } else if last_wrap {
            f(v - (n - 1) * s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::obstacles::splitmix64;
    use super::super::spec::Boundary;
    use super::*;

    #[test]
    fn fastdiv_is_exact() {
        let divisors = [
            2u64,
            3,
            5,
            7,
            10,
            16,
            40,
            100,
            200,
            641,
            1000,
            1 << 20,
            (1 << 32) + 1,
            u64::MAX / 3,
            1 << 62,
            (1 << 62) + 1,
            1 << 63,
        ];
        let limit = 1u64 << 63;
        for &n in &divisors {
            let fd = FastDiv::new(n);
            let mut probes = vec![0u64, 1, n - 1, n, n + 1, limit - 1, limit - 2];
            probes.extend((0..3000).map(|i| splitmix64(i) >> 1));
            probes.extend((0..3000).map(|i| splitmix64(i) >> (1 + i % 63)));
            for x in probes.into_iter().filter(|&x| x < limit) {
                assert_eq!(fd.div(x), x / n, "x={x} n={n}");
            }
        }
    }

    #[test]
    fn stepper_matches_grid() {
        struct Collect(Vec<u64>);
        impl WithStepper for &mut Collect {
            type Output = Vec<Vec<u64>>;
            fn run<const D: usize>(self, st: Stepper<D>) -> Vec<Vec<u64>> {
                self.0
                    .iter()
                    .map(|&v| {
                        let mut out = Vec::new();
                        let outside = u64::MAX;
                        st.neighbours_all(v, 0, st.n(), st.wraps(), outside, |w| {
                            if w != outside {
                                out.push(w);
                            }
                        });
                        out
                    })
                    .collect()
            }
        }
        for boundary in [Boundary::Open, Boundary::Periodic] {
            for (d, n) in [(1u32, 9u64), (2, 5), (3, 4), (4, 3), (6, 2), (10, 3)] {
                let spec = LatticeSpec::new(d, n, 0.0, 0, boundary).unwrap();
                let g = Grid::new(&spec);
                let vs: Vec<u64> = (0..spec.vertices().min(5000)).collect();
                let got = g.with_stepper(&mut Collect(vs.clone()));
                for (v, got) in vs.iter().zip(got) {
                    let mut want = Vec::new();
                    g.neighbours(*v, |w| want.push(w));
                    assert_eq!(got, want, "d={d} n={n} v={v}");
                }
            }
        }
    }

    #[test]
    fn neighbours_match_coordinates() {
        for boundary in [Boundary::Open, Boundary::Periodic] {
            for (d, n) in [(1u32, 5u64), (2, 3), (3, 4), (2, 2), (4, 3)] {
                let spec = LatticeSpec::new(d, n, 0.0, 0, boundary).unwrap();
                let g = Grid::new(&spec);
                for v in 0..spec.vertices() {
                    let c = spec.index_to_coords(v).unwrap();
                    let mut got = Vec::new();
                    g.neighbours(v, |w| got.push(w));
                    let mut want = Vec::new();
                    for k in 0..d as usize {
                        for plus in [false, true] {
                            let mut cc = c.clone();
                            let moved = (c[k] + if plus { 1 } else { n - 1 }) % n;
                            let wraps = if plus { c[k] == n - 1 } else { c[k] == 0 };
                            if wraps && !(boundary == Boundary::Periodic && n > 2) {
                                continue;
                            }
                            cc[k] = moved;
                            want.push(spec.coords_to_index(&cc).unwrap());
                        }
                    }
                    assert_eq!(got, want, "d={d} n={n} v={v} {boundary:?}");
                    let mut dedup = got.clone();
                    dedup.sort_unstable();
                    dedup.dedup();
                    assert_eq!(dedup.len(), got.len(), "duplicate neighbour");
                }
            }
        }
    }

    /// `distance` is the length of a BFS path in the obstacle-free lattice
    /// (checked by a plain BFS from a few sources).
    #[test]
    fn distance_is_the_obstacle_free_bfs_distance() {
        for boundary in [Boundary::Open, Boundary::Periodic] {
            for (d, n) in [(1u32, 6u64), (2, 5), (3, 4), (2, 2), (4, 3), (3, 3)] {
                let spec = LatticeSpec::new(d, n, 0.0, 0, boundary).unwrap();
                let g = Grid::new(&spec);
                for src in [0, spec.vertices() / 3, spec.vertices() - 1] {
                    let mut dist = vec![u64::MAX; spec.vertices() as usize];
                    dist[src as usize] = 0;
                    let mut queue = std::collections::VecDeque::from([src]);
                    while let Some(v) = queue.pop_front() {
                        g.neighbours(v, |w| {
                            if dist[w as usize] == u64::MAX {
                                dist[w as usize] = dist[v as usize] + 1;
                                queue.push_back(w);
                            }
                        });
                    }
                    for v in 0..spec.vertices() {
                        assert_eq!(
                            g.distance(src, v),
                            dist[v as usize],
                            "{boundary:?} d={d} n={n}"
                        );
                        assert_eq!(g.distance(v, src), dist[v as usize]);
                    }
                }
            }
        }
    }
}
