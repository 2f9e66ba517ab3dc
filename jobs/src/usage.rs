//! Usage metering: the Redis keys the API counts into (per tenant, per minute bucket, and
//! the calendar month's quota counter), the compute time the lattice worker adds, and the
//! rollup that moves finished minute buckets into PostgreSQL exactly once.
//!
//! A bucket is a hash `usage:bucket:<minute>` with fields `<tenant>|<metric>`; the sorted
//! set `usage:minutes` lists buckets not yet rolled up. The rollup takes buckets at least
//! one whole minute old (so a replica whose clock lags a little still writes into a
//! bucket not yet rolled), and for each tenant inserts a marker row
//! (`usage_rollup_buckets`) and adds the counts in one transaction: a bucket counted once
//! is never counted again, however many rollups run at once or are killed half way.

use std::collections::BTreeMap;

use catalytic_db::ids::TenantId;
use chrono::{DateTime, Datelike, TimeZone, Utc};

use crate::JobError;
use crate::context::HandlerContext;

/// Metric of every authenticated API call.
pub const API_CALLS: &str = "api_calls";
/// Lattice compute time, in milliseconds of wall time per job.
pub const COMPUTE_MS: &str = "lattice_compute_ms";

pub fn bucket_key(prefix: &str, minute: i64) -> String {
    format!("{prefix}usage:bucket:{minute}")
}

pub fn minutes_key(prefix: &str) -> String {
    format!("{prefix}usage:minutes")
}

/// The month's quota counter of a tenant (calendar month, UTC).
pub fn quota_key(prefix: &str, tenant: TenantId, at: DateTime<Utc>) -> String {
    format!(
        "{prefix}usage:quota:{tenant}:{:04}{:02}",
        at.year(),
        at.month()
    )
}

/// Unix seconds of the minute containing `at`.
pub fn minute_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(60) * 60
}

/// The start of the next calendar month (UTC): when a monthly quota resets.
pub fn next_month(at: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if at.month() == 12 {
        (at.year() + 1, 1)
    } else {
        (at.year(), at.month() + 1)
    };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .unwrap_or(at)
}

/// Adds `amount` of `metric` for `tenant` to the current minute bucket (one round trip).
pub async fn record(
    queue: &crate::queue::QueueClient,
    tenant: TenantId,
    metric: &str,
    amount: i64,
) -> redis::RedisResult<()> {
    let minute = minute_of(Utc::now());
    let prefix = queue.prefix();
    let mut conn = queue.connection();
    redis::pipe()
        .atomic()
        .cmd("HINCRBY")
        .arg(bucket_key(prefix, minute))
        .arg(format!("{tenant}|{metric}"))
        .arg(amount)
        .ignore()
        .cmd("EXPIRE")
        .arg(bucket_key(prefix, minute))
        .arg(7 * 24 * 3600)
        .ignore()
        .cmd("ZADD")
        .arg(minutes_key(prefix))
        .arg(minute)
        .arg(minute)
        .ignore()
        .query_async::<()>(&mut conn)
        .await
}

/// What one rollup did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RollupReport {
    pub buckets: usize,
    pub applied: usize,
    pub skipped: usize,
}

/// Rolls every finished bucket (at least one whole minute old, by Redis' clock) into
/// `usage_records`.
pub async fn rollup(ctx: &HandlerContext) -> Result<RollupReport, JobError> {
    let mut redis = ctx.queue.connection();
    let (secs, _): (i64, i64) = redis::cmd("TIME")
        .query_async(&mut redis)
        .await
        .map_err(|e| JobError::Retry(format!("redis: {e}")))?;
    rollup_before(ctx, secs.div_euclid(60) * 60 - 60).await
}

/// Rolls every bucket whose minute is before `cutoff` (unix seconds).
pub async fn rollup_before(ctx: &HandlerContext, cutoff: i64) -> Result<RollupReport, JobError> {
    let prefix = ctx.queue.prefix().to_owned();
    let mut redis = ctx.queue.connection();
    let retry = |e: redis::RedisError| JobError::Retry(format!("redis: {e}"));
    let minutes: Vec<i64> = redis::cmd("ZRANGEBYSCORE")
        .arg(minutes_key(&prefix))
        .arg("-inf")
        .arg(format!("({cutoff}"))
        .query_async(&mut redis)
        .await
        .map_err(retry)?;
    let mut report = RollupReport::default();
    for minute in minutes {
        let key = bucket_key(&prefix, minute);
        let fields: Vec<(String, i64)> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .map_err(retry)?;
        let mut per_tenant: BTreeMap<TenantId, Vec<(String, i64)>> = BTreeMap::new();
        for (field, count) in fields {
            let Some((tenant, metric)) = field.split_once('|') else {
                continue;
            };
            let Ok(tenant) = tenant.parse::<TenantId>() else {
                continue;
            };
            per_tenant
                .entry(tenant)
                .or_default()
                .push((metric.to_owned(), count));
        }
        let at = Utc
            .timestamp_opt(minute, 0)
            .single()
            .ok_or_else(|| JobError::Abort(format!("bad minute {minute}")))?;
        let mut conn = ctx.db.get().await?;
        for (tenant, counts) in per_tenant {
            match catalytic_db::usage::apply_bucket(&mut conn, tenant, at, &counts).await {
                Ok(true) => report.applied += 1,
                Ok(false) => report.skipped += 1,
                // A tenant deleted since: its counts have nowhere to go.
                Err(catalytic_db::DbError::Constraint(_)) => report.skipped += 1,
                Err(e) => return Err(e.into()),
            }
        }
        // Only after every tenant of the bucket is committed.
        redis::pipe()
            .atomic()
            .cmd("DEL")
            .arg(&key)
            .ignore()
            .cmd("ZREM")
            .arg(minutes_key(&prefix))
            .arg(minute)
            .ignore()
            .query_async::<()>(&mut redis)
            .await
            .map_err(retry)?;
        report.buckets += 1;
    }
    if report.buckets > 0 {
        tracing::info!(
            buckets = report.buckets,
            applied = report.applied,
            skipped = report.skipped,
            "usage rolled up"
        );
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_roll_over_at_the_start_of_the_next_utc_month() {
        let at = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(
            next_month(at),
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()
        );
        let at = Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap();
        assert_eq!(
            next_month(at),
            Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(
            minute_of(Utc.with_ymd_and_hms(2026, 1, 1, 0, 1, 59).unwrap()) % 60,
            0
        );
    }
}
