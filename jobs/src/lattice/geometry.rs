//! Neighbours from index arithmetic: strides `n^k` and a division by `n`
//! turned into a multiplication (the hot loop splits every frontier vertex
//! into coordinates to know which of its `2d` moves stay inside).

use super::spec::{LatticeSpec, MAX_DIMENSIONS};

/// Exact `x / n` for every `u64` `x`, without a hardware division when
/// possible (Granlund & Montgomery, "round-up" method with a 65-bit
/// multiplier whose top bit is implicit).
#[derive(Debug, Clone, Copy)]
pub(crate) enum FastDiv {
    Pow2 { shift: u32 },
    /// `m = ceil(2^(64+l) / n) - 2^64`, `l = ceil(log2 n)`.
    Magic { m: u64, l: u32 },
    Hardware { n: u64 },
}

impl FastDiv {
    pub(crate) fn new(n: u64) -> Self {
        assert!(n >= 1, "division by zero");
        if n.is_power_of_two() {
            return FastDiv::Pow2 {
                shift: n.trailing_zeros(),
            };
        }
        let l = 64 - (n - 1).leading_zeros();
        if l <= 63 {
            let m_full = (1u128 << (64 + l)) / u128::from(n) + 1;
            FastDiv::Magic {
                m: (m_full - (1u128 << 64)) as u64,
                l,
            }
        } else {
            FastDiv::Hardware { n }
        }
    }

    #[inline(always)]
    pub(crate) fn div(&self, x: u64) -> u64 {
        match *self {
            FastDiv::Pow2 { shift } => x >> shift,
            FastDiv::Magic { m, l } => {
                let hi = (u128::from(x) * u128::from(m)) >> 64;
                ((u128::from(x) + hi) >> l) as u64
            }
            FastDiv::Hardware { n } => x / n,
        }
    }
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
            40,
            100,
            200,
            641,
            1000,
            (1 << 32) + 1,
            u64::MAX / 3,
            (1 << 63) + 1,
            u64::MAX,
        ];
        for &n in &divisors {
            let fd = FastDiv::new(n);
            let mut probes = vec![0u64, 1, n - 1, n, n.saturating_add(1), u64::MAX, u64::MAX - 1];
            probes.extend((0..2000).map(splitmix64));
            probes.extend((0..2000).map(|i| splitmix64(i) >> (i % 64)));
            for x in probes {
                assert_eq!(fd.div(x), x / n, "x={x} n={n}");
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
}
