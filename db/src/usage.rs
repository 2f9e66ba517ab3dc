//! Usage records: hourly counts per tenant and metric, rolled up from Redis buckets
//! exactly once.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use crate::ids::TenantId;
use crate::schema::{usage_records, usage_rollup_buckets};
use crate::{Conn, DbError, DbResult};

/// Adds one minute bucket of a tenant: returns false (and adds nothing) when that bucket
/// was already rolled up. The marker and the counts commit together.
pub async fn apply_bucket(
    conn: &mut Conn,
    tenant: TenantId,
    minute: DateTime<Utc>,
    counts: &[(String, i64)],
) -> DbResult<bool> {
    let hour = minute
        .duration_trunc(TimeDelta::hours(1))
        .map_err(|e| DbError::Other(e.to_string()))?;
    conn.transaction::<_, DbError, _>(async |c| {
        let inserted = diesel::insert_into(usage_rollup_buckets::table)
            .values((
                usage_rollup_buckets::tenant_id.eq(tenant),
                usage_rollup_buckets::minute.eq(minute),
            ))
            .on_conflict_do_nothing()
            .execute(c)
            .await?;
        if inserted == 0 {
            return Ok(false);
        }
        for (metric, count) in counts {
            diesel::insert_into(usage_records::table)
                .values((
                    usage_records::tenant_id.eq(tenant),
                    usage_records::hour.eq(hour),
                    usage_records::metric.eq(metric),
                    usage_records::count.eq(count),
                ))
                .on_conflict((
                    usage_records::tenant_id,
                    usage_records::hour,
                    usage_records::metric,
                ))
                .do_update()
                .set((
                    usage_records::count.eq(usage_records::count + count),
                    usage_records::updated_at.eq(diesel::dsl::now),
                ))
                .execute(c)
                .await?;
        }
        Ok(true)
    })
    .await
}

/// A tenant's hourly records in `[from, to)`.
pub async fn records(
    conn: &mut Conn,
    tenant: TenantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> DbResult<Vec<(DateTime<Utc>, String, i64)>> {
    Ok(usage_records::table
        .filter(
            usage_records::tenant_id
                .eq(tenant)
                .and(usage_records::hour.ge(from))
                .and(usage_records::hour.lt(to)),
        )
        .order((usage_records::hour.asc(), usage_records::metric.asc()))
        .select((
            usage_records::hour,
            usage_records::metric,
            usage_records::count,
        ))
        .load(conn)
        .await?)
}

/// A tenant's total of `metric` since `from`.
pub async fn total_since(
    conn: &mut Conn,
    tenant: TenantId,
    metric: &str,
    from: DateTime<Utc>,
) -> DbResult<i64> {
    let rows: Vec<i64> = usage_records::table
        .filter(
            usage_records::tenant_id
                .eq(tenant)
                .and(usage_records::metric.eq(metric))
                .and(usage_records::hour.ge(from)),
        )
        .select(usage_records::count)
        .load(conn)
        .await?;
    Ok(rows.iter().sum())
}
