//! The API shell: health, error shapes, request ids, headers, metrics, configuration.

use catalytic_tests::{TestApp, env};
use catalytic_tests::{api_bin, tempdir};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn health_reports_database_and_redis_up_with_latencies() {
    let app = TestApp::spawn().await;
    let resp = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["status"], "healthy");
    assert_eq!(b["database"]["status"], "up");
    assert_eq!(b["redis"]["status"], "up");
    assert!(b["database"]["latency_ms"].as_f64().unwrap() >= 0.0);
    let resp = app
        .client
        .get(app.url("/api/auth/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn health_answers_503_naming_redis_when_redis_is_unreachable() {
    let app = TestApp::spawn_with(|e| {
        e.insert("REDIS_URL", "redis://127.0.0.1:1".into());
    })
    .await;
    let resp = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["status"], "unhealthy");
    assert_eq!(b["redis"]["status"], "down");
    assert_eq!(b["database"]["status"], "up");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn token_checks_fail_closed_with_503_when_redis_is_down() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    // A second app on the same database whose Redis is unreachable.
    let db_url = app.db.url.clone();
    let broken = TestApp::spawn_with(|e| {
        e.insert("DATABASE_URL", db_url);
        e.insert("REDIS_URL", "redis://127.0.0.1:1".into());
    })
    .await;
    let resp = broken.get("/api/auth/me", &owner.access).await;
    assert_eq!(resp.status(), 503);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["type"], "service_unavailable");
    broken.cleanup().await;
    app.cleanup().await;
}

fn assert_error_shape(b: &Value, status: u16, kind: &str) {
    assert_eq!(b["status"], status, "{b}");
    assert_eq!(b["type"], kind, "{b}");
    assert!(b["detail"].as_str().is_some_and(|d| !d.is_empty()), "{b}");
    assert!(
        b["request_id"].as_str().is_some_and(|d| !d.is_empty()),
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_routes_answer_404_in_the_error_shape() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .get(app.url("/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let b: Value = resp.json().await.unwrap();
    assert_error_shape(&b, 404, "not_found");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_the_limit_answers_413_in_the_error_shape() {
    let app = TestApp::spawn().await;
    let big = vec![b'a'; 2 * 1024 * 1024];
    let resp = app
        .client
        .post(app.url("/api/auth/login"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let b: Value = resp.json().await.unwrap();
    assert_error_shape(&b, 413, "payload_too_large");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json_answers_400_in_the_error_shape() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .post(app.url("/api/auth/login"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let b: Value = resp.json().await.unwrap();
    assert_error_shape(&b, 400, "bad_request");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn request_ids_are_echoed_or_generated_and_put_in_error_bodies() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .get(app.url("/nope"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-abc-123");
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["request_id"], "trace-abc-123");

    let resp = app.client.get(app.url("/health")).send().await.unwrap();
    let generated = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 36, "{generated}");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn security_headers_are_set_and_hsts_only_in_production() {
    let app = TestApp::spawn().await;
    let resp = app.client.get(app.url("/health")).send().await.unwrap();
    let h = resp.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(h.contains_key("referrer-policy"));
    assert!(!h.contains_key("strict-transport-security"));
    app.cleanup().await;

    let app = TestApp::spawn_with(|e| {
        e.insert("APP_ENV", "production".into());
        e.insert("CORS_ALLOWED_ORIGINS", "https://app.example.com".into());
    })
    .await;
    let resp = app
        .client
        .get(app.url("/health"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().contains_key("strict-transport-security"));
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let resp = app
        .client
        .get(app.url("/health"))
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_requests_by_route_and_status_with_latency_histograms() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        app.client.get(app.url("/health")).send().await.unwrap();
    }
    app.client.get(app.url("/missing")).send().await.unwrap();
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            r#"catalytic_http_requests_total{method="GET",route="health",status="200"} 3"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
    assert!(
        text.contains("catalytic_http_request_duration_seconds_bucket"),
        "{text}"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn docs_and_spec_are_served() {
    let app = TestApp::spawn().await;
    let resp = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("swagger"));
    let spec: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["paths"]["/api/auth/register"].is_object());
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_invalid_variable_stops_start_up_naming_it() {
    let dir = tempdir();
    let out = std::process::Command::new(api_bin())
        .arg("serve")
        .env_clear()
        .current_dir(&dir)
        .env("DATABASE_URL", "postgres://x@127.0.0.1/x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("REDIS_URL is not set"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    let out = std::process::Command::new(api_bin())
        .arg("serve")
        .env_clear()
        .current_dir(&dir)
        .env("DATABASE_URL", "postgres://x@127.0.0.1/x")
        .env("REDIS_URL", "redis://127.0.0.1:6379")
        .env("JWT_PRIVATE_KEY_PATH", env("JWT_PRIVATE_KEY_PATH"))
        .env("JWT_PUBLIC_KEY_PATH", env("JWT_PUBLIC_KEY_PATH"))
        .env("PORT", "not-a-port")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PORT is invalid"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_refuses_to_start_against_a_database_whose_migrations_are_behind() {
    let db = catalytic_tests::TestDb::create_empty().await;
    let dir = tempdir();
    let out = std::process::Command::new(api_bin())
        .arg("serve")
        .env_clear()
        .current_dir(&dir)
        .env("DATABASE_URL", &db.url)
        .env("REDIS_URL", catalytic_tests::redis_url())
        .env("JWT_PRIVATE_KEY_PATH", env("JWT_PRIVATE_KEY_PATH"))
        .env("JWT_PUBLIC_KEY_PATH", env("JWT_PUBLIC_KEY_PATH"))
        .env("PORT", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the database is behind"), "{err}");
    assert!(err.contains("catalytic-api migrate"), "{err}");
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dot_env_is_read_and_the_real_environment_wins() {
    let db = catalytic_tests::TestDb::create_empty().await;
    let dir = tempdir();
    std::fs::write(
        dir.join(".env"),
        format!("DATABASE_URL={}\nREDIS_URL=redis://127.0.0.1:1\n", db.url),
    )
    .unwrap();
    // migrate needs only DATABASE_URL: read from .env.
    let out = std::process::Command::new(api_bin())
        .arg("migrate")
        .env_clear()
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("applied"));
    // The real environment overrides .env.
    let out = std::process::Command::new(api_bin())
        .args(["migrate", "--status"])
        .env_clear()
        .current_dir(&dir)
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert!(!out.status.success());
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_and_exits_zero() {
    let app = TestApp::spawn().await;
    let dir = tempdir();
    let mut child = tokio::process::Command::new(api_bin())
        .arg("serve")
        .env_clear()
        .current_dir(&dir)
        .envs(app.env.iter().map(|(k, v)| (k.to_string(), v.clone())))
        .env("PORT", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let pid = child.id().unwrap();
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait())
        .await
        .expect("exits")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    app.cleanup().await;
}
