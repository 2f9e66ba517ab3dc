//! The operator commands behind `catalytic-api tenants ...` and `users ...`. Each writes
//! an audit entry.

use catalytic_db::AsyncConnection as _;
use catalytic_db::audit::NewAudit;
use catalytic_db::ids::TenantId;
use catalytic_db::tenants::Tenant;
use catalytic_db::{Conn, DbError, Pool, plans, tenants, users};

async fn connect(url: &str) -> anyhow::Result<catalytic_db::PooledConn> {
    let pool = Pool::new(url, 1)?;
    Ok(pool.get().await?)
}

async fn find_tenant(conn: &mut Conn, key: &str) -> anyhow::Result<Tenant> {
    let found = match key.parse::<TenantId>() {
        Ok(id) => tenants::get(conn, id).await,
        Err(_) => tenants::by_slug(conn, key).await,
    };
    match found {
        Ok(t) => Ok(t),
        Err(DbError::NotFound) => anyhow::bail!("no tenant with id or slug {key:?}"),
        Err(e) => Err(e.into()),
    }
}

fn operator_entry(tenant: TenantId, action: &'static str, details: serde_json::Value) -> NewAudit {
    NewAudit {
        tenant_id: Some(tenant),
        action,
        target_type: Some("tenant"),
        target_id: Some(tenant.to_string()),
        details: serde_json::json!({ "by": "operator-cli", "change": details }),
        ..Default::default()
    }
}

pub async fn tenants_list(url: &str) -> anyhow::Result<()> {
    let mut conn = connect(url).await?;
    println!(
        "{:<36}  {:<24}  {:<13}  {:<10}  name",
        "id", "slug", "plan", "status"
    );
    for row in tenants::list_with_plans(&mut conn).await? {
        println!(
            "{:<36}  {:<24}  {:<13}  {:<10}  {}",
            row.tenant.id, row.tenant.slug, row.plan_code, row.tenant.status, row.tenant.name
        );
    }
    Ok(())
}

pub async fn tenants_set_plan(url: &str, tenant: &str, plan_code: &str) -> anyhow::Result<()> {
    let mut conn = connect(url).await?;
    let t = find_tenant(&mut conn, tenant).await?;
    let plan = match plans::by_code(&mut conn, plan_code).await {
        Ok(p) => p,
        Err(DbError::NotFound) => {
            anyhow::bail!("no plan {plan_code:?} (free, starter, professional, enterprise)")
        }
        Err(e) => return Err(e.into()),
    };
    let (_, before) = plans::for_tenant(&mut conn, t.id).await?;
    conn.transaction::<_, DbError, _>(async |c| {
        plans::set_plan(c, t.id, plan.id).await?;
        catalytic_db::audit::record(
            c,
            operator_entry(
                t.id,
                "plan.changed",
                serde_json::json!({ "from": before.code, "to": plan.code }),
            ),
        )
        .await
    })
    .await?;
    println!("{} is now on {}", t.slug, plan.code);
    Ok(())
}

pub async fn tenants_suspend(url: &str, tenant: &str, suspend: bool) -> anyhow::Result<()> {
    let mut conn = connect(url).await?;
    let t = find_tenant(&mut conn, tenant).await?;
    conn.transaction::<_, DbError, _>(async |c| {
        tenants::set_suspended(c, t.id, suspend).await?;
        catalytic_db::audit::record(
            c,
            operator_entry(
                t.id,
                if suspend {
                    "tenant.suspended"
                } else {
                    "tenant.resumed"
                },
                serde_json::json!({}),
            ),
        )
        .await
    })
    .await?;
    println!(
        "{} is now {}",
        t.slug,
        if suspend { "suspended" } else { "active" }
    );
    Ok(())
}

pub async fn users_set_platform_admin(url: &str, email: &str, admin: bool) -> anyhow::Result<()> {
    let mut conn = connect(url).await?;
    let email = email.trim().to_lowercase();
    let user = conn
        .transaction::<_, DbError, _>(async |c| {
            let user = users::set_platform_admin(c, &email, admin).await?;
            catalytic_db::audit::record(
                c,
                NewAudit {
                    tenant_id: Some(user.tenant_id),
                    action: "user.platform_admin_changed",
                    target_type: Some("user"),
                    target_id: Some(user.id.to_string()),
                    details: serde_json::json!({ "by": "operator-cli", "is_platform_admin": admin }),
                    ..Default::default()
                },
            )
            .await?;
            Ok(user)
        })
        .await
        .map_err(|e| match e {
            DbError::NotFound => anyhow::anyhow!("no user with email {email:?}"),
            other => other.into(),
        })?;
    println!("{} platform administrator: {}", user.email, admin);
    Ok(())
}

/// `catalytic-api stripe-sync`: the paid plans' products and prices in Stripe.
pub async fn stripe_sync(url: &str) -> anyhow::Result<()> {
    use catalytic_jobs::billing::{Stripe, StripeSettings, catalog};
    let settings = StripeSettings::from_lookup(|k| std::env::var(k).ok())
        .ok_or_else(|| anyhow::anyhow!("STRIPE_SECRET_KEY is not set"))?;
    let stripe = Stripe::new(&settings)?;
    let pool = Pool::new(url, 2)?;
    for plan in catalog::sync(&stripe, &pool).await? {
        println!(
            "{:<13} product {}  month {}  year {}{}",
            plan.code,
            plan.product_id,
            plan.monthly_price_id,
            plan.yearly_price_id,
            if plan.changes.is_empty() {
                "  (unchanged)".to_owned()
            } else {
                format!("  ({})", plan.changes.join("; "))
            }
        );
    }
    Ok(())
}
