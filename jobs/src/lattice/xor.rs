//! The "catalytic" XOR transform: a per-vertex byte field is borrowed,
//! transformed in place, and restored by applying the same transform again.
//!
//! * Field: `byte(v) = splitmix64(seed ^ v ^ FIELD_SALT) as u8` (low byte).
//! * Keystream: `ks(v) = XOR over r in 0..rounds of
//!   key[(v + r) mod key.len()] ^ byte(r mod 8) of splitmix64(K[r / 8] ^ v)`,
//!   where `K[g] = splitmix64(D ^ (g + 1) * 0xD1B54A32D192ED03)` and
//!   `D = splitmix64(fnv1a64(key))`. So every round mixes the key (both its
//!   digest and its raw bytes), the round number and the vertex index. The
//!   transform is `byte(v) ^= ks(v)`; being a XOR with a keystream that does
//!   not depend on the data, applying it twice is the identity.
//! * Checksum of a field of `L` bytes: cut into 8-byte little-endian words
//!   `w_j` (the last one zero-padded); `h = splitmix64(L ^ sum_j
//!   splitmix64(w_j ^ splitmix64(j ^ CHECKSUM_SALT)))` (wrapping sum). Each
//!   word is hashed with its position, so the checksum is order-sensitive,
//!   and the sum lets threads hash their chunks independently.
//!
//! The field is never materialised whole: each thread streams it in chunks
//! of [`CHUNK_BYTES`], generating a chunk, hashing it, transforming it in
//! place, hashing, transforming again, hashing, and comparing it bit for bit
//! with a copy of the original. Memory is `2 * CHUNK_BYTES` per thread.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

use super::control::{Control, Reporter, StopFlag};
use super::error::LatticeError;
use super::obstacles::splitmix64;
use super::parallel::{team, threads_for};
use super::spec::LatticeSpec;

/// Salt of the per-vertex byte field.
pub const FIELD_SALT: u64 = 0xA076_1D64_78BD_642F;
/// Salt of the checksum's word positions.
pub const CHECKSUM_SALT: u64 = 0xE703_7ED1_A0B4_28DB;
/// Bytes per streamed chunk (a multiple of 8).
pub const CHUNK_BYTES: u64 = 1 << 14;
/// Largest accepted `rounds`.
pub const MAX_ROUNDS: u32 = 64;
const ROUND_MUL: u64 = 0xD1B5_4A32_D192_ED03;

/// The field byte of vertex `v`.
#[inline]
pub fn field_byte(seed: u64, v: u64) -> u8 {
    splitmix64(seed ^ v ^ FIELD_SALT) as u8
}

/// Result of [`xor_transform`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XorResult {
    /// Field size in bytes (one per vertex).
    pub bytes: u64,
    pub rounds: u32,
    /// Checksum of the field as generated.
    pub checksum_before: u64,
    /// Checksum after applying the transform once.
    pub checksum_after: u64,
    /// Checksum after applying it a second time.
    pub checksum_restored: u64,
    /// Bytes the first application changed.
    pub changed_bytes: u64,
    /// True iff the second application gave back the field bit for bit.
    pub restored: bool,
}

fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// The keystream of one `(key, rounds)` pair.
struct Keystream {
    /// `K[g]`, one per group of 8 rounds.
    group_keys: Vec<u64>,
    /// Rounds in the last group.
    last_group_rounds: u32,
    /// `kx[i] = XOR over r of key[(i + r) mod len]`.
    key_xor: Vec<u8>,
}

impl Keystream {
    fn new(key: &[u8], rounds: u32) -> Self {
        let digest = splitmix64(fnv1a64(key));
        let groups = rounds.div_ceil(8);
        let group_keys = (0..u64::from(groups))
            .map(|g| splitmix64(digest ^ (g + 1).wrapping_mul(ROUND_MUL)))
            .collect();
        let len = key.len();
        let key_xor = (0..len)
            .map(|i| (0..rounds as usize).fold(0u8, |acc, r| acc ^ key[(i + r) % len]))
            .collect();
        Keystream {
            group_keys,
            last_group_rounds: rounds - (groups - 1) * 8,
            key_xor,
        }
    }

