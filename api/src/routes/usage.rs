//! Usage: hourly or daily series per metric, and this month's summary against the plan.

use std::collections::BTreeMap;

use catalytic_jobs::usage;
use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};

use crate::auth::Credentials;
use crate::auth::principal::authenticate;
use crate::error::{ApiError, ApiResult};
use crate::routes::ApiTags;
use crate::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum Granularity {
    Hour,
    Day,
}

#[derive(Debug, Object)]
pub struct Point {
    /// Start of the hour or day (UTC).
    pub at: DateTime<Utc>,
    pub count: i64,
}

#[derive(Debug, Object)]
pub struct Series {
    /// `api_calls`, `api_calls.<route group>`, `lattice_compute_ms`.
    pub metric: String,
    pub points: Vec<Point>,
    pub total: i64,
}

#[derive(Debug, Object)]
pub struct UsageSeries {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub granularity: Granularity,
    /// Counts are rolled up from live counters every minute: the last ~2 minutes may
    /// not be in the series yet.
    pub series: Vec<Series>,
}

#[derive(Debug, Object)]
pub struct Meter {
    pub used: i64,
    /// Absent when unlimited.
    pub limit: Option<i64>,
    /// used / limit × 100, absent when unlimited.
    pub percent: Option<f64>,
}

#[derive(Debug, Object)]
pub struct UsageSummary {
    pub plan_code: String,
    pub period_start: DateTime<Utc>,
    /// When the monthly quota resets.
    pub period_end: DateTime<Utc>,
    /// API calls this month that count against the quota (live).
    pub api_calls: Meter,
    pub lattices: Meter,
    pub users: Meter,
    /// Bytes of stored job inputs and results.
    pub storage_bytes: Meter,
    /// Lattice compute milliseconds this month (rolled up every minute; no limit).
    pub compute_ms: Meter,
}

pub fn meter(used: i64, limit: Option<i64>) -> Meter {
    Meter {
        used,
        limit,
        percent: limit.map(|l| {
            if l == 0 {
                100.0
            } else {
                (used as f64 * 10_000.0 / l as f64).round() / 100.0
            }
        }),
    }
}

/// A tenant's usage now against its limits: this month's API calls (live), lattices,
/// users and stored bytes.
#[derive(Debug, Object)]
pub struct CurrentUsage {
    pub api_calls: Meter,
    pub lattices: Meter,
    pub users: Meter,
    pub storage_bytes: Meter,
}

/// Measures [`CurrentUsage`] for `tenant` against `limits`.
pub async fn current(
    state: &AppState,
    tenant: catalytic_db::ids::TenantId,
    limits: &crate::tenancy::Limits,
) -> ApiResult<CurrentUsage> {
    let mut redis = state.redis.get().await?;
    let calls: Option<i64> = redis::cmd("GET")
        .arg(usage::quota_key(
            &state.config.redis_key_prefix,
            tenant,
            Utc::now(),
        ))
        .query_async(&mut redis)
        .await?;
    let mut conn = state.db.get().await?;
    let lattices = catalytic_db::lattices::count(&mut conn, tenant).await?;
    let users = catalytic_db::users::count(&mut conn, tenant).await?;
    let storage = catalytic_db::jobs::result_bytes(&mut conn, tenant).await?;
    Ok(CurrentUsage {
        api_calls: meter(calls.unwrap_or(0), limits.api_calls_per_month),
        lattices: meter(lattices, limits.max_lattices),
        users: meter(users, limits.max_users),
        storage_bytes: meter(storage, limits.storage_bytes),
    })
}

/// The start of the UTC hour (`step` 3600) or day (86 400) holding `t`, by whole-second
/// arithmetic: chrono's `duration_trunc` works in nanoseconds since 1970 and fails for
/// times before 1677 or after 2262, which are valid dates of a query.
fn floor_to(t: DateTime<Utc>, step: i64) -> DateTime<Utc> {
    let secs = t.timestamp();
    // Within chrono's range: the result is at most a day before a valid time.
    DateTime::from_timestamp(secs - secs.rem_euclid(step), 0).unwrap_or(t)
}

pub struct UsageApi;

#[OpenApi(tag = "ApiTags::Usage")]
impl UsageApi {
    /// Usage series per metric between `from` and `to` (default: the last 24 hours).
    #[oai(path = "/api/usage", method = "get", operation_id = "usage_series")]
    async fn series(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
        from: Query<Option<DateTime<Utc>>>,
        to: Query<Option<DateTime<Utc>>>,
        granularity: Query<Option<Granularity>>,
    ) -> ApiResult<Json<UsageSeries>> {
        let p = authenticate(&state, &auth, "usage_series").await?;
        let to = to.0.unwrap_or_else(Utc::now);
        let from = from.0.unwrap_or(to - Duration::hours(24));
        if from >= to {
            return Err(ApiError::invalid("from", "must be before to"));
        }
        if to - from > Duration::days(366) {
            return Err(ApiError::invalid(
                "from",
                "the range may span at most 366 days",
            ));
        }
        let granularity = granularity.0.unwrap_or(Granularity::Hour);
        let start = floor_to(from, 3600);
        let mut conn = state.db.get().await?;
        let rows = catalytic_db::usage::records(&mut conn, p.tenant_id, start, to).await?;
        let mut by_metric: BTreeMap<String, BTreeMap<DateTime<Utc>, i64>> = BTreeMap::new();
        for (hour, metric, count) in rows {
            let at = match granularity {
                Granularity::Hour => hour,
                Granularity::Day => floor_to(hour, 86_400),
            };
            *by_metric.entry(metric).or_default().entry(at).or_default() += count;
        }
        let series = by_metric
            .into_iter()
            .map(|(metric, points)| Series {
                total: points.values().sum(),
                metric,
                points: points
                    .into_iter()
                    .map(|(at, count)| Point { at, count })
                    .collect(),
            })
            .collect();
        Ok(Json(UsageSeries {
            from,
            to,
            granularity,
            series,
        }))
    }

    /// This month's usage against the plan's limits.
    #[oai(
        path = "/api/usage/summary",
        method = "get",
        operation_id = "usage_summary"
    )]
    async fn summary(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
    ) -> ApiResult<Json<UsageSummary>> {
        let p = authenticate(&state, &auth, "usage_summary").await?;
        let now = Utc::now();
        let period_start = Utc
            .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
            .single()
            .ok_or_else(|| ApiError::internal("month start"))?;
        let l = p.limits();
        let now_usage = current(&state, p.tenant_id, l).await?;
        let mut conn = state.db.get().await?;
        let compute = catalytic_db::usage::total_since(
            &mut conn,
            p.tenant_id,
            usage::COMPUTE_MS,
            period_start,
        )
        .await?;
        Ok(Json(UsageSummary {
            plan_code: l.plan_code.clone(),
            period_start,
            period_end: usage::next_month(now),
            api_calls: now_usage.api_calls,
            lattices: now_usage.lattices,
            users: now_usage.users,
            storage_bytes: now_usage.storage_bytes,
            compute_ms: meter(compute, None),
        }))
    }
}
