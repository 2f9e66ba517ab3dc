//! `GET /health` and `GET /api/auth/health`.

use std::time::{Duration, Instant};

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::routes::ApiTags;
use crate::state::AppState;

/// One dependency's state.
#[derive(Debug, Clone, Object)]
pub struct ComponentHealth {
    /// `up` or `down`.
    pub status: String,
    /// Round-trip time of the probe, in milliseconds.
    pub latency_ms: f64,
    /// Why it is down (no internal detail).
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
}

/// The service's health.
#[derive(Debug, Clone, Object)]
pub struct HealthReport {
    /// `healthy` or `unhealthy`.
    pub status: String,
    pub database: ComponentHealth,
    pub redis: ComponentHealth,
    /// The service's version.
    pub version: String,
}

#[derive(ApiResponse)]
pub enum HealthResponse {
    /// Every dependency is up.
    #[oai(status = 200)]
    Healthy(Json<HealthReport>),
    /// At least one dependency is down.
    #[oai(status = 503)]
    Unhealthy(Json<HealthReport>),
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

async fn probe<F, E>(fut: F) -> ComponentHealth
where
    F: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let started = Instant::now();
    let outcome = tokio::time::timeout(PROBE_TIMEOUT, fut).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok(Ok(())) => ComponentHealth {
            status: "up".into(),
            latency_ms,
            error: None,
        },
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health probe failed");
            ComponentHealth {
                status: "down".into(),
                latency_ms,
                error: Some("unreachable".into()),
            }
        }
        Err(_) => ComponentHealth {
            status: "down".into(),
            latency_ms,
            error: Some("timed out".into()),
        },
    }
}

pub async fn report(state: &AppState) -> HealthResponse {
    let db = probe(state.db.ping());
    let redis = probe(async {
        let mut conn = state.redis.get().await.map_err(|e| e.to_string())?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    let (database, redis) = tokio::join!(db, redis);
    let healthy = database.status == "up" && redis.status == "up";
    let report = HealthReport {
        status: if healthy { "healthy" } else { "unhealthy" }.into(),
        database,
        redis,
        version: env!("CARGO_PKG_VERSION").into(),
    };
    if healthy {
        HealthResponse::Healthy(Json(report))
    } else {
        HealthResponse::Unhealthy(Json(report))
    }
}

/// What an authenticated ping answers.
#[derive(Debug, Clone, Object)]
pub struct Pong {
    pub tenant_id: uuid::Uuid,
    pub role: String,
    pub request_id: String,
}

pub struct HealthApi;

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// Health of the service and its dependencies (PostgreSQL, Redis), with latencies.
    #[oai(path = "/health", method = "get", operation_id = "health")]
    async fn health(&self, state: Data<&AppState>) -> HealthResponse {
        report(&state).await
    }

    /// Checks a credential end to end (authentication, rate limit, metering) and does
    /// nothing else: the cheapest authenticated call.
    #[oai(path = "/api/ping", method = "get", operation_id = "ping")]
    async fn ping(
        &self,
        state: Data<&AppState>,
        auth: crate::auth::Credentials,
    ) -> crate::error::ApiResult<Json<Pong>> {
        let p = crate::auth::principal::authenticate(&state, &auth, "ping").await?;
        Ok(Json(Pong {
            tenant_id: p.tenant_id.as_uuid(),
            role: p.role.as_str().into(),
            request_id: crate::http::request_id::current(),
        }))
    }

    /// Health of the authentication subsystem (signing keys loaded; token store reachable).
    #[oai(
        path = "/api/auth/health",
        method = "get",
        operation_id = "auth_health"
    )]
    async fn auth_health(&self, state: Data<&AppState>) -> HealthResponse {
        report(&state).await
    }
}