    /// XORs the keystream into `buf`, whose first byte is vertex `first`.
    fn apply(&self, buf: &mut [u8], first: u64) {
        let len = self.key_xor.len() as u64;
        let mut ki = (first % len) as usize;
        let last = self.group_keys.len() - 1;
        for (i, b) in buf.iter_mut().enumerate() {
            let v = first + i as u64;
            let mut ks = self.key_xor[ki];
            for (g, &k) in self.group_keys.iter().enumerate() {
                let mut x = splitmix64(k ^ v);
                if g == last && self.last_group_rounds < 8 {
                    x &= (1u64 << (8 * self.last_group_rounds)) - 1;
                }
                // XOR of the 8 (or fewer) bytes of x.
                x ^= x >> 32;
                x ^= x >> 16;
                x ^= x >> 8;
                ks ^= x as u8;
            }
            *b ^= ks;
            ki += 1;
            if ki == self.key_xor.len() {
                ki = 0;
            }
        }
    }
}

/// Sum of the position-salted word hashes of `buf`, whose first byte is at
/// field offset `first` (a multiple of 8).
fn partial_checksum(buf: &[u8], first: u64) -> u64 {
    let mut acc = 0u64;
    for (j, word) in buf.chunks(8).enumerate() {
        let mut w = [0u8; 8];
        w[..word.len()].copy_from_slice(word);
        let pos = first / 8 + j as u64;
        acc = acc.wrapping_add(splitmix64(
            u64::from_le_bytes(w) ^ splitmix64(pos ^ CHECKSUM_SALT),
        ));
    }
    acc
}

fn finish_checksum(acc: u64, bytes: u64) -> u64 {
    splitmix64(acc ^ bytes)
}

/// The checksum of a whole field held in memory (the same function the
/// streamed transform computes chunk by chunk).
pub fn field_checksum(field: &[u8]) -> u64 {
    finish_checksum(partial_checksum(field, 0), field.len() as u64)
}

#[derive(Default)]
struct Totals {
    before: u64,
    after: u64,
    restored: u64,
    changed: u64,
    intact: bool,
}

