//! The tenant's audit log.

use catalytic_db::audit::{self, AuditLog};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

use crate::auth::Credentials;
use crate::auth::principal::authenticate;
use crate::error::{ApiError, ApiResult};
use crate::routes::{ApiTags, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::state::AppState;
use crate::validate;

#[derive(Debug, Object)]
pub struct AuditLogView {
    pub id: Uuid,
    /// Dotted action, e.g. `auth.login_failed`, `user.role_changed`, `api_key.created`.
    pub action: String,
    pub actor_user_id: Option<Uuid>,
    pub actor_api_key_id: Option<Uuid>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub details: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl From<AuditLog> for AuditLogView {
    fn from(a: AuditLog) -> Self {
        Self {
            id: a.id.as_uuid(),
            action: a.action,
            actor_user_id: a.actor_user_id.map(|u| u.as_uuid()),
            actor_api_key_id: a.actor_api_key_id.map(|k| k.as_uuid()),
            target_type: a.target_type,
            target_id: a.target_id,
            ip: a.ip,
            request_id: a.request_id,
            details: a.details,
            created_at: a.created_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct AuditLogPage {
    pub items: Vec<AuditLogView>,
    pub limit: u32,
    pub offset: u32,
}

pub struct AuditApi;

#[OpenApi(tag = "ApiTags::Audit")]
impl AuditApi {
    /// The tenant's audit log, newest first.
    #[oai(
        path = "/api/audit-logs",
        method = "get",
        operation_id = "audit_logs_list"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
        /// Only entries of this action.
        action: Query<Option<String>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))] limit: Query<Option<u32>>,
        offset: Query<Option<u32>>,
    ) -> ApiResult<Json<AuditLogPage>> {
        let p = authenticate(&state, &auth, "audit_logs_list").await?;
        if let Some(a) = &action.0 {
            validate::no_control("action", a).map_err(|e| ApiError::Validation(vec![e]))?;
        }
        let limit = limit.0.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE);
        let offset = offset.0.unwrap_or(0);
        let mut conn = state.db.get().await?;
        let items = audit::list(
            &mut conn,
            p.tenant_id,
            action.0.as_deref(),
            i64::from(limit),
            i64::from(offset),
        )
        .await
        .map_err(ApiError::from)?;
        Ok(Json(AuditLogPage {
            items: items.into_iter().map(Into::into).collect(),
            limit,
            offset,
        }))
    }
}
