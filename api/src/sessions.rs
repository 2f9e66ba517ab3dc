//! Issuing token pairs: an access token and a refresh token whose row (its `jti`) is
//! written in the caller's transaction.

use catalytic_db::Conn;
use catalytic_db::ids::{RefreshTokenId, TokenFamilyId};
use catalytic_db::users::User;
use chrono::{TimeZone, Utc};
use poem_openapi::Object;
use uuid::Uuid;

use crate::auth::jwt::{ACCESS_TTL_SECS, Subject, TokenType};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Tokens handed to a client.
#[derive(Debug, Clone, Object)]
pub struct TokenPair {
    /// RS256 access token; send as `Authorization: Bearer ...`. Lives 15 minutes.
    pub access_token: String,
    /// Single-use refresh token for `POST /api/auth/refresh`. Lives 7 days.
    pub refresh_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

/// Issues a pair in `family` (a new login passes a fresh family).
pub async fn issue_pair(
    state: &AppState,
    conn: &mut Conn,
    user: &User,
    family: TokenFamilyId,
) -> ApiResult<TokenPair> {
    let refresh_id = RefreshTokenId::generate();
    let subject = Subject {
        user: user.id,
        tenant: user.tenant_id,
        email: &user.email,
        role: user.role(),
    };
    let (refresh_token, refresh_claims) = state
        .keys
        .issue(
            TokenType::Refresh,
            &subject,
            refresh_id.as_uuid(),
            family.as_uuid(),
        )
        .map_err(ApiError::internal)?;
    let (access_token, _) = state
        .keys
        .issue(
            TokenType::Access,
            &subject,
            Uuid::now_v7(),
            family.as_uuid(),
        )
        .map_err(ApiError::internal)?;
    let expires_at = Utc
        .timestamp_opt(refresh_claims.exp, 0)
        .single()
        .ok_or_else(|| ApiError::internal("refresh expiry out of range"))?;
    catalytic_db::tokens::insert_refresh(
        conn,
        refresh_id,
        user.id,
        user.tenant_id,
        family,
        expires_at,
    )
    .await?;
    Ok(TokenPair {
        access_token,
        refresh_token,
        token_type: "bearer".into(),
        expires_in: ACCESS_TTL_SECS,
    })
}
