//! Users of a tenant: list, invite (create), change role or active flag, delete.
//! A tenant always keeps at least one active owner; the plan's user limit applies.

use catalytic_db::AsyncConnection as _;
use catalytic_db::ids::{TenantId, UserId};
use catalytic_db::users::{NewUser, Role, User};
use catalytic_db::{DbError, tokens, users};
use chrono::Utc;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use crate::auth::principal::{Principal, authenticate, revocation_key};
use crate::auth::{Credentials, api_key, password};
use crate::emails;
use crate::error::{ApiError, ApiResult};
use crate::routes::ApiTags;
use crate::routes::auth::UserView;
use crate::routes::password_reset::new_token;
use crate::state::AppState;
use crate::validate::{self, Checks};

#[derive(Debug, Object)]
pub struct CreateUserRequest {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// owner, admin, member or viewer; at most the caller's own role.
    pub role: String,
    /// Optional initial password; without one, the invitation carries a link to set it.
    pub password: Option<String>,
}

#[derive(Debug, Object)]
pub struct UpdateUserRequest {
    pub role: Option<String>,
    pub is_active: Option<bool>,
}

#[derive(Debug, Object)]
pub struct UserList {
    pub items: Vec<UserView>,
}

#[derive(ApiResponse)]
pub enum UserCreated {
    /// The user; an invitation email is queued.
    #[oai(status = 201)]
    Created(Json<UserView>),
}

#[derive(ApiResponse)]
pub enum Deleted {
    /// Deleted.
    #[oai(status = 204)]
    Deleted,
}

/// How long an invitation's set-password link is valid.
const INVITE_TTL: chrono::Duration = chrono::Duration::days(7);

fn parse_role(field: &str, raw: &str) -> ApiResult<Role> {
    raw.parse()
        .map_err(|_| ApiError::invalid(field, "must be owner, admin, member or viewer"))
}

/// Makes every access token issued to `user` until now stale (role change, deactivation,
/// password reset): checked by the request gate in the same Redis round trip.
pub async fn revoke_access_tokens(state: &AppState, user: UserId) -> ApiResult<()> {
    let mut redis = state.redis.get().await?;
    redis::cmd("SET")
        .arg(revocation_key(state, user))
        .arg(Utc::now().timestamp_millis())
        .arg("EX")
        .arg(crate::auth::jwt::ACCESS_TTL_SECS + 60)
        .query_async::<()>(&mut redis)
        .await?;
    Ok(())
}

/// Whether `actor` may act on a user holding `target_role` or grant it: nobody acts
/// above their own rank.
fn may_manage(actor: &Principal, target_role: Role) -> ApiResult<()> {
    if target_role > actor.role {
        return Err(ApiError::Forbidden(format!(
            "a {} may not manage or grant the {} role",
            actor.role, target_role
        )));
    }
    Ok(())
}

async fn get_user(state: &AppState, tenant: TenantId, id: Uuid) -> ApiResult<User> {
    let mut conn = state.db.get().await?;
    users::get(&mut conn, tenant, UserId::from_uuid(id))
        .await
        .map_err(|e| match e {
            DbError::NotFound => ApiError::not_found("user"),
            other => other.into(),
        })
}

pub struct UsersApi;

#[OpenApi(tag = "ApiTags::Users")]
impl UsersApi {
    /// Users of the caller's tenant.
    #[oai(path = "/api/users", method = "get", operation_id = "users_list")]
    async fn list(&self, state: Data<&AppState>, auth: Credentials) -> ApiResult<Json<UserList>> {
        let p = authenticate(&state, &auth, "users_list").await?;
        let mut conn = state.db.get().await?;
        let items = users::list(&mut conn, p.tenant_id).await?;
        Ok(Json(UserList {
            items: items.into_iter().map(Into::into).collect(),
        }))
    }

