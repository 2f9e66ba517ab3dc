//! A per-process cache of verified access tokens. RS256 verification costs far more than
//! the rest of an authenticated request; a client sends the same token for up to 15
//! minutes, so its signature is checked once per replica. Only the signature and claims
//! checks are cached: the denylist and revocation checks run on every request (in the
//! gate), and an entry is never used past the token's expiry.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::auth::jwt::{Claims, JwtKeys, TokenError, TokenType};

/// Entries kept at most; the cache is emptied when full (cheap, and rare).
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], Claims>>,
}

impl TokenCache {
    /// The claims of a valid access token, from the cache or by verifying it.
    pub fn verify_access(&self, keys: &JwtKeys, token: &str) -> Result<Claims, TokenError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = chrono::Utc::now().timestamp();
        if let Ok(map) = self.entries.lock()
            && let Some(claims) = map.get(&digest)
            && claims.exp > now
        {
            return Ok(claims.clone());
        }
        let claims = keys.verify(token, TokenType::Access)?;
        if let Ok(mut map) = self.entries.lock() {
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(digest, claims.clone());
        }
        Ok(claims)
    }
}
