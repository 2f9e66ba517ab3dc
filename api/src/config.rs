//! Configuration: read from the environment once, at start, into one typed struct.
//! A missing or invalid variable stops start-up with one line naming it.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// A secret: never printed by `Debug` or `Display`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

/// Where the service runs; production tightens CORS and turns on HSTS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Test,
    Production,
}

impl FromStr for AppEnv {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "development" | "dev" => Ok(AppEnv::Development),
            "test" => Ok(AppEnv::Test),
            "production" | "prod" => Ok(AppEnv::Production),
            _ => Err("expected development, test or production".into()),
        }
    }
}

/// A configuration error: which variable, and what is wrong with it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("configuration error: {var} {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

/// Everything the API reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`: PostgreSQL connection URL.
    pub database_url: Secret,
    /// `DATABASE_POOL_SIZE`: connections in the pool (default 16).
    pub database_pool_size: usize,
    /// `REDIS_URL`: Redis connection URL (queues, rate limits, denylist, usage counters).
    pub redis_url: Secret,
    /// `REDIS_KEY_PREFIX`: prefix of every key the service writes (default empty);
    /// lets several deployments or test runs share one Redis.
    pub redis_key_prefix: String,
    /// `JWT_PRIVATE_KEY_PATH`: PEM (PKCS#8 or PKCS#1) RSA key that signs tokens.
    pub jwt_private_key_path: PathBuf,
    /// `JWT_PUBLIC_KEY_PATH`: one or more PEM public keys, comma-separated, that verify
    /// tokens (several during a key rotation).
    pub jwt_public_key_paths: Vec<PathBuf>,
    /// `JWT_ISSUER` (default `catalytic`).
    pub jwt_issuer: String,
    /// `JWT_AUDIENCE` (default `catalytic-api`).
    pub jwt_audience: String,
    /// `STRIPE_SECRET_KEY`: Stripe API key; billing endpoints answer 503 without it.
    pub stripe_secret_key: Option<Secret>,
    /// `STRIPE_PUBLISHABLE_KEY`: handed to browsers by `/api/stripe/config`.
    pub stripe_publishable_key: Option<String>,
    /// `STRIPE_WEBHOOK_SECRET`: verifies `Stripe-Signature`.
    pub stripe_webhook_secret: Option<Secret>,
    /// `STRIPE_API_BASE`: the Stripe API base URL (tests point it at the emulator).
    pub stripe_api_base: String,
    /// `BILLING_GRACE_SECS`: how long a subscription may stay past due before the workers
    /// suspend the tenant (default 604800, 7 days); the API reports when that will be.
    pub billing_grace_secs: u64,
    /// `EMAIL_FROM`: sender of every email (default `Catalytic <no-reply@localhost>`).
    pub email_from: String,
    /// `SMTP_HOST`, `SMTP_PORT`, `SMTP_TLS`, `SMTP_USERNAME`, `SMTP_PASSWORD`: the server the
    /// workers send through; the API only probes it for the email status endpoint.
    pub smtp: catalytic_jobs::email::SmtpSettings,
    /// `EMAIL_SEND_LIMIT_PER_HOUR`: emails a tenant may send through the API per clock
    /// hour (default 100).
    pub email_send_limit_per_hour: u32,
    /// `CORS_ALLOWED_ORIGINS`: comma-separated origins; `*` is refused in production.
    pub cors_allowed_origins: Vec<String>,
    /// `APP_ENV`: development, test or production (default development).
    pub app_env: AppEnv,
    /// `LOG_LEVEL`: a tracing filter such as `info` or `catalytic_api=debug,info`.
    pub log_level: String,
    /// `FRONTEND_URL`: base of links in emails and Stripe redirects.
    pub frontend_url: String,
    /// `HOST` (default 127.0.0.1).
    pub host: IpAddr,
    /// `PORT` (default 8000; 0 picks a free port).
    pub port: u16,
    /// `MAX_BODY_BYTES`: largest accepted request body (default 1 MiB).
    pub max_body_bytes: usize,
    /// `AUTH_RATE_LIMIT_PER_MINUTE`: per-IP limit on register, login, refresh and
    /// password reset (default 20).
    pub auth_rate_limit_per_minute: u32,
    /// `SHUTDOWN_TIMEOUT_SECS`: how long SIGTERM waits for in-flight requests (default 20).
    pub shutdown_timeout_secs: u64,
    /// `TENANT_CACHE_TTL_MS`: how long a replica caches a tenant's plan and status
    /// (default 2000); a change made elsewhere (CLI, another replica, a worker) takes
    /// effect within this time.
    pub tenant_cache_ttl_ms: u64,
    /// `USAGE_METERING`: count every authenticated request in Redis (default true; the
    /// monthly quota needs it). Off only for benchmarks.
    pub usage_metering: bool,
}