    /// Creates a user with a role and queues an invitation email.
    #[oai(path = "/api/users", method = "post", operation_id = "users_create")]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
        body: Json<CreateUserRequest>,
    ) -> ApiResult<UserCreated> {
        let p = authenticate(&state, &auth, "users_create").await?;
        let b = body.0;
        let mut checks = Checks::new();
        let email = validate::email("email", &b.email);
        checks
            .check(email.as_ref().map(|_| ()).map_err(Clone::clone))
            .check(validate::text("first_name", &b.first_name, 100))
            .check(validate::text("last_name", &b.last_name, 100));
        if let Some(pw) = &b.password {
            checks.check(password::check_rules("password", pw));
        }
        checks.finish()?;
        let email = email.map_err(|e| ApiError::Validation(vec![e]))?;
        let role = parse_role("role", &b.role)?;
        may_manage(&p, role)?;
        let (set_password, pw) = match b.password {
            Some(pw) => (false, pw),
            None => (true, format!("{}Aa1", new_token())),
        };
        let hash = password::hash(pw).await?;
        let invite_token = set_password.then(new_token);
        let st = state.clone();
        let max_users = p.limits().max_users;
        let mut conn = state.db.get().await?;
        let (user, email_id) = conn
            .transaction::<_, ApiError, _>(async |c| {
                // Serialise creations per tenant so the user-limit check holds under races.
                catalytic_db::tenants::lock(c, p.tenant_id).await?;
                if let Some(max) = max_users
                    && users::count(c, p.tenant_id).await? >= max
                {
                    return Err(ApiError::PlanLimit {
                        detail: format!(
                            "the {} plan allows {max} users; upgrade to add more",
                            p.limits().plan_code
                        ),
                        limit: Some(max),
                    });
                }
                let user = users::insert(
                    c,
                    NewUser {
                        id: UserId::generate(),
                        tenant_id: p.tenant_id,
                        email: &email,
                        password_hash: &hash,
                        first_name: b.first_name.trim(),
                        last_name: b.last_name.trim(),
                        role,
                    },
                )
                .await?;
                let set_password_url = match &invite_token {
                    Some(token) => {
                        tokens::insert_password_reset(
                            c,
                            user.id,
                            &api_key::digest(token),
                            Utc::now() + INVITE_TTL,
                        )
                        .await?;
                        Some(format!(
                            "{}/reset-password?token={token}",
                            st.config.frontend_url
                        ))
                    }
                    None => None,
                };
                let email_id = emails::queue(
                    &st,
                    c,
                    Some(p.tenant_id),
                    &user.email,
                    "invitation",
                    serde_json::json!({
                        "first_name": user.first_name,
                        "company_name": p.tenant.tenant.name,
                        "role": role.as_str(),
                        "set_password_url": set_password_url,
                        "login_url": format!("{}/login", st.config.frontend_url),
                    }),
                )
                .await?;
                let mut entry = p.audit("user.created");
                entry.target_type = Some("user");
                entry.target_id = Some(user.id.to_string());
                entry.details = serde_json::json!({ "email": user.email, "role": role.as_str() });
                catalytic_db::audit::record(c, entry).await?;
                Ok((user, email_id))
            })
            .await?;
        emails::push_after_commit(&state, &[email_id]).await;
        Ok(UserCreated::Created(Json(user.into())))
    }

    /// Changes a user's role or active flag.
    #[oai(
        path = "/api/users/:id",
        method = "patch",
        operation_id = "users_update"
    )]
    async fn update(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
        id: Path<Uuid>,
        body: Json<UpdateUserRequest>,
    ) -> ApiResult<Json<UserView>> {
        let p = authenticate(&state, &auth, "users_update").await?;
        let target = get_user(&state, p.tenant_id, id.0).await?;
        let new_role = match body.0.role.as_deref() {
            Some(r) => Some(parse_role("role", r)?),
            None => None,
        };
        may_manage(&p, target.role())?;
        if let Some(r) = new_role {
            may_manage(&p, r)?;
        }
        let mut conn = state.db.get().await?;
        let tenant = p.tenant_id;
        let active = body.0.is_active;
        let updated = conn
            .transaction::<_, ApiError, _>(async |c| {
                let owners = users::active_owner_count_for_update(c, tenant).await?;
                let loses_owner = target.role() == Role::Owner
                    && target.is_active
                    && (new_role.is_some_and(|r| r != Role::Owner) || active == Some(false));
                if loses_owner && owners <= 1 {
                    return Err(ApiError::Conflict(
                        "a tenant must keep at least one active owner".into(),
                    ));
                }
                let updated = users::update(c, tenant, target.id, new_role, active).await?;
                let mut entry = p.audit(if new_role.is_some() {
                    "user.role_changed"
                } else {
                    "user.updated"
                });
                entry.target_type = Some("user");
                entry.target_id = Some(target.id.to_string());
                entry.details = serde_json::json!({
                    "from": { "role": target.role, "is_active": target.is_active },
                    "to": { "role": updated.role, "is_active": updated.is_active },
                });
                catalytic_db::audit::record(c, entry).await?;
                Ok(updated)
            })
            .await?;
        revoke_access_tokens(&state, updated.id).await?;
        Ok(Json(updated.into()))
    }

    /// Deletes a user (not the last active owner).
    #[oai(
        path = "/api/users/:id",
        method = "delete",
        operation_id = "users_delete"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
        id: Path<Uuid>,
    ) -> ApiResult<Deleted> {
        let p = authenticate(&state, &auth, "users_delete").await?;
        let target = get_user(&state, p.tenant_id, id.0).await?;
        may_manage(&p, target.role())?;
        let mut conn = state.db.get().await?;
        let tenant = p.tenant_id;
        conn.transaction::<_, ApiError, _>(async |c| {
            let owners = users::active_owner_count_for_update(c, tenant).await?;
            if target.role() == Role::Owner && target.is_active && owners <= 1 {
                return Err(ApiError::Conflict(
                    "a tenant must keep at least one active owner".into(),
                ));
            }
            // The entry first: a user deleting themself is its actor.
            let mut entry = p.audit("user.deleted");
            entry.target_type = Some("user");
            entry.target_id = Some(target.id.to_string());
            entry.details = serde_json::json!({ "email": target.email });
            catalytic_db::audit::record(c, entry).await?;
            users::delete(c, tenant, target.id).await?;
            Ok(())
        })
        .await?;
        revoke_access_tokens(&state, target.id).await?;
        Ok(Deleted::Deleted)
    }
}
