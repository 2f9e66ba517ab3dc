//! Inputs and failures that used to end in a 500 (or the wrong client error): text
//! PostgreSQL cannot store, the database lost in the middle of a request.

use std::time::Duration;

use catalytic_db::DbError;
use catalytic_db::ids::TenantId;
use catalytic_tests::{TestApp, TestDb, eventually};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};

/// Asserts a 422 validation error naming `field`.
async fn assert_invalid(resp: reqwest::Response, field: &str, what: &str) {
    let status = resp.status();
    let b: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 422, "{what}: {b}");
    assert_eq!(b["type"], "validation_error", "{what}: {b}");
    assert_eq!(b["errors"][0]["field"], field, "{what}: {b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn nul_and_control_characters_in_free_text_answer_422() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    app.set_plan(&owner.tenant_id, "enterprise").await;

    let resp = app
        .post_anon(
            "/api/auth/login",
            json!({"email": format!("{}\u{0}", owner.email), "password": owner.password}),
        )
        .await;
    assert_invalid(resp, "email", "login email").await;
    let resp = app
        .post_anon(
            "/api/auth/login",
            json!({"email": owner.email, "password": owner.password, "tenant_slug": "a\u{0}"}),
        )
        .await;
    assert_invalid(resp, "tenant_slug", "login tenant_slug").await;
    let resp = app
        .post_anon(
            "/api/auth/password-reset",
            json!({"email": format!("{}\u{0}", owner.email)}),
        )
        .await;
    assert_invalid(resp, "email", "password-reset email").await;
    let resp = app
        .post_anon(
            "/api/auth/register",
            json!({"company_name": "Nul Ltd", "email": "nul@example.com",
                   "password": "Sup3r-secret", "first_name": "N", "last_name": "L",
                   "plan_code": "free\u{0}"}),
        )
        .await;
    assert_invalid(resp, "plan_code", "register plan_code").await;
    let resp = app
        .post(
            "/api/stripe/checkout",
            &owner.access,
            json!({"plan_code": "starter\u{0}", "interval": "month"}),
        )
        .await;
    assert_invalid(resp, "plan_code", "checkout plan_code").await;
    let resp = app
        .client
        .put(app.url("/api/subscriptions/update"))
        .bearer_auth(&owner.access)
        .json(&json!({"plan_code": "starter\u{0}", "interval": "month"}))
        .send()
        .await
        .unwrap();
    assert_invalid(resp, "plan_code", "subscription plan_code").await;
    let resp = app.get("/api/audit-logs?action=%00", &owner.access).await;
    assert_invalid(resp, "action", "audit action").await;

    // Email: the custom bodies and any string of a template's data (stored as jsonb).
    for (body, field) in [
        (
            json!({"to": owner.email, "subject": "Hi", "html": "<p>a\u{0}</p>", "text": "a"}),
            "html",
        ),
        (
            json!({"to": owner.email, "subject": "Hi", "html": "<p>a</p>", "text": "a\u{0}"}),
            "text",
        ),
        (
            json!({"to": owner.email, "template": "welcome",
                   "data": {"first_name": "A\u{0}", "company_name": "Acme"}}),
            "data",
        ),
    ] {
        let resp = app
            .post("/api/email/send", &owner.access, body.clone())
            .await;
        assert_invalid(resp, field, &body.to_string()).await;
    }
    // Line breaks and tabs stay allowed in a body.
    let resp = app
        .post(
            "/api/email/send",
            &owner.access,
            json!({"to": owner.email, "subject": "Hi", "html": "<p>a</p>\r\n\t", "text": "a\nb"}),
        )
        .await;
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());

    // The XOR key of the text format is stored as written (jsonb); binary keys go as hex.
    let resp = app
        .post(
            "/api/lattices",
            &owner.access,
            json!({"name": "nul", "dimensions": 2, "size": 8}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let lattice: Value = resp.json().await.unwrap();
    let id = lattice["id"].as_str().unwrap();
    let resp = app
        .post(
            &format!("/api/lattices/{id}/jobs"),
            &owner.access,
            json!({"operation": "xor_transform", "params": {"key": "a\u{0}b", "rounds": 1}}),
        )
        .await;
    assert_invalid(resp, "params.key", "text XOR key").await;
    let resp = app
        .post(
            &format!("/api/lattices/{id}/jobs"),
            &owner.access,
            json!({"operation": "xor_transform",
                   "params": {"key": "610062", "key_format": "hex", "rounds": 1}}),
        )
        .await;
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());

    // After the refused calls the service still answers normally (the audit log here).
    let resp = app.get("/api/audit-logs", &owner.access).await;
    assert_eq!(resp.status(), 200);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn text_postgresql_refuses_is_invalid_text_and_a_422_not_a_500() {
    let db = TestDb::create().await;
    let pool = db.pool();
    let mut conn = pool.get().await.unwrap();
    // A NUL in a text parameter (SQLSTATE 22021).
    let err = catalytic_db::audit::list(&mut conn, TenantId::generate(), Some("a\u{0}"), 10, 0)
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::InvalidText(_)), "{err:?}");
    // A NUL in a jsonb parameter (SQLSTATE 22P05).
    let err = catalytic_db::audit::record(
        &mut conn,
        catalytic_db::audit::NewAudit {
            action: "test.nul",
            details: json!({"k": "a\u{0}"}),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, DbError::InvalidText(_)), "{err:?}");
    // The connection is still good afterwards.
    catalytic_db::audit::list(&mut conn, TenantId::generate(), Some("a"), 10, 0)
        .await
        .unwrap();
    let api = catalytic_api::error::ApiError::from(err);
    assert_eq!(api.status().as_u16(), 422);
    let body = api.body();
    assert_eq!(body.kind, "validation_error");
    assert!(
        !body.detail.contains("Unicode"),
        "no PostgreSQL text in the answer: {}",
        body.detail
    );
    drop(conn);
    db.drop_now().await;
}

