//! Sign-up, login, token refresh (rotation with reuse detection), logout, verification,
//! the current principal and the JWKS document.

use catalytic_db::AsyncConnection as _;
use catalytic_db::audit::NewAudit;
use catalytic_db::ids::{RefreshTokenId, TenantId, TokenFamilyId, UserId};
use catalytic_db::users::{NewUser, Role};
use catalytic_db::{DbError, plans, tenants, tokens, users};
use chrono::{DateTime, Utc};
use poem::Request;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use crate::auth::jwt::{Claims, TokenType};
use crate::auth::principal::{self, authenticate, deny_key};
use crate::auth::{Credentials, password};
use crate::emails;
use crate::error::{ApiError, ApiResult};
use crate::http::{client_ip, request_id};
use crate::routes::ApiTags;
use crate::sessions::{TokenPair, issue_pair};
use crate::state::AppState;
use crate::validate::{self, Checks};

#[derive(Debug, Object)]
pub struct RegisterRequest {
    pub company_name: String,
    pub email: String,
    pub password: String,
    pub first_name: String,
    pub last_name: String,
    /// `free` (default), or a paid plan that waits for a completed checkout.
    pub plan_code: Option<String>,
}

#[derive(Debug, Object)]
pub struct RegisterResponse {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub tenant_slug: String,
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: String,
    pub expires_in: i64,
}

#[derive(ApiResponse)]
pub enum Created {
    /// The tenant, its owner and their tokens.
    #[oai(status = 201)]
    Created(Json<RegisterResponse>),
}

#[derive(Debug, Object)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// Narrows the login to one organisation.
    pub tenant_slug: Option<String>,
}

#[derive(Debug, Object)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Object)]
pub struct VerifyRequest {
    pub token: String,
    /// `access` (default) or `refresh`.
    pub token_type: Option<String>,
}

/// The decoded claims of a valid token.
#[derive(Debug, Object)]
pub struct TokenClaims {
    pub sub: Uuid,
    pub tenant_id: Uuid,
    pub email: String,
    pub role: String,
    #[oai(rename = "type")]
    pub token_type: String,
    pub jti: Uuid,
    pub iat: i64,
    pub exp: i64,
}

impl From<Claims> for TokenClaims {
    fn from(c: Claims) -> Self {
        Self {
            sub: c.sub,
            tenant_id: c.tenant_id,
            email: c.email,
            role: c.role.as_str().into(),
            token_type: c.token_type.as_str().into(),
            jti: c.jti,
            iat: c.iat,
            exp: c.exp,
        }
    }
}

