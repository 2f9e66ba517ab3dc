//! The backend's middleware: heartbeats while a job runs, then settles its entry
//! (acknowledge, retry per policy, or dead-letter).

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use apalis_core::{
    error::{AbortError, BoxDynError, RetryAfterError},
    layers::{Layer, Service},
    task::Task,
};
use futures::future::BoxFuture;
use redis::aio::ConnectionManager;
use tokio::sync::Notify;

use super::{
    client::DeadEntry, config::ConsumerConfig, entry::JobMeta, error::QueueError, keys::QueueKeys,
    maintenance::AbortOnDrop, ops,
};

/// Layer added by [`RedisStreamBackend`](super::RedisStreamBackend) around the worker's
/// service (outside the user's middleware, so it sees the final result of timeouts,
/// panics caught, and so on).
#[derive(Clone)]
pub struct AckLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AckLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckLayer")
            .field("queue", &self.shared.keys.queue())
            .finish_non_exhaustive()
    }
}

struct Shared {
    conn: ConnectionManager,
    keys: QueueKeys,
    config: ConsumerConfig,
    delayed_wake: Arc<Notify>,
}

impl AckLayer {
    pub(crate) fn new(
        conn: ConnectionManager,
        keys: QueueKeys,
        config: ConsumerConfig,
        delayed_wake: Arc<Notify>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                conn,
                keys,
                config,
                delayed_wake,
            }),
        }
    }
}

impl<S> Layer<S> for AckLayer {
    type Service = AckService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AckService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// See [`AckLayer`].
#[derive(Clone)]
pub struct AckService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for AckService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckService")
            .field("queue", &self.shared.keys.queue())
            .finish_non_exhaustive()
    }
}

impl<S, Args> Service<Task<Args>> for AckService<S>
where
    S: Service<Task<Args>>,
    S::Error: Into<BoxDynError> + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<S::Response, BoxDynError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<Args>) -> Self::Future {
        let meta = task.ctx().data().get::<JobMeta>().cloned();
        // Call the inner service now: it takes its concurrency permit and registers the
        // task with the worker synchronously.
        let fut = self.inner.call(task);
        let shared = self.shared.clone();
        Box::pin(async move {
            let Some(meta) = meta else {
                return fut.await.map_err(Into::into);
            };
            let started = Instant::now();
            let result = run_with_heartbeat(&shared, &meta, fut).await;
            let decision = shared.decide(&meta, &result);
            shared.settle(&meta, decision, started.elapsed()).await;
            result
        })
    }
}

/// Runs the job; once it has run for a heartbeat interval, refreshes its claim every
/// interval until it ends, so a long job is not taken for a dead worker's.
async fn run_with_heartbeat<F, R, E>(
    shared: &Arc<Shared>,
    meta: &JobMeta,
    fut: F,
) -> Result<R, BoxDynError>
where
    F: Future<Output = Result<R, E>>,
    E: Into<BoxDynError>,
{
    let interval = shared.config.heartbeat;
    let mut fut = std::pin::pin!(fut);
    let result = tokio::select! {
        biased;
        result = &mut fut => result,
        () = tokio::time::sleep(interval) => {
            // Aborted when the job ends, and also when its future is dropped (shutdown
            // timeout): a job that no longer runs must not keep its claim.
            let _beating = AbortOnDrop(
                tokio::spawn(heartbeats(shared.clone(), meta.stream_id.clone())).abort_handle(),
            );
            (&mut fut).await
        }
    };
    result.map_err(Into::into)
}

async fn heartbeats(shared: Arc<Shared>, stream_id: String) {
    let mut conn = shared.conn.clone();
    let keys = &shared.keys;
    loop {
        match ops::heartbeat(&mut conn, keys, &shared.config.consumer, &stream_id).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(
                    queue = keys.queue(),
                    stream_id,
                    "running job lost its claim (taken as abandoned); it will run again elsewhere"
                );
                return;
            }
            Err(e) => {
                tracing::warn!(queue = keys.queue(), stream_id, error = %e, "heartbeat failed")
            }
        }
        tokio::time::sleep(shared.config.heartbeat).await;
    }
}

/// What to do with a finished entry.
enum Settle {
    Ack,
    Retry {
        delay: Duration,
        error: String,
    },
    Dead {
        error: String,
        outcome: &'static str,
    },
}