/// Borrows the field, applies the keystream, checksums, applies it again and
/// checks the field came back bit for bit. `key` must be non-empty and
/// `rounds` in `1..=64`.
pub fn xor_transform(
    spec: &LatticeSpec,
    key: &[u8],
    rounds: u32,
    ctl: &Control<'_>,
) -> Result<XorResult, LatticeError> {
    if key.is_empty() {
        return Err(LatticeError::EmptyKey);
    }
    if !(1..=MAX_ROUNDS).contains(&rounds) {
        return Err(LatticeError::InvalidRounds { rounds });
    }
    spec.check_engine_limit()?;
    let rep = Reporter::start(ctl);
    rep.check()?;
    let bytes = spec.vertices();
    let seed = spec.seed();
    let ks = Keystream::new(key, rounds);
    let chunks = bytes.div_ceil(CHUNK_BYTES);
    let threads = threads_for(ctl, bytes);
    let stop = StopFlag::default();
    let done = AtomicU64::new(0);
    let parts = team(threads, |t| {
        let mut tot = Totals {
            intact: true,
            ..Totals::default()
        };
        let mut buf = Vec::with_capacity(CHUNK_BYTES as usize);
        let mut orig = Vec::with_capacity(CHUNK_BYTES as usize);
        let mut c = t as u64;
        while c < chunks {
            let first = c * CHUNK_BYTES;
            let end = (first + CHUNK_BYTES).min(bytes);
            buf.clear();
            buf.extend((first..end).map(|v| field_byte(seed, v)));
            orig.clear();
            orig.extend_from_slice(&buf);
            tot.before = tot.before.wrapping_add(partial_checksum(&buf, first));
            ks.apply(&mut buf, first);
            tot.after = tot.after.wrapping_add(partial_checksum(&buf, first));
            tot.changed += buf.iter().zip(&orig).filter(|(a, b)| a != b).count() as u64;
            ks.apply(&mut buf, first);
            tot.restored = tot.restored.wrapping_add(partial_checksum(&buf, first));
            tot.intact &= buf == orig;
            let d = done.fetch_add(1, Relaxed) + 1;
            rep.phase(0, 99, d, chunks);
            if stop.poll(ctl) {
                break;
            }
            c += threads as u64;
        }
        tot
    });
    stop.result()?;
    let mut tot = Totals {
        intact: true,
        ..Totals::default()
    };
    for p in parts {
        tot.before = tot.before.wrapping_add(p.before);
        tot.after = tot.after.wrapping_add(p.after);
        tot.restored = tot.restored.wrapping_add(p.restored);
        tot.changed += p.changed;
        tot.intact &= p.intact;
    }
    let result = XorResult {
        bytes,
        rounds,
        checksum_before: finish_checksum(tot.before, bytes),
        checksum_after: finish_checksum(tot.after, bytes),
        checksum_restored: finish_checksum(tot.restored, bytes),
        changed_bytes: tot.changed,
        restored: tot.intact,
    };
    rep.finish();
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::super::spec::Boundary;
    use super::*;

    fn spec(d: u32, n: u64) -> LatticeSpec {
        LatticeSpec::new(d, n, 0.1, 42, Boundary::Open).unwrap()
    }

    #[test]
    fn restores_and_changes() {
        let s = spec(2, 300);
        let r = xor_transform(&s, b"catalytic", 5, &Control::none()).unwrap();
        assert!(r.restored);
        assert_eq!(r.bytes, 90_000);
        assert_eq!(r.checksum_before, r.checksum_restored);
        assert_ne!(r.checksum_before, r.checksum_after);
        assert!(r.changed_bytes > 80_000, "{}", r.changed_bytes);
        // Whole-field reference computation.
        let field: Vec<u8> = (0..s.vertices()).map(|v| field_byte(s.seed(), v)).collect();
        assert_eq!(field_checksum(&field), r.checksum_before);
        let mut t = field.clone();
        Keystream::new(b"catalytic", 5).apply(&mut t, 0);
        assert_eq!(field_checksum(&t), r.checksum_after);
    }

    #[test]
    fn keystream_depends_on_key_round_and_vertex() {
        let s = spec(3, 20);
        let ctl = Control::none();
        let a = xor_transform(&s, b"k1", 3, &ctl).unwrap();
        let b = xor_transform(&s, b"k2", 3, &ctl).unwrap();
        let c = xor_transform(&s, b"k1", 4, &ctl).unwrap();
        let e = xor_transform(&s, b"k1", 64, &ctl).unwrap();
        assert_eq!(a.checksum_before, b.checksum_before);
        assert_ne!(a.checksum_after, b.checksum_after);
        assert_ne!(a.checksum_after, c.checksum_after);
        assert_ne!(a.checksum_after, e.checksum_after);
        assert!(a.restored && b.restored && c.restored && e.restored);
        // The keystream is not constant across vertices.
        let mut buf = vec![0u8; 64];
        Keystream::new(b"k1", 1).apply(&mut buf, 0);
        let distinct: std::collections::BTreeSet<u8> = buf.iter().copied().collect();
        assert!(distinct.len() > 20);
        // Single-byte changes move the checksum; so do swaps.
        let f: Vec<u8> = (0..100u8).collect();
        let mut g = f.clone();
        g[57] ^= 1;
        assert_ne!(field_checksum(&f), field_checksum(&g));
        let mut h = f.clone();
        h.swap(3, 40);
        assert_ne!(field_checksum(&f), field_checksum(&h));
    }

    #[test]
    fn validation() {
        let s = spec(2, 10);
        let ctl = Control::none();
        assert_eq!(xor_transform(&s, b"", 1, &ctl), Err(LatticeError::EmptyKey));
        assert_eq!(
            xor_transform(&s, b"k", 0, &ctl),
            Err(LatticeError::InvalidRounds { rounds: 0 })
        );
        assert_eq!(
            xor_transform(&s, b"k", 65, &ctl),
            Err(LatticeError::InvalidRounds { rounds: 65 })
        );
    }

    #[test]
    fn thread_count_does_not_change_result() {
        let s = LatticeSpec::new(2, 1100, 0.0, 3, Boundary::Periodic).unwrap();
        let one = xor_transform(&s, b"key", 9, &Control::none().with_threads(1)).unwrap();
        let two = xor_transform(&s, b"key", 9, &Control::none().with_threads(2)).unwrap();
        assert_eq!(one, two);
        assert!(one.restored);
    }
}