/// A connection holding an ACCESS EXCLUSIVE lock on `table` in an open transaction, so
/// the API's next query on it waits.
async fn lock_table(url: &str, table: &str) -> AsyncPgConnection {
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    diesel::sql_query("BEGIN").execute(&mut conn).await.unwrap();
    diesel::sql_query(format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

/// Waits until a session of the database waits on a lock, then terminates it as an
/// administrator would (`pg_terminate_backend`: SQLSTATE 57P01 to the client).
async fn terminate_the_waiting_session(url: &str) {
    eventually(
        Duration::from_secs(20),
        "a session waiting on the lock",
        || async {
            let n = catalytic_db::provision::execute_raw(
                url,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid() \
                 AND wait_event_type = 'Lock'",
            )
            .await
            .unwrap();
            (n > 0).then_some(())
        },
    )
    .await;
}

/// Runs `request` while `table` is locked, kills the session it waits in, and returns
/// the response.
async fn with_session_killed_on(
    app: &TestApp,
    table: &str,
    request: reqwest::RequestBuilder,
) -> reqwest::Response {
    let mut lock = lock_table(&app.db.url, table).await;
    let pending = tokio::spawn(request.send());
    terminate_the_waiting_session(&app.db.url).await;
    diesel::sql_query("ROLLBACK")
        .execute(&mut lock)
        .await
        .unwrap();
    pending.await.unwrap().unwrap()
}

async fn assert_unavailable(resp: reqwest::Response, what: &str) {
    let status = resp.status();
    let b: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 503, "{what}: {b}");
    assert_eq!(b["type"], "service_unavailable", "{what}: {b}");
    assert!(
        !b["detail"].as_str().unwrap_or("").contains("terminating"),
        "{what}: no PostgreSQL text in the answer: {b}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn postgresql_lost_in_the_middle_of_a_request_answers_503() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    let resp = with_session_killed_on(
        &app,
        "lattices",
        app.client
            .get(app.url("/api/lattices"))
            .bearer_auth(&owner.access),
    )
    .await;
    assert_unavailable(resp, "GET /api/lattices").await;
    // The pool replaces the lost connection: the next request works.
    let resp = app.get("/api/lattices", &owner.access).await;
    assert_eq!(resp.status(), 200);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_the_server_terminated_reports_unavailable() {
    let db = TestDb::create().await;
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    let pid: i32 = diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>(
        "pg_backend_pid()",
    ))
    .get_result(&mut conn)
    .await
    .unwrap();
    let n = catalytic_db::provision::execute_raw(
        &db.url,
        &format!("SELECT pg_terminate_backend({pid})"),
    )
    .await
    .unwrap();
    assert_eq!(n, 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The first query may see the server's 57P01 message, later ones a closed connection
    // (diesel-async's UnableToSendCommand): both are an outage, not a bug.
    for attempt in 0..2 {
        let err = diesel::sql_query("SELECT 1")
            .execute(&mut conn)
            .await
            .unwrap_err();
        let err = DbError::from(err);
        assert!(
            matches!(err, DbError::Unavailable(_)),
            "attempt {attempt}: {err:?}"
        );
    }
    drop(conn);
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_platform_admin_check_and_the_login_slug_lookup_answer_503_when_postgresql_fails() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;

    // The platform-admin flag is read from the user row: a failed read is an outage, not
    // "no such route".
    let path = format!("/api/subscriptions/status/{}", owner.tenant_id);
    let resp = with_session_killed_on(
        &app,
        "users",
        app.client.get(app.url(&path)).bearer_auth(&owner.access),
    )
    .await;
    assert_unavailable(resp, "platform-admin check").await;
    // Without the outage a tenant owner still does not see the route.
    assert_eq!(app.get(&path, &owner.access).await.status(), 404);

    // Login narrowed to an organisation: a failed slug lookup is an outage, not a 401.
    let login =
        json!({"email": owner.email, "password": owner.password, "tenant_slug": owner.slug});
    let resp = with_session_killed_on(
        &app,
        "tenants",
        app.client.post(app.url("/api/auth/login")).json(&login),
    )
    .await;
    assert_unavailable(resp, "login tenant_slug lookup").await;
    let resp = app.post_anon("/api/auth/login", login).await;
    assert_eq!(resp.status(), 200);
    let resp = app
        .post_anon(
            "/api/auth/login",
            json!({"email": owner.email, "password": owner.password, "tenant_slug": "no-such-org"}),
        )
        .await;
    assert_eq!(resp.status(), 401);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_series_of_dates_outside_the_nanosecond_range_answer_200() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    // Counts at hours before 1677 and after 2262 (chrono's nanosecond timestamps).
    catalytic_db::provision::execute_raw(
        &app.db.url,
        &format!(
            "INSERT INTO usage_records (tenant_id, hour, metric, count) VALUES \
             ('{t}', '1600-03-01T05:00:00Z', 'api_calls', 3), \
             ('{t}', '1600-03-01T07:00:00Z', 'api_calls', 4), \
             ('{t}', '2300-06-01T13:00:00Z', 'api_calls', 5)",
            t = owner.tenant_id
        ),
    )
    .await
    .unwrap();
    for (query, points) in [
        (
            "from=1600-03-01T05:30:00Z&to=1600-03-02T00:00:00Z",
            json!([{"at": "1600-03-01T05:00:00Z", "count": 3},
                   {"at": "1600-03-01T07:00:00Z", "count": 4}]),
        ),
        (
            "from=1600-03-01T00:00:00Z&to=1600-03-02T00:00:00Z&granularity=day",
            json!([{"at": "1600-03-01T00:00:00Z", "count": 7}]),
        ),
        (
            "from=2300-06-01T13:59:59Z&to=2300-06-02T00:00:00Z&granularity=day",
            json!([{"at": "2300-06-01T00:00:00Z", "count": 5}]),
        ),
        (
            "from=0001-01-01T00:00:00Z&to=0001-01-02T00:00:00Z",
            json!(null),
        ),
        (
            "from=9999-12-30T00:00:00Z&to=9999-12-31T23:59:59Z",
            json!(null),
        ),
    ] {
        let resp = app.get(&format!("/api/usage?{query}"), &owner.access).await;
        let status = resp.status();
        let b: Value = resp.json().await.unwrap();
        assert_eq!(status, 200, "{query}: {b}");
        let series = b["series"].as_array().unwrap();
        if points.is_null() {
            assert!(series.is_empty(), "{query}: {b}");
            continue;
        }
        let got: Vec<Value> = series[0]["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let at = chrono::DateTime::parse_from_rfc3339(p["at"].as_str().unwrap()).unwrap();
                json!({"at": at.to_utc().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                       "count": p["count"]})
            })
            .collect();
        assert_eq!(json!(got), points, "{query}: {b}");
    }
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_stripe_refuses_answers_422_without_stripe_s_words() {
    let b = crate::billing::Billing::start(3600, false).await;
    let owner = b.app.tenant().await;
    // The monthly Starter price archived in Stripe (its dashboard, say) behind the catalogue's
    // back: Stripe answers 400 "The price specified is inactive" to the checkout.
    let price = {
        let pool = b.app.pool();
        let mut conn = pool.get().await.unwrap();
        catalytic_db::plans::by_code(&mut conn, "starter")
            .await
            .unwrap()
            .stripe_price_monthly_id
            .expect("synced price")
    };
    stripe_product::price::UpdatePrice::new(price.as_str())
        .active(false)
        .send(&b.client())
        .await
        .unwrap();
    let resp = b
        .app
        .post(
            "/api/stripe/checkout",
            &owner.access,
            json!({"plan_code": "starter", "interval": "month"}),
        )
        .await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["type"], "validation_error", "{body}");
    assert_eq!(body["errors"][0]["field"], "line_items.0.price", "{body}");
    assert_eq!(
        body["errors"][0]["message"],
        "was refused by the payment provider"
    );
    assert!(
        !body.to_string().contains("inactive"),
        "Stripe's message stays in the log: {body}"
    );
    // The yearly price is still active: the same checkout by year goes through.
    let resp = b
        .app
        .post(
            "/api/stripe/checkout",
            &owner.access,
            json!({"plan_code": "starter", "interval": "year"}),
        )
        .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());

    // A declined payment (402 from Stripe) is a conflict the customer settles in the portal.
    let declined =
        catalytic_api::error::ApiError::from(catalytic_jobs::billing::BillingError::Refused {
            status: 402,
            message: "Your card was declined.".into(),
            param: None,
        });
    assert_eq!(declined.status().as_u16(), 409);
    assert!(!declined.body().detail.contains("card was declined"));
    b.cleanup().await;
}

