//! Consumer configuration.

use std::{fmt, sync::Arc, time::Duration};

use futures::future::BoxFuture;

use super::{client::DeadEntry, identity::worker_identity, metrics::QueueMetrics};
use crate::RetryPolicy;

/// Called for every entry dead-lettered after it ran: by the reclaimer when its worker died
/// during the last attempt, and after a last attempt (or an abort) that ended in an error,
/// a timeout or a caught panic. The handler may or may not have recorded the failure
/// itself, so the hook must be idempotent (e.g. settle only a row still `running`).
/// Entries dead-lettered unread (undecodable) are not reported.
pub type DeadLetterHook = Arc<dyn Fn(DeadEntry) -> BoxFuture<'static, ()> + Send + Sync>;

/// How one consumer (one apalis worker) reads one queue.
#[derive(Clone)]
pub struct ConsumerConfig {
    /// The queue name (e.g. `lattice`).
    pub queue: String,
    /// Attempts and backoff of this queue.
    pub policy: RetryPolicy,
    /// Consumer name in the group; unique per process (see [`worker_identity`]).
    pub consumer: String,
    /// Most tasks run at once; also the most entries read at once. Use the same number as
    /// the worker's concurrency limit.
    pub concurrency: usize,
    /// An entry pending this long without a heartbeat is taken from its consumer and run
    /// again (the consumer is presumed dead). Default 10 s.
    pub claim_idle: Duration,
    /// How often a running job refreshes its claim. Default `claim_idle / 3`.
    pub heartbeat: Duration,
    /// How long one `XREADGROUP` blocks before it is reissued. Default 5 s.
    pub block: Duration,
    /// Longest sleep between two checks of the delayed set. Default 250 ms.
    pub promote_interval: Duration,
    /// How often to look for entries of dead consumers. Default `min(1 s, claim_idle / 4)`.
    pub reclaim_interval: Duration,
    /// Run the maintenance task (delayed promotion, reclaim, consumer pruning) alongside
    /// the consumer. Default on; every consumer may run it, the scripts are atomic.
    pub maintenance: bool,
    /// Most entries kept in the dead-letter stream (approximate trim). Default 100 000.
    pub dead_max_len: usize,
    /// Metrics to update.
    pub metrics: QueueMetrics,
    /// See [`DeadLetterHook`].
    pub on_dead: Option<DeadLetterHook>,
}

impl ConsumerConfig {
    /// Defaults for `queue` with `policy` and a fresh [`worker_identity`].
    pub fn new(queue: impl Into<String>, policy: RetryPolicy) -> Self {
        let claim_idle = Duration::from_secs(10);
        Self {
            queue: queue.into(),
            policy,
            consumer: worker_identity(),
            concurrency: 1,
            claim_idle,
            heartbeat: claim_idle / 3,
            block: Duration::from_secs(5),
            promote_interval: Duration::from_millis(250),
            reclaim_interval: Duration::from_secs(1).min(claim_idle / 4),
            maintenance: true,
            dead_max_len: 100_000,
            metrics: QueueMetrics::default(),
            on_dead: None,
        }
    }

    /// Sets the consumer name.
    pub fn with_consumer(mut self, consumer: impl Into<String>) -> Self {
        self.consumer = consumer.into();
        self
    }

    /// Sets the concurrency (at least 1).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Sets the claim idle time, and the heartbeat and reclaim intervals derived from it.
    pub fn with_claim_idle(mut self, claim_idle: Duration) -> Self {
        self.claim_idle = claim_idle;
        self.heartbeat = claim_idle / 3;
        self.reclaim_interval = Duration::from_secs(1).min(claim_idle / 4);
        self
    }

    /// Sets the metrics.
    pub fn with_metrics(mut self, metrics: QueueMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Sets the dead-letter hook.
    pub fn with_dead_letter_hook(mut self, hook: DeadLetterHook) -> Self {
        self.on_dead = Some(hook);
        self
    }
}

impl fmt::Debug for ConsumerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerConfig")
            .field("queue", &self.queue)
            .field("policy", &self.policy)
            .field("consumer", &self.consumer)
            .field("concurrency", &self.concurrency)
            .field("claim_idle", &self.claim_idle)
            .field("heartbeat", &self.heartbeat)
            .field("block", &self.block)
            .field("maintenance", &self.maintenance)
            .finish_non_exhaustive()
    }
}
