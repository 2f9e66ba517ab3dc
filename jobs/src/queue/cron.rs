//! Cron: one job per schedule tick across all replicas.
//!
//! Every worker runs the apalis-cron scheduler; on a tick each pushes the tick's job with
//! the dedupe key from [`cron_dedupe_key`] and [`CRON_TICK_TTL`]
//! (`PushOptions { dedupe_key, dedupe_ttl: Some(CRON_TICK_TTL), .. }`). The key names the
//! tick's scheduled time, which is the same on every replica, so the first push wins and
//! the others are duplicates, however many workers run and however late they are.

use std::time::Duration;

/// How long a tick's key is kept: far longer than any clock skew or scheduler lag.
pub const CRON_TICK_TTL: Duration = Duration::from_secs(3600);

/// The dedupe key of tick `tick_unix_secs` of schedule `name`.
pub fn cron_dedupe_key(name: &str, tick_unix_secs: u64) -> String {
    format!("cron:{name}:{tick_unix_secs}")
}
