//! Rate limits: per IP on the auth routes, per user sized by plan, with headers.

use catalytic_tests::TestApp;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn login_is_limited_per_ip_with_retry_after() {
    let app = TestApp::spawn_with(|e| {
        e.insert("AUTH_RATE_LIMIT_PER_MINUTE", "3".into());
    })
    .await;
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let resp = app
            .post_anon(
                "/api/auth/login",
                json!({"email": "x@y.io", "password": "Wr0ngpassword"}),
            )
            .await;
        statuses.push(resp.status().as_u16());
        assert_eq!(resp.headers()["x-ratelimit-limit"], "3");
        last = Some(resp);
    }
    assert_eq!(statuses, vec![401, 401, 401, 429, 429]);
    let resp = last.unwrap();
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(resp.headers()["x-ratelimit-remaining"], "0");
    let b: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(b["type"], "rate_limited");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn authenticated_requests_are_limited_per_user_by_plan() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await; // Free: 60 per minute
    let mut remaining = Vec::new();
    let mut limited_at = None;
    for i in 0..70 {
        let resp = app.get("/api/auth/me", &owner.access).await;
        if resp.status() == 429 {
            limited_at = Some(i);
            assert!(resp.headers().contains_key("retry-after"));
            break;
        }
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-ratelimit-limit"], "60");
        remaining.push(
            resp.headers()["x-ratelimit-remaining"]
                .to_str()
                .unwrap()
                .parse::<u32>()
                .unwrap(),
        );
    }
    assert_eq!(
        limited_at,
        Some(60),
        "the 61st request in a minute is refused"
    );
    assert!(remaining.windows(2).all(|w| w[1] <= w[0]), "{remaining:?}");
    // Another user of another tenant is not affected.
    let other = app.tenant().await;
    assert_eq!(app.get("/api/auth/me", &other.access).await.status(), 200);
    // A bigger plan has a bigger limit, at once.
    app.set_plan(&other.tenant_id, "starter").await;
    let resp = app.get("/api/auth/me", &other.access).await;
    assert_eq!(resp.headers()["x-ratelimit-limit"], "300");
    app.cleanup().await;
}
