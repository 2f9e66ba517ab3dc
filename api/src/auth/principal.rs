//! Resolving a credential into the principal a handler acts for. The tenant id a handler
//! uses comes only from here: from the verified token or the API key's row.

use std::sync::Arc;

use catalytic_db::ids::{ApiKeyId, TenantId, UserId};
use catalytic_db::users::Role;
use poem_openapi::auth::{ApiKey, Bearer};
use uuid::Uuid;

use crate::auth::api_key;
use crate::auth::jwt::Claims;
use crate::auth::roles::{self, Rule};
use crate::auth::scheme::{ApiKeyAuth, BearerAuth, Credentials};
use crate::error::{ApiError, ApiResult};
use crate::quota;
use crate::ratelimit::{self, Gate, Metering, Verdict};
use crate::state::AppState;
use crate::tenancy::{Limits, TenantContext};

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant_id: TenantId,
    pub user_id: Option<UserId>,
    pub api_key_id: Option<ApiKeyId>,
    pub role: Role,
    pub email: Option<String>,
    pub is_platform_admin: bool,
    /// The access token's claims (bearer only).
    pub claims: Option<Claims>,
    pub tenant: Arc<TenantContext>,
}

impl Principal {
    pub fn limits(&self) -> &Limits {
        &self.tenant.limits
    }

    /// The actor fields of an audit entry.
    pub fn audit(&self, action: &'static str) -> catalytic_db::audit::NewAudit {
        catalytic_db::audit::NewAudit {
            tenant_id: Some(self.tenant_id),
            actor_user_id: self.user_id,
            actor_api_key_id: self.api_key_id,
            action,
            request_id: Some(crate::http::request_id::current()),
            ..Default::default()
        }
    }
}

fn unauthorized() -> ApiError {
    ApiError::Unauthorized("invalid or expired credentials".into())
}

/// The Redis key of a token denylist entry.
pub fn deny_key(state: &AppState, jti: Uuid) -> String {
    state.key(&format!("auth:deny:{jti}"))
}

/// The Redis key holding the time (unix milliseconds) before which a user's tokens are stale.
pub fn revocation_key(state: &AppState, user: UserId) -> String {
    state.key(&format!("auth:user-rev:{user}"))
}

/// Loads (or takes from the cache) the tenant's status and limits.
pub async fn tenant_context(state: &AppState, tenant: TenantId) -> ApiResult<Arc<TenantContext>> {
    if let Some(ctx) = state.tenants.get(tenant) {
        return Ok(ctx);
    }
    let mut conn = state.db.get().await?;
    let t = catalytic_db::tenants::get(&mut conn, tenant)
        .await
        .map_err(|e| match e {
            catalytic_db::DbError::NotFound => unauthorized(),
            other => other.into(),
        })?;
    let (_, plan) = catalytic_db::plans::for_tenant(&mut conn, tenant).await?;
    let limits = Limits::of(&plan, &t.limit_overrides);
    Ok(state.tenants.put(TenantContext { tenant: t, limits }))
}

/// Verifies the credential, applies the rate limit, checks the role the operation needs
/// and the tenant's standing. Redis being down fails closed (503).
pub async fn authenticate(
    state: &AppState,
    creds: &Credentials,
    operation_id: &str,
) -> ApiResult<Principal> {
    let rule: &Rule = roles::rule_for(operation_id)
        .ok_or_else(|| ApiError::internal(format!("no role rule for {operation_id}")))?;
    let mut principal = match creds {
        Credentials::BearerAuth(BearerAuth(Bearer { token })) => bearer(state, token, rule).await?,
        Credentials::ApiKeyAuth(ApiKeyAuth(ApiKey { key })) => by_api_key(state, key, rule).await?,
    };
    if rule.platform_admin {
        // Platform administration is never in a token: it is read from the user row. A
        // database that cannot answer is a 503, not a "no such route".
        if let Some(user) = principal.user_id {
            let mut conn = state.db.get().await?;
            principal.is_platform_admin =
                match catalytic_db::users::by_id_any_tenant(&mut conn, user).await {
                    Ok(u) => u.is_platform_admin && u.is_active,
                    Err(catalytic_db::DbError::NotFound) => false,
                    Err(e) => return Err(e.into()),
                };
        }
        if !principal.is_platform_admin {
            // Not advertised: to a tenant user these routes do not exist.
            return Err(ApiError::NotFound("no such route".into()));
        }
    } else if !principal.role.at_least(rule.min_role) {
        return Err(ApiError::Forbidden(format!(
            "this operation needs the {} role or higher",
            rule.min_role
        )));
    }
    if rule.write && principal.tenant.suspended() {
        return Err(ApiError::Suspended);
    }
    Ok(principal)
}

/// What identifies the caller to the gate.
struct Caller<'a> {
    rate_key: String,
    deny_key: Option<String>,
    revocation_key: Option<String>,
    issued_ms: i64,
    tenant: &'a TenantContext,
}

