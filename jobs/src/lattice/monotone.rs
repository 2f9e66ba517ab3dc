//! Paths that attain the obstacle-free lower bound, found by one sweep
//! without a search.
//!
//! Without obstacles the distance between `a` and `b` is `L = sum |b_k -
//! a_k|` (when no axis is shorter the wrapping way), and it stays a lower
//! bound with obstacles. A path of length `L` is exactly a *monotone* path:
//! every step moves one coordinate one unit towards `b`, inside the box
//! spanned by `a` and `b`. Whether one exists is a dynamic programme over
//! the box in the order of its local index (each vertex depends only on its
//! predecessors along each axis):
//!
//! ```text
//! reach(a) = true
//! reach(v) = open(v) and (reach(v - e_0) or reach(v - e_1) or ...)
//! ```
//!
//! It runs 64 vertices at a time: the box is stored as rows along axis 0,
//! each row padded to whole 64-bit words, so the predecessor along any other
//! axis is the same word of an earlier row (an OR), and the predecessor
//! along axis 0 is a carry along the row: seeds `S` spread to the end of
//! their run of open bits `O` with one addition, `((O + S) ^ O | S) & O`.
//! Obstacle bits come from the vectorised rule, a row at a time. If `b` is
//! reached the answer is exact (nothing can be shorter than `L`), and the
//! path is read back from the `reach` bits; otherwise the caller runs the
//! bidirectional BFS. The sweep costs about a word operation per 64
//! vertices, against a few nanoseconds per vertex for a BFS.

use super::control::Reporter;
use super::error::LatticeError;
use super::obstacles::fill_blocked;
use super::spec::LatticeSpec;

/// Words swept between two progress/cancellation checks.
const CHECK_WORDS: u64 = 1 << 10;

/// A monotone path from `start` to `end` (vertex indices, `start` first).
pub(crate) struct Monotone {
    /// Vertices of the box (what the sweep examined).
    pub(crate) swept: u64,
    /// The path, if asked for and one exists.
    pub(crate) path: Option<Vec<u64>>,
}

/// The box between two vertices, oriented so that every axis runs from the
/// first vertex to the second.
struct Box_ {
    d: usize,
    /// Corner the sweep starts from, and the direction of each axis (axis 0
    /// always ascending: the endpoints are swapped when needed).
    from: Vec<u64>,
    up: Vec<bool>,
    /// Extent per axis (`|b_k - a_k| + 1`).
    m: Vec<u64>,
    /// Lattice strides.
    strides: Vec<u64>,
    /// Row strides of the local row index (axes 1..d).
    row_stride: Vec<u64>,
    rows: u64,
    words: usize,
}

impl Box_ {
    fn new(spec: &LatticeSpec, a: &[u64], b: &[u64]) -> Self {
        let d = a.len();
        let n = spec.size();
        let m: Vec<u64> = a.iter().zip(b).map(|(&x, &y)| x.abs_diff(y) + 1).collect();
        let mut strides = vec![1u64; d];
        for k in 1..d {
            strides[k] = strides[k - 1] * n;
        }
        let mut row_stride = vec![0u64; d];
        let mut rows = 1u64;
        for k in 1..d {
            row_stride[k] = rows;
            rows *= m[k];
        }
        Box_ {
            d,
            from: a.to_vec(),
            up: a.iter().zip(b).map(|(&x, &y)| y >= x).collect(),
            words: m[0].div_ceil(64) as usize,
            m,
            strides,
            row_stride,
            rows,
        }
    }

    /// Lattice index of the box's local coordinates.
    fn index(&self, local: &[u64]) -> u64 {
        (0..self.d)
            .map(|k| {
                let c = if self.up[k] {
                    self.from[k] + local[k]
                } else {
                    self.from[k] - local[k]
                };
                c * self.strides[k]
            })
            .sum()
    }
}

/// Whether the sweep applies: the obstacle-free distance is the box's
/// Manhattan distance (no axis shorter the wrapping way), and its bitset
/// (one padded row per line along axis 0) stays within a byte per lattice
/// vertex or 1 MiB.
pub(crate) fn applies(spec: &LatticeSpec, a: &[u64], b: &[u64], lower_bound: u64) -> bool {
    let manhattan: u64 = a.iter().zip(b).map(|(&x, &y)| x.abs_diff(y)).sum();
    if manhattan != lower_bound {
        return false;
    }
    let rows: u128 = a
        .iter()
        .zip(b)
        .skip(1)
        .map(|(&x, &y)| u128::from(x.abs_diff(y)) + 1)
        .product();
    let words = rows * u128::from((a[0].abs_diff(b[0]) + 1).div_ceil(64));
    words * 8 <= u128::from(spec.vertices()).max(1 << 20)
}

