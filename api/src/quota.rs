//! Monthly quota: what the gate counts, and the one-time notifications at 80% and 100%.

use catalytic_db::AsyncConnection as _;
use catalytic_db::ids::TenantId;
use chrono::{Datelike, Utc};
use std::time::Duration;

use crate::emails;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Route groups that never count against the quota, so a tenant at its limit can still
/// sign in, see its usage and upgrade.
pub const EXEMPT_GROUPS: &[&str] = &["auth", "usage", "subscriptions", "stripe", "invoices"];

/// The metering group of a route (`/api/lattices/{id}/jobs` → `lattices`).
pub fn group_of(path: &str) -> String {
    path.trim_start_matches('/')
        .split('/')
        .nth(1)
        .unwrap_or("other")
        .replace('-', "_")
}

/// How long a request that claimed a notice may take to write it before another may try.
const NOTICE_CLAIM: Duration = Duration::from_secs(60);
/// How long a written notice's guard is kept: past the end of any month.
const NOTICE_KEPT: Duration = Duration::from_secs(40 * 24 * 3600);

/// The Redis guard of one notice (`pct` of this `month`'s quota of `tenant`).
pub fn notice_guard_key(prefix: &str, tenant: TenantId, month: &str, pct: u8) -> String {
    format!("{prefix}quota-notice:{tenant}:{month}:{pct}")
}

/// Called with the month's count after an admitted request, and after one refused for the
/// quota (so a 100% notice lost with the one call admitted at the limit is still written);
/// at or above 80% and 100% of the limit it writes a notification and queues one email to
/// the owners — once a month, however many requests cross the line. Any request at or above a threshold may write the
/// notice, so one lost with its request (a failed transaction) is written by the next; a
/// Redis guard (`SET NX`) lets only one request at a time try, and none once it is written,
/// so PostgreSQL is not asked on every request above the line (the notification's monthly
/// dedupe key still keeps it single).
pub async fn after_count(
    state: &AppState,
    tenant: TenantId,
    used: i64,
    limit: i64,
) -> ApiResult<()> {
    if limit <= 0 {
        return Ok(());
    }
    let eighty = (limit * 8 + 9) / 10;
    let pct: u8 = if used >= limit {
        100
    } else if used >= eighty {
        80
    } else {
        return Ok(());
    };
    let now = Utc::now();
    let month = format!("{:04}-{:02}", now.year(), now.month());
    let guard = notice_guard_key(&state.config.redis_key_prefix, tenant, &month, pct);
    let mut redis = state.redis.get().await?;
    let claimed: Option<String> = redis::cmd("SET")
        .arg(&guard)
        .arg("writing")
        .arg("NX")
        .arg("EX")
        .arg(NOTICE_CLAIM.as_secs())
        .query_async(&mut redis)
        .await?;
    if claimed.is_none() {
        return Ok(()); // written already, or being written by another request
    }
    match write_notice(state, tenant, used, limit, pct, &month, now).await {
        Ok(()) => {
            let _: redis::RedisResult<()> = redis::cmd("SET")
                .arg(&guard)
                .arg("written")
                .arg("EX")
                .arg(NOTICE_KEPT.as_secs())
                .query_async(&mut redis)
                .await;
            Ok(())
        }
        Err(e) => {
            // Let the next request above the line try again.
            let _: redis::RedisResult<()> =
                redis::cmd("DEL").arg(&guard).query_async(&mut redis).await;
            Err(e)
        }
    }
}

/// Writes the notice `pct` of `month` (once: its dedupe key) and queues its emails.
async fn write_notice(
    state: &AppState,
    tenant: TenantId,
    used: i64,
    limit: i64,
    pct: u8,
    month: &str,
    now: chrono::DateTime<Utc>,
) -> ApiResult<()> {
    let reset_at = catalytic_jobs::usage::next_month(now);
    let st = state.clone();
    let mut conn = state.db.get().await?;
    let emails = conn
        .transaction::<_, ApiError, _>(async |c| {
            let inserted = catalytic_db::notifications::insert_once(
                c,
                tenant,
                "quota.threshold",
                &format!("{pct}% of this month's API calls used"),
                &format!("{used} of {limit} API calls used; the quota resets at {}.", reset_at.to_rfc3339()),
                serde_json::json!({ "percent": pct, "used": used, "limit": limit, "reset_at": reset_at }),
                &format!("quota.{pct}:{month}"),
            )
            .await?;
            let mut ids = Vec::new();
            if inserted {
                for owner in catalytic_db::users::owners(c, tenant).await? {
                    ids.push(
                        emails::queue(
                            &st,
                            c,
                            Some(tenant),
                            &owner.email,
                            "quota_warning",
                            serde_json::json!({
                                "first_name": owner.first_name,
                                "percent": pct,
                                "used": used,
                                "limit": limit,
                                "reset_at": reset_at.to_rfc3339(),
                                "upgrade_url": format!("{}/billing", st.config.frontend_url),
                            }),
                        )
                        .await?,
                    );
                }
            }
            Ok(ids)
        })
        .await?;
    emails::push_after_commit(state, &emails).await;
    Ok(())
}
