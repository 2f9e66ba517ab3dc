//! API key material: `cat_` + 40 random base62 characters; only the SHA-256 is stored.

use rand::Rng;
use sha2::{Digest, Sha256};

pub const PREFIX: &str = "cat_";

/// A fresh key and the prefix shown in listings (the first 12 characters).
pub fn generate() -> (String, String) {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let body: String = (0..40)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    let key = format!("{PREFIX}{body}");
    let shown = key[..12].to_owned();
    (key, shown)
}

/// The stored form of a key or any other bearer secret.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_unique_and_hashed() {
        let (a, pa) = generate();
        let (b, _) = generate();
        assert!(a.starts_with("cat_") && a.len() == 44);
        assert!(a.starts_with(&pa));
        assert_ne!(a, b);
        assert_eq!(digest(&a).len(), 64);
        assert_ne!(digest(&a), digest(&b));
    }
}
