//! Usage metering, quotas and rollups against the real stack.

use std::time::Duration;

use catalytic_tests::{TestApp, eventually};
use chrono::Utc;
use serde_json::{Value, json};

/// Every bucket, however fresh.
const ALL: i64 = i64::MAX;

async fn series_total(app: &TestApp, token: &str, metric: &str) -> i64 {
    let b: Value = app
        .get("/api/usage?granularity=day", token)
        .await
        .json()
        .await
        .unwrap();
    b["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["metric"] == metric)
        .map(|s| s["total"].as_i64().unwrap())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn counts_match_the_requests_made_under_concurrent_load() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    app.set_plan(&owner.tenant_id, "enterprise").await;
    let (n, conns) = (300, 40);
    let mut tasks = Vec::new();
    for i in 0..conns {
        let client = reqwest::Client::new();
        let url = app.url("/api/lattices");
        let token = owner.access.clone();
        let count = n / conns + usize::from(i < n % conns);
        tasks.push(tokio::spawn(async move {
            for _ in 0..count {
                let s = client
                    .get(&url)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert_eq!(s, 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let ctx = app.handler_context();
    catalytic_jobs::usage::rollup_before(&ctx, ALL)
        .await
        .unwrap();
    assert_eq!(
        series_total(&app, &owner.access, "api_calls.lattices").await,
        n as i64
    );
    // The usage call itself is metered too (in its own group).
    assert!(series_total(&app, &owner.access, "api_calls").await >= n as i64);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_and_interrupted_rollups_count_each_call_exactly_once() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    app.set_plan(&owner.tenant_id, "enterprise").await;
    for _ in 0..25 {
        assert_eq!(app.get("/api/lattices", &owner.access).await.status(), 200);
    }
    let ctx = app.handler_context();
    // A rollup "killed half way": the PostgreSQL part of the bucket committed, the Redis
    // clean-up never ran.
    let minute = catalytic_jobs::usage::minute_of(Utc::now());
    let mut redis = ctx.queue.connection();
    let fields: Vec<(String, i64)> = redis::cmd("HGETALL")
        .arg(catalytic_jobs::usage::bucket_key(&app.prefix, minute))
        .query_async(&mut redis)
        .await
        .unwrap();
    let counts: Vec<(String, i64)> = fields
        .into_iter()
        .map(|(f, c)| (f.split_once('|').unwrap().1.to_owned(), c))
        .collect();
    assert!(!counts.is_empty());
    let at = chrono::TimeZone::timestamp_opt(&Utc, minute, 0).unwrap();
    let mut conn = ctx.db.get().await.unwrap();
    let applied =
        catalytic_db::usage::apply_bucket(&mut conn, owner.tenant_id.parse().unwrap(), at, &counts)
            .await
            .unwrap();
    assert!(applied);
    drop(conn);
    // Two rollups at the same moment, after the interrupted one.
    let (a, b) = tokio::join!(
        catalytic_jobs::usage::rollup_before(&ctx, ALL),
        catalytic_jobs::usage::rollup_before(&ctx, ALL)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a.applied + b.applied,
        0,
        "the bucket was already counted: {a:?} {b:?}"
    );
    assert_eq!(
        series_total(&app, &owner.access, "api_calls.lattices").await,
        25
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_allowed_call_passes_the_next_is_refused_and_upgrade_paths_stay_open() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    app.set_plan(&owner.tenant_id, "enterprise").await;
    app.set_overrides(&owner.tenant_id, json!({"api_calls_per_month": 10}))
        .await;
    for i in 1..=10 {
        let resp = app.get("/api/lattices", &owner.access).await;
        assert_eq!(resp.status(), 200, "call {i} is within the quota");
    }
    let resp = app.get("/api/lattices", &owner.access).await;
    assert_eq!(resp.status(), 429);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["type"], "quota_exceeded");
    assert_eq!(b["limit"], 10);
    let reset: chrono::DateTime<Utc> = b["reset_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(reset, catalytic_jobs::usage::next_month(Utc::now()));
    // Auth and usage stay reachable.
    assert_eq!(app.get("/api/auth/me", &owner.access).await.status(), 200);
    let summary: Value = app
        .get("/api/usage/summary", &owner.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(summary["api_calls"]["used"], 10);
    assert_eq!(summary["api_calls"]["percent"], 100.0);
    // A new month has a fresh counter: last month's full counter does not block.
    let ctx = app.handler_context();
    let mut redis = ctx.queue.connection();
    let tenant = owner.tenant_id.parse().unwrap();
    let this_month = catalytic_jobs::usage::quota_key(&app.prefix, tenant, Utc::now());
    let _: () = redis::cmd("RENAME")
        .arg(&this_month)
        .arg(catalytic_jobs::usage::quota_key(
            &app.prefix,
            tenant,
            Utc::now() - chrono::Duration::days(40),
        ))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(app.get("/api/lattices", &owner.access).await.status(), 200);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reaching_80_and_100_percent_notifies_once_each() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    app.set_plan(&owner.tenant_id, "enterprise").await;
    app.set_overrides(&owner.tenant_id, json!({"api_calls_per_month": 10}))
        .await;
    for _ in 0..14 {
        app.get("/api/lattices", &owner.access).await;
    }
    let pool = app.pool();
    let mut conn = pool.get().await.unwrap();
    let tenant = owner.tenant_id.parse().unwrap();
    let notes = catalytic_db::notifications::list(&mut conn, tenant, Some("quota.threshold"))
        .await
        .unwrap();
    let mut pcts: Vec<i64> = notes
        .iter()
        .map(|n| n.data["percent"].as_i64().unwrap())
        .collect();
    pcts.sort();
    assert_eq!(pcts, vec![80, 100]);
    let mails = catalytic_db::outbox::list_for_tenant(&mut conn, tenant)
        .await
        .unwrap();
    assert_eq!(
        mails
            .iter()
            .filter(|m| m.template == "quota_warning")
            .count(),
        2
    );
    drop(conn);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_summary_reports_usage_against_the_plan() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    app.set_plan(&owner.tenant_id, "starter").await;
    let resp = app
        .post(
            "/api/lattices",
            &owner.access,
            json!({"name": "a", "dimensions": 2, "size": 10}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let s: Value = app
        .get("/api/usage/summary", &owner.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(s["plan_code"], "starter");
    assert_eq!(s["lattices"]["used"], 1);
    assert_eq!(s["lattices"]["limit"], 5);
    assert_eq!(s["lattices"]["percent"], 20.0);
    assert_eq!(s["users"]["used"], 1);
    assert_eq!(s["users"]["limit"], 3);
    assert_eq!(s["api_calls"]["limit"], 1000);
    assert_eq!(
        s["api_calls"]["used"], 1,
        "the lattice creation counted; usage calls do not"
    );
    assert!(s["storage_bytes"]["limit"].as_i64().unwrap() > 0);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lattice_compute_time_is_metered_by_the_worker() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    app.set_plan(&owner.tenant_id, "enterprise").await;
    let l: Value = app
        .post(
            "/api/lattices",
            &owner.access,
            json!({"name": "c", "dimensions": 2, "size": 300, "obstacle_density": 0.1}),
        )
        .await
        .json()
        .await
        .unwrap();
    let worker = app.spawn_worker("lattice");
    let b: Value = app
        .post(
            &format!("/api/lattices/{}/jobs", l["id"].as_str().unwrap()),
            &owner.access,
            json!({"operation": "connected_components"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let job = b["job_id"].as_str().unwrap().to_owned();
    let done: Value = app
        .get(&format!("/api/jobs/{job}?wait=30"), &owner.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(done["status"], "succeeded");
    let ctx = app.handler_context();
    let total = eventually(Duration::from_secs(10), "compute metered", || async {
        catalytic_jobs::usage::rollup_before(&ctx, ALL).await.ok()?;
        let t = series_total(&app, &owner.access, "lattice_compute_ms").await;
        (t > 0).then_some(t)
    })
    .await;
    // The worker meters the job's wall time, the figure the job reports (at least 1 ms).
    let reported = done["result"]["compute_ms"].as_i64().unwrap();
    assert_eq!(total, reported.max(1));
    worker.terminate().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quota_notice_lost_with_its_request_is_written_by_the_next_and_postgres_is_not_asked_on_every_call()
 {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    app.set_plan(&owner.tenant_id, "enterprise").await;
    app.set_overrides(&owner.tenant_id, json!({"api_calls_per_month": 20}))
        .await;
    // The first attempt to write a quota notice fails (its request's transaction rolls
    // back); every attempt is counted.
    fail_first_notice(&app, "notice_tries", "NEW.kind = 'quota.threshold'").await;
    // Calls 16 (80%, whose notice fails) to 20 (100%), then refused ones.
    for _ in 0..24 {
        app.get("/api/lattices", &owner.access).await;
    }
    let (pcts, mails, tries) = notices(&app, &owner.tenant_id, "notice_tries").await;
    assert_eq!(
        pcts,
        vec![80, 100],
        "the 80% notice is written by a later call"
    );
    assert_eq!(mails, 2);
    assert_eq!(
        tries, 3,
        "PostgreSQL asked three times (80% failed, 80%, 100%), not on every call above 80%"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_100_percent_quota_notice_is_written_by_a_refused_call() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    app.set_plan(&owner.tenant_id, "enterprise").await;
    app.set_overrides(&owner.tenant_id, json!({"api_calls_per_month": 20}))
        .await;
    // The first attempt to write the 100% notice fails (the transaction of the one call
    // admitted at the limit rolls back); every attempt is counted.
    fail_first_notice(
        &app,
        "full_notice_tries",
        "NEW.kind = 'quota.threshold' AND NEW.data->>'percent' = '100'",
    )
    .await;
    // Calls 1 to 20 are admitted (the 20th's notice fails), then refused ones.
    for n in 1..=24 {
        let status = app.get("/api/lattices", &owner.access).await.status();
        if n <= 20 {
            assert_eq!(status, 200, "call {n}");
        } else {
            assert_ne!(status, 200, "call {n} is over the quota");
        }
    }
    let (pcts, mails, tries) = notices(&app, &owner.tenant_id, "full_notice_tries").await;
    assert_eq!(
        pcts,
        vec![80, 100],
        "the 100% notice is written by a refused call"
    );
    assert_eq!(mails, 2);
    assert_eq!(
        tries, 2,
        "PostgreSQL asked twice for the 100% notice (failed, written), not on every refused call"
    );
    app.cleanup().await;
}

/// Makes the first write of a quota notice matching `when` (a trigger condition on `NEW`)
/// fail, counting every attempt in the sequence `tries`.
async fn fail_first_notice(app: &TestApp, tries: &str, when: &str) {
    for sql in [
        format!("CREATE SEQUENCE {tries}"),
        format!(
            "CREATE FUNCTION {tries}_count() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN IF nextval('{tries}') = 1 THEN \
             RAISE EXCEPTION 'test: the notice cannot be written'; END IF; RETURN NEW; END $$"
        ),
        format!(
            "CREATE TRIGGER {tries}_count BEFORE INSERT ON notifications FOR EACH ROW \
             WHEN ({when}) EXECUTE FUNCTION {tries}_count()"
        ),
    ] {
        catalytic_db::provision::execute_raw(&app.db.url, &sql)
            .await
            .unwrap();
    }
}

/// The tenant's quota notices (their percents, sorted), its `quota_warning` emails, and
/// the attempts counted in the sequence `tries` (see [`fail_first_notice`]).
async fn notices(app: &TestApp, tenant: &str, tries: &str) -> (Vec<i64>, usize, i64) {
    use diesel_async::RunQueryDsl as _;
    let pool = app.pool();
    let mut conn = pool.get().await.unwrap();
    let tenant = tenant.parse().unwrap();
    let notes = catalytic_db::notifications::list(&mut conn, tenant, Some("quota.threshold"))
        .await
        .unwrap();
    let mut pcts: Vec<i64> = notes
        .iter()
        .map(|n| n.data["percent"].as_i64().unwrap())
        .collect();
    pcts.sort();
    let mails = catalytic_db::outbox::list_for_tenant(&mut conn, tenant)
        .await
        .unwrap()
        .iter()
        .filter(|m| m.template == "quota_warning")
        .count();
    let next: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
        "nextval('{tries}')"
    )))
    .get_result(&mut conn)
    .await
    .unwrap();
    (pcts, mails, next - 1)
}
