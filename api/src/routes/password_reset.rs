//! Password reset: a single-use token valid one hour, sent through the outbox.

use catalytic_db::AsyncConnection as _;
use catalytic_db::audit::NewAudit;
use catalytic_db::{tokens, users};
use chrono::{Duration, Utc};
use poem::Request;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::auth::{api_key, password, principal};
use crate::emails;
use crate::error::{ApiError, ApiResult};
use crate::http::{client_ip, request_id};
use crate::routes::ApiTags;
use crate::state::AppState;
use crate::validate;

#[derive(Debug, Object)]
pub struct PasswordResetRequest {
    pub email: String,
}

#[derive(Debug, Object)]
pub struct PasswordResetConfirm {
    pub token: String,
    pub new_password: String,
}

#[derive(Debug, Object)]
pub struct Accepted {
    /// Always the same message, whether or not the email is registered.
    pub message: String,
}

#[derive(ApiResponse)]
pub enum ResetRequested {
    /// If the email is registered, a reset link is on its way.
    #[oai(status = 202)]
    Accepted(Json<Accepted>),
}

#[derive(ApiResponse)]
pub enum ResetDone {
    /// The password is changed and every session of the user is revoked.
    #[oai(status = 204)]
    Done,
}

/// How long a reset link is valid.
pub const RESET_TTL: Duration = Duration::hours(1);

/// A fresh single-use token: 32 random bytes, hex; only its SHA-256 is stored.
pub fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

pub struct PasswordResetApi;

#[OpenApi(tag = "ApiTags::Auth")]
impl PasswordResetApi {
    /// Sends a reset link when the email is registered; answers 202 either way.
    #[oai(
        path = "/api/auth/password-reset",
        method = "post",
        operation_id = "auth_password_reset"
    )]
    async fn request(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<PasswordResetRequest>,
    ) -> ApiResult<ResetRequested> {
        let ip = client_ip::of(req);
        principal::limit_by_ip(&state, "password-reset", &ip).await?;
        validate::no_control("email", &body.0.email).map_err(|e| ApiError::Validation(vec![e]))?;
        let email = body.0.email.trim().to_lowercase();
        let mut conn = state.db.get().await?;
        if let Some(user) = users::by_email(&mut conn, &email, None).await?
            && user.is_active
        {
            let token = new_token();
            let st = state.clone();
            let email_id = conn
                .transaction::<_, ApiError, _>(async |c| {
                    tokens::insert_password_reset(
                        c,
                        user.id,
                        &api_key::digest(&token),
                        Utc::now() + RESET_TTL,
                    )
                    .await?;
                    let id = emails::queue(
                        &st,
                        c,
                        Some(user.tenant_id),
                        &user.email,
                        "password_reset",
                        serde_json::json!({
                            "first_name": user.first_name,
                            "reset_url": format!("{}/reset-password?token={token}", st.config.frontend_url),
                            "expires_minutes": RESET_TTL.num_minutes(),
                        }),
                    )
                    .await?;
                    catalytic_db::audit::record(
                        c,
                        NewAudit {
                            tenant_id: Some(user.tenant_id),
                            actor_user_id: Some(user.id),
                            action: "auth.password_reset_requested",
                            ip: Some(ip.clone()),
                            request_id: Some(request_id::current()),
                            ..Default::default()
                        },
                    )
                    .await?;
                    Ok(id)
                })
                .await?;
            emails::push_after_commit(&state, &[email_id]).await;
        }
        Ok(ResetRequested::Accepted(Json(Accepted {
            message: "if the email is registered, a reset link has been sent".into(),
        })))
    }

    /// Sets a new password with a reset token; revokes every refresh token of the user.
    #[oai(
        path = "/api/auth/password-reset/confirm",
        method = "post",
        operation_id = "auth_password_reset_confirm"
    )]
    async fn confirm(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<PasswordResetConfirm>,
    ) -> ApiResult<ResetDone> {
        let ip = client_ip::of(req);
        principal::limit_by_ip(&state, "password-reset", &ip).await?;
        let b = body.0;
        password::check_rules("new_password", &b.new_password)
            .map_err(|e| ApiError::Validation(vec![e]))?;
        let hash = password::hash(b.new_password).await?;
        let digest = api_key::digest(b.token.trim());
        let mut conn = state.db.get().await?;
        let user = conn
            .transaction::<_, ApiError, _>(async |c| {
                let Some(user_id) = tokens::consume_password_reset(c, &digest).await? else {
                    return Err(ApiError::BadRequest(
                        "the reset token is invalid, used or expired".into(),
                    ));
                };
                users::set_password(c, user_id, &hash).await?;
                tokens::revoke_user(c, user_id).await?;
                let user = users::by_id_any_tenant(c, user_id).await?;
                catalytic_db::audit::record(
                    c,
                    NewAudit {
                        tenant_id: Some(user.tenant_id),
                        actor_user_id: Some(user.id),
                        action: "auth.password_reset",
                        ip: Some(ip.clone()),
                        request_id: Some(request_id::current()),
                        ..Default::default()
                    },
                )
                .await?;
                Ok(user)
            })
            .await?;
        crate::routes::users::revoke_access_tokens(&state, user.id).await?;
        Ok(ResetDone::Done)
    }
}
