//! Password hashing with argon2id, off the async runtime.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::{ApiError, FieldError};

fn argon2() -> Argon2<'static> {
    // OWASP's argon2id baseline: 19 MiB, 2 iterations, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password in a blocking task so the runtime never stalls.
pub async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
            .map_err(|e| ApiError::internal(format!("salt: {e}")))?;
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::internal(format!("argon2: {e}")))
    })
    .await
    .map_err(ApiError::internal)?
}

/// Verifies in a blocking task; the comparison inside argon2 is constant time.
pub async fn verify(password: String, stored: String) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&stored)
            .map_err(|e| ApiError::internal(format!("stored hash: {e}")))?;
        Ok(argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(ApiError::internal)?
}

/// The password rules: at least 8 characters (at most 128), with an upper-case letter,
/// a lower-case letter and a digit.
pub fn check_rules(field: &str, password: &str) -> Result<(), FieldError> {
    let mut missing = Vec::new();
    if password.chars().count() < 8 {
        missing.push("at least 8 characters");
    }
    if !password.chars().any(|c| c.is_uppercase()) {
        missing.push("an upper-case letter");
    }
    if !password.chars().any(|c| c.is_lowercase()) {
        missing.push("a lower-case letter");
    }
    if !password.chars().any(|c| c.is_ascii_digit()) {
        missing.push("a digit");
    }
    if password.chars().count() > 128 {
        return Err(FieldError::new(field, "must be at most 128 characters"));
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("must contain {}", missing.join(", ")),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_name_what_is_missing() {
        assert!(check_rules("password", "Sup3rsecret").is_ok());
        let e = check_rules("password", "short1A").unwrap_err();
        assert!(e.message.contains("8 characters"), "{}", e.message);
        let e = check_rules("password", "alllowercase1").unwrap_err();
        assert!(e.message.contains("upper-case"), "{}", e.message);
        let e = check_rules("password", "NoDigitsHere").unwrap_err();
        assert!(e.message.contains("digit"), "{}", e.message);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_hash_verifies_only_its_password() {
        let h = hash("Corr3ctHorse".into()).await.expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(
            verify("Corr3ctHorse".into(), h.clone())
                .await
                .expect("verify")
        );
        assert!(!verify("Wr0ngHorse".into(), h).await.expect("verify"));
    }
}
