//! The application: every route, the OpenAPI service, docs and metrics, wrapped in the
//! middleware.

use poem::endpoint::make_sync;
use poem::middleware::Cors;
use poem::web::Data;
use poem::{Endpoint, EndpointExt, IntoEndpoint, Route, get, handler};
use poem_openapi::OpenApiService;

use crate::config::AppEnv;
use crate::http::middleware;
use crate::routes::{
    api_keys::ApiKeysApi, audit::AuditApi, auth::AuthApi, email::EmailApi, health::HealthApi,
    invoices::InvoicesApi, jobs::JobsApi, lattices::LatticesApi, password_reset::PasswordResetApi,
    stripe::StripeApi, subscriptions::SubscriptionsApi, usage::UsageApi, users::UsersApi,
};
use crate::state::AppState;

/// Every operation of the API, in spec order.
pub type Apis = (
    HealthApi,
    AuthApi,
    PasswordResetApi,
    UsersApi,
    ApiKeysApi,
    AuditApi,
    LatticesApi,
    JobsApi,
    EmailApi,
    UsageApi,
    StripeApi,
    SubscriptionsApi,
    InvoicesApi,
);

/// The OpenAPI service (also used to print the spec).
pub fn openapi_service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            HealthApi,
            AuthApi,
            PasswordResetApi,
            UsersApi,
            ApiKeysApi,
            AuditApi,
            LatticesApi,
            JobsApi,
            EmailApi,
            UsageApi,
            StripeApi,
            SubscriptionsApi,
            InvoicesApi,
        ),
        "Catalytic API",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Multi-tenant lattice computing: define lattices, run computations on them as jobs, \
         poll or wait for results. Errors share one shape: {type, detail, status, request_id}.",
    )
    .server("/")
}

/// The spec as JSON (what `catalytic-api openapi` prints and `openapi/` holds).
pub fn spec_json() -> String {
    openapi_service().spec()
}

pub fn spec_yaml() -> String {
    openapi_service().spec_yaml()
}

#[handler]
fn metrics_endpoint(state: Data<&AppState>) -> String {
    state.metrics.render()
}

/// Builds the whole app around `state`.
pub fn build(state: AppState) -> impl Endpoint {
    let api = openapi_service();
    let docs = api.swagger_ui();
    let spec = api.spec_endpoint();
    let metrics_state = state.metrics.clone();
    let hsts = state.config.app_env == AppEnv::Production;
    let cors = cors(&state);
    let max_body = state.config.max_body_bytes;
    Route::new()
        .nest("/", api)
        .nest("/docs", docs)
        .at("/openapi.json", spec)
        .at("/openapi.yaml", make_sync(|_| spec_yaml()))
        .at("/metrics", get(metrics_endpoint))
        .with(cors)
        .data(state)
        .around(move |ep, req| {
            let metrics = metrics_state.clone();
            async move { middleware::around(&ep, req, &metrics, hsts, max_body).await }
        })
        .into_endpoint()
}

fn cors(state: &AppState) -> Cors {
    let mut cors = Cors::new()
        .allow_methods(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
        .allow_headers([
            "authorization",
            "content-type",
            "x-api-key",
            "x-request-id",
            "idempotency-key",
        ])
        .expose_headers([
            "x-request-id",
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
            "retry-after",
        ])
        .max_age(600);
    for origin in &state.config.cors_allowed_origins {
        if origin != "*" {
            cors = cors.allow_origin(origin.as_str());
        }
    }
    cors
}
