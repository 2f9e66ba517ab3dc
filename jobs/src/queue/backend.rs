//! The apalis backend: a consumer of one queue's stream.

use std::{
    collections::VecDeque,
    marker::PhantomData,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use apalis_core::{
    backend::{Backend, BackendConfig, finalize::Ephemeral, queue::Queue},
    task::{Task, builder::TaskBuilder, task_id::TaskId},
    worker::context::WorkerContext,
};
use chrono::{TimeZone, Utc};
use futures::{Sink, future::BoxFuture};
use redis::{aio::MultiplexedConnection, streams::StreamReadReply};
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::Notify;

use super::{
    ack::AckLayer,
    client::{PushOptions, QueueClient, ensure_group, push_entry},
    config::ConsumerConfig,
    entry::{JobMeta, RawEntry},
    error::QueueError,
    keys::{CONSUMER_GROUP, QueueKeys},
    maintenance::{AbortOnDrop, Maintenance},
    ops,
};

/// An apalis backend reading one queue through the consumer group.
///
/// - Blocks on `XREADGROUP` on a connection of its own, so an idle worker starts a new job
///   as soon as it is added (no polling tick), and reads at most as many entries as the
///   worker has free slots ([`ConsumerConfig::concurrency`]).
/// - Its middleware ([`AckLayer`]) heartbeats running jobs and settles each entry.
/// - Runs the maintenance task (delayed promotion, reclaim of dead consumers' entries).
/// - Redis errors never stop the worker: they are logged and retried with backoff.
/// - On close (graceful shutdown, after in-flight jobs finished) it hands back entries it
///   read but did not start, and leaves the group.
///
/// It is also a [`Sink`] of tasks, hence an apalis `TaskSink`: a task's idempotency key
/// becomes the dedupe key, its `run_at` the schedule.
pub struct RedisStreamBackend<Args> {
    client: QueueClient,
    keys: QueueKeys,
    config: ConsumerConfig,
    delayed_wake: Arc<Notify>,
    reader: Option<MultiplexedConnection>,
    reader_id: Arc<AtomicI64>,
    closing: Arc<AtomicBool>,
    fetch: Option<BoxFuture<'static, Fetched>>,
    failures: u32,
    buffer: VecDeque<RawEntry>,
    maintenance: Option<AbortOnDrop>,
    close: Option<BoxFuture<'static, ()>>,
    closed: bool,
    outbox: Vec<(Vec<u8>, PushOptions)>,
    flush: Option<BoxFuture<'static, Result<(), QueueError>>>,
    _args: PhantomData<fn() -> Args>,
}

impl<Args> std::fmt::Debug for RedisStreamBackend<Args> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStreamBackend")
            .field("config", &self.config)
            .field("buffered", &self.buffer.len())
            .finish_non_exhaustive()
    }
}

impl<Args> RedisStreamBackend<Args> {
    /// A consumer of `config.queue` through `client`.
    pub fn new(client: QueueClient, config: ConsumerConfig) -> Self {
        Self {
            keys: client.keys(&config.queue),
            client,
            config,
            delayed_wake: Arc::new(Notify::new()),
            reader: None,
            reader_id: Arc::new(AtomicI64::new(0)),
            closing: Arc::new(AtomicBool::new(false)),
            fetch: None,
            failures: 0,
            buffer: VecDeque::new(),
            maintenance: None,
            close: None,
            closed: false,
            outbox: Vec::new(),
            flush: None,
            _args: PhantomData,
        }
    }

    /// The consumer name.
    pub fn consumer(&self) -> &str {
        &self.config.consumer
    }

    fn start_maintenance(&mut self) {
        if self.config.maintenance && self.maintenance.is_none() && !self.closed {
            let task = Maintenance {
                conn: self.client.connection(),
                keys: self.keys.clone(),
                config: self.config.clone(),
                wake: self.delayed_wake.clone(),
            };
            self.maintenance = Some(task.spawn());
        }
    }

    fn start_fetch(&mut self, free: usize) {
        let delay = match self.failures {
            0 => Duration::ZERO,
            n => Duration::from_millis(50 * 2u64.pow(n.min(7))).min(Duration::from_secs(5)),
        };
        let read = Read {
            client: self.client.clone(),
            keys: self.keys.clone(),
            consumer: self.config.consumer.clone(),
            count: free,
            block: self.config.block,
            reader_id: self.reader_id.clone(),
            closing: self.closing.clone(),
        };
        self.fetch = Some(Box::pin(read.run(self.reader.take(), delay)));
    }