/// Reads variables through a lookup function, so tests can feed a map.
pub struct EnvReader<F: Fn(&str) -> Option<String>> {
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> EnvReader<F> {
    pub fn new(lookup: F) -> Self {
        Self { lookup }
    }

    fn raw(&self, var: &'static str) -> Option<String> {
        (self.lookup)(var).filter(|v| !v.trim().is_empty())
    }

    pub fn required(&self, var: &'static str) -> Result<String, ConfigError> {
        self.raw(var).ok_or(ConfigError {
            var,
            reason: "is not set".into(),
        })
    }

    pub fn optional(&self, var: &'static str) -> Option<String> {
        self.raw(var)
    }

    /// Like [`EnvReader::optional`], for a name known only at run time.
    pub fn optional_any(&self, var: &str) -> Option<String> {
        (self.lookup)(var).filter(|v| !v.trim().is_empty())
    }

    pub fn parsed<T>(&self, var: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.raw(var) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|e: T::Err| ConfigError {
                var,
                reason: format!("is invalid ({v:?}): {e}"),
            }),
        }
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = EnvReader::new(lookup);
        let database_url = env.required("DATABASE_URL")?;
        if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
            return Err(ConfigError {
                var: "DATABASE_URL",
                reason: "must start with postgres:// or postgresql://".into(),
            });
        }
        let redis_url = env.required("REDIS_URL")?;
        if !(redis_url.starts_with("redis://") || redis_url.starts_with("rediss://")) {
            return Err(ConfigError {
                var: "REDIS_URL",
                reason: "must start with redis:// or rediss://".into(),
            });
        }
        let app_env: AppEnv = env.parsed("APP_ENV", AppEnv::Development)?;
        let cors_allowed_origins: Vec<String> = env
            .optional("CORS_ALLOWED_ORIGINS")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().trim_end_matches('/').to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if app_env == AppEnv::Production && cors_allowed_origins.iter().any(|o| o == "*") {
            return Err(ConfigError {
                var: "CORS_ALLOWED_ORIGINS",
                reason: "may not be * in production; list the allowed origins".into(),
            });
        }
        let public_keys = env.required("JWT_PUBLIC_KEY_PATH")?;
        let jwt_public_key_paths: Vec<PathBuf> = public_keys
            .split(',')
            .map(|s| PathBuf::from(s.trim()))
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        let frontend_url = env
            .optional("FRONTEND_URL")
            .unwrap_or_else(|| "http://127.0.0.1:8000".into());
        if !(frontend_url.starts_with("http://") || frontend_url.starts_with("https://")) {
            return Err(ConfigError {
                var: "FRONTEND_URL",
                reason: "must be an http:// or https:// URL".into(),
            });
        }
        Ok(Config {
            database_url: Secret::new(database_url),
            database_pool_size: env.parsed("DATABASE_POOL_SIZE", 16)?,
            redis_url: Secret::new(redis_url),
            redis_key_prefix: env.optional("REDIS_KEY_PREFIX").unwrap_or_default(),
            jwt_private_key_path: PathBuf::from(env.required("JWT_PRIVATE_KEY_PATH")?),
            jwt_public_key_paths,
            jwt_issuer: env
                .optional("JWT_ISSUER")
                .unwrap_or_else(|| "catalytic".into()),
            jwt_audience: env
                .optional("JWT_AUDIENCE")
                .unwrap_or_else(|| "catalytic-api".into()),
            stripe_secret_key: env.optional("STRIPE_SECRET_KEY").map(Secret::new),
            stripe_publishable_key: env.optional("STRIPE_PUBLISHABLE_KEY"),
            stripe_webhook_secret: env.optional("STRIPE_WEBHOOK_SECRET").map(Secret::new),
            stripe_api_base: env
                .optional("STRIPE_API_BASE")
                .unwrap_or_else(|| "https://api.stripe.com".into()),
            billing_grace_secs: env.parsed("BILLING_GRACE_SECS", 7 * 24 * 3600)?,
            email_from: env
                .optional("EMAIL_FROM")
                .unwrap_or_else(|| "Catalytic <no-reply@localhost>".into()),
            smtp: catalytic_jobs::email::SmtpSettings::from_lookup(&|k: &str| env.optional_any(k))
                .map_err(|e| ConfigError {
                    var: e.var,
                    reason: match e.value {
                        Some(v) => format!("is invalid ({v:?}): {}", e.reason),
                        None => e.reason,
                    },
                })?,
            email_send_limit_per_hour: env.parsed("EMAIL_SEND_LIMIT_PER_HOUR", 100)?,
            cors_allowed_origins,
            app_env,
            log_level: env.optional("LOG_LEVEL").unwrap_or_else(|| "info".into()),
            frontend_url: frontend_url.trim_end_matches('/').to_owned(),
            host: env.parsed("HOST", IpAddr::from([127, 0, 0, 1]))?,
            port: env.parsed("PORT", 8000)?,
            max_body_bytes: env.parsed("MAX_BODY_BYTES", 1024 * 1024)?,
            auth_rate_limit_per_minute: env.parsed("AUTH_RATE_LIMIT_PER_MINUTE", 20)?,
            shutdown_timeout_secs: env.parsed("SHUTDOWN_TIMEOUT_SECS", 20)?,
            tenant_cache_ttl_ms: env.parsed("TENANT_CACHE_TTL_MS", 2000)?,
            usage_metering: env.parsed("USAGE_METERING", true)?,
        })
    }

    /// The domain part of Message-IDs, taken from EMAIL_FROM.
    pub fn message_id_domain(&self) -> String {
        self.email_from
            .rsplit('@')
            .next()
            .map(|d| d.trim_end_matches('>').trim().to_owned())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "catalytic.local".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn base() -> HashMap<&'static str, String> {
        HashMap::from([
            ("DATABASE_URL", "postgres://u:p@127.0.0.1/db".to_owned()),
            ("REDIS_URL", "redis://127.0.0.1:6379".to_owned()),
            ("JWT_PRIVATE_KEY_PATH", "/k/priv.pem".to_owned()),
            ("JWT_PUBLIC_KEY_PATH", "/k/pub.pem, /k/old.pem".to_owned()),
        ])
    }

    fn load(map: &HashMap<&'static str, String>) -> Result<Config, ConfigError> {
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_apply_when_only_required_variables_are_set() {
        let c = load(&base()).expect("valid");
        assert_eq!(c.port, 8000);
        assert_eq!(c.host.to_string(), "127.0.0.1");
        assert_eq!(c.jwt_public_key_paths.len(), 2);
        assert_eq!(c.app_env, AppEnv::Development);
    }

    #[test]
    fn a_missing_variable_is_named() {
        let mut m = base();
        m.remove("REDIS_URL");
        let e = load(&m).unwrap_err();
        assert_eq!(e.var, "REDIS_URL");
        assert_eq!(e.to_string(), "configuration error: REDIS_URL is not set");
    }

    #[test]
    fn an_invalid_variable_is_named() {
        let mut m = base();
        m.insert("PORT", "eighty".into());
        assert_eq!(load(&m).unwrap_err().var, "PORT");
        let mut m = base();
        m.insert("APP_ENV", "staging".into());
        assert_eq!(load(&m).unwrap_err().var, "APP_ENV");
    }

    #[test]
    fn wildcard_cors_is_refused_in_production() {
        let mut m = base();
        m.insert("APP_ENV", "production".into());
        m.insert("CORS_ALLOWED_ORIGINS", "*".into());
        assert_eq!(load(&m).unwrap_err().var, "CORS_ALLOWED_ORIGINS");
    }

    #[test]
    fn secrets_do_not_print() {
        let c = load(&base()).expect("valid");
        assert!(!format!("{c:?}").contains("u:p@"));
    }
}