impl Shared {
    fn decide<R>(&self, meta: &JobMeta, result: &Result<R, BoxDynError>) -> Settle {
        let Err(e) = result else {
            return Settle::Ack;
        };
        // apalis' wrappers prefix their text ("AbortError: ..."): keep the handler's own.
        let text = match (
            e.downcast_ref::<AbortError>(),
            e.downcast_ref::<RetryAfterError>(),
        ) {
            (Some(abort), _) => std::error::Error::source(abort).map(ToString::to_string),
            (_, Some(retry)) => std::error::Error::source(retry).map(ToString::to_string),
            _ => None,
        };
        let error = ops::clip_error(text.unwrap_or_else(|| e.to_string()));
        if meta.attempt >= self.config.policy.max_attempts {
            return Settle::Dead {
                error,
                outcome: "failed",
            };
        }
        if e.downcast_ref::<AbortError>().is_some() {
            return Settle::Dead {
                error,
                outcome: "aborted",
            };
        }
        let delay = e
            .downcast_ref::<RetryAfterError>()
            .map(RetryAfterError::get_duration)
            .unwrap_or_else(|| self.config.policy.delay(meta.attempt + 1));
        Settle::Retry { delay, error }
    }

    async fn settle(&self, meta: &JobMeta, decision: Settle, took: Duration) {
        let outcome = match &decision {
            Settle::Ack => "succeeded",
            Settle::Retry { .. } => "retried",
            Settle::Dead { outcome, .. } => outcome,
        };
        let queue = self.keys.queue();
        self.config
            .metrics
            .finished(queue, outcome, Some(took.as_secs_f64()));
        if let Settle::Dead { error, .. } = &decision {
            tracing::warn!(
                queue,
                job_id = meta.job_id,
                attempt = meta.attempt,
                error,
                "job dead-lettered"
            );
        }

        // Redis may be briefly away: try a few times; if it stays away the entry stays
        // pending and is reclaimed later (at least once).
        let mut pause = Duration::from_millis(50);
        for attempt in 1..=5 {
            match self.apply(meta, &decision).await {
                Ok(Applied::Settled) => {
                    if let Settle::Retry { .. } = decision {
                        self.delayed_wake.notify_one();
                    }
                    return;
                }
                Ok(Applied::Dead(entry)) => {
                    // The handler may not have recorded the failure itself (its future was
                    // dropped by a timeout, it panicked, or its own write failed): the hook
                    // settles whatever the job's owner keeps, as for a reclaimed entry.
                    if let Some(hook) = &self.config.on_dead {
                        hook(entry).await;
                    }
                    return;
                }
                Ok(Applied::NotOurs) => {
                    tracing::warn!(
                        queue,
                        job_id = meta.job_id,
                        "entry was reclaimed while running; not settled here"
                    );
                    return;
                }
                Err(e) if attempt < 5 => {
                    tracing::warn!(queue, job_id = meta.job_id, error = %e, "settling entry failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause *= 4;
                }
                Err(e) => {
                    tracing::error!(queue, job_id = meta.job_id, error = %e, "could not settle entry; it will be reclaimed");
                }
            }
        }
    }

    async fn apply(&self, meta: &JobMeta, decision: &Settle) -> Result<Applied, QueueError> {
        let mut conn = self.conn.clone();
        let ours = |settled: bool| {
            if settled {
                Applied::Settled
            } else {
                Applied::NotOurs
            }
        };
        Ok(match decision {
            Settle::Ack => ours(ops::ack(&mut conn, &self.keys, meta).await?),
            Settle::Retry { delay, error } => {
                ours(ops::retry(&mut conn, &self.keys, meta, error, *delay).await?)
            }
            Settle::Dead { error, .. } => {
                match ops::dead(&mut conn, &self.keys, meta, error, self.config.dead_max_len)
                    .await?
                {
                    Some(entry) => Applied::Dead(entry),
                    None => Applied::NotOurs,
                }
            }
        })
    }
}

/// What settling an entry did.
enum Applied {
    /// Acknowledged, or moved to the delayed set.
    Settled,
    /// Moved to the dead-letter stream.
    Dead(DeadEntry),
    /// The entry was no longer ours (reclaimed while running).
    NotOurs,
}
