//! RS256 tokens: signing with the configured private key, verifying against every
//! configured public key by `kid`, and the JWKS document that publishes them.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use catalytic_db::ids::{TenantId, UserId};
use catalytic_db::users::Role;
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Access tokens live 15 minutes.
pub const ACCESS_TTL_SECS: i64 = 15 * 60;
/// Refresh tokens live 7 days.
pub const REFRESH_TTL_SECS: i64 = 7 * 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

impl TokenType {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Access => "access",
            TokenType::Refresh => "refresh",
        }
    }
}

/// The claims of both token types.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub tenant_id: Uuid,
    pub email: String,
    pub role: Role,
    #[serde(rename = "type")]
    pub token_type: TokenType,
    pub jti: Uuid,
    /// The refresh family (refresh tokens; on access tokens, the family of the login
    /// they came from, so logout can revoke it).
    pub fam: Uuid,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
}

impl Claims {
    pub fn user_id(&self) -> UserId {
        UserId::from_uuid(self.sub)
    }
    pub fn tenant(&self) -> TenantId {
        TenantId::from_uuid(self.tenant_id)
    }

    /// When the token was issued, in unix milliseconds: read from its `jti` (a UUIDv7),
    /// finer than `iat`, so a revocation in the same second as a login tells them apart.
    pub fn issued_ms(&self) -> i64 {
        self.jti
            .get_timestamp()
            .map(|t| {
                let (secs, nanos) = t.to_unix();
                secs as i64 * 1000 + i64::from(nanos / 1_000_000)
            })
            .unwrap_or(self.iat * 1000)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {reason}")]
    Unreadable { path: String, reason: String },
}

/// Why a token was refused (logged; the client only hears "invalid token").
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("unknown key id")]
    UnknownKid,
    #[error("token rejected: {0}")]
    Rejected(String),
    #[error("wrong token type")]
    WrongType,
}

/// One public key, as published.
#[derive(Debug, Clone, Serialize)]
pub struct Jwk {
    pub kty: &'static str,
    #[serde(rename = "use")]
    pub use_: &'static str,
    pub alg: &'static str,
    pub kid: String,
    pub n: String,
    pub e: String,
}

/// Whom a token is issued to.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub user: UserId,
    pub tenant: TenantId,
    pub email: &'a str,
    pub role: Role,
}

/// The signing key and every verifying key.
pub struct JwtKeys {
    signing: EncodingKey,
    signing_kid: String,
    verifying: HashMap<String, DecodingKey>,
    jwks: Vec<Jwk>,
    issuer: String,
    audience: String,
}

fn read(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|e| KeyError::Unreadable {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn bad(path: &Path, reason: impl std::fmt::Display) -> KeyError {
    KeyError::Unreadable {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn jwk_of(key: &RsaPublicKey) -> Jwk {
    let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
    let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
    // RFC 7638 thumbprint: members in lexicographic order, no whitespace.
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
    Jwk {
        kty: "RSA",
        use_: "sig",
        alg: "RS256",
        kid,
        n,
        e,
    }
}

impl JwtKeys {
    /// Loads the private key and the public keys (PEM, PKCS#8 or PKCS#1).
    pub fn load(
        private_path: &Path,
        public_paths: &[impl AsRef<Path>],
        issuer: &str,
        audience: &str,
    ) -> Result<Self, KeyError> {
        let private_pem = read(private_path)?;
        let private = RsaPrivateKey::from_pkcs8_pem(&private_pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(&private_pem))
            .map_err(|e| bad(private_path, format!("not an RSA private key: {e}")))?;
        let signing =
            EncodingKey::from_rsa_pem(private_pem.as_bytes()).map_err(|e| bad(private_path, e))?;
        let own = jwk_of(&private.to_public_key());
        let signing_kid = own.kid.clone();

        let mut verifying = HashMap::new();
        let mut jwks = Vec::new();
        for path in public_paths {
            let path = path.as_ref();
            let pem = read(path)?;
            let public = RsaPublicKey::from_public_key_pem(&pem)
                .or_else(|_| RsaPublicKey::from_pkcs1_pem(&pem))
                .map_err(|e| bad(path, format!("not an RSA public key: {e}")))?;
            let jwk = jwk_of(&public);
            let decoding =
                DecodingKey::from_rsa_components(&jwk.n, &jwk.e).map_err(|e| bad(path, e))?;
            if verifying.insert(jwk.kid.clone(), decoding).is_none() {
                jwks.push(jwk);
            }
        }
        if !verifying.contains_key(&signing_kid) {
            return Err(bad(
                private_path,
                "its public key is not among JWT_PUBLIC_KEY_PATH, so its tokens could not be verified",
            ));
        }
        Ok(Self {
            signing,
            signing_kid,
            verifying,
            jwks,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        })
    }

    pub fn jwks(&self) -> &[Jwk] {
        &self.jwks
    }

    /// Issues a token for `subject`; returns it with its claims.
    pub fn issue(
        &self,
        token_type: TokenType,
        subject: &Subject<'_>,
        jti: Uuid,
        family: Uuid,
    ) -> Result<(String, Claims), jsonwebtoken::errors::Error> {
        let Subject {
            user,
            tenant,
            email,
            role,
        } = *subject;
        let now = Utc::now().timestamp();
        let ttl = match token_type {
            TokenType::Access => ACCESS_TTL_SECS,
            TokenType::Refresh => REFRESH_TTL_SECS,
        };
        let claims = Claims {
            sub: user.as_uuid(),
            tenant_id: tenant.as_uuid(),
            email: email.to_owned(),
            role,
            token_type,
            jti,
            fam: family,
            iat: now,
            nbf: now,
            exp: now + ttl,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.signing_kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.signing)?;
        Ok((token, claims))
    }

    /// Verifies signature (RS256 only, by `kid`), issuer, audience, expiry, not-before
    /// and the token type. Anything else — `alg: none`, HS256, an unknown kid — is refused.
    pub fn verify(&self, token: &str, expected: TokenType) -> Result<Claims, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        if header.alg != Algorithm::RS256 {
            return Err(TokenError::Rejected(format!(
                "algorithm {:?} not accepted",
                header.alg
            )));
        }
        let kid = header.kid.ok_or(TokenError::UnknownKid)?;
        let key = self.verifying.get(&kid).ok_or(TokenError::UnknownKid)?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 5;
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|e| TokenError::Rejected(e.to_string()))?;
        if data.claims.token_type != expected {
            return Err(TokenError::WrongType);
        }
        Ok(data.claims)
    }
}
