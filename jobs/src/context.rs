//! What handlers share: the database pool, the queue client, Redis for notifications,
//! and the settings of the services they talk to.

use catalytic_db::Pool;

use crate::queue::QueueClient;

/// Settings a worker reads from its environment (see `catalytic-worker --help`).
#[derive(Debug, Clone, Default)]
pub struct WorkerConfig {
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `DATABASE_POOL_SIZE` (default 8).
    pub database_pool_size: usize,
    /// `REDIS_URL`.
    pub redis_url: String,
    /// `REDIS_KEY_PREFIX` (default empty): must match the API's.
    pub redis_key_prefix: String,
    /// `SMTP_*`, `EMAIL_FROM`, `FRONTEND_URL` and the email retry policy.
    pub email: crate::email::EmailSettings,
    /// `STRIPE_SECRET_KEY`, `STRIPE_API_BASE`: webhook reconciliation needs them.
    pub stripe: Option<crate::billing::StripeSettings>,
    /// `BILLING_GRACE_SECS`: how long a subscription may stay past due before the tenant
    /// is suspended (default 7 days).
    pub billing_grace: std::time::Duration,
}

impl WorkerConfig {
    /// The domain of the Message-IDs of emails the worker queues (from `EMAIL_FROM`).
    pub fn message_domain(&self) -> String {
        self.email.from.email.domain().to_owned()
    }
}

/// Shared by every handler invocation of one worker process.
#[derive(Clone)]
pub struct HandlerContext {
    pub db: Pool,
    pub queue: QueueClient,
    pub config: WorkerConfig,
    /// The SMTP client (a small connection pool); connects on first use.
    pub mailer: crate::email::Mailer,
    /// The Stripe client, when a key is configured.
    pub stripe: Option<crate::billing::Stripe>,
}

impl HandlerContext {
    /// Builds the pools; connections open lazily, so a dependency down at start is
    /// retried per job rather than fatal.
    pub fn connect(config: &WorkerConfig) -> anyhow::Result<Self> {
        let db = Pool::new(&config.database_url, config.database_pool_size)?;
        let queue = QueueClient::new(&config.redis_url, &config.redis_key_prefix)?;
        let mailer = crate::email::Mailer::new(&config.email.smtp, 4)?;
        let stripe = config
            .stripe
            .as_ref()
            .map(crate::billing::Stripe::new)
            .transpose()?;
        Ok(Self {
            db,
            queue,
            config: config.clone(),
            mailer,
            stripe,
        })
    }
}
