//! The queue client: enqueue, statistics, dead letters, hand-back.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, TimeZone, Utc};
use redis::{
    AsyncConnectionConfig, Client, RedisResult,
    aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection},
    streams::StreamRangeReply,
};
use serde::{Serialize, de::DeserializeOwned};

use super::{
    entry::{F_ATTEMPTS, F_ERROR, F_ID, F_ORIGIN, F_PAYLOAD},
    error::QueueError,
    keys::{CONSUMER_GROUP, QueueKeys},
    scripts,
};

/// How long a dedupe key is kept at most when it is released at the end of the job: a
/// safety net for keys whose job vanished (e.g. Redis lost the stream but kept the key).
pub const DEDUPE_SAFETY_TTL: Duration = Duration::from_secs(24 * 3600);

/// Options of one push.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushOptions {
    /// At most one job with this key is queued, scheduled or running at a time: a push while
    /// one exists returns [`Pushed::Duplicate`]. Use the PostgreSQL job id for jobs that
    /// have a row, so the sweeper's re-push is a no-op while the job is still in Redis.
    pub dedupe_key: Option<String>,
    /// Keep the dedupe key this long even after the job ended (e.g. one cron tick runs once
    /// however many schedulers push it). `None`: the key is released when the job succeeds
    /// or is dead-lettered.
    pub dedupe_ttl: Option<Duration>,
    /// Run no earlier than this (scheduled job). `None` or a past time: run now.
    pub run_at: Option<DateTime<Utc>>,
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// Appended to the stream; workers may pick it up now.
    Enqueued {
        /// The job id (stable across retries).
        job_id: String,
        /// The stream entry id.
        stream_id: String,
    },
    /// Waiting in the delayed set until its `run_at`.
    Scheduled {
        /// The job id.
        job_id: String,
    },
    /// Not pushed: a job with the same dedupe key exists.
    Duplicate {
        /// The id of the existing job (empty if it ended just now).
        job_id: String,
    },
}

impl Pushed {
    /// The job id (the existing job's for a duplicate).
    pub fn job_id(&self) -> &str {
        match self {
            Self::Enqueued { job_id, .. }
            | Self::Scheduled { job_id }
            | Self::Duplicate { job_id } => job_id,
        }
    }

    /// Whether nothing was pushed because of the dedupe key.
    pub fn is_duplicate(&self) -> bool {
        matches!(self, Self::Duplicate { .. })
    }
}

/// A snapshot of one queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Entries waiting in the stream, not yet delivered.
    pub waiting: u64,
    /// Entries delivered and not acknowledged (running, or orphaned until reclaimed).
    pub pending: u64,
    /// Entries in the delayed set (retry backoff, scheduled).
    pub delayed: u64,
    /// Entries in the dead-letter stream.
    pub dead: u64,
}

/// An entry of the dead-letter stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadEntry {
    /// Its id in the dead-letter stream (what `dead retry` takes).
    pub id: String,
    /// The job id.
    pub job_id: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last error.
    pub error: String,
    /// When it was dead-lettered.
    pub failed_at: DateTime<Utc>,
    /// The raw payload (JSON).
    pub payload: Vec<u8>,
}

impl DeadEntry {
    /// Decodes the payload.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }

    pub(crate) fn from_fields(id: String, fields: &[Vec<u8>]) -> Self {
        let mut entry = Self {
            failed_at: stream_id_time(&id),
            id,
            job_id: String::new(),
            attempts: 0,
            error: String::new(),
            payload: Vec::new(),
        };
        for pair in fields.chunks_exact(2) {
            let text = || String::from_utf8_lossy(&pair[1]).into_owned();
            match pair[0].as_slice() {
                k if k == F_ID.as_bytes() => entry.job_id = text(),
                k if k == F_ATTEMPTS.as_bytes() => entry.attempts = text().parse().unwrap_or(0),
                k if k == F_ERROR.as_bytes() => entry.error = text(),
                k if k == F_PAYLOAD.as_bytes() => entry.payload.clone_from(&pair[1]),
                k if k == F_ORIGIN.as_bytes() => {}
                _ => {}
            }
        }
        entry
    }
}

/// The time encoded in a stream id (`<ms>-<seq>`).
fn stream_id_time(id: &str) -> DateTime<Utc> {
    id.split('-')
        .next()
        .and_then(|ms| ms.parse::<i64>().ok())
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .unwrap_or_default()
}