/// POSTs `body` over HTTP/2 without upgrade (h2c, as a client that knows the server speaks
/// it), in 16 KiB DATA frames, declaring its length or not (HTTP/2 has no
/// Transfer-Encoding: without Content-Length nothing says how long the body is). Returns the
/// status and the response body; the server may answer before the body is all sent.
async fn h2c_post(base: &str, path: &str, body: Vec<u8>, declare_length: bool) -> (u16, Value) {
    let addr = base.trim_start_matches("http://");
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let mut req = http::Request::builder()
        .method("POST")
        .uri(format!("{base}{path}"))
        .header("content-type", "application/json");
    if declare_length {
        req = req.header("content-length", body.len());
    }
    let (response, mut send) = client.send_request(req.body(()).unwrap(), false).unwrap();
    // h2 buffers what the flow-control window does not let out yet.
    for chunk in body.chunks(16 * 1024) {
        if send
            .send_data(bytes::Bytes::copy_from_slice(chunk), false)
            .is_err()
        {
            break;
        }
    }
    let _ = send.send_data(bytes::Bytes::new(), true);
    let resp = tokio::time::timeout(Duration::from_secs(30), response)
        .await
        .expect("an answer within 30 s")
        .expect("an answer, not a reset stream");
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("the answer's body");
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    drop(send);
    driver.abort();
    (status, serde_json::from_slice(&data).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http2_body_without_a_length_is_held_to_the_body_limit() {
    let app = TestApp::spawn().await;
    let login = "/api/auth/login";
    // 2 MiB of valid JSON (the limit is 1 MiB), unauthenticated.
    let big = serde_json::to_vec(
        &json!({"email": "nobody@example.com", "password": "x".repeat(2 << 20)}),
    )
    .unwrap();
    let (status, body) = h2c_post(&app.base, login, big.clone(), false).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["type"], "payload_too_large", "{body}");
    assert_eq!(body["status"], 413, "{body}");
    // Declared too long, it is refused unread, and the answer still reaches the client.
    let (status, body) = h2c_post(&app.base, login, big, true).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["type"], "payload_too_large", "{body}");
    // A small body without a length still reaches the handler.
    let small =
        serde_json::to_vec(&json!({"email": "nobody@example.com", "password": "x"})).unwrap();
    let (status, body) = h2c_post(&app.base, login, small, false).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["type"], "unauthorized", "{body}");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_failed_by_a_database_error_shows_a_generic_message_not_postgresql_s() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    let resp = app
        .post(
            "/api/lattices",
            &owner.access,
            json!({"name": "broken", "dimensions": 2, "size": 8}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let lattice: Value = resp.json().await.unwrap();
    let resp = app
        .post(
            &format!("/api/lattices/{}/jobs", lattice["id"].as_str().unwrap()),
            &owner.access,
            json!({"operation": "statistics"}),
        )
        .await;
    assert_eq!(resp.status(), 202);
    let job: Value = resp.json().await.unwrap();
    let job_id: uuid::Uuid = job["job_id"].as_str().unwrap().parse().unwrap();
    // The worker's read of the lattice now fails inside PostgreSQL (no such column).
    catalytic_db::provision::execute_raw(
        &app.db.url,
        "ALTER TABLE lattices RENAME COLUMN seed TO seed_hidden",
    )
    .await
    .unwrap();
    // The job's last attempt, run as a worker runs it.
    let ctx = app.handler_context();
    let outcome = catalytic_jobs::handle(
        &ctx,
        catalytic_jobs::Envelope::for_job(job_id, "lattice.statistics", None),
        1,
        true,
    )
    .await;
    assert!(outcome.is_err(), "the attempt failed");
    let b: Value = app
        .get(&format!("/api/jobs/{job_id}"), &owner.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(b["status"], "failed", "{b}");
    assert_eq!(
        b["error"], "an internal error occurred; it has been logged",
        "the stored error says nothing of PostgreSQL: {b}"
    );
    // A failure the client caused keeps its message.
    catalytic_db::provision::execute_raw(
        &app.db.url,
        "ALTER TABLE lattices RENAME COLUMN seed_hidden TO seed",
    )
    .await
    .unwrap();
    let resp = app
        .post(
            &format!("/api/lattices/{}/jobs", lattice["id"].as_str().unwrap()),
            &owner.access,
            json!({"operation": "statistics"}),
        )
        .await;
    let job: Value = resp.json().await.unwrap();
    let second: uuid::Uuid = job["job_id"].as_str().unwrap().parse().unwrap();
    let resp = app
        .client
        .delete(app.url(&format!(
            "/api/lattices/{}",
            lattice["id"].as_str().unwrap()
        )))
        .bearer_auth(&owner.access)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let _failed = catalytic_jobs::handle(
        &ctx,
        catalytic_jobs::Envelope::for_job(second, "lattice.statistics", None),
        1,
        true,
    )
    .await;
    let b: Value = app
        .get(&format!("/api/jobs/{second}"), &owner.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(b["status"], "failed", "{b}");
    assert_eq!(b["error"], "the lattice was deleted", "{b}");
    app.cleanup().await;
}
