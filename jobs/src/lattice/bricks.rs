//! The bricked numbering of open lattices, for two-source searches.
//!
//! The lattice, padded with one layer of always-set vertices on every side
//! (coordinates `1..=n` real, `0` and `n + 1` padding), is cut into bricks
//! of 64 vertices, `2^e_k` along axis `k` (`sum e_k = 6`, as even as the
//! dimension allows: 4 x 4 x 4 for `d = 3`, 4 x 4 x 2 x 2 for `d = 4`, 2^6
//! from `d = 6` on, 1 along the axes past the sixth). A brick is one 64-bit
//! word of a bitset, so a search front crossing a brick covers several of
//! its bits (about five on `d = 3`): a BFS level moves all of them with a
//! few shifts and masks per axis (inside the brick) and one
//! read-modify-write per neighbouring brick, instead of `2d` probes per
//! vertex. Measured against the padded numbering (20% obstacles, corner to
//! corner, the two interleaved in one run, medians of five): per visited
//! vertex 17% less time on `d = 3, n = 200` with two threads (25% with
//! one), 22% (33%) on `d = 4, n = 40`, 12% on `d = 3, n = 100`; even on
//! `d = 5, n = 16` and `d = 6, n = 10` (a front crosses a brick of side 2 in
//! few vertices), and 40% more on `d = 2, n = 1000` (a front crosses an
//! 8 x 8 brick in about four vertices, and the padded search probes only
//! four near neighbours). So searches use it for `d = 3` and `d = 4` only
//! ([`super::geometry::Ids::for_search`]).
//!
//! Ids: `128 * brick + bit`, with bricks numbered along axis 0 first and one
//! spare layer of bricks (never real) below the first and above the last,
//! so a brick's neighbour index never leaves the array; `bit` is
//! `sum local_k << shift_k`, `local_k` the coordinate inside the brick. A
//! search's bitset holds two words per brick: its visited bits (word `2 *
//! brick`, where the ids point) and, beside them in the same cache line, the
//! bits the level being built has reached (word `2 * brick + 1`).

use super::geometry::{FastDiv, Grid, for_each_coord};
use super::obstacles::rule_offsets;
use super::spec::MAX_DIMENSIONS;

const MAXD: usize = MAX_DIMENSIONS as usize;

