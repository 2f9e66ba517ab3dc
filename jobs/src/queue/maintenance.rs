//! The maintenance task of a consumer: promotes due delayed entries, reclaims entries of
//! dead consumers, prunes gone consumers. Every consumer may run it; the scripts are atomic.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use redis::aio::ConnectionManager;
use tokio::sync::Notify;

use super::{config::ConsumerConfig, error::QueueError, keys::QueueKeys, ops};

/// Consumers idle this long with nothing pending are removed from the group.
const PRUNE_IDLE_MIN: Duration = Duration::from_secs(600);
const PRUNE_EVERY: Duration = Duration::from_secs(60);
const PROMOTE_BATCH: usize = 500;

/// Aborts a spawned task when dropped.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(crate) struct Maintenance {
    pub conn: ConnectionManager,
    pub keys: QueueKeys,
    pub config: ConsumerConfig,
    pub wake: Arc<Notify>,
}

struct State {
    cursor: String,
    next_reclaim: Instant,
    next_prune: Instant,
}

impl Maintenance {
    pub(crate) fn spawn(self) -> AbortOnDrop {
        AbortOnDrop(tokio::spawn(self.run()).abort_handle())
    }

    async fn run(mut self) {
        let mut state = State {
            cursor: "0-0".to_owned(),
            next_reclaim: Instant::now(),
            next_prune: Instant::now() + PRUNE_EVERY,
        };
        let mut failures: u32 = 0;
        loop {
            let pause = match self.step(&mut state).await {
                Ok(pause) => {
                    failures = 0;
                    pause
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    if failures == 1 || failures.is_multiple_of(20) {
                        tracing::warn!(queue = self.keys.queue(), error = %e, failures, "queue maintenance failed; backing off");
                    }
                    Duration::from_millis(100 * 2u64.pow(failures.min(5)))
                }
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.wake.notified() => {}
            }
        }
    }

    /// One round; returns how long to sleep before the next.
    async fn step(&mut self, state: &mut State) -> Result<Duration, QueueError> {
        let (_, next_due) = ops::promote(&mut self.conn, &self.keys, PROMOTE_BATCH).await?;
        let now = Instant::now();
        if now >= state.next_reclaim {
            self.reclaim(state).await?;
            state.next_reclaim = now + self.config.reclaim_interval;
        }
        let cfg = &self.config;
        if now >= state.next_prune {
            let idle = PRUNE_IDLE_MIN.max(cfg.claim_idle * 10);
            let pruned = ops::prune(&mut self.conn.clone(), &self.keys, idle).await?;
            if pruned > 0 {
                tracing::info!(queue = self.keys.queue(), pruned, "removed gone consumers");
            }
            state.next_prune = now + PRUNE_EVERY;
        }
        let until_reclaim = state.next_reclaim.saturating_duration_since(Instant::now());
        Ok(next_due
            .unwrap_or(cfg.promote_interval)
            .min(cfg.promote_interval)
            .min(until_reclaim)
            .max(Duration::from_millis(1)))
    }

    async fn reclaim(&mut self, state: &mut State) -> Result<(), QueueError> {
        let cfg = &self.config;
        let mut conn = self.conn.clone();
        // A full scan of the pending entries, in pages.
        for _ in 0..20 {
            let done = ops::reclaim(
                &mut conn,
                &self.keys,
                &cfg.consumer,
                cfg.claim_idle,
                &state.cursor,
                cfg.policy.max_attempts,
                cfg.dead_max_len,
            )
            .await?;
            let queue = self.keys.queue();
            if done.requeued > 0 {
                tracing::warn!(
                    queue,
                    requeued = done.requeued,
                    "reclaimed entries of a dead consumer"
                );
            }
            cfg.metrics.count(queue, "reclaimed", done.requeued);
            cfg.metrics.count(queue, "lost", done.dead.len() as u64);
            for entry in done.dead {
                tracing::error!(
                    queue,
                    job_id = entry.job_id,
                    attempts = entry.attempts,
                    error = entry.error,
                    "job dead-lettered after its worker died"
                );
                if let Some(hook) = &cfg.on_dead {
                    hook(entry).await;
                }
            }
            state.cursor = done.cursor;
            if state.cursor == "0-0" {
                break;
            }
        }
        Ok(())
    }
}