/// Handle to the queues in Redis. Cheap to clone: one multiplexed, self-reconnecting
/// connection ([`ConnectionManager`]) shared by all clones.
#[derive(Clone)]
pub struct QueueClient {
    conn: ConnectionManager,
    client: Client,
    prefix: Arc<str>,
}

impl std::fmt::Debug for QueueClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueClient")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl QueueClient {
    /// A client for `redis_url` whose keys start with `prefix` (e.g. `catalytic:`).
    ///
    /// Connects lazily: this fails only on a malformed URL; Redis being down shows up as
    /// errors of the calls, and the connection recovers by itself when Redis is back.
    pub fn new(redis_url: &str, prefix: &str) -> Result<Self, QueueError> {
        let client = Client::open(redis_url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(3)))
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(Self {
            conn,
            client,
            prefix: prefix.into(),
        })
    }

    /// Like [`QueueClient::new`], then waits for one successful `PING`.
    pub async fn connect(redis_url: &str, prefix: &str) -> Result<Self, QueueError> {
        let client = Self::new(redis_url, prefix)?;
        client.ping().await?;
        Ok(client)
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The keys of `queue`.
    pub fn keys(&self, queue: &str) -> QueueKeys {
        QueueKeys::new(&self.prefix, queue)
    }

    /// A clone of the shared connection, for callers' own commands.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Round-trip time of a `PING`.
    pub async fn ping(&self) -> Result<Duration, QueueError> {
        let started = Instant::now();
        let _: String = redis::cmd("PING")
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(started.elapsed())
    }

    /// Enqueues `job` (JSON) on `queue`: one round trip (`XADD`, or one script when a dedupe
    /// key or a run time is given).
    pub async fn push<T: Serialize + ?Sized>(
        &self,
        queue: impl AsRef<str>,
        job: &T,
        options: PushOptions,
    ) -> Result<Pushed, QueueError> {
        let payload = serde_json::to_vec(job)?;
        self.push_bytes(queue, &payload, options).await
    }

    /// Enqueues an already encoded payload; see [`QueueClient::push`].
    pub async fn push_bytes(
        &self,
        queue: impl AsRef<str>,
        payload: &[u8],
        options: PushOptions,
    ) -> Result<Pushed, QueueError> {
        let keys = self.keys(queue.as_ref());
        push_entry(&mut self.conn.clone(), &keys, payload, &options).await
    }

    /// Creates the consumer group (and the stream) of `queue` if missing.
    pub async fn ensure_group(&self, queue: &str) -> Result<(), QueueError> {
        ensure_group(&mut self.conn.clone(), &self.keys(queue)).await
    }

    /// Counts of `queue`.
    pub async fn stats(&self, queue: &str) -> Result<QueueStats, QueueError> {
        let keys = self.keys(queue);
        let (len, pending, delayed, dead): (u64, u64, u64, u64) = scripts::STATS
            .key(keys.stream())
            .key(keys.delayed())
            .key(keys.dead())
            .arg(CONSUMER_GROUP)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(QueueStats {
            waiting: len.saturating_sub(pending),
            pending,
            delayed,
            dead,
        })
    }

    /// The newest `limit` dead-letter entries of `queue`, newest first.
    pub async fn dead_list(&self, queue: &str, limit: usize) -> Result<Vec<DeadEntry>, QueueError> {
        let keys = self.keys(queue);
        let reply: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XREVRANGE")
            .arg(keys.dead())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(reply
            .into_iter()
            .map(|(id, fields)| DeadEntry::from_fields(id, &fields))
            .collect())
    }

    /// Puts dead entry `id` back on its queue with a fresh attempt count.
    /// Returns whether it existed.
    pub async fn dead_retry(&self, queue: &str, id: &str) -> Result<bool, QueueError> {
        let keys = self.keys(queue);
        let n: u64 = scripts::DEAD_RETRY
            .key(keys.stream())
            .key(keys.dead())
            .arg(id)
            .arg(1)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(n > 0)
    }

    /// Puts every dead entry of `queue` back with a fresh attempt count; returns how many.
    pub async fn dead_retry_all(&self, queue: &str) -> Result<u64, QueueError> {
        let keys = self.keys(queue);
        let mut total = 0;
        loop {
            let n: u64 = scripts::DEAD_RETRY
                .key(keys.stream())
                .key(keys.dead())
                .arg("")
                .arg(500)
                .invoke_async(&mut self.conn.clone())
                .await?;
            total += n;
            if n < 500 {
                return Ok(total);
            }
        }
    }

    /// Hands every entry pending for `consumer` back to `queue` (to the end of the stream,
    /// attempt count unchanged) and removes the consumer from the group. A worker calls it
    /// on shutdown for jobs it could not finish. Returns how many were handed back.
    pub async fn release_consumer(&self, queue: &str, consumer: &str) -> Result<u64, QueueError> {
        let keys = self.keys(queue);
        let mut total = 0;
        loop {
            let n: u64 = scripts::RELEASE
                .key(keys.stream())
                .arg(CONSUMER_GROUP)
                .arg(consumer)
                .arg(500)
                .invoke_async(&mut self.conn.clone())
                .await?;
            total += n;
            if n < 500 {
                return Ok(total);
            }
        }
    }

    /// A dedicated connection for blocking reads (a blocked command would stall every other
    /// command on the shared multiplexed connection).
    pub(crate) async fn blocking_connection(
        &self,
        block: Duration,
    ) -> RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(block + Duration::from_secs(3)));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    /// Reads the whole stream range `[start, end]`, e.g. to inspect entries in tests.
    pub async fn range(
        &self,
        queue: &str,
        start: &str,
        end: &str,
    ) -> Result<StreamRangeReply, QueueError> {
        let keys = self.keys(queue);
        Ok(redis::cmd("XRANGE")
            .arg(keys.stream())
            .arg(start)
            .arg(end)
            .query_async(&mut self.conn.clone())
            .await?)
    }
}