/// Looks for a monotone path from `a` to `b` (coordinates, distinct,
/// [`applies`] true). `Ok(None)`: there is none (the distance is larger).
pub(crate) fn monotone_path(
    spec: &LatticeSpec,
    a: &[u64],
    b: &[u64],
    want_path: bool,
    rep: &Reporter<'_>,
    (base, span): (u8, u8),
) -> Result<Option<Monotone>, LatticeError> {
    // Sweep with axis 0 ascending; a path found from `b` is reversed.
    let swapped = b[0] < a[0];
    let (a, b) = if swapped { (b, a) } else { (a, b) };
    let bx = Box_::new(spec, a, b);
    let w = bx.words;
    let (seed, thr) = (spec.seed(), spec.obstacle_threshold());
    let mut reach = vec![0u64; bx.rows as usize * w];
    let mut blocked = vec![0u64; w];
    let mut local = vec![0u64; bx.d];
    let last_bit = (bx.m[0] - 1) % 64;
    let last_plane = bx.rows / bx.m[bx.d - 1].max(1);
    let mut plane_reached = false;
    let mut since_check = 0u64;
    // At least ~32 progress reports (every ~3%), at most every CHECK_WORDS.
    let check_every = (bx.rows * w as u64 / 32).clamp(1, CHECK_WORDS);
    for r in 0..bx.rows {
        since_check += w as u64;
        if since_check >= check_every {
            since_check = 0;
            rep.phase(base, span, r, bx.rows);
            rep.check()?;
        }
        // The row's lattice indices run up from `first` (axis 0 ascends).
        local[0] = 0;
        let first = bx.index(&local);
        fill_blocked(seed, thr, first, first + bx.m[0], &mut blocked);
        if r == 0 {
            blocked[0] &= !1; // the start is never blocked
        }
        if r + 1 == bx.rows {
            blocked[w - 1] &= !(1u64 << last_bit); // nor the end
        }
        let (done, row) = reach.split_at_mut(r as usize * w);
        let row = &mut row[..w];
        let mut carry = 0u64;
        let mut any = 0u64;
        for i in 0..w {
            let open = !blocked[i];
            let mut seeds = if r == 0 && i == 0 { 1 } else { 0 };
            for k in 1..bx.d {
                if local[k] > 0 {
                    seeds |= done[(r - bx.row_stride[k]) as usize * w + i];
                }
            }
            let seeds = seeds & open;
            let (sum, c1) = open.overflowing_add(seeds);
            let (sum, c2) = sum.overflowing_add(carry);
            carry = u64::from(c1 | c2);
            row[i] = ((sum ^ open) | seeds) & open;
            any |= row[i];
        }
        plane_reached |= any != 0;
        // Advance the row odometer (axes 1..d); a finished plane of the
        // last axis with nothing reached ends the sweep.
        for (c, &m) in local.iter_mut().zip(&bx.m).skip(1) {
            *c += 1;
            if *c < m {
                break;
            }
            *c = 0;
        }
        if bx.d > 1 && (r + 1) % last_plane == 0 {
            if !plane_reached {
                return Ok(None);
            }
            plane_reached = false;
        }
    }
    let end_row = (bx.rows - 1) as usize * w;
    if reach[end_row + w - 1] >> last_bit & 1 == 0 {
        return Ok(None);
    }
    let swept = bx.m.iter().product();
    if !want_path {
        return Ok(Some(Monotone { swept, path: None }));
    }
    // Walk back from the end along reached predecessors.
    let bit = |r: u64, c: u64| reach[r as usize * w + (c / 64) as usize] >> (c % 64) & 1 == 1;
    let mut cur: Vec<u64> = bx.m.iter().map(|&m| m - 1).collect();
    let mut row: u64 = (1..bx.d).map(|k| cur[k] * bx.row_stride[k]).sum();
    let steps: u64 = cur.iter().sum();
    let mut path = Vec::with_capacity(steps as usize + 1);
    path.push(bx.index(&cur));
    for _ in 0..steps {
        let k = if cur[0] > 0 && bit(row, cur[0] - 1) {
            0
        } else {
            // A reached vertex other than the start has a reached
            // predecessor; were that ever false, the caller's BFS answers.
            let Some(k) = (1..bx.d).find(|&k| cur[k] > 0 && bit(row - bx.row_stride[k], cur[0]))
            else {
                debug_assert!(false, "monotone walk-back lost its way");
                return Ok(None);
            };
            k
        };
        cur[k] -= 1;
        if k > 0 {
            row -= bx.row_stride[k];
        }
        path.push(bx.index(&cur));
    }
    if !swapped {
        path.reverse();
    }
    Ok(Some(Monotone {
        swept,
        path: Some(path),
    }))
}
