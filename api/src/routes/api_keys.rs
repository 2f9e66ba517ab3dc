//! API keys: created once (the key is shown only then), listed by prefix, revoked.

use catalytic_db::AsyncConnection as _;
use catalytic_db::DbError;
use catalytic_db::api_keys::{self, ApiKey, NewApiKey};
use catalytic_db::ids::ApiKeyId;
use catalytic_db::users::Role;
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use crate::auth::principal::authenticate;
use crate::auth::{Credentials, api_key};
use crate::error::{ApiError, ApiResult};
use crate::routes::ApiTags;
use crate::state::AppState;
use crate::validate;

#[derive(Debug, Object)]
pub struct CreateApiKeyRequest {
    pub name: String,
    /// The key's role (default member); at most the caller's own.
    pub role: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Object)]
pub struct ApiKeyView {
    pub id: Uuid,
    pub name: String,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    pub role: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id.as_uuid(),
            name: k.name,
            prefix: k.prefix,
            role: k.role,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
            created_at: k.created_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct CreatedApiKey {
    /// The key itself: shown this once, stored only as a hash. Send as `X-API-Key`.
    pub key: String,
    #[oai(flatten)]
    pub info: ApiKeyView,
}

#[derive(Debug, Object)]
pub struct ApiKeyList {
    pub items: Vec<ApiKeyView>,
}

#[derive(ApiResponse)]
pub enum KeyCreated {
    /// The new key (shown once).
    #[oai(status = 201)]
    Created(Json<CreatedApiKey>),
}

#[derive(ApiResponse)]
pub enum KeyRevoked {
    /// Revoked.
    #[oai(status = 204)]
    Revoked,
}

pub struct ApiKeysApi;

#[OpenApi(tag = "ApiTags::ApiKeys")]
impl ApiKeysApi {
    /// Creates an API key.
    #[oai(
        path = "/api/api-keys",
        method = "post",
        operation_id = "api_keys_create"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
        body: Json<CreateApiKeyRequest>,
    ) -> ApiResult<KeyCreated> {
        let p = authenticate(&state, &auth, "api_keys_create").await?;
        let b = body.0;
        validate::text("name", &b.name, 100).map_err(|e| ApiError::Validation(vec![e]))?;
        let role: Role = match b.role.as_deref() {
            None => Role::Member,
            Some(r) => r
                .parse()
                .map_err(|_| ApiError::invalid("role", "must be owner, admin, member or viewer"))?,
        };
        if role > p.role {
            return Err(ApiError::Forbidden(format!(
                "a {} may not create a key with the {} role",
                p.role, role
            )));
        }
        if b.expires_at.is_some_and(|t| t <= Utc::now()) {
            return Err(ApiError::invalid("expires_at", "must be in the future"));
        }
        let (key, prefix) = api_key::generate();
        let digest = api_key::digest(&key);
        let mut conn = state.db.get().await?;
        let row = conn
            .transaction::<_, ApiError, _>(async |c| {
                let row = api_keys::insert(
                    c,
                    NewApiKey {
                        id: ApiKeyId::generate(),
                        tenant_id: p.tenant_id,
                        created_by: p.user_id,
                        name: b.name.trim(),
                        prefix: &prefix,
                        key_hash: &digest,
                        role,
                        expires_at: b.expires_at,
                    },
                )
                .await?;
                let mut entry = p.audit("api_key.created");
                entry.target_type = Some("api_key");
                entry.target_id = Some(row.id.to_string());
                entry.details =
                    serde_json::json!({ "name": row.name, "role": row.role, "prefix": row.prefix });
                catalytic_db::audit::record(c, entry).await?;
                Ok(row)
            })
            .await?;
        Ok(KeyCreated::Created(Json(CreatedApiKey {
            key,
            info: row.into(),
        })))
    }

    /// The tenant's live keys (never the keys themselves).
    #[oai(path = "/api/api-keys", method = "get", operation_id = "api_keys_list")]
    async fn list(&self, state: Data<&AppState>, auth: Credentials) -> ApiResult<Json<ApiKeyList>> {
        let p = authenticate(&state, &auth, "api_keys_list").await?;
        let mut conn = state.db.get().await?;
        let items = api_keys::list(&mut conn, p.tenant_id).await?;
        Ok(Json(ApiKeyList {
            items: items.into_iter().map(Into::into).collect(),
        }))
    }

    /// Revokes a key at once.
    #[oai(
        path = "/api/api-keys/:id",
        method = "delete",
        operation_id = "api_keys_delete"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
        id: Path<Uuid>,
    ) -> ApiResult<KeyRevoked> {
        let p = authenticate(&state, &auth, "api_keys_delete").await?;
        let mut conn = state.db.get().await?;
        conn.transaction::<_, ApiError, _>(async |c| {
            let row = api_keys::revoke(c, p.tenant_id, ApiKeyId::from_uuid(id.0))
                .await
                .map_err(|e| match e {
                    DbError::NotFound => ApiError::not_found("API key"),
                    other => other.into(),
                })?;
            let mut entry = p.audit("api_key.revoked");
            entry.target_type = Some("api_key");
            entry.target_id = Some(row.id.to_string());
            entry.details = serde_json::json!({ "name": row.name, "prefix": row.prefix });
            catalytic_db::audit::record(c, entry).await?;
            Ok(())
        })
        .await?;
        Ok(KeyRevoked::Revoked)
    }
}