/// Whether two-source searches use this numbering: open lattices of 3 or 4
/// dimensions, where it was measured faster (see the module docs).
pub(crate) fn searches_use(d: usize, wraps: bool) -> bool {
    !wraps && (3..=4).contains(&d)
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Bricks {
    d: usize,
    n: u64,
    div_n: FastDiv,
    /// Strides of the lattice (`n^k`).
    real: [u64; MAXD],
    /// `e_k`: the brick has `2^e_k` vertices along axis `k`.
    log_side: [u32; MAXD],
    /// Bit distance between neighbours along axis `k` inside a brick.
    pub(crate) shift: [u32; MAXD],
    /// Bricks along each axis, and the brick-index stride of each axis.
    across: [u64; MAXD],
    pub(crate) stride: [u64; MAXD],
    /// Index of brick `(0, ..., 0)` (the spare layer below it is padding).
    first: u64,
    /// Real bricks.
    bricks: u64,
    /// Bitset words: two per brick.
    pub(crate) words: u64,
    /// Bits whose coordinate inside the brick is the lowest / highest along
    /// axis `k` (all bits when the brick is one vertex thick there).
    pub(crate) lo: [u64; MAXD],
    pub(crate) hi: [u64; MAXD],
    /// Vertex-index offset of each bit from the brick's first vertex.
    offset: [u64; 64],
}

impl Bricks {
    /// The numbering for an open lattice of `d >= 2` dimensions whose bricks
    /// hold at most four times its vertex count in bits (or 64 Kbit: tiny
    /// lattices), else `None`.
    pub(crate) fn new(grid: &Grid) -> Option<Self> {
        let d = grid.d;
        if grid.wrap || d < 2 {
            return None;
        }
        let mut log_side = [0u32; MAXD];
        for (k, e) in log_side.iter_mut().enumerate().take(d) {
            let d32 = d as u32;
            *e = 6 / d32 + u32::from((k as u32) < 6 % d32);
        }
        let mut shift = [0u32; MAXD];
        let mut across = [0u64; MAXD];
        let mut stride = [0u64; MAXD];
        let (mut bit, mut bricks) = (0u32, 1u64);
        for k in 0..d {
            // An axis one vertex thick in a brick has no moves inside it.
            shift[k] = if log_side[k] == 0 { 0 } else { bit };
            bit += log_side[k];
            across[k] = (grid.n + 2).div_ceil(1 << log_side[k]);
            stride[k] = bricks;
            bricks = bricks.checked_mul(across[k])?;
        }
        let first = stride[d - 1];
        let all = bricks.checked_add(first.checked_mul(2)?)?;
        let words = all.checked_mul(2)?;
        let bits = words.checked_mul(64)?;
        if bits > grid.vertices.saturating_mul(4).max(1 << 16) || bits >= 1 << 40 {
            return None;
        }
        let mut lo = [0u64; MAXD];
        let mut hi = [0u64; MAXD];
        let mut offset = [0u64; 64];
        for (i, off) in offset.iter_mut().enumerate() {
            for k in 0..d {
                let side = 1u64 << log_side[k];
                let local = (i as u64 >> shift[k]) & (side - 1);
                lo[k] |= u64::from(local == 0) << i;
                hi[k] |= u64::from(local == side - 1) << i;
                *off = off.wrapping_add(local.wrapping_mul(grid.strides[k]));
            }
        }
        Some(Bricks {
            d,
            n: grid.n,
            div_n: FastDiv::new(grid.n),
            real: grid.strides,
            log_side,
            shift,
            across,
            stride,
            first,
            bricks,
            words,
            lo,
            hi,
            offset,
        })
    }

    /// `(b_k - 1) * shift_k`: how far a bit on the highest face of a brick
    /// moves to reach the lowest face of the next brick along axis `k`.
    pub(crate) fn span(&self, k: usize) -> u32 {
        ((1u32 << self.log_side[k]) - 1) << self.shift[k]
    }

    /// The id of vertex `v`.
    pub(crate) fn id(&self, v: u64) -> u64 {
        let (mut brick, mut bit) = (self.first, 0u64);
        for_each_coord(v, self.d, self.n, &self.div_n, |k, c| {
            let p = c + 1;
            let e = self.log_side[k];
            brick += (p >> e) * self.stride[k];
            bit += (p & ((1 << e) - 1)) << self.shift[k];
        });
        brick * 128 + bit
    }

    /// The vertex of the id of a real vertex.
    pub(crate) fn vertex(&self, id: u64) -> u64 {
        let mut q = id / 128 - self.first;
        let bit = id % 64;
        let mut v = 0u64;
        for k in 0..self.d {
            let b = if k + 1 == self.d {
                q
            } else {
                let b = q % self.across[k];
                q /= self.across[k];
                b
            };
            let e = self.log_side[k];
            let local = (bit >> self.shift[k]) & ((1 << e) - 1);
            let p = (b << e) + local;
            v += (p - 1) * self.real[k];
        }
        v
    }

    /// Fills `out` with words `first_word ..` of a search's bitset: in the
    /// visited words padding set and real vertices by the obstacle rule, the
    /// next-level words clear. Returns how many real vertices are blocked.
    pub(crate) fn fill(&self, seed: u64, threshold: u64, first_word: u64, out: &mut [u64]) -> u64 {
        let mut blocked = 0u64;
        // Brick coordinates of the current word, advanced like an odometer.
        let mut at = [0u64; MAXD];
        let mut real = false;
        for (i, word) in out.iter_mut().enumerate() {
            let w = first_word + i as u64;
            if w % 2 == 1 {
                *word = 0;
                continue;
            }
            let w = w / 2;
            if w < self.first || w >= self.first + self.bricks {
                *word = !0;
                real = false;
                continue;
            }
            if real {
                for (c, &across) in at.iter_mut().zip(&self.across).take(self.d) {
                    *c += 1;
                    if *c < across {
                        break;
                    }
                    *c = 0;
                }
            } else {
                let mut q = w - self.first;
                for (c, &across) in at.iter_mut().zip(&self.across).take(self.d) {
                    *c = q % across;
                    q /= across;
                }
                real = true;
            }
            let (valid, base) = self.valid_bits(&at);
            if valid == 0 {
                *word = !0;
                continue;
            }
            let bits = if threshold == 0 {
                0
            } else {
                rule_offsets(seed, threshold, base, &self.offset) & valid
            };
            blocked += u64::from(bits.count_ones());
            *word = bits | !valid;
        }
        blocked
    }

    /// The bits of the brick at brick coordinates `at` that are real
    /// vertices, and the vertex index of its bit 0 (wrapping: that bit may
    /// be padding).
    fn valid_bits(&self, at: &[u64; MAXD]) -> (u64, u64) {
        let mut valid = !0u64;
        let mut base = 0u64;
        for (k, &brick_at) in at.iter().enumerate().take(self.d) {
            let e = self.log_side[k];
            let side = 1u64 << e;
            let p0 = brick_at << e;
            base = base.wrapping_add(p0.wrapping_sub(1).wrapping_mul(self.real[k]));
            if p0 >= 1 && p0 + side - 1 <= self.n {
                continue;
            }
            // Locals l with 1 <= p0 + l <= n.
            let from = u64::from(p0 == 0);
            let to = (self.n + 1).saturating_sub(p0).min(side);
            let mut axis = 0u64;
            for l in from..to {
                axis |= self.lo[k] << (l << self.shift[k]);
            }
            valid &= axis;
        }
        (valid, base)
    }
}

#[cfg(test)]
mod tests {
    use super::super::obstacles::{blocked_by_rule, obstacle_threshold};
    use super::super::spec::{Boundary, LatticeSpec};
    use super::*;

    fn grid(d: u32, n: u64) -> Grid {
        Grid::new(&LatticeSpec::new(d, n, 0.0, 0, Boundary::Open).unwrap())
    }

    #[test]
    fn ids_round_trip_and_moves_are_brick_ops() {
        for (d, n) in [
            (2u32, 5u64),
            (2, 9),
            (3, 4),
            (3, 7),
            (3, 9),
            (4, 3),
            (4, 6),
            (5, 3),
            (6, 2),
            (7, 2),
        ] {
            let g = grid(d, n);
            let b = Bricks::new(&g).expect("bricked");
            let mut seen = std::collections::HashSet::new();
            for v in 0..g.vertices {
                let id = b.id(v);
                assert!(id / 128 >= b.first && id / 128 < b.first + b.bricks);
                assert!(id % 128 < 64);
                assert_eq!(b.vertex(id), v, "d={d} n={n}");
                assert!(seen.insert(id));
                // A move along axis k: inside the brick a shift, else the
                // same bit moved by span to the next brick.
                let mut c = v;
                for k in 0..d as usize {
                    let ck = c % n;
                    c /= n;
                    if ck + 1 < n {
                        let w = b.id(v + g.strides[k]);
                        let (brick, bit) = (id / 128, id % 128);
                        if (b.hi[k] >> bit) & 1 == 0 {
                            assert_eq!(w, brick * 128 + (bit + (1 << b.shift[k])));
                        } else {
                            let bit2 = bit - u64::from(b.span(k));
                            assert_eq!(w, (brick + b.stride[k]) * 128 + bit2);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn fill_marks_padding_and_the_rule() {
        let thr = obstacle_threshold(0.3);
        for (d, n) in [(3u32, 5u64), (3, 9), (4, 3), (6, 2)] {
            let g = grid(d, n);
            let b = Bricks::new(&g).unwrap();
            let mut words = vec![0u64; b.words as usize];
            // In two uneven chunks, as the searches fill it.
            let cut = words.len() / 3;
            let (x, y) = words.split_at_mut(cut);
            let blocked = b.fill(9, thr, 0, x) + b.fill(9, thr, cut as u64, y);
            let mut want_blocked = 0;
            let mut real = std::collections::HashSet::new();
            for v in 0..g.vertices {
                let id = b.id(v);
                real.insert(id);
                let on = (words[(id / 64) as usize] >> (id % 64)) & 1 == 1;
                let rule = blocked_by_rule(9, thr, v);
                want_blocked += u64::from(rule);
                assert_eq!(on, rule, "d={d} n={n} v={v}");
            }
            assert_eq!(blocked, want_blocked);
            for id in 0..b.words * 64 {
                let bit = (words[(id / 64) as usize] >> (id % 64)) & 1;
                if (id / 64) % 2 == 1 {
                    assert_eq!(bit, 0, "next-level bits start clear: {id}");
                } else if !real.contains(&id) {
                    assert_eq!(bit, 1, "padding {id}");
                }
            }
        }
    }

    #[test]
    fn declines_periodic_lines_and_sparse_cases() {
        let periodic = Grid::new(&LatticeSpec::new(3, 9, 0.0, 0, Boundary::Periodic).unwrap());
        assert!(Bricks::new(&periodic).is_none());
        assert!(Bricks::new(&grid(1, 1000)).is_none());
        // d = 10, n = 3: bricks of 2 along six axes hold far more padding
        // than vertices.
        assert!(Bricks::new(&grid(10, 3)).is_none());
    }
}
