//! Email: outbox rows delivered over SMTP by a real worker to a real SMTP sink
//! (scripts/lib/smtp_sink.py, one per test on a free port), the API that queues them, and
//! the delivery guarantees: nothing lost, nothing sent twice, a stable Message-ID.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use catalytic_db::AsyncConnection as _;
use catalytic_db::ids::EmailId;
use catalytic_db::outbox::{self, OutboxEmail};
use catalytic_jobs::email::TemplateKind;
use catalytic_tests::{Owner, TestApp, Worker, eventually};
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};

/// A running SMTP sink that writes every message to its own folder.
struct Sink {
    child: tokio::process::Child,
    port: u16,
    dir: PathBuf,
}

impl Sink {
    async fn start(port: u16, extra: &[&str]) -> Sink {
        let python = std::env::var("CATALYTIC_PYTHON").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../.local/venv/bin/python").to_owned()
        });
        let script = std::env::var("CATALYTIC_SMTP_SINK").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/lib/smtp_sink.py").to_owned()
        });
        let dir = std::env::temp_dir().join(format!("catalytic-mail-{}", uuid::Uuid::new_v4()));
        let child = tokio::process::Command::new(python)
            .arg(script)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--json"])
            .arg("--maildir")
            .arg(&dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the SMTP sink (run through scripts/test, which installs aiosmtpd)");
        let sink = Sink { child, port, dir };
        eventually(
            Duration::from_secs(15),
            "the SMTP sink to listen",
            || async {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(|_| ())
            },
        )
        .await;
        sink
    }

    /// The decoded summaries of the stored messages, oldest first.
    fn messages(&self) -> Vec<Value> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("parsed")) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }

    async fn wait_for(&self, n: usize, what: &str) -> Vec<Value> {
        eventually(Duration::from_secs(30), what, || async {
            let m = self.messages();
            (m.len() >= n).then_some(m)
        })
        .await
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The API's environment pointed at an SMTP server on `port`.
async fn app_with_smtp(port: u16, limit: Option<u32>) -> TestApp {
    TestApp::spawn_with(|env| {
        env.insert("SMTP_HOST", "127.0.0.1".into());
        env.insert("SMTP_PORT", port.to_string());
        env.insert("SMTP_TLS", "none".into());
        if let Some(limit) = limit {
            env.insert("EMAIL_SEND_LIMIT_PER_HOUR", limit.to_string());
        }
    })
    .await
}

/// An email worker sending to 127.0.0.1:`port` with a fast retry policy.
fn email_worker(app: &TestApp, port: u16, extra: &[(&str, &str)]) -> Worker {
    let mut env = app.worker_env();
    for (k, v) in [
        ("SMTP_HOST", "127.0.0.1".to_owned()),
        ("SMTP_PORT", port.to_string()),
        ("SMTP_TLS", "none".to_owned()),
        ("SMTP_TIMEOUT_SECS", "5".to_owned()),
        (
            "EMAIL_FROM",
            "Catalytic <no-reply@catalytic.test>".to_owned(),
        ),
        ("FRONTEND_URL", "http://app.test".to_owned()),
        ("EMAIL_RETRY_BASE_MS", "200".to_owned()),
        ("EMAIL_RETRY_CAP_MS", "1000".to_owned()),
        ("EMAIL_MAX_ATTEMPTS", "20".to_owned()),
    ] {
        env.push((k.to_owned(), v));
    }
    for (k, v) in extra {
        env.retain(|(name, _)| name != k);
        env.push(((*k).to_owned(), (*v).to_owned()));
    }
    Worker::spawn(&env, "email", &[])
}

async fn row(app: &TestApp, id: EmailId) -> OutboxEmail {
    let pool = app.pool();
    let mut conn = pool.get().await.unwrap();
    outbox::get(&mut conn, id).await.unwrap()
}

async fn tenant_emails(app: &TestApp, owner: &Owner) -> Vec<OutboxEmail> {
    let pool = app.pool();
    let mut conn = pool.get().await.unwrap();
    outbox::list_for_tenant(&mut conn, owner.tenant_id.parse().unwrap())
        .await
        .unwrap()
}

/// The welcome email written by the owner's sign-up.
async fn welcome_of(app: &TestApp, owner: &Owner) -> OutboxEmail {
    tenant_emails(app, owner)
        .await
        .into_iter()
        .find(|e| e.template == "welcome")
        .expect("a welcome email in the outbox")
}

async fn wait_status(app: &TestApp, id: EmailId, status: &str) -> OutboxEmail {
    eventually(
        Duration::from_secs(40),
        &format!("email {id} {status}"),
        || async {
            let r = row(app, id).await;
            (r.status == status).then_some(r)
        },
    )
    .await
}

/// Data each template accepts, as an API client sends it.
fn sample(kind: TemplateKind) -> Value {
    match kind {
        TemplateKind::Welcome => json!({"first_name": "Ada", "company_name": "Acme & Sons"}),
        TemplateKind::PasswordReset => json!({"first_name": "Ada",
            "reset_url": "http://app.test/reset-password?token=t0k3n", "expires_minutes": 60}),
        TemplateKind::Invitation => json!({"first_name": "Ada", "company_name": "Acme",
            "role": "admin", "set_password_url": "http://app.test/reset-password?token=inv"}),
        TemplateKind::PaymentSuccess => json!({"first_name": "Ada", "company_name": "Acme",
            "plan_name": "Starter", "amount_cents": 2900, "currency": "usd"}),
        TemplateKind::PaymentFailed => json!({"company_name": "Acme", "plan_name": "Starter",
            "amount_cents": 2900, "currency": "usd", "next_attempt_at": "2026-12-03T10:00:00Z"}),
        TemplateKind::TrialEnding => json!({"company_name": "Acme", "plan_name": "Professional",
            "trial_end": "2026-12-01T00:00:00Z"}),
        TemplateKind::AccountSuspended => json!({"company_name": "Acme",
            "reason": "the invoice of November is unpaid"}),
        TemplateKind::QuotaWarning => json!({"company_name": "Acme", "metric": "api_calls",
            "used": 900, "limit": 1000}),
        TemplateKind::Custom => json!({}),
    }
}

async fn send(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.post("/api/email/send", token, body).await
}

async fn send_ok(app: &TestApp, token: &str, body: Value) -> EmailId {
    let resp = send(app, token, body).await;
    assert_eq!(
        resp.status(),
        202,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["status"], "pending");
    EmailId::from_uuid(b["email_id"].as_str().unwrap().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_template_arrives_with_both_parts_the_right_recipient_and_subject() {
    let sink = Sink::start(free_port(), &[]).await;
    let app = app_with_smtp(sink.port, None).await;
    let owner = app.tenant().await;
    let _worker = email_worker(&app, sink.port, &[]);

    let mut expected = vec![welcome_of(&app, &owner).await];
    for kind in TemplateKind::ALL {
        let body = if kind == TemplateKind::Custom {
            json!({"to": owner.email, "subject": "Quarterly <news>",
                   "html": "<p>Our <b>news</b></p>", "text": "Our news"})
        } else {
            json!({"to": owner.email, "template": kind.as_str(), "data": sample(kind)})
        };
        let id = send_ok(&app, &owner.access, body).await;
        expected.push(row(&app, id).await);
    }
    let messages = sink
        .wait_for(expected.len(), "every template's email")
        .await;
    assert_eq!(messages.len(), expected.len());
    for email in &expected {
        let m = messages
            .iter()
            .find(|m| m["message_id"] == email.message_id.as_str())
            .unwrap_or_else(|| panic!("no message for {} ({})", email.template, email.message_id));
        let rendered =
            catalytic_jobs::email::render(&email.template, &email.data, "http://app.test").unwrap();
        assert_eq!(
            m["subject"],
            rendered.subject.as_str(),
            "{}",
            email.template
        );
        assert_eq!(m["to"], owner.email.as_str(), "{}", email.template);
        assert_eq!(m["rcpt_tos"], owner.email.as_str(), "{}", email.template);
        assert!(
            m["from"]
                .as_str()
                .unwrap()
                .contains("no-reply@catalytic.test")
        );
        assert_eq!(
            m["content_type"], "multipart/alternative",
            "{}",
            email.template
        );
        let text = m["parts"]["text/plain"].as_str().expect("a text part");
        let html = m["parts"]["text/html"].as_str().expect("an HTML part");
        assert!(html.contains("<html"), "{}: {html}", email.template);
        assert!(!text.contains("<html"), "{}", email.template);
        assert!(
            text.contains("http://app.test"),
            "{}: {text}",
            email.template
        );
    }
    let by_template = |t: &str| {
        let e = expected.iter().find(|e| e.template == t).unwrap();
        messages
            .iter()
            .find(|m| m["message_id"] == e.message_id.as_str())
            .unwrap()
            .clone()
    };
    let reset = by_template("password_reset");
    assert!(
        reset["parts"]["text/plain"]
            .as_str()
            .unwrap()
            .contains("token=t0k3n")
    );
    let custom = by_template("custom");
    assert_eq!(custom["subject"], "Quarterly <news>");
    assert!(
        custom["parts"]["text/html"]
            .as_str()
            .unwrap()
            .contains("<p>Our <b>news</b></p>")
    );
    assert!(
        custom["parts"]["text/plain"]
            .as_str()
            .unwrap()
            .starts_with("Our news")
    );
    let welcome = by_template("welcome");
    assert!(
        welcome["parts"]["text/html"]
            .as_str()
            .unwrap()
            .contains("http://app.test/login")
    );

    for e in &expected {
        let sent = wait_status(&app, e.id, "sent").await;
        assert_eq!(sent.attempts, 1);
        assert!(sent.sent_at.is_some());
        assert!(
            sent.smtp_response.as_deref().unwrap().starts_with("250"),
            "{:?}",
            sent.smtp_response
        );
    }
    sink.stop().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn user_data_is_escaped_in_the_html_part() {
    let sink = Sink::start(free_port(), &[]).await;
    let app = app_with_smtp(sink.port, None).await;
    let _worker = email_worker(&app, sink.port, &[]);
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    let owner = app.register("<script>alert(1)</script> & Co", &email).await;
    let messages = sink.wait_for(1, "the welcome email").await;
    let welcome = welcome_of(&app, &owner).await;
    assert_eq!(messages[0]["message_id"], welcome.message_id.as_str());
    let html = messages[0]["parts"]["text/html"].as_str().unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co")
            || html.contains("&#60;script&#62;alert(1)&#60;/script&#62; &#38; Co"),
        "{html}"
    );
    let text = messages[0]["parts"]["text/plain"].as_str().unwrap();
    assert!(text.contains("<script>alert(1)</script> & Co"), "{text}");
    sink.stop().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_down_smtp_server_leaves_the_email_pending_then_it_is_delivered_once() {
    let port = free_port();
    let app = app_with_smtp(port, None).await;
    let owner = app.tenant().await;
    let _worker = email_worker(&app, port, &[]);
    let id = welcome_of(&app, &owner).await.id;

    // Nothing listens: attempts fail, and the row waits as pending with the error.
    let waiting = eventually(Duration::from_secs(30), "failed attempts", || async {
        let r = row(&app, id).await;
        (r.attempts >= 3 && r.status == "pending").then_some(r)
    })
    .await;
    assert!(
        waiting
            .last_error
            .as_deref()
            .unwrap()
            .contains("SMTP server unreachable"),
        "{:?}",
        waiting.last_error
    );
    assert!(waiting.sent_at.is_none());
    let status: Value = app
        .get(&format!("/api/email/{}", id), &owner.access)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        status["status"] == "pending" || status["status"] == "sending",
        "{status}"
    );

    // The server comes back on the same port: delivered, exactly once.
    let sink = Sink::start(port, &[]).await;
    let sent = wait_status(&app, id, "sent").await;
    assert!(sent.attempts > waiting.attempts);
    let messages = sink.wait_for(1, "the delivered email").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let messages_later = sink.messages();
    assert_eq!(messages_later.len(), 1, "{messages_later:?}");
    assert_eq!(messages[0]["message_id"], sent.message_id.as_str());
    sink.stop().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_failed_attempt_marks_the_email_failed_and_a_re_drive_delivers_it() {
    let sink = Sink::start(free_port(), &["--reject", "550 5.1.1 mailbox unavailable"]).await;
    let app = app_with_smtp(sink.port, None).await;
    let owner = app.tenant().await;
    let _worker = email_worker(&app, sink.port, &[("EMAIL_MAX_ATTEMPTS", "3")]);
    let id = welcome_of(&app, &owner).await.id;

    let failed = wait_status(&app, id, "failed").await;
    assert_eq!(failed.attempts, 3);
    let error = failed.last_error.as_deref().unwrap();
    assert!(
        error.contains("550") && error.contains("mailbox unavailable"),
        "{error}"
    );
    assert!(failed.sent_at.is_none());
    assert!(sink.messages().is_empty());

    let view: Value = app
        .get(&format!("/api/email/{id}"), &owner.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["status"], "failed");
    assert_eq!(view["attempts"], 3);
    assert!(view["last_error"].as_str().unwrap().contains("550"));
    let status: Value = app
        .get("/api/email/send", &owner.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["failed"], 1);
    assert_eq!(status["pending"], 0);

    // Once the server accepts mail again, an operator re-drives the dead letter: the row
    // goes back to pending with fresh attempts and is delivered.
    let port = sink.port;
    sink.stop().await;
    let sink = Sink::start(port, &[]).await;
    let bin = std::env::var("CATALYTIC_WORKER_BIN").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/debug/catalytic-worker"
        )
        .to_owned()
    });
    let redrive = tokio::process::Command::new(bin)
        .args(["dead", "retry", "--all", "--queue", "email"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(app.worker_env())
        .stdout(Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(redrive.success());
    let sent = wait_status(&app, id, "sent").await;
    assert_eq!(sent.attempts, 1);
    assert_eq!(sink.wait_for(1, "the re-driven email").await.len(), 1);
    sink.stop().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outbox_row_whose_transaction_rolled_back_sends_nothing() {
    let sink = Sink::start(free_port(), &[]).await;
    let app = app_with_smtp(sink.port, None).await;
    let owner = app.tenant().await;
    let tenant = owner.tenant_id.parse().unwrap();
    let client = catalytic_jobs::queue::QueueClient::new(&app.redis_url, &app.prefix).unwrap();
    let pool = app.pool();
    let mut conn = pool.get().await.unwrap();

    // A business transaction that writes its email, then fails: the row goes with it.
    let result = conn
        .transaction::<(), catalytic_db::DbError, _>(async |c| {
            let id = outbox::insert(
                c,
                Some(tenant),
                &owner.email,
                "password_reset",
                json!({"first_name": "Ada", "reset_url": "http://app.test/r?token=x", "expires_minutes": 5}),
                "catalytic.test",
            )
            .await?;
            // The failure after the email carries the id out, for the checks below.
            Err(catalytic_db::DbError::Other(id.to_string()))
        })
        .await;
    let Err(catalytic_db::DbError::Other(id)) = result else {
        panic!("the transaction should have failed: {result:?}");
    };
    let rolled_back = EmailId::from_uuid(id.parse().unwrap());
    assert!(matches!(
        outbox::get(&mut conn, rolled_back).await,
        Err(catalytic_db::DbError::NotFound)
    ));
    // Even a stray push of the rolled-back id (no caller pushes before commit) is harmless.
    catalytic_jobs::enqueue::push_email(&client, rolled_back.as_uuid(), None)
        .await
        .unwrap();
    drop(conn);

    let _worker = email_worker(&app, sink.port, &[]);
    let welcome = welcome_of(&app, &owner).await;
    let messages = sink.wait_for(1, "the committed welcome email").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let messages_later = sink.messages();
    assert_eq!(messages_later.len(), 1, "{messages_later:?}");
    assert_eq!(messages[0]["message_id"], welcome.message_id.as_str());
    assert_eq!(tenant_emails(&app, &owner).await.len(), 1);
    sink.stop().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_email_left_sending_by_a_dead_worker_is_resent_with_the_same_message_id() {
    // A slow server: the worker is killed while the server holds the message.
    let sink = Sink::start(free_port(), &["--delay", "2"]).await;
    let app = app_with_smtp(sink.port, None).await;
    let owner = app.tenant().await;
    let extra = [("SMTP_TIMEOUT_SECS", "4"), ("WORKER_CLAIM_IDLE", "1s")];
    let first = email_worker(&app, sink.port, &extra);
    let id = welcome_of(&app, &owner).await.id;
    wait_status(&app, id, "sending").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.kill_hard().await;
    assert_eq!(row(&app, id).await.status, "sending");

    // Another worker picks the job up; the row says a send may have happened, so the
    // message goes out again with the same Message-ID once the first attempt's lease
    // (the SMTP timeout plus 5 s) has passed, never while it might still be sending.
    let _second = email_worker(&app, sink.port, &extra);
    let sent = wait_status(&app, id, "sent").await;
    assert!(sent.attempts >= 2, "{sent:?}");
    assert!(
        sent.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("interrupted"),
        "{:?}",
        sent.last_error
    );
    let messages = sink.messages();
    assert!(!messages.is_empty());
    assert!(messages.len() <= 2, "{messages:?}");
    for m in &messages {
        assert_eq!(m["message_id"], sent.message_id.as_str());
    }
    sink.stop().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_email_another_attempt_is_sending_is_not_sent_in_parallel() {
    let sink = Sink::start(free_port(), &[]).await;
    let app = app_with_smtp(sink.port, None).await;
    let owner = app.tenant().await;
    let id = welcome_of(&app, &owner).await.id;
    // Claimed a moment ago by an attempt that may still be talking to the server.
    let pool = app.pool();
    let mut conn = pool.get().await.unwrap();
    diesel::sql_query(
        "UPDATE email_outbox SET status = 'sending', attempts = 1, updated_at = now() WHERE id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(id.as_uuid())
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);
    let _worker = email_worker(&app, sink.port, &[("SMTP_TIMEOUT_SECS", "2")]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        sink.messages().is_empty(),
        "sent while another attempt held it"
    );
    assert_eq!(row(&app, id).await.status, "sending");
    // Past the lease (2 s + 5 s) the claim is taken over and the email goes out once.
    let sent = wait_status(&app, id, "sent").await;
    assert_eq!(sent.attempts, 2);
    let messages = sink.wait_for(1, "the email").await;
    assert_eq!(messages.len(), 1);
    sink.stop().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn header_injection_in_an_address_or_subject_is_refused() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    for (body, field) in [
        (
            json!({"to": format!("{}\r\nBcc: victim@example.com", owner.email),
                   "template": "welcome", "data": sample(TemplateKind::Welcome)}),
            "to",
        ),
        (
            json!({"to": format!("{}\n", owner.email), "template": "welcome",
                   "data": sample(TemplateKind::Welcome)}),
            "to",
        ),
        (
            json!({"to": owner.email, "subject": "Hello\r\nBcc: victim@example.com",
                   "html": "<p>x</p>", "text": "x"}),
            "subject",
        ),
    ] {
        let resp = send(&app, &owner.access, body).await;
        assert_eq!(resp.status(), 422);
        let b: Value = resp.json().await.unwrap();
        assert_eq!(b["type"], "validation_error");
        assert!(
            b["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field),
            "{b}"
        );
    }
    // Malformed requests are 422 too, and nothing reached the outbox.
    for body in [
        json!({"to": owner.email, "template": "nope", "data": {}}),
        json!({"to": owner.email, "template": "password_reset", "data": {"first_name": "A"}}),
        json!({"to": owner.email, "template": "password_reset",
               "data": {"reset_url": "javascript:alert(1)", "expires_minutes": 5}}),
        json!({"to": owner.email, "subject": "s", "html": "<p>x</p>"}),
        json!({"to": owner.email, "template": "welcome", "subject": "s", "html": "h", "text": "t"}),
    ] {
        let resp = send(&app, &owner.access, body.clone()).await;
        assert_eq!(resp.status(), 422, "{body}");
    }
    assert_eq!(tenant_emails(&app, &owner).await.len(), 1); // the welcome email
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn recipients_outside_the_tenant_are_refused_unless_a_platform_admin_sends() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    let other = app.tenant().await;
    for to in [other.email.as_str(), "stranger@example.com"] {
        let resp = send(
            &app,
            &owner.access,
            json!({"to": to, "template": "welcome", "data": sample(TemplateKind::Welcome)}),
        )
        .await;
        assert_eq!(resp.status(), 422, "{to}");
        let b: Value = resp.json().await.unwrap();
        assert_eq!(b["errors"][0]["field"], "to");
    }
    // A platform administrator may write to anyone.
    let pool = app.pool();
    let mut conn = pool.get().await.unwrap();
    catalytic_db::users::set_platform_admin(&mut conn, &owner.email, true)
        .await
        .unwrap();
    drop(conn);
    let id = send_ok(
        &app,
        &owner.access,
        json!({"to": "stranger@example.com", "subject": "Service notice",
               "html": "<p>Maintenance</p>", "text": "Maintenance"}),
    )
    .await;
    assert_eq!(row(&app, id).await.to_address, "stranger@example.com");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hourly_sending_limit_answers_429_in_the_standard_shape() {
    let app = app_with_smtp(free_port(), Some(2)).await;
    let owner = app.tenant().await;
    let body =
        json!({"to": owner.email, "template": "welcome", "data": sample(TemplateKind::Welcome)});
    send_ok(&app, &owner.access, body.clone()).await;
    send_ok(&app, &owner.access, body.clone()).await;
    let resp = send(&app, &owner.access, body.clone()).await;
    assert_eq!(resp.status(), 429);
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry_after));
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["type"], "rate_limited");
    assert_eq!(b["status"], 429);
    assert!(b["request_id"].is_string());
    // Another tenant has its own allowance.
    let other = app.tenant().await;
    let body =
        json!({"to": other.email, "template": "welcome", "data": sample(TemplateKind::Welcome)});
    send_ok(&app, &other.access, body).await;
    let status: Value = app
        .get("/api/email/send", &owner.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["limit_per_hour"], 2);
    assert_eq!(status["sent_this_hour"], 2);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_endpoints_report_the_smtp_server_and_each_email() {
    let sink = Sink::start(free_port(), &[]).await;
    let app = app_with_smtp(sink.port, None).await;
    let owner = app.tenant().await;
    let status: Value = app
        .get("/api/email/send", &owner.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["smtp"]["reachable"], true, "{status}");
    assert_eq!(status["pending"], 1); // the welcome email, no worker yet
    assert_eq!(status["failed"], 0);

    let _worker = email_worker(&app, sink.port, &[]);
    let id = welcome_of(&app, &owner).await.id;
    wait_status(&app, id, "sent").await;
    let resp = app.get(&format!("/api/email/{id}"), &owner.access).await;
    assert_eq!(resp.status(), 200);
    let view: Value = resp.json().await.unwrap();
    assert_eq!(view["status"], "sent");
    assert_eq!(view["to"], owner.email.as_str());
    assert_eq!(view["template"], "welcome");
    assert_eq!(view["attempts"], 1);
    assert!(view["smtp_response"].as_str().unwrap().starts_with("250"));
    assert!(
        view["message_id"]
            .as_str()
            .unwrap()
            .ends_with("@catalytic.test>")
    );
    assert!(view["sent_at"].is_string());
    assert!(
        view.get("data").is_none(),
        "data (reset tokens) must not leak: {view}"
    );
    let status: Value = app
        .get("/api/email/send", &owner.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (status["pending"].as_i64(), status["sent"].as_i64()),
        (Some(0), Some(1))
    );

    // Another tenant's email, or none at all: 404.
    let other = app.tenant().await;
    let resp = app.get(&format!("/api/email/{id}"), &other.access).await;
    assert_eq!(resp.status(), 404);
    let resp = app
        .get(
            &format!("/api/email/{}", uuid::Uuid::new_v4()),
            &owner.access,
        )
        .await;
    assert_eq!(resp.status(), 404);

    // The server goes away: the probe says so.
    sink.stop().await;
    let status: Value = app
        .get("/api/email/send", &owner.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["smtp"]["reachable"], false, "{status}");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_send_postgresql_could_not_record_is_recorded_later_not_sent_again() {
    let sink = Sink::start(free_port(), &[]).await;
    let app = app_with_smtp(sink.port, None).await;
    // PostgreSQL refuses to record any email as sent (an outage of that one write, after
    // the server accepted the message).
    for sql in [
        "CREATE FUNCTION refuse_sent() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'test: the send cannot be recorded'; END $$",
        "CREATE TRIGGER refuse_sent BEFORE UPDATE ON email_outbox FOR EACH ROW \
         WHEN (NEW.status = 'sent') EXECUTE FUNCTION refuse_sent()",
    ] {
        catalytic_db::provision::execute_raw(&app.db.url, sql)
            .await
            .unwrap();
    }
    let owner = app.tenant().await;
    let id = welcome_of(&app, &owner).await.id;
    // A 1 s SMTP timeout: the claim's lease is 6 s, after which a later attempt would take
    // the row over as if its worker had died.
    let _worker = email_worker(&app, sink.port, &[("SMTP_TIMEOUT_SECS", "1")]);
    sink.wait_for(1, "the first send").await;
    let ctx = app.handler_context();
    let mut redis = ctx.queue.connection();
    let marker = catalytic_jobs::email::delivery::sent_marker_key(&app.prefix, id);
    let reply: Option<String> = redis::cmd("GET")
        .arg(&marker)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(
        reply.as_deref().is_some_and(|r| r.starts_with("250")),
        "the accepted send is marked: {reply:?}"
    );
    // Retries keep coming well past the lease while PostgreSQL still refuses.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(row(&app, id).await.status, "sending");
    catalytic_db::provision::execute_raw(&app.db.url, "DROP TRIGGER refuse_sent ON email_outbox")
        .await
        .unwrap();
    let sent = wait_status(&app, id, "sent").await;
    assert!(
        sent.smtp_response
            .as_deref()
            .is_some_and(|r| r.starts_with("250")),
        "{sent:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let messages = sink.messages();
    let files: Vec<&Value> = messages.iter().map(|m| &m["file"]).collect();
    assert_eq!(messages.len(), 1, "sent once: {files:?}");
    let left: bool = redis::cmd("EXISTS")
        .arg(&marker)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(!left, "the marker is removed once the row says sent");
    sink.stop().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_email_whose_last_attempt_records_no_outcome_is_failed_by_its_dead_letter() {
    let sink = Sink::start(free_port(), &["--reject", "550 5.1.1 mailbox unavailable"]).await;
    let app = app_with_smtp(sink.port, None).await;
    // PostgreSQL refuses the attempt's own record of the failure: its last attempt ends
    // with the row still `sending`, and the queue dead-letters the job.
    for sql in [
        "CREATE FUNCTION refuse_failure() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'test: the failure cannot be recorded'; END $$",
        "CREATE TRIGGER refuse_failure BEFORE UPDATE ON email_outbox FOR EACH ROW \
         WHEN (NEW.status IN ('pending', 'failed') AND NEW.last_error LIKE '%mailbox unavailable%') \
         EXECUTE FUNCTION refuse_failure()",
    ] {
        catalytic_db::provision::execute_raw(&app.db.url, sql)
            .await
            .unwrap();
    }
    let owner = app.tenant().await;
    let id = welcome_of(&app, &owner).await.id;
    let _worker = email_worker(&app, sink.port, &[("EMAIL_MAX_ATTEMPTS", "1")]);

    let failed = wait_status(&app, id, "failed").await;
    assert_eq!(failed.attempts, 1);
    assert!(failed.sent_at.is_none());
    assert!(
        failed
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("the failure cannot be recorded")),
        "the dead letter's error: {:?}",
        failed.last_error
    );
    assert!(sink.messages().is_empty());
    let ctx = app.handler_context();
    assert_eq!(ctx.queue.stats("email").await.unwrap().dead, 1);
    sink.stop().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_lettered_email_the_server_accepted_is_recorded_sent_from_its_marker() {
    let sink = Sink::start(free_port(), &[]).await;
    let app = app_with_smtp(sink.port, None).await;
    // PostgreSQL refuses the first record of a send (the attempt's own, after the server
    // accepted the message); the only attempt ends with the row `sending` and its marker.
    for sql in [
        "CREATE SEQUENCE sent_writes",
        "CREATE FUNCTION refuse_first_sent() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN IF nextval('sent_writes') = 1 THEN \
         RAISE EXCEPTION 'test: the send cannot be recorded'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER refuse_first_sent BEFORE UPDATE ON email_outbox FOR EACH ROW \
         WHEN (NEW.status = 'sent') EXECUTE FUNCTION refuse_first_sent()",
    ] {
        catalytic_db::provision::execute_raw(&app.db.url, sql)
            .await
            .unwrap();
    }
    let owner = app.tenant().await;
    let id = welcome_of(&app, &owner).await.id;
    let _worker = email_worker(&app, sink.port, &[("EMAIL_MAX_ATTEMPTS", "1")]);

    let sent = wait_status(&app, id, "sent").await;
    assert_eq!(sent.attempts, 1);
    assert!(
        sent.smtp_response
            .as_deref()
            .is_some_and(|r| r.starts_with("250")),
        "{sent:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.messages().len(), 1, "sent once");
    let ctx = app.handler_context();
    assert_eq!(ctx.queue.stats("email").await.unwrap().dead, 1);
    let mut redis = ctx.queue.connection();
    let left: bool = redis::cmd("EXISTS")
        .arg(catalytic_jobs::email::delivery::sent_marker_key(
            &app.prefix,
            id,
        ))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(!left, "the marker is removed once the row says sent");
    sink.stop().await;
    app.cleanup().await;
}
