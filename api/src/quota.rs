//! Monthly quota: what the gate counts, and the one-time notifications at 80% and 100%.

use catalytic_db::AsyncConnection as _;
use catalytic_db::ids::TenantId;
use chrono::{Datelike, Utc};

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

/// Called with the month's count after an admitted request; at exactly 80% and 100% of
/// the limit it writes a notification and queues one email to the owners — once a
/// month, however many requests cross the line.
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
    let pct = if used == limit {
        100
    } else if used == eighty {
        80
    } else {
        return Ok(());
    };
    let now = Utc::now();
    let month = format!("{:04}-{:02}", now.year(), now.month());
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
