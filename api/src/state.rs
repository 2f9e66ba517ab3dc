//! The shared state of every handler.

use std::sync::Arc;
use std::time::Duration;

use catalytic_db::Pool;

use crate::auth::jwt::JwtKeys;
use crate::config::Config;
use crate::http::metrics::Metrics;
use crate::tenancy::TenantCache;

/// Cheap to clone; everything inside is shared.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Pool,
    pub redis: deadpool_redis::Pool,
    pub keys: Arc<JwtKeys>,
    /// Access tokens whose signature was already verified.
    pub verified_tokens: Arc<crate::auth::token_cache::TokenCache>,
    pub metrics: Metrics,
    pub tenants: TenantCache,
    pub queue: catalytic_jobs::queue::QueueClient,
    /// Opens dedicated connections for pub/sub (long-polling job waits).
    pub redis_client: redis::Client,
    /// A hash to verify against when a login names an unknown email, so both failures
    /// take the same time.
    pub dummy_hash: Arc<String>,
    /// The Stripe client, when `STRIPE_SECRET_KEY` is set.
    pub stripe: Option<catalytic_jobs::billing::Stripe>,
}

impl AppState {
    /// Connects pools (lazily: nothing fails here while a dependency is down) and loads keys.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let keys = JwtKeys::load(
            &config.jwt_private_key_path,
            &config.jwt_public_key_paths,
            &config.jwt_issuer,
            &config.jwt_audience,
        )?;
        let db = Pool::new(config.database_url.expose(), config.database_pool_size)?;
        let redis = redis_pool(config.redis_url.expose())?;
        let dummy_hash = crate::auth::password::hash("dummy-Passw0rd-for-timing".into())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let queue = catalytic_jobs::queue::QueueClient::new(
            config.redis_url.expose(),
            &config.redis_key_prefix,
        )?;
        let redis_client = redis::Client::open(config.redis_url.expose())?;
        let tenants = TenantCache::new(Duration::from_millis(config.tenant_cache_ttl_ms));
        let stripe = match &config.stripe_secret_key {
            Some(key) => Some(catalytic_jobs::billing::Stripe::new(
                &catalytic_jobs::billing::StripeSettings {
                    secret_key: key.expose().to_owned(),
                    api_base: config.stripe_api_base.clone(),
                },
            )?),
            None => None,
        };
        Ok(Self {
            config: Arc::new(config),
            db,
            redis,
            keys: Arc::new(keys),
            verified_tokens: Arc::default(),
            metrics: Metrics::new(),
            tenants,
            queue,
            redis_client,
            dummy_hash: Arc::new(dummy_hash),
            stripe,
        })
    }

    /// A key in the service's Redis namespace.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}{}", self.config.redis_key_prefix, suffix)
    }
}

fn redis_pool(url: &str) -> anyhow::Result<deadpool_redis::Pool> {
    let mut cfg = deadpool_redis::Config::from_url(url);
    let mut pool_cfg = deadpool_redis::PoolConfig::new(32);
    pool_cfg.timeouts.wait = Some(Duration::from_secs(2));
    pool_cfg.timeouts.create = Some(Duration::from_secs(2));
    pool_cfg.timeouts.recycle = Some(Duration::from_secs(2));
    cfg.pool = Some(pool_cfg);
    Ok(cfg.create_pool(Some(deadpool_redis::Runtime::Tokio1))?)
}
