//! The lifecycle operations on entries: settle (ack, retry, dead-letter), heartbeat, promote,
//! reclaim, prune. Each is one round trip.

use std::time::Duration;

use redis::aio::ConnectionLike;

use super::{
    client::DeadEntry,
    entry::JobMeta,
    error::QueueError,
    keys::{CONSUMER_GROUP, QueueKeys},
    scripts,
};

/// Longest error text stored with an entry.
const MAX_ERROR_LEN: usize = 4_000;

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn dedupe_key(keys: &QueueKeys, meta: &JobMeta) -> String {
    meta.dedupe_key
        .as_deref()
        .map_or_else(|| keys.unused(), |k| keys.dedupe(k))
}

/// Truncates an error message to what is stored with an entry.
pub(crate) fn clip_error(mut error: String) -> String {
    if error.len() > MAX_ERROR_LEN {
        let mut end = MAX_ERROR_LEN;
        while !error.is_char_boundary(end) {
            end -= 1;
        }
        error.truncate(end);
        error.push('…');
    }
    error
}

/// Success: `XACK` + `XDEL`, releases the dedupe key. `false` if the entry was no longer
/// ours (it was reclaimed and will run again).
pub(crate) async fn ack<C: ConnectionLike>(
    conn: &mut C,
    keys: &QueueKeys,
    meta: &JobMeta,
) -> Result<bool, QueueError> {
    let n: u64 = scripts::ACK
        .key(keys.stream())
        .key(dedupe_key(keys, meta))
        .arg(CONSUMER_GROUP)
        .arg(&meta.stream_id)
        .arg(&meta.job_id)
        .invoke_async(conn)
        .await?;
    Ok(n > 0)
}

/// Failure with attempts left: the entry waits `delay` in the delayed set, then runs again.
pub(crate) async fn retry<C: ConnectionLike>(
    conn: &mut C,
    keys: &QueueKeys,
    meta: &JobMeta,
    error: &str,
    delay: Duration,
) -> Result<bool, QueueError> {
    let n: u64 = scripts::RETRY
        .key(keys.stream())
        .key(keys.delayed())
        .key(keys.delayed_data())
        .arg(CONSUMER_GROUP)
        .arg(&meta.stream_id)
        .arg(&meta.job_id)
        .arg(meta.attempt)
        .arg(error)
        .arg(millis(delay))
        .invoke_async(conn)
        .await?;
    Ok(n > 0)
}

/// Final failure: the entry moves to the dead-letter stream with its error. Returns the
/// dead entry, or `None` if the entry was no longer ours.
pub(crate) async fn dead<C: ConnectionLike>(
    conn: &mut C,
    keys: &QueueKeys,
    meta: &JobMeta,
    error: &str,
    dead_max_len: usize,
) -> Result<Option<DeadEntry>, QueueError> {
    let dead: Option<(String, Vec<Vec<u8>>)> = scripts::DEAD
        .key(keys.stream())
        .key(keys.dead())
        .key(dedupe_key(keys, meta))
        .arg(CONSUMER_GROUP)
        .arg(&meta.stream_id)
        .arg(&meta.job_id)
        .arg(meta.attempt)
        .arg(error)
        .arg(dead_max_len)
        .invoke_async(conn)
        .await?;
    Ok(dead.map(|(id, fields)| DeadEntry::from_fields(id, &fields)))
}

/// Refreshes the claim of a running entry (`XCLAIM ... JUSTID` resets its idle time without
/// counting a delivery). `false` if the entry is no longer ours.
pub(crate) async fn heartbeat<C: ConnectionLike>(
    conn: &mut C,
    keys: &QueueKeys,
    consumer: &str,
    stream_id: &str,
) -> Result<bool, QueueError> {
    let claimed: Vec<String> = redis::cmd("XCLAIM")
        .arg(keys.stream())
        .arg(CONSUMER_GROUP)
        .arg(consumer)
        .arg(0)
        .arg(stream_id)
        .arg("JUSTID")
        .query_async(conn)
        .await?;
    Ok(!claimed.is_empty())
}

/// Moves due delayed entries to the stream. Returns how many moved and the time until the
/// next one is due, if any.
pub(crate) async fn promote<C: ConnectionLike>(
    conn: &mut C,
    keys: &QueueKeys,
    limit: usize,
) -> Result<(u64, Option<Duration>), QueueError> {
    let (moved, wait_ms): (u64, i64) = scripts::PROMOTE
        .key(keys.stream())
        .key(keys.delayed())
        .key(keys.delayed_data())
        .arg(limit)
        .invoke_async(conn)
        .await?;
    let wait = u64::try_from(wait_ms).ok().map(Duration::from_millis);
    Ok((moved, wait))
}

/// What one reclaim pass did.
#[derive(Debug, Default)]
pub(crate) struct Reclaimed {
    pub cursor: String,
    pub requeued: u64,
    pub dead: Vec<DeadEntry>,
}

/// Takes entries idle for longer than `min_idle` from their (dead) consumers: each lost
/// attempt counts; the entry goes back to the stream, or to the dead letters when no
/// attempt is left.
pub(crate) async fn reclaim<C: ConnectionLike>(
    conn: &mut C,
    keys: &QueueKeys,
    consumer: &str,
    min_idle: Duration,
    cursor: &str,
    max_attempts: u32,
    dead_max_len: usize,
) -> Result<Reclaimed, QueueError> {
    type Reply = (String, u64, Vec<(String, Vec<Vec<u8>>)>);
    let (cursor, requeued, dead): Reply = scripts::RECLAIM
        .key(keys.stream())
        .key(keys.dead())
        .arg(CONSUMER_GROUP)
        .arg(consumer)
        .arg(millis(min_idle))
        .arg(cursor)
        .arg(100)
        .arg(max_attempts)
        .arg(dead_max_len)
        .invoke_async(conn)
        .await?;
    Ok(Reclaimed {
        cursor,
        requeued,
        dead: dead
            .into_iter()
            .map(|(id, fields)| DeadEntry::from_fields(id, &fields))
            .collect(),
    })
}

/// Deletes consumers that hold nothing and have not read for `idle` (gone processes).
pub(crate) async fn prune<C: ConnectionLike>(
    conn: &mut C,
    keys: &QueueKeys,
    idle: Duration,
) -> Result<u64, QueueError> {
    Ok(scripts::PRUNE
        .key(keys.stream())
        .arg(CONSUMER_GROUP)
        .arg(millis(idle))
        .invoke_async(conn)
        .await?)
}