/// One Redis round trip: denylist, revocation, rate limit, quota and metering.
async fn admit(state: &AppState, caller: Caller<'_>, rule: &Rule) -> ApiResult<()> {
    let tenant = caller.tenant.tenant.id;
    let now = chrono::Utc::now();
    let group = quota::group_of(rule.path);
    let quota = match caller.tenant.limits.api_calls_per_month {
        Some(limit)
            if state.config.usage_metering && !quota::EXEMPT_GROUPS.contains(&group.as_str()) =>
        {
            Some((
                catalytic_jobs::usage::quota_key(&state.config.redis_key_prefix, tenant, now),
                limit,
            ))
        }
        _ => None,
    };
    let minute = catalytic_jobs::usage::minute_of(now);
    let metric = catalytic_jobs::usage::API_CALLS;
    let metering = Metering {
        bucket_key: catalytic_jobs::usage::bucket_key(&state.config.redis_key_prefix, minute),
        minutes_key: catalytic_jobs::usage::minutes_key(&state.config.redis_key_prefix),
        minute,
        fields: vec![
            format!("{tenant}|{metric}"),
            format!("{tenant}|{metric}.{group}"),
        ],
        quota: quota.clone(),
    };
    let mut conn = state.redis.get().await?;
    let (verdict, info, used) = ratelimit::gate(
        &mut conn,
        &Gate {
            rate_key: &caller.rate_key,
            limit_per_minute: caller.tenant.limits.rate_limit_per_minute,
            deny_key: caller.deny_key.as_deref(),
            revocation_key: caller.revocation_key.as_deref(),
            token_issued_ms: caller.issued_ms,
            metering: state.config.usage_metering.then_some(metering),
        },
    )
    .await?;
    match verdict {
        Verdict::Allowed => {
            ratelimit::record(info);
            if let Some((_, limit)) = quota
                && let Err(e) = quota::after_count(state, tenant, used, limit).await
            {
                tracing::warn!(error = %e, "could not record the quota notification");
            }
            Ok(())
        }
        Verdict::TokenDenied | Verdict::TokenStale => Err(unauthorized()),
        Verdict::RateLimited => {
            ratelimit::record(info);
            Err(ApiError::RateLimited {
                retry_after_secs: info.retry_after_secs,
            })
        }
        Verdict::QuotaExceeded => {
            ratelimit::record(info);
            // Only the call that reached the limit was admitted; if its 100% notice was
            // lost (its write failed), a refused call writes it (the Redis guard makes this
            // one round trip once the notice is written).
            if let Some((_, limit)) = quota
                && let Err(e) = quota::after_count(state, tenant, used, limit).await
            {
                tracing::warn!(error = %e, "could not record the quota notification");
            }
            Err(ApiError::QuotaExceeded {
                limit: quota.map(|q| q.1).unwrap_or(0),
                reset_at: catalytic_jobs::usage::next_month(now),
            })
        }
    }
}

async fn bearer(state: &AppState, token: &str, rule: &Rule) -> ApiResult<Principal> {
    let claims = state
        .verified_tokens
        .verify_access(&state.keys, token)
        .map_err(|e| {
            tracing::info!(reason = %e, "access token refused");
            unauthorized()
        })?;
    let tenant = tenant_context(state, claims.tenant()).await?;
    admit(
        state,
        Caller {
            rate_key: state.key(&format!("rl:user:{}", claims.sub)),
            deny_key: Some(deny_key(state, claims.jti)),
            revocation_key: Some(revocation_key(state, claims.user_id())),
            issued_ms: claims.issued_ms(),
            tenant: &tenant,
        },
        rule,
    )
    .await?;
    Ok(Principal {
        tenant_id: claims.tenant(),
        user_id: Some(claims.user_id()),
        api_key_id: None,
        role: claims.role,
        email: Some(claims.email.clone()),
        is_platform_admin: false,
        claims: Some(claims),
        tenant,
    })
}

async fn by_api_key(state: &AppState, key: &str, rule: &Rule) -> ApiResult<Principal> {
    if !key.starts_with(api_key::PREFIX) {
        return Err(unauthorized());
    }
    let digest = api_key::digest(key);
    let mut db = state.db.get().await?;
    let row = catalytic_db::api_keys::by_hash(&mut db, &digest)
        .await?
        .ok_or_else(unauthorized)?;
    let tenant = tenant_context(state, row.tenant_id).await?;
    admit(
        state,
        Caller {
            rate_key: state.key(&format!("rl:key:{}", row.id)),
            deny_key: None,
            revocation_key: None,
            issued_ms: 0,
            tenant: &tenant,
        },
        rule,
    )
    .await?;
    if let Err(e) = catalytic_db::api_keys::touch(&mut db, row.id).await {
        tracing::warn!(error = %e, "could not record API key use");
    }
    Ok(Principal {
        tenant_id: row.tenant_id,
        user_id: None,
        api_key_id: Some(row.id),
        role: row.role(),
        email: None,
        is_platform_admin: false,
        claims: None,
        tenant,
    })
}

/// Per-IP limit of the unauthenticated auth routes (brute force).
pub async fn limit_by_ip(state: &AppState, route: &str, ip: &str) -> ApiResult<()> {
    let mut conn = state.redis.get().await?;
    let rate_key = state.key(&format!("rl:ip:{route}:{ip}"));
    let (verdict, info, _) = ratelimit::gate(
        &mut conn,
        &Gate {
            rate_key: &rate_key,
            limit_per_minute: state.config.auth_rate_limit_per_minute,
            ..Default::default()
        },
    )
    .await?;
    ratelimit::record(info);
    if verdict == Verdict::RateLimited {
        return Err(ApiError::RateLimited {
            retry_after_secs: info.retry_after_secs,
        });
    }
    Ok(())
}
