//! Migrations apply, revert all the way down, and apply again; plans are seeded.

use catalytic_tests::TestDb;

#[tokio::test(flavor = "multi_thread")]
async fn migrations_apply_roll_all_the_way_down_and_up_again() {
    let db = TestDb::create_empty().await;
    let applied = catalytic_db::migrate::run_pending(&db.url).await.unwrap();
    assert!(applied.len() >= 2, "{applied:?}");
    let status = catalytic_db::migrate::status(&db.url).await.unwrap();
    assert!(status.pending.is_empty());
    assert_eq!(status.applied.len(), status.known);

    let reverted = catalytic_db::migrate::revert_all(&db.url).await.unwrap();
    assert_eq!(reverted.len(), applied.len());
    let status = catalytic_db::migrate::status(&db.url).await.unwrap();
    assert!(status.applied.is_empty());
    assert_eq!(status.pending.len(), status.known);
    // Nothing of ours is left after the way down.
    let left = catalytic_db::provision::execute_raw(
        &db.url,
        "SELECT 1 FROM information_schema.tables WHERE table_schema = 'public' \
         AND table_name <> '__diesel_schema_migrations'",
    )
    .await
    .unwrap();
    assert_eq!(left, 0);

    let again = catalytic_db::migrate::run_pending(&db.url).await.unwrap();
    assert_eq!(again, applied);
    let pool = db.pool();
    let mut conn = pool.get().await.unwrap();
    assert_eq!(catalytic_db::plans::list(&mut conn).await.unwrap().len(), 4);
    drop(conn);
    drop(pool);
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_table_the_product_needs_exists_with_timestamptz_columns() {
    let db = TestDb::create().await;
    for table in [
        "tenants",
        "users",
        "subscription_plans",
        "tenant_subscriptions",
        "stripe_customers",
        "stripe_payment_methods",
        "invoices",
        "usage_records",
        "api_keys",
        "audit_logs",
        "notifications",
        "lattices",
        "jobs",
        "stripe_events",
        "email_outbox",
        "refresh_tokens",
        "password_reset_tokens",
    ] {
        let n = catalytic_db::provision::execute_raw(
            &db.url,
            &format!(
                "SELECT 1 FROM information_schema.tables WHERE table_schema='public' AND table_name='{table}'"
            ),
        )
        .await
        .unwrap();
        assert_eq!(n, 1, "table {table} missing");
    }
    let naive = catalytic_db::provision::execute_raw(
        &db.url,
        "SELECT 1 FROM information_schema.columns WHERE table_schema='public' \
         AND table_name <> '__diesel_schema_migrations' \
         AND data_type = 'timestamp without time zone'",
    )
    .await
    .unwrap();
    assert_eq!(naive, 0, "every timestamp is timestamptz");
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_four_plans_are_seeded_exactly_as_the_architecture_says() {
    let db = TestDb::create().await;
    let pool = db.pool();
    let mut conn = pool.get().await.unwrap();
    let plans = catalytic_db::plans::list(&mut conn).await.unwrap();
    let got: Vec<_> = plans
        .iter()
        .map(|p| {
            (
                p.code.as_str(),
                p.price_monthly_cents,
                p.price_yearly_cents,
                p.api_calls_per_month,
                p.max_lattices,
                p.max_users,
                p.storage_bytes,
                p.max_dimensions,
                p.max_size,
                p.max_vertices,
                p.rate_limit_per_minute,
            )
        })
        .collect();
    const GB: i64 = 1_000_000_000;
    assert_eq!(
        got,
        vec![
            (
                "free",
                0,
                0,
                Some(100),
                Some(1),
                Some(1),
                Some(GB),
                3,
                Some(10),
                Some(1_000),
                60
            ),
            (
                "starter",
                2900,
                29000,
                Some(1_000),
                Some(5),
                Some(3),
                Some(10 * GB),
                4,
                None,
                Some(100_000),
                300
            ),
            (
                "professional",
                9900,
                99000,
                Some(10_000),
                Some(25),
                Some(10),
                Some(100 * GB),
                10,
                None,
                Some(10_000_000),
                1200
            ),
            (
                "enterprise",
                49900,
                499000,
                None,
                None,
                None,
                None,
                10,
                None,
                Some(1_000_000_000),
                6000
            ),
        ]
    );
    drop(conn);
    drop(pool);
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn check_constraints_refuse_unknown_enum_values() {
    let db = TestDb::create().await;
    let err = catalytic_db::provision::execute_raw(
        &db.url,
        "INSERT INTO tenants (name, slug, status) VALUES ('x', 'x', 'deleted')",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, catalytic_db::DbError::Constraint(_)),
        "{err:?}"
    );
    db.drop_now().await;
}

/// Several `migrate` runs at once (the migrate unit and an API's `ExecStartPre`, or several
/// hosts) apply each migration exactly once: one run applies them all, the others wait for
/// its lock and find nothing pending.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_migrate_runs_apply_each_migration_once() {
    let db = TestDb::create_empty().await;
    let runs: Vec<_> = (0..3)
        .map(|_| {
            let url = db.url.clone();
            tokio::spawn(async move { catalytic_db::migrate::run_pending(&url).await })
        })
        .collect();
    let mut lists = Vec::new();
    for run in runs {
        lists.push(
            run.await
                .expect("task")
                .expect("every concurrent run succeeds"),
        );
    }
    lists.sort_by_key(Vec::len);
    let status = catalytic_db::migrate::status(&db.url).await.unwrap();
    assert!(status.pending.is_empty());
    assert_eq!(lists[2].len(), status.known, "{lists:?}");
    assert!(lists[0].is_empty() && lists[1].is_empty(), "{lists:?}");
    db.drop_now().await;
}