    /// Dead-letters an entry that cannot be run (malformed or undecodable), in the
    /// background.
    fn reject(&self, raw: &RawEntry, error: String) {
        let meta = self.meta(raw);
        let keys = self.keys.clone();
        let mut conn = self.client.connection();
        let max_len = self.config.dead_max_len;
        let metrics = self.config.metrics.clone();
        tracing::error!(
            queue = keys.queue(),
            stream_id = raw.stream_id,
            error,
            "undecodable entry dead-lettered"
        );
        tokio::spawn(async move {
            metrics.count(keys.queue(), "undecodable", 1);
            if let Err(e) = ops::dead(&mut conn, &keys, &meta, &error, max_len).await {
                tracing::warn!(queue = keys.queue(), error = %e, "could not dead-letter an undecodable entry; it will be reclaimed");
            }
        });
    }

    fn meta(&self, raw: &RawEntry) -> JobMeta {
        JobMeta {
            queue: self.config.queue.clone(),
            job_id: raw.job_id.clone(),
            stream_id: raw.stream_id.clone(),
            attempt: raw.attempts.saturating_add(1),
            max_attempts: self.config.policy.max_attempts,
            dedupe_key: raw.dedupe_key.clone(),
            last_error: raw.last_error.clone(),
        }
    }
}

impl<Args: DeserializeOwned> RedisStreamBackend<Args> {
    fn to_task(&self, raw: RawEntry) -> Option<Task<Args>> {
        let args: Args = match serde_json::from_slice(&raw.payload) {
            Ok(args) => args,
            Err(e) => {
                self.reject(&raw, format!("undecodable payload: {e}"));
                return None;
            }
        };
        if let Some(waited) = raw.waited_secs() {
            self.config.metrics.picked_up(&self.config.queue, waited);
        }
        let meta = self.meta(&raw);
        Some(
            TaskBuilder::new(args)
                .task_id(TaskId::String(raw.job_id))
                .attempt(raw.attempts as usize)
                .max_attempts(self.config.policy.max_attempts as usize)
                .queue(Queue::from(self.config.queue.as_str()))
                .lock_by(Some(self.config.consumer.clone()))
                .data(meta)
                .build(),
        )
    }
}

/// What one read returned, with the connection to reuse.
struct Fetched {
    reader: Option<MultiplexedConnection>,
    entries: Result<Vec<Result<RawEntry, String>>, QueueError>,
}

/// One blocking read.
struct Read {
    client: QueueClient,
    keys: QueueKeys,
    consumer: String,
    count: usize,
    block: Duration,
    reader_id: Arc<AtomicI64>,
    closing: Arc<AtomicBool>,
}

impl Read {
    async fn run(self, reader: Option<MultiplexedConnection>, delay: Duration) -> Fetched {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut conn = match reader {
            Some(conn) => conn,
            None => match self.connect().await {
                Ok(conn) => conn,
                Err(e) => {
                    return Fetched {
                        reader: None,
                        entries: Err(e),
                    };
                }
            },
        };
        if self.closing.load(Ordering::SeqCst) {
            return Fetched {
                reader: Some(conn),
                entries: Ok(Vec::new()),
            };
        }
        let reply: redis::RedisResult<Option<StreamReadReply>> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(CONSUMER_GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(self.count)
            .arg("BLOCK")
            .arg(u64::try_from(self.block.as_millis()).unwrap_or(u64::MAX))
            .arg("STREAMS")
            .arg(self.keys.stream())
            .arg(">")
            .query_async(&mut conn)
            .await;
        match reply {
            Ok(reply) => Fetched {
                reader: Some(conn),
                entries: Ok(parse(reply)),
            },
            Err(e) if e.code() == Some("NOGROUP") => {
                // Redis lost the group (restart without persistence, flush): recreate it.
                let created = ensure_group(&mut conn, &self.keys).await;
                Fetched {
                    reader: Some(conn),
                    entries: created.map(|()| Vec::new()),
                }
            }
            Err(e) => Fetched {
                reader: None,
                entries: Err(e.into()),
            },
        }
    }

    async fn connect(&self) -> Result<MultiplexedConnection, QueueError> {
        self.reader_id.store(0, Ordering::SeqCst);
        let mut conn = self.client.blocking_connection(self.block).await?;
        let id: i64 = redis::cmd("CLIENT")
            .arg("ID")
            .query_async(&mut conn)
            .await?;
        ensure_group(&mut conn, &self.keys).await?;
        self.reader_id.store(id, Ordering::SeqCst);
        Ok(conn)
    }
}

/// Entries of a reply; `Err` holds the stream id of an entry missing the queue's fields.
fn parse(reply: Option<StreamReadReply>) -> Vec<Result<RawEntry, String>> {
    reply
        .into_iter()
        .flat_map(|r| r.keys)
        .flat_map(|k| k.ids)
        .map(|id| RawEntry::from_stream_id(&id).ok_or(id.id))
        .collect()
}

impl<Args: DeserializeOwned + Send + 'static> Backend for RedisStreamBackend<Args> {
    type Task = Task<Args>;
    type Error = QueueError;

