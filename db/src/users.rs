//! Users of a tenant and their roles.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};

use crate::ids::{TenantId, UserId};
use crate::schema::users;
use crate::{Conn, DbError, DbResult};

/// Roles, strongest first: owner > admin > member > viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Member,
    Admin,
    Owner,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Member, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    /// Whether this role is at least `min`.
    pub fn at_least(self, min: Role) -> bool {
        self >= min
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owner" => Ok(Role::Owner),
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            "viewer" => Ok(Role::Viewer),
            other => Err(format!("unknown role {other:?}")),
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: UserId,
    pub tenant_id: TenantId,
    pub email: String,
    pub password_hash: String,
    pub first_name: String,
    pub last_name: String,
    pub role: String,
    pub is_active: bool,
    pub is_platform_admin: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl User {
    /// The stored role; the CHECK constraint guarantees it parses.
    pub fn role(&self) -> Role {
        self.role.parse().unwrap_or(Role::Viewer)
    }
}

/// A user to insert; `email` must already be normalised (lower case).
pub struct NewUser<'a> {
    pub id: UserId,
    pub tenant_id: TenantId,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub role: Role,
}

/// Inserts a user; an email already registered is `DbError::Conflict("users_email_key")`.
#[tracing::instrument(skip_all, fields(tenant.id = %new.tenant_id))]
pub async fn insert(conn: &mut Conn, new: NewUser<'_>) -> DbResult<User> {
    Ok(diesel::insert_into(users::table)
        .values((
            users::id.eq(new.id),
            users::tenant_id.eq(new.tenant_id),
            users::email.eq(new.email),
            users::password_hash.eq(new.password_hash),
            users::first_name.eq(new.first_name),
            users::last_name.eq(new.last_name),
            users::role.eq(new.role.as_str()),
        ))
        .returning(User::as_returning())
        .get_result(conn)
        .await?)
}

/// Finds a user by email (already lower-cased), optionally within one tenant.
#[tracing::instrument(skip_all)]
pub async fn by_email(
    conn: &mut Conn,
    email: &str,
    tenant: Option<TenantId>,
) -> DbResult<Option<User>> {
    let mut q = users::table
        .filter(users::email.eq(email))
        .select(User::as_select())
        .into_boxed();
    if let Some(t) = tenant {
        q = q.filter(users::tenant_id.eq(t));
    }
    Ok(q.first(conn).await.optional()?)
}

/// A user by id, only within `tenant` (another tenant's user is NotFound).
#[tracing::instrument(skip_all, fields(tenant.id = %tenant, user.id = %id))]
pub async fn get(conn: &mut Conn, tenant: TenantId, id: UserId) -> DbResult<User> {
    Ok(users::table
        .filter(users::id.eq(id).and(users::tenant_id.eq(tenant)))
        .select(User::as_select())
        .first(conn)
        .await?)
}

#[tracing::instrument(skip_all, fields(tenant.id = %tenant))]
pub async fn list(conn: &mut Conn, tenant: TenantId) -> DbResult<Vec<User>> {
    Ok(users::table
        .filter(users::tenant_id.eq(tenant))
        .order(users::created_at.asc())
        .select(User::as_select())
        .load(conn)
        .await?)
}

/// Number of users of a tenant (for the plan's user limit).
pub async fn count(conn: &mut Conn, tenant: TenantId) -> DbResult<i64> {
    Ok(users::table
        .filter(users::tenant_id.eq(tenant))
        .count()
        .get_result(conn)
        .await?)
}

/// Number of active owners, locking the tenant's owner rows so two concurrent demotions
/// cannot both pass the "at least one owner" check.
pub async fn active_owner_count_for_update(conn: &mut Conn, tenant: TenantId) -> DbResult<usize> {
    let ids: Vec<UserId> = users::table
        .filter(
            users::tenant_id
                .eq(tenant)
                .and(users::role.eq("owner"))
                .and(users::is_active.eq(true)),
        )
        .select(users::id)
        .for_update()
        .load(conn)
        .await?;
    Ok(ids.len())
}

/// Changes role and/or active flag of a tenant's user.
#[tracing::instrument(skip_all, fields(tenant.id = %tenant, user.id = %id))]
pub async fn update(
    conn: &mut Conn,
    tenant: TenantId,
    id: UserId,
    role: Option<Role>,
    active: Option<bool>,
) -> DbResult<User> {
    let target = users::table.filter(users::id.eq(id).and(users::tenant_id.eq(tenant)));
    let current = get(conn, tenant, id).await?;
    Ok(diesel::update(target)
        .set((
            users::role.eq(role.map(Role::as_str).unwrap_or(current.role.as_str())),
            users::is_active.eq(active.unwrap_or(current.is_active)),
            users::updated_at.eq(diesel::dsl::now),
        ))
        .returning(User::as_returning())
        .get_result(conn)
        .await?)
}

#[tracing::instrument(skip_all, fields(tenant.id = %tenant, user.id = %id))]
pub async fn delete(conn: &mut Conn, tenant: TenantId, id: UserId) -> DbResult<()> {
    let n = diesel::delete(users::table.filter(users::id.eq(id).and(users::tenant_id.eq(tenant))))
        .execute(conn)
        .await?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

pub async fn set_password(conn: &mut Conn, id: UserId, password_hash: &str) -> DbResult<()> {
    diesel::update(users::table.find(id))
        .set((
            users::password_hash.eq(password_hash),
            users::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn touch_login(conn: &mut Conn, id: UserId) -> DbResult<()> {
    diesel::update(users::table.find(id))
        .set(users::last_login_at.eq(diesel::dsl::now))
        .execute(conn)
        .await?;
    Ok(())
}

/// Grants or withdraws platform administration (CLI only, never the API).
pub async fn set_platform_admin(conn: &mut Conn, email: &str, admin: bool) -> DbResult<User> {
    Ok(diesel::update(users::table.filter(users::email.eq(email)))
        .set((
            users::is_platform_admin.eq(admin),
            users::updated_at.eq(diesel::dsl::now),
        ))
        .returning(User::as_returning())
        .get_result(conn)
        .await?)
}

/// A user by id across tenants, for authentication only.
pub async fn by_id_any_tenant(conn: &mut Conn, id: UserId) -> DbResult<User> {
    Ok(users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .await?)
}

/// Active owners of a tenant (recipients of account emails).
pub async fn owners(conn: &mut Conn, tenant: TenantId) -> DbResult<Vec<User>> {
    Ok(users::table
        .filter(
            users::tenant_id
                .eq(tenant)
                .and(users::role.eq("owner"))
                .and(users::is_active.eq(true)),
        )
        .order(users::created_at.asc())
        .select(User::as_select())
        .load(conn)
        .await?)
}