#[derive(Debug, Object)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub role: String,
    pub is_active: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<users::User> for UserView {
    fn from(u: users::User) -> Self {
        Self {
            id: u.id.as_uuid(),
            email: u.email,
            first_name: u.first_name,
            last_name: u.last_name,
            role: u.role,
            is_active: u.is_active,
            last_login_at: u.last_login_at,
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct TenantView {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    /// `active` or `suspended`.
    pub status: String,
    pub plan_code: String,
}

#[derive(Debug, Object)]
pub struct MeResponse {
    /// The user (absent when the caller is an API key).
    pub user: Option<UserView>,
    /// The API key's id (when the caller is an API key).
    pub api_key_id: Option<Uuid>,
    pub role: String,
    pub tenant: TenantView,
}

#[derive(Debug, Object)]
pub struct JwkView {
    pub kty: String,
    #[oai(rename = "use")]
    pub use_: String,
    pub alg: String,
    pub kid: String,
    pub n: String,
    pub e: String,
}

#[derive(Debug, Object)]
pub struct Jwks {
    pub keys: Vec<JwkView>,
}

#[derive(ApiResponse)]
pub enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

pub struct AuthApi;

fn bad_login() -> ApiError {
    ApiError::Unauthorized("invalid email or password".into())
}

#[OpenApi(tag = "ApiTags::Auth")]
impl AuthApi {
    /// Creates an organisation, its owner and a Free subscription (or the chosen plan,
    /// pending checkout), and queues the welcome email — all in one transaction.
    #[oai(
        path = "/api/auth/register",
        method = "post",
        operation_id = "auth_register"
    )]
    async fn register(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<RegisterRequest>,
    ) -> ApiResult<Created> {
        principal::limit_by_ip(&state, "register", &client_ip::of(req)).await?;
        let b = body.0;
        let mut checks = Checks::new();
        let email = validate::email("email", &b.email);
        checks
            .check(validate::text("company_name", &b.company_name, 200))
            .check(validate::text("first_name", &b.first_name, 100))
            .check(validate::text("last_name", &b.last_name, 100))
            .check(email.as_ref().map(|_| ()).map_err(Clone::clone))
            .check(password::check_rules("password", &b.password));
        if let Some(plan) = &b.plan_code {
            checks.check(validate::no_control("plan_code", plan));
        }
        checks.finish()?;
        let email = email.map_err(|e| ApiError::Validation(vec![e]))?;
        let plan_code = b.plan_code.as_deref().unwrap_or("free").to_owned();

        let mut conn = state.db.get().await?;
        let free = plans::by_code(&mut conn, "free").await?;
        let chosen = match plans::by_code(&mut conn, &plan_code).await {
            Ok(p) => p,
            Err(DbError::NotFound) => {
                return Err(ApiError::invalid("plan_code", "no such plan"));
            }
            Err(e) => return Err(e.into()),
        };
        if users::by_email(&mut conn, &email, None).await?.is_some() {
            return Err(ApiError::Conflict(
                "this email is already registered".into(),
            ));
        }
        let hash = password::hash(b.password).await?;
        let base_slug = validate::slugify(&b.company_name);
        let company = b.company_name.trim().to_owned();
        let (first, last) = (
            b.first_name.trim().to_owned(),
            b.last_name.trim().to_owned(),
        );
        let st = state.clone();
        let ip = client_ip::of(req);

        let (tenant, user, pair, email_id) = conn
            .transaction::<_, ApiError, _>(async |c| {
                let mut slug = base_slug.clone();
                let mut n = 0;
                while tenants::slug_exists(c, &slug).await? {
                    n += 1;
                    let suffix = format!("-{:04x}", rand::random::<u16>());
                    slug = format!("{}{}", &base_slug[..base_slug.len().min(58)], suffix);
                    if n > 10 {
                        return Err(ApiError::Conflict("could not find a free slug".into()));
                    }
                }
                let tenant = tenants::insert(c, TenantId::generate(), &company, &slug).await?;
                let user = users::insert(
                    c,
                    NewUser {
                        id: UserId::generate(),
                        tenant_id: tenant.id,
                        email: &email,
                        password_hash: &hash,
                        first_name: &first,
                        last_name: &last,
                        role: Role::Owner,
                    },
                )
                .await?;
                let pending = (chosen.id != free.id).then_some(chosen.id);
                plans::create_subscription(c, tenant.id, free.id, pending).await?;
                let email_id = emails::queue(
                    &st,
                    c,
                    Some(tenant.id),
                    &email,
                    "welcome",
                    serde_json::json!({
                        "first_name": first,
                        "company_name": company,
                        "login_url": format!("{}/login", st.config.frontend_url),
                    }),
                )
                .await?;
                catalytic_db::audit::record(
                    c,
                    NewAudit {
                        tenant_id: Some(tenant.id),
                        actor_user_id: Some(user.id),
                        action: "auth.registered",
                        target_type: Some("tenant"),
                        target_id: Some(tenant.id.to_string()),
                        ip: Some(ip.clone()),
                        request_id: Some(request_id::current()),
                        details: serde_json::json!({ "plan_code": chosen.code }),
                        ..Default::default()
                    },
                )
                .await?;
                let pair = issue_pair(&st, c, &user, TokenFamilyId::generate()).await?;
                Ok((tenant, user, pair, email_id))
            })
            .await?;
        emails::push_after_commit(&state, &[email_id]).await;
        Ok(Created::Created(Json(RegisterResponse {
            tenant_id: tenant.id.as_uuid(),
            user_id: user.id.as_uuid(),
            tenant_slug: tenant.slug,
            access_token: pair.access_token,
            refresh_token: pair.refresh_token,
            token_type: pair.token_type,
            expires_in: pair.expires_in,
        })))
    }

    /// Exchanges email and password for tokens. Wrong email and wrong password answer
    /// the same 401 in about the same time.
    #[oai(path = "/api/auth/login", method = "post", operation_id = "auth_login")]
    async fn login(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<LoginRequest>,
    ) -> ApiResult<Json<TokenPair>> {
        let ip = client_ip::of(req);
        principal::limit_by_ip(&state, "login", &ip).await?;
        let b = body.0;
        // Not validated as an address (a wrong email is the same 401 as a wrong password),
        // but a control character cannot be in any stored email.
        let mut checks = Checks::new();
        checks.check(validate::no_control("email", &b.email));
        if let Some(slug) = &b.tenant_slug {
            checks.check(validate::no_control("tenant_slug", slug));
        }
        checks.finish()?;
        let email = b.email.trim().to_lowercase();
        let mut conn = state.db.get().await?;
        let tenant = match b.tenant_slug.as_deref() {
            // No such organisation is the same 401 as a wrong password; a database that
            // cannot answer is a 503.
            Some(slug) => match tenants::by_slug(&mut conn, slug).await {
                Ok(t) => Some(t.id),
                Err(DbError::NotFound) => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        let user = if b.tenant_slug.is_some() && tenant.is_none() {
            None
        } else {
            users::by_email(&mut conn, &email, tenant).await?
        };
        let stored = user
            .as_ref()
            .map(|u| u.password_hash.clone())
            .unwrap_or_else(|| state.dummy_hash.as_ref().clone());
        let ok = password::verify(b.password, stored).await?;
        let user = match user {
            Some(u) if ok && u.is_active => u,
            other => {
                catalytic_db::audit::record(
                    &mut conn,
                    NewAudit {
                        tenant_id: other.as_ref().map(|u| u.tenant_id),
                        actor_user_id: other.as_ref().map(|u| u.id),
                        action: "auth.login_failed",
                        ip: Some(ip),
                        request_id: Some(request_id::current()),
                        details: serde_json::json!({ "email": email }),
                        ..Default::default()
                    },
                )
                .await?;
                return Err(bad_login());
            }
        };
        let st = state.clone();
        let pair = conn
            .transaction::<_, ApiError, _>(async |c| {
                users::touch_login(c, user.id).await?;
                catalytic_db::audit::record(
                    c,
                    NewAudit {
                        tenant_id: Some(user.tenant_id),
                        actor_user_id: Some(user.id),
                        action: "auth.login_succeeded",
                        ip: Some(ip.clone()),
                        request_id: Some(request_id::current()),
                        ..Default::default()
                    },
                )
                .await?;
                issue_pair(&st, c, &user, TokenFamilyId::generate()).await
            })
            .await?;
        Ok(Json(pair))
    }

    /// Rotates a refresh token: a new pair, the old refresh token spent. Presenting a
    /// spent refresh token revokes its whole family.
    #[oai(
        path = "/api/auth/refresh",
        method = "post",
        operation_id = "auth_refresh"
    )]
    async fn refresh(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<RefreshRequest>,
    ) -> ApiResult<Json<TokenPair>> {
        let ip = client_ip::of(req);
        principal::limit_by_ip(&state, "refresh", &ip).await?;
        let claims = state
            .keys
            .verify(&body.0.refresh_token, TokenType::Refresh)
            .map_err(|e| {
                tracing::info!(reason = %e, "refresh token refused");
                ApiError::Unauthorized("invalid or expired refresh token".into())
            })?;
        enum Outcome {
            Rotated(TokenPair),
            Reused,
            Invalid,
        }
        let st = state.clone();
        let mut conn = state.db.get().await?;
        let outcome = conn
            .transaction::<_, ApiError, _>(async |c| {
                let Some(row) =
                    tokens::refresh_for_update(c, RefreshTokenId::from_uuid(claims.jti)).await?
                else {
                    return Ok(Outcome::Invalid);
                };
                if row.revoked_at.is_some() || row.expires_at < Utc::now() {
                    return Ok(Outcome::Invalid);
                }
                if row.used_at.is_some() {
                    tokens::revoke_family(c, row.family_id).await?;
                    catalytic_db::audit::record(
                        c,
                        NewAudit {
                            tenant_id: Some(row.tenant_id),
                            actor_user_id: Some(row.user_id),
                            action: "auth.token_reuse_detected",
                            target_type: Some("token_family"),
                            target_id: Some(row.family_id.to_string()),
                            ip: Some(ip.clone()),
                            request_id: Some(request_id::current()),
                            ..Default::default()
                        },
                    )
                    .await?;
                    return Ok(Outcome::Reused);
                }
                let user = match users::by_id_any_tenant(c, row.user_id).await {
                    Ok(u) if u.is_active => u,
                    Ok(_) | Err(DbError::NotFound) => return Ok(Outcome::Invalid),
                    Err(e) => return Err(e.into()),
                };
                tokens::mark_refresh_used(c, row.id).await?;
                Ok(Outcome::Rotated(
                    issue_pair(&st, c, &user, row.family_id).await?,
                ))
            })
            .await?;
        match outcome {
            Outcome::Rotated(pair) => Ok(Json(pair)),
            Outcome::Reused => Err(ApiError::Unauthorized(
                "refresh token already used; every session of this login is revoked".into(),
            )),
            Outcome::Invalid => Err(ApiError::Unauthorized(
                "invalid or expired refresh token".into(),
            )),
        }
    }

    /// Ends the session: the access token is denied until it expires and its refresh
    /// family is revoked.
    #[oai(
        path = "/api/auth/logout",
        method = "post",
        operation_id = "auth_logout"
    )]
    async fn logout(&self, state: Data<&AppState>, auth: Credentials) -> ApiResult<NoContent> {
        let p = authenticate(&state, &auth, "auth_logout").await?;
        let Some(claims) = p.claims.clone() else {
            return Err(ApiError::BadRequest(
                "API keys have no session; revoke the key instead".into(),
            ));
        };
        let ttl = (claims.exp - Utc::now().timestamp()).max(1) as u64 + 5;
        let mut redis = state.redis.get().await?;
        redis::cmd("SET")
            .arg(deny_key(&state, claims.jti))
            .arg(1)
            .arg("EX")
            .arg(ttl)
            .query_async::<()>(&mut redis)
            .await?;
        let mut conn = state.db.get().await?;
        conn.transaction::<_, ApiError, _>(async |c| {
            tokens::revoke_family(c, TokenFamilyId::from_uuid(claims.fam)).await?;
            catalytic_db::audit::record(c, p.audit("auth.logout")).await?;
            Ok(())
        })
        .await?;
        Ok(NoContent::Done)
    }

    /// Decodes and verifies a token (signature, issuer, audience, expiry, type, denylist).
    #[oai(
        path = "/api/auth/verify",
        method = "post",
        operation_id = "auth_verify"
    )]
    async fn verify(
        &self,
        state: Data<&AppState>,
        body: Json<VerifyRequest>,
    ) -> ApiResult<Json<TokenClaims>> {
        let kind = match body.0.token_type.as_deref() {
            None | Some("access") => TokenType::Access,
            Some("refresh") => TokenType::Refresh,
            Some(_) => {
                return Err(ApiError::invalid("token_type", "must be access or refresh"));
            }
        };
        let invalid = || ApiError::Unauthorized("invalid or expired token".into());
        let claims = state
            .keys
            .verify(&body.0.token, kind)
            .map_err(|_| invalid())?;
        let mut redis = state.redis.get().await?;
        let denied: bool = redis::cmd("EXISTS")
            .arg(deny_key(&state, claims.jti))
            .query_async(&mut redis)
            .await?;
        let rev: Option<i64> = redis::cmd("GET")
            .arg(principal::revocation_key(&state, claims.user_id()))
            .query_async(&mut redis)
            .await?;
        if denied || rev.is_some_and(|r| claims.issued_ms() < r) {
            return Err(invalid());
        }
        if kind == TokenType::Refresh {
            let mut conn = state.db.get().await?;
            let live = tokens::refresh_by_id(&mut conn, RefreshTokenId::from_uuid(claims.jti))
                .await?
                .is_some_and(|r| r.revoked_at.is_none() && r.used_at.is_none());
            if !live {
                return Err(invalid());
            }
        }
        Ok(Json(claims.into()))
    }

    /// The caller: user (or API key), role and tenant.
    #[oai(path = "/api/auth/me", method = "get", operation_id = "auth_me")]
    async fn me(&self, state: Data<&AppState>, auth: Credentials) -> ApiResult<Json<MeResponse>> {
        let p = authenticate(&state, &auth, "auth_me").await?;
        let mut conn = state.db.get().await?;
        let user = match p.user_id {
            Some(id) => Some(users::get(&mut conn, p.tenant_id, id).await?.into()),
            None => None,
        };
        let t = &p.tenant.tenant;
        Ok(Json(MeResponse {
            user,
            api_key_id: p.api_key_id.map(|k| k.as_uuid()),
            role: p.role.as_str().into(),
            tenant: TenantView {
                id: t.id.as_uuid(),
                name: t.name.clone(),
                slug: t.slug.clone(),
                status: t.status.clone(),
                plan_code: p.tenant.limits.plan_code.clone(),
            },
        }))
    }

    /// The public keys that verify this service's tokens (RFC 7517).
    #[oai(path = "/.well-known/jwks.json", method = "get", operation_id = "jwks")]
    async fn jwks(&self, state: Data<&AppState>) -> Json<Jwks> {
        Json(Jwks {
            keys: state
                .keys
                .jwks()
                .iter()
                .map(|k| JwkView {
                    kty: k.kty.into(),
                    use_: k.use_.into(),
                    alg: k.alg.into(),
                    kid: k.kid.clone(),
                    n: k.n.clone(),
                    e: k.e.clone(),
                })
                .collect(),
        })
    }
}