/// Runs the push (plain `XADD` when neither dedupe nor schedule is asked for).
pub(crate) async fn push_entry<C: redis::aio::ConnectionLike>(
    conn: &mut C,
    keys: &QueueKeys,
    payload: &[u8],
    options: &PushOptions,
) -> Result<Pushed, QueueError> {
    let job_id = uuid::Uuid::now_v7().to_string();
    if options.dedupe_key.is_none() && options.run_at.is_none() {
        let stream_id: String = redis::cmd("XADD")
            .arg(keys.stream())
            .arg("*")
            .arg(F_ID)
            .arg(&job_id)
            .arg(F_ATTEMPTS)
            .arg(0)
            .arg(F_PAYLOAD)
            .arg(payload)
            .query_async(conn)
            .await?;
        return Ok(Pushed::Enqueued { job_id, stream_id });
    }

    let run_at_ms = options.run_at.map(|t| t.timestamp_millis());
    let (dedupe_key, ttl, release) = match (&options.dedupe_key, options.dedupe_ttl) {
        (Some(key), Some(ttl)) => (keys.dedupe(key), ttl, "0"),
        (Some(key), None) => {
            let until_run = run_at_ms
                .map(|ms| ms - Utc::now().timestamp_millis())
                .and_then(|ms| u64::try_from(ms).ok())
                .map(Duration::from_millis)
                .unwrap_or_default();
            (keys.dedupe(key), DEDUPE_SAFETY_TTL + until_run, "1")
        }
        (None, _) => (keys.unused(), Duration::ZERO, "0"),
    };
    let (status, id): (String, String) = scripts::PUSH
        .key(keys.stream())
        .key(keys.delayed())
        .key(keys.delayed_data())
        .key(dedupe_key)
        .arg(&job_id)
        .arg(payload)
        .arg(options.dedupe_key.as_deref().unwrap_or(""))
        .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
        .arg(release)
        .arg(run_at_ms.map(|ms| ms.to_string()).unwrap_or_default())
        .invoke_async(conn)
        .await?;
    match status.as_str() {
        "enqueued" => Ok(Pushed::Enqueued {
            job_id,
            stream_id: id,
        }),
        "scheduled" => Ok(Pushed::Scheduled { job_id }),
        "duplicate" => Ok(Pushed::Duplicate { job_id: id }),
        other => Err(QueueError::Protocol(format!("push answered `{other}`"))),
    }
}

/// `XGROUP CREATE <stream> <group> 0 MKSTREAM`, tolerating an existing group.
pub(crate) async fn ensure_group<C: redis::aio::ConnectionLike>(
    conn: &mut C,
    keys: &QueueKeys,
) -> Result<(), QueueError> {
    let created: RedisResult<String> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(keys.stream())
        .arg(CONSUMER_GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(e.into()),
    }
}
