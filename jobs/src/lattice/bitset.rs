//! Packed per-vertex state: 1-bit sets and 2-bit BFS labels.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Test bit `v` of a plain bitset.
#[inline(always)]
pub(crate) fn bit(words: &[u64], v: u64) -> bool {
    (words[(v >> 6) as usize] >> (v & 63)) & 1 == 1
}

/// 2 bits per vertex, 32 vertices per atomic word: `0` = not reached,
/// `1 + (distance mod 3)` = reached at that distance. Blocked vertices (and
/// padding past the last vertex) are pre-marked `1`, so the BFS hot loop tests
/// a single word per neighbour; path reconstruction re-checks the obstacle
/// rule. Knowing `distance mod 3` is enough to walk back: the neighbours of
/// a vertex at distance `L` are at `L - 1`, `L` or `L + 1`, three distinct
/// residues.
pub(crate) struct Labels {
    words: Vec<AtomicU64>,
}

impl Labels {
    /// `vertices` fields, all zero.
    pub(crate) fn new(vertices: u64) -> Self {
        let n = vertices.div_ceil(32) as usize;
        Labels {
            words: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub(crate) fn word_count(&self) -> usize {
        self.words.len()
    }

    /// Overwrites word `i` (fields `32 i .. 32 i + 31`).
    #[inline]
    pub(crate) fn store_word(&self, i: usize, value: u64) {
        self.words[i].store(value, Relaxed);
    }

    #[inline(always)]
    pub(crate) fn get(&self, v: u64) -> u64 {
        (self.words[(v >> 5) as usize].load(Relaxed) >> ((v & 31) * 2)) & 3
    }

    /// Sets the field of `v` to `label` (any previous value).
    pub(crate) fn set(&self, v: u64, label: u64) {
        let sh = (v & 31) * 2;
        let w = &self.words[(v >> 5) as usize];
        let cur = w.load(Relaxed);
        w.store((cur & !(3 << sh)) | (label << sh), Relaxed);
    }

    /// Claims `v` with `label` if its field is 0; returns true if this call
    /// claimed it. `ATOMIC` selects a `fetch_or` (several threads expanding
    /// the same level) or a plain load/store (one thread).
    #[inline(always)]
    pub(crate) fn claim<const ATOMIC: bool>(&self, v: u64, label: u64) -> bool {
        let sh = (v & 31) * 2;
        let w = &self.words[(v >> 5) as usize];
        let cur = w.load(Relaxed);
        if (cur >> sh) & 3 != 0 {
            return false;
        }
        if ATOMIC {
            (w.fetch_or(label << sh, Relaxed) >> sh) & 3 == 0
        } else {
            w.store(cur | (label << sh), Relaxed);
            true
        }
    }
}

/// The label of BFS level `level`.
#[inline(always)]
pub(crate) fn level_label(level: u64) -> u64 {
    level % 3 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_claim_and_get() {
        let l = Labels::new(100);
        assert_eq!(l.word_count(), 4);
        assert!(l.claim::<false>(5, 2));
        assert!(!l.claim::<false>(5, 3));
        assert!(l.claim::<true>(6, 3));
        assert!(!l.claim::<true>(6, 1));
        assert_eq!(l.get(5), 2);
        assert_eq!(l.get(6), 3);
        assert_eq!(l.get(7), 0);
        l.set(5, 0);
        assert_eq!(l.get(5), 0);
        assert_eq!(l.get(6), 3);
        l.store_word(3, u64::MAX);
        assert_eq!(l.get(99), 3);
        assert_eq!(level_label(0), 1);
        assert_eq!(level_label(4), 2);
    }

    #[test]
    fn plain_bit() {
        let w = [0b1010u64, 1];
        assert!(bit(&w, 1));
        assert!(!bit(&w, 2));
        assert!(bit(&w, 64));
    }
}
