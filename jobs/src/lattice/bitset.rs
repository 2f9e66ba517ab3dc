//! Packed per-vertex state: 1-bit sets and 2-bit BFS labels.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Test bit `v` of a plain bitset.
#[inline(always)]
pub(crate) fn bit(words: &[u64], v: u64) -> bool {
    (words[(v >> 6) as usize] >> (v & 63)) & 1 == 1
}

/// 1 bit per vertex, 64 vertices per atomic word: the visited set of one
/// search direction, with blocked vertices (and padding past the last
/// vertex) pre-set. This is the array the BFS hot loop probes `2d` times per
/// vertex, so it is kept as small as possible.
pub(crate) struct AtomicBits {
    words: Vec<AtomicU64>,
}

impl AtomicBits {
    /// `bits` bits, all zero: a zeroed allocation (for large sets, fresh
    /// pages the kernel maps on first write), so no page is touched here:
    /// the searches' bitsets are first written by the parallel fill, which
    /// then takes the page faults on all threads (writing the zeros here,
    /// on one thread, was measured at 3-7 ms of an 8M-vertex search).
    pub(crate) fn new(bits: u64) -> Self {
        let n = bits.div_ceil(64) as usize;
        AtomicBits {
            words: bytemuck::allocation::zeroed_slice_box::<AtomicU64>(n).into_vec(),
        }
    }

    pub(crate) fn word_count(&self) -> usize {
        self.words.len()
    }

    /// Overwrites word `i` (bits `64 i .. 64 i + 63`).
    #[inline]
    pub(crate) fn store_word(&self, i: usize, value: u64) {
        self.words[i].store(value, Relaxed);
    }

    #[inline(always)]
    pub(crate) fn get(&self, v: u64) -> bool {
        (self.words[(v >> 6) as usize].load(Relaxed) >> (v & 63)) & 1 == 1
    }

    pub(crate) fn set_to(&self, v: u64, on: bool) {
        let w = &self.words[(v >> 6) as usize];
        let cur = w.load(Relaxed) & !(1 << (v & 63));
        w.store(cur | (u64::from(on) << (v & 63)), Relaxed);
    }

    /// The words, for hot loops: a slice held in a local keeps its pointer
    /// and length in registers (through `&self` the compiler reloads them
    /// after every store to another array).
    pub(crate) fn words(&self) -> &[AtomicU64] {
        &self.words
    }
}

/// Sets bit `v` of `words` and returns 1 if it was clear, else 0.
/// Branch-free (the word is always written back); only for the single
/// thread that owns the array (others may read it meanwhile).
#[inline(always)]
pub(crate) fn claim_in(words: &[AtomicU64], v: u64) -> u64 {
    let w = &words[(v >> 6) as usize];
    let cur = w.load(Relaxed);
    let bit = 1u64 << (v & 63);
    w.store(cur | bit, Relaxed);
    u64::from(cur & bit == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_bits() {
        let b = AtomicBits::new(130);
        assert_eq!(b.word_count(), 3);
        assert_eq!(claim_in(b.words(), 70), 1);
        assert_eq!(claim_in(b.words(), 70), 0);
        assert!(b.get(70) && !b.get(71));
        b.set_to(70, false);
        assert!(!b.get(70));
        b.store_word(2, 1);
        assert!(b.get(128));
    }

    #[test]
    fn plain_bit() {
        let w = [0b1010u64, 1];
        assert!(bit(&w, 1));
        assert!(!bit(&w, 2));
        assert!(bit(&w, 64));
    }
}
