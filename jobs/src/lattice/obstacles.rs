//! The obstacle rule: a pure function of `(seed, vertex)`, so obstacles take
//! no storage unless an operation chooses to cache them (one bit per vertex).
//!
//! ```text
//! splitmix64(x):
//!     z = x + 0x9E3779B97F4A7C15            (wrapping)
//!     z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9   (wrapping)
//!     z = (z ^ (z >> 27)) * 0x94D049BB133111EB   (wrapping)
//!     return z ^ (z >> 31)
//! threshold(density) = floor(density * 2^64)    (as u64; 0 when density == 0)
//! blocked(v)         = splitmix64(seed XOR v) < threshold(density)
//! ```
//!
//! The start and end vertex of a path request are never blocked.

/// The splitmix64 finaliser (Steele, Lea & Flood), as specified above.
/// `splitmix64(0) == 0xE220A8397B1DCDAF`.
#[inline(always)]
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `floor(density * 2^64)` as a `u64` (saturating; `0` for density `<= 0`).
pub fn obstacle_threshold(density: f64) -> u64 {
    if density.is_nan() || density <= 0.0 {
        return 0;
    }
    // 2^64 as f64 is exact; `as` saturates at u64::MAX.
    (density * 18_446_744_073_709_551_616.0).floor() as u64
}

/// The raw rule (no endpoint exception).
#[inline(always)]
pub fn blocked_by_rule(seed: u64, threshold: u64, v: u64) -> bool {
    splitmix64(seed ^ v) < threshold
}

/// Bit `i` of the result (`i < count <= 64`) is set iff vertex `first + i`
/// is blocked by the rule or is `>= end` (padding past the end counts as
/// blocked); bits from `count` up are 0.
#[cfg(test)]
pub(crate) fn blocked_bits(seed: u64, threshold: u64, first: u64, end: u64, count: u32) -> u64 {
    let real = end.saturating_sub(first).min(u64::from(count)) as u32;
    let mut word = 0u64;
    if threshold != 0 {
        for i in 0..real {
            word |= u64::from(blocked_by_rule(seed, threshold, first + u64::from(i))) << i;
        }
    }
    if real < count {
        let pad = if count == 64 {
            !0u64
        } else {
            (1u64 << count) - 1
        };
        word |= pad & (!0u64 << real);
    }
    word
}

/// Fills `out[i]` with [`blocked_bits`]`(seed, threshold, first + 64 i, end,
/// 64)` and returns how many real vertices (below `end`) are blocked. On
/// x86-64 CPUs with AVX-512 (F + DQ, detected at run time) the rule runs on 8
/// vertices per instruction (`vpmullq`); elsewhere it is the scalar rule.
pub(crate) fn fill_blocked(
    seed: u64,
    threshold: u64,
    first: u64,
    end: u64,
    out: &mut [u64],
) -> u64 {
    // Words whose 64 vertices are all real (below `end`).
    let full = (end.saturating_sub(first) / 64).min(out.len() as u64) as usize;
    let (body, tail) = out.split_at_mut(full);
    if threshold == 0 {
        body.fill(0);
    } else {
        rule_words(seed, threshold, first, body);
    }
    let mut blocked: u64 = body.iter().map(|w| u64::from(w.count_ones())).sum();
    for (i, w) in tail.iter_mut().enumerate() {
        let at = first + 64 * (full + i) as u64;
        // 0..63 real vertices, then padding (set).
        let real = end.saturating_sub(at).min(63) as u32;
        let mut word = if threshold == 0 || real == 0 {
            0
        } else {
            rule_bits(seed, threshold, at, real)
        };
        word &= (1u64 << real) - 1;
        blocked += u64::from(word.count_ones());
        *w = word | (!0u64 << real);
    }
    blocked
}

/// The rule over `64 * out.len()` real vertices from `first`.
fn rule_words(seed: u64, threshold: u64, first: u64, out: &mut [u64]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512dq")
    {
        // SAFETY: the CPU supports the features the function is compiled for.
        #[allow(unsafe_code)]
        unsafe {
            avx512::rule_words(seed, threshold, first, out)
        };
        return;
    }
    rule_words_scalar(seed, threshold, first, out);
}