    fn poll_ready(
        &mut self,
        _cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        self.start_maintenance();
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        loop {
            if let Some(raw) = self.buffer.pop_front() {
                match self.to_task(raw) {
                    Some(task) => return Poll::Ready(Some(Ok(task))),
                    None => continue,
                }
            }
            let Some(fetch) = self.fetch.as_mut() else {
                let free = self.config.concurrency.saturating_sub(worker.task_count());
                self.start_fetch(free.max(1));
                continue;
            };
            let Poll::Ready(fetched) = fetch.as_mut().poll(cx) else {
                return Poll::Pending;
            };
            self.fetch = None;
            self.reader = fetched.reader;
            match fetched.entries {
                Ok(entries) => {
                    if self.failures > 0 {
                        tracing::info!(queue = self.keys.queue(), "reading the queue again");
                    }
                    self.failures = 0;
                    for entry in entries {
                        match entry {
                            Ok(raw) => self.buffer.push_back(raw),
                            Err(stream_id) => {
                                let raw = RawEntry {
                                    stream_id,
                                    job_id: String::new(),
                                    attempts: 0,
                                    dedupe_key: None,
                                    last_error: None,
                                    payload: Vec::new(),
                                };
                                self.reject(&raw, "malformed entry".to_owned());
                            }
                        }
                    }
                }
                Err(e) => {
                    self.failures = self.failures.saturating_add(1);
                    if self.failures == 1 || self.failures.is_multiple_of(20) {
                        tracing::error!(queue = self.keys.queue(), error = %e, failures = self.failures, "reading the queue failed; backing off");
                    }
                }
            }
        }
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        if self.closed {
            return Poll::Ready(Ok(()));
        }
        if self.close.is_none() {
            self.maintenance = None;
            self.closing.store(true, Ordering::SeqCst);
            self.buffer.clear(); // still pending for us: handed back below
            let fetch = self.fetch.take();
            let reader_id = self.reader_id.load(Ordering::SeqCst);
            let client = self.client.clone();
            let queue = self.config.queue.clone();
            let consumer = self.config.consumer.clone();
            self.close = Some(Box::pin(async move {
                if let Some(fetch) = fetch {
                    if reader_id != 0 {
                        let unblocked: redis::RedisResult<i64> = redis::cmd("CLIENT")
                            .arg("UNBLOCK")
                            .arg(reader_id)
                            .query_async(&mut client.connection())
                            .await;
                        if let Err(e) = unblocked {
                            tracing::debug!(error = %e, "could not unblock the reader");
                        }
                    }
                    let _ = tokio::time::timeout(Duration::from_secs(2), fetch).await;
                }
                match client.release_consumer(&queue, &consumer).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(queue, handed_back = n, "handed back unstarted entries")
                    }
                    Err(e) => {
                        tracing::warn!(queue, error = %e, "could not hand back entries; they will be reclaimed")
                    }
                }
            }));
        }
        let Some(close) = self.close.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        match close.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.close = None;
                self.closed = true;
                self.reader = None;
                Poll::Ready(Ok(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<Args> BackendConfig for RedisStreamBackend<Args> {
    type Args = Args;
    type Id = String;
    type Kind = Ephemeral;
    type Config = ConsumerConfig;
    type Layer = AckLayer;

    fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    fn middleware(&mut self, _worker: &mut WorkerContext) -> AckLayer {
        AckLayer::new(
            self.client.connection(),
            self.keys.clone(),
            self.config.clone(),
            self.delayed_wake.clone(),
        )
    }
}

impl<Args> RedisStreamBackend<Args> {
    fn poll_flush_outbox(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), QueueError>> {
        loop {
            if let Some(flush) = self.flush.as_mut() {
                let result = futures::ready!(flush.as_mut().poll(cx));
                self.flush = None;
                result?;
            }
            if self.outbox.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let batch = std::mem::take(&mut self.outbox);
            let keys = self.keys.clone();
            let conn = self.client.connection();
            self.flush = Some(Box::pin(async move {
                let pushes = batch.iter().map(|(payload, options)| {
                    let mut conn = conn.clone();
                    let keys = &keys;
                    async move { push_entry(&mut conn, keys, payload, options).await }
                });
                for pushed in futures::future::join_all(pushes).await {
                    pushed?;
                }
                Ok(())
            }));
        }
    }
}

impl<Args: Serialize> Sink<Task<Args>> for RedisStreamBackend<Args> {
    type Error = QueueError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().poll_flush_outbox(cx)
    }

    fn start_send(self: Pin<&mut Self>, task: Task<Args>) -> Result<(), Self::Error> {
        let this = self.get_mut();
        let payload = serde_json::to_vec(&task.args)?;
        let run_at = task
            .ctx()
            .run_at()
            .and_then(|secs| i64::try_from(secs).ok())
            .and_then(|secs| Utc.timestamp_opt(secs, 0).single());
        let options = PushOptions {
            dedupe_key: task.ctx().idempotency_key().map(str::to_owned),
            dedupe_ttl: None,
            run_at,
        };
        this.outbox.push((payload, options));
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().poll_flush_outbox(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().poll_flush_outbox(cx)
    }
}
