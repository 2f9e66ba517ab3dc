//! API keys: stored only as a SHA-256 hash, shown once at creation.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::ids::{ApiKeyId, TenantId, UserId};
use crate::schema::api_keys;
use crate::users::Role;
use crate::{Conn, DbError, DbResult};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub tenant_id: TenantId,
    pub created_by: Option<UserId>,
    pub name: String,
    pub prefix: String,
    pub role: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl ApiKey {
    pub fn role(&self) -> Role {
        self.role.parse().unwrap_or(Role::Viewer)
    }
}

pub struct NewApiKey<'a> {
    pub id: ApiKeyId,
    pub tenant_id: TenantId,
    pub created_by: Option<UserId>,
    pub name: &'a str,
    pub prefix: &'a str,
    pub key_hash: &'a str,
    pub role: Role,
    pub expires_at: Option<DateTime<Utc>>,
}

pub async fn insert(conn: &mut Conn, new: NewApiKey<'_>) -> DbResult<ApiKey> {
    Ok(diesel::insert_into(api_keys::table)
        .values((
            api_keys::id.eq(new.id),
            api_keys::tenant_id.eq(new.tenant_id),
            api_keys::created_by.eq(new.created_by),
            api_keys::name.eq(new.name),
            api_keys::prefix.eq(new.prefix),
            api_keys::key_hash.eq(new.key_hash),
            api_keys::role.eq(new.role.as_str()),
            api_keys::expires_at.eq(new.expires_at),
        ))
        .returning(ApiKey::as_returning())
        .get_result(conn)
        .await?)
}

/// Live (unrevoked, unexpired) keys of a tenant.
pub async fn list(conn: &mut Conn, tenant: TenantId) -> DbResult<Vec<ApiKey>> {
    Ok(api_keys::table
        .filter(
            api_keys::tenant_id
                .eq(tenant)
                .and(api_keys::revoked_at.is_null()),
        )
        .order(api_keys::created_at.asc())
        .select(ApiKey::as_select())
        .load(conn)
        .await?)
}

/// The live key with this hash, for authentication.
pub async fn by_hash(conn: &mut Conn, key_hash: &str) -> DbResult<Option<ApiKey>> {
    Ok(api_keys::table
        .filter(
            api_keys::key_hash
                .eq(key_hash)
                .and(api_keys::revoked_at.is_null())
                .and(
                    api_keys::expires_at
                        .is_null()
                        .or(api_keys::expires_at.gt(diesel::dsl::now)),
                ),
        )
        .select(ApiKey::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Records use, at most once a minute per key so authentication stays cheap.
pub async fn touch(conn: &mut Conn, id: ApiKeyId) -> DbResult<()> {
    diesel::update(
        api_keys::table.filter(
            api_keys::id.eq(id).and(
                api_keys::last_used_at
                    .is_null()
                    .or(api_keys::last_used_at
                        .lt(chrono::Utc::now() - chrono::Duration::minutes(1))),
            ),
        ),
    )
    .set(api_keys::last_used_at.eq(diesel::dsl::now))
    .execute(conn)
    .await?;
    Ok(())
}

/// Revokes a tenant's key; another tenant's key is NotFound.
pub async fn revoke(conn: &mut Conn, tenant: TenantId, id: ApiKeyId) -> DbResult<ApiKey> {
    diesel::update(
        api_keys::table.filter(
            api_keys::id
                .eq(id)
                .and(api_keys::tenant_id.eq(tenant))
                .and(api_keys::revoked_at.is_null()),
        ),
    )
    .set(api_keys::revoked_at.eq(diesel::dsl::now))
    .returning(ApiKey::as_returning())
    .get_result(conn)
    .await
    .map_err(DbError::from)
}