/// The rule for vertices `first .. first + count` (`count <= 64`) as the
/// low bits of a word; the bits above `count` are unspecified.
pub(crate) fn rule_bits(seed: u64, threshold: u64, first: u64, count: u32) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512dq")
    {
        // SAFETY: the CPU supports the features the function is compiled for.
        #[allow(unsafe_code)]
        unsafe {
            return avx512::rule_bits(seed, threshold, first, count.div_ceil(8) as usize);
        }
    }
    (0..u64::from(count.min(64))).fold(0, |word, b| {
        word | u64::from(blocked_by_rule(seed, threshold, first + b)) << b
    })
}

/// Bit `i` of the result: the rule for vertex `base + offset[i]`
/// (wrapping; any offsets).
pub(crate) fn rule_offsets(seed: u64, threshold: u64, base: u64, offset: &[u64; 64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512dq")
    {
        // SAFETY: the CPU supports the features the function is compiled for.
        #[allow(unsafe_code)]
        unsafe {
            return avx512::rule_offsets(seed, threshold, base, offset);
        }
    }
    rule_lanes_scalar(seed, threshold, &offset.map(|o| base.wrapping_add(o)))
}

fn rule_lanes_scalar(seed: u64, threshold: u64, idx: &[u64; 64]) -> u64 {
    idx.iter().enumerate().fold(0, |word, (b, &v)| {
        word | u64::from(blocked_by_rule(seed, threshold, v)) << b
    })
}

fn rule_words_scalar(seed: u64, threshold: u64, first: u64, out: &mut [u64]) {
    for (i, w) in out.iter_mut().enumerate() {
        let at = first + 64 * i as u64;
        let mut word = 0u64;
        for b in 0..64 {
            word |= u64::from(blocked_by_rule(seed, threshold, at + b)) << b;
        }
        *w = word;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::{
        __m512i, _mm512_add_epi64, _mm512_cmplt_epu64_mask, _mm512_mullo_epi64, _mm512_set_epi64,
        _mm512_set1_epi64, _mm512_srli_epi64, _mm512_xor_si512,
    };

    /// The rule for the 8 vertex indices in `v`, as the low 8 bits.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn blocked8(seed: u64, threshold: u64, v: __m512i) -> u64 {
        let gamma = _mm512_set1_epi64(0x9E37_79B9_7F4A_7C15_u64 as i64);
        let m1 = _mm512_set1_epi64(0xBF58_476D_1CE4_E5B9_u64 as i64);
        let m2 = _mm512_set1_epi64(0x94D0_49BB_1331_11EB_u64 as i64);
        let z = _mm512_add_epi64(_mm512_xor_si512(v, _mm512_set1_epi64(seed as i64)), gamma);
        let z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64::<30>(z)), m1);
        let z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64::<27>(z)), m2);
        let z = _mm512_xor_si512(z, _mm512_srli_epi64::<31>(z));
        u64::from(_mm512_cmplt_epu64_mask(
            z,
            _mm512_set1_epi64(threshold as i64),
        ))
    }

    /// Indices `first .. first + 8`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn run8(first: u64) -> __m512i {
        let lanes = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
        _mm512_add_epi64(_mm512_set1_epi64(first as i64), lanes)
    }

    /// [`super::rule_offsets`], 8 lanes at a time.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) fn rule_offsets(seed: u64, threshold: u64, base: u64, offset: &[u64; 64]) -> u64 {
        let base = _mm512_set1_epi64(base as i64);
        let mut word = 0u64;
        for (j, l) in offset.as_chunks::<8>().0.iter().enumerate() {
            let l = l.map(|x| x as i64);
            let v = _mm512_set_epi64(l[7], l[6], l[5], l[4], l[3], l[2], l[1], l[0]);
            word |= blocked8(seed, threshold, _mm512_add_epi64(v, base)) << (8 * j);
        }
        word
    }

    /// The rule for `8 * groups` vertices from `first` (`groups <= 8`).
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) fn rule_bits(seed: u64, threshold: u64, first: u64, groups: usize) -> u64 {
        let mut word = 0u64;
        for j in 0..groups.min(8) {
            word |= blocked8(seed, threshold, run8(first + 8 * j as u64)) << (8 * j);
        }
        word
    }

    /// [`super::rule_words_scalar`], 8 lanes at a time.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) fn rule_words(seed: u64, threshold: u64, first: u64, out: &mut [u64]) {
        for (i, w) in out.iter_mut().enumerate() {
            let at = first + 64 * i as u64;
            let mut word = 0u64;
            for j in 0..8 {
                word |= blocked8(seed, threshold, run8(at + 8 * j)) << (8 * j);
            }
            *w = word;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_known_values() {
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        // Successive outputs of the reference generator seeded with 0
        // (state advances by the golden gamma before mixing).
        assert_eq!(splitmix64(0x9E37_79B9_7F4A_7C15), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(
            splitmix64(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(2)),
            0x06C4_5D18_8009_454F
        );
    }

    #[test]
    fn threshold_edges() {
        assert_eq!(obstacle_threshold(0.0), 0);
        assert_eq!(obstacle_threshold(-1.0), 0);
        assert_eq!(obstacle_threshold(0.5), 1u64 << 63);
        assert_eq!(obstacle_threshold(0.25), 1u64 << 62);
        assert_eq!(obstacle_threshold(1.0), u64::MAX);
        // density 0: nothing is blocked, even for a vertex hashing to 0.
        assert!(!blocked_by_rule(0, 0, 0));
    }

    #[test]
    fn blocked_bits_match_rule_and_pad() {
        let thr = obstacle_threshold(0.3);
        for (first, count) in [
            (0u64, 64u32),
            (64, 64),
            (128, 64),
            (96, 32),
            (128, 32),
            (150, 32),
        ] {
            let w = blocked_bits(7, thr, first, 150, count);
            for i in 0..64 {
                let v = first + u64::from(i);
                let expect = i < count && (v >= 150 || blocked_by_rule(7, thr, v));
                assert_eq!((w >> i) & 1 == 1, expect, "v={v} count={count}");
            }
        }
        assert_eq!(blocked_bits(7, 0, 0, 150, 64), 0);
        assert_eq!(blocked_bits(7, 0, 128, 150, 64), !0u64 << 22);
        assert_eq!(
            blocked_bits(7, 0, 128, 150, 32),
            0xFFFF_FFFF & (!0u64 << 22)
        );
    }

    #[test]
    fn fill_blocked_matches_rule() {
        let thr = obstacle_threshold(0.2);
        for (first, end, words) in [
            (0u64, 5000u64, 80usize),
            (37, 1000, 20),
            (100, 100, 3),
            (5, 64 * 9 + 5, 9),
        ] {
            let mut fast = vec![0u64; words];
            let blocked = fill_blocked(42, thr, first, end, &mut fast);
            let mut count = 0;
            for (i, &w) in fast.iter().enumerate() {
                let at = first + 64 * i as u64;
                assert_eq!(
                    w,
                    blocked_bits(42, thr, at, end, 64),
                    "word {i} from {first}"
                );
                count += (at..(at + 64).min(end))
                    .filter(|&v| blocked_by_rule(42, thr, v))
                    .count();
            }
            assert_eq!(blocked, count as u64);
        }
        let mut zero = vec![1u64; 4];
        assert_eq!(fill_blocked(42, 0, 0, 200, &mut zero), 0);
        assert_eq!(zero, vec![0, 0, 0, !0u64 << 8]);
    }

    #[test]
    fn offsets_rule_matches_scalar() {
        let thr = obstacle_threshold(0.25);
        let offset: [u64; 64] = std::array::from_fn(|i| splitmix64(i as u64) >> (i % 40));
        // Bases near the top of the range make some indices wrap.
        for base in [0u64, 12_345, u64::MAX - (1 << 30)] {
            let idx = offset.map(|o| base.wrapping_add(o));
            let got = rule_offsets(5, thr, base, &offset);
            for (i, &v) in idx.iter().enumerate() {
                assert_eq!(
                    (got >> i) & 1 == 1,
                    blocked_by_rule(5, thr, v),
                    "base {base} bit {i}"
                );
            }
        }
    }

    #[test]
    fn vector_and_scalar_rules_agree() {
        // On a CPU without AVX-512 both sides are the scalar rule.
        for thr in [
            obstacle_threshold(0.2),
            obstacle_threshold(0.9),
            u64::MAX,
            1,
        ] {
            for first in [0u64, 3, 1 << 33, u64::MAX / 4] {
                let (mut a, mut b) = (vec![0u64; 33], vec![0u64; 33]);
                rule_words(0xDEAD_BEEF, thr, first, &mut a);
                rule_words_scalar(0xDEAD_BEEF, thr, first, &mut b);
                assert_eq!(a, b, "thr={thr} first={first}");
            }
        }
    }
}
