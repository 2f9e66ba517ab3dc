//! Refresh tokens (rotated, grouped in families for reuse detection) and password-reset
//! tokens (single use, stored as hashes).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::ids::{PasswordResetId, RefreshTokenId, TenantId, TokenFamilyId, UserId};
use crate::schema::{password_reset_tokens, refresh_tokens};
use crate::{Conn, DbResult};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshToken {
    pub id: RefreshTokenId,
    pub user_id: UserId,
    pub tenant_id: TenantId,
    pub family_id: TokenFamilyId,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub async fn insert_refresh(
    conn: &mut Conn,
    id: RefreshTokenId,
    user: UserId,
    tenant: TenantId,
    family: TokenFamilyId,
    expires_at: DateTime<Utc>,
) -> DbResult<()> {
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::id.eq(id),
            refresh_tokens::user_id.eq(user),
            refresh_tokens::tenant_id.eq(tenant),
            refresh_tokens::family_id.eq(family),
            refresh_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// A refresh token row, read without locking (verification).
pub async fn refresh_by_id(conn: &mut Conn, id: RefreshTokenId) -> DbResult<Option<RefreshToken>> {
    Ok(refresh_tokens::table
        .find(id)
        .select(RefreshToken::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Locks and returns a refresh token row (for rotation inside a transaction).
pub async fn refresh_for_update(
    conn: &mut Conn,
    id: RefreshTokenId,
) -> DbResult<Option<RefreshToken>> {
    Ok(refresh_tokens::table
        .find(id)
        .select(RefreshToken::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

pub async fn mark_refresh_used(conn: &mut Conn, id: RefreshTokenId) -> DbResult<()> {
    diesel::update(refresh_tokens::table.find(id))
        .set(refresh_tokens::used_at.eq(diesel::dsl::now))
        .execute(conn)
        .await?;
    Ok(())
}

/// Revokes every token of a family; returns how many were live.
pub async fn revoke_family(conn: &mut Conn, family: TokenFamilyId) -> DbResult<usize> {
    Ok(diesel::update(
        refresh_tokens::table.filter(
            refresh_tokens::family_id
                .eq(family)
                .and(refresh_tokens::revoked_at.is_null()),
        ),
    )
    .set(refresh_tokens::revoked_at.eq(diesel::dsl::now))
    .execute(conn)
    .await?)
}

/// Revokes every refresh token of a user (password reset).
pub async fn revoke_user(conn: &mut Conn, user: UserId) -> DbResult<usize> {
    Ok(diesel::update(
        refresh_tokens::table.filter(
            refresh_tokens::user_id
                .eq(user)
                .and(refresh_tokens::revoked_at.is_null()),
        ),
    )
    .set(refresh_tokens::revoked_at.eq(diesel::dsl::now))
    .execute(conn)
    .await?)
}

pub async fn insert_password_reset(
    conn: &mut Conn,
    user: UserId,
    token_hash: &str,
    expires_at: DateTime<Utc>,
) -> DbResult<PasswordResetId> {
    let id = PasswordResetId::generate();
    diesel::insert_into(password_reset_tokens::table)
        .values((
            password_reset_tokens::id.eq(id),
            password_reset_tokens::user_id.eq(user),
            password_reset_tokens::token_hash.eq(token_hash),
            password_reset_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .await?;
    Ok(id)
}

/// Consumes a password-reset token: marks it used when it is unused and unexpired and
/// returns its user; `None` otherwise. Single use is enforced by the conditional update.
pub async fn consume_password_reset(conn: &mut Conn, token_hash: &str) -> DbResult<Option<UserId>> {
    Ok(diesel::update(
        password_reset_tokens::table.filter(
            password_reset_tokens::token_hash
                .eq(token_hash)
                .and(password_reset_tokens::used_at.is_null())
                .and(password_reset_tokens::expires_at.gt(diesel::dsl::now)),
        ),
    )
    .set(password_reset_tokens::used_at.eq(diesel::dsl::now))
    .returning(password_reset_tokens::user_id)
    .get_result(conn)
    .await
    .optional()?)
}
