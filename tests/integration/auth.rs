//! Sign-up, login, refresh rotation and reuse detection, logout, verify, JWKS, password
//! reset, and the token attack list.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use catalytic_tests::{TestApp, env};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn register_creates_tenant_owner_free_subscription_and_welcome_email_in_one_go() {
    let app = TestApp::spawn().await;
    let owner = app.register("Acme Rockets, Inc.", "Founder@Acme.io").await;
    assert_eq!(owner.slug, "acme-rockets-inc");
    let pool = app.pool();
    let mut conn = pool.get().await.unwrap();
    let tenant: catalytic_db::ids::TenantId = owner.tenant_id.parse().unwrap();
    let (sub, plan) = catalytic_db::plans::for_tenant(&mut conn, tenant)
        .await
        .unwrap();
    assert_eq!(plan.code, "free");
    assert_eq!(sub.status, "active");
    let users = catalytic_db::users::list(&mut conn, tenant).await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].email, "founder@acme.io");
    assert_eq!(users[0].role, "owner");
    assert!(users[0].password_hash.starts_with("$argon2id$"));
    let mails = catalytic_db::outbox::list_for_tenant(&mut conn, tenant)
        .await
        .unwrap();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].template, "welcome");
    assert_eq!(mails[0].to_address, "founder@acme.io");

    // A second company of the same name gets another slug.
    let other = app.register("Acme Rockets, Inc.", "two@acme.io").await;
    assert_ne!(other.slug, owner.slug);
    assert!(other.slug.starts_with("acme-rockets-inc-"));
    drop(conn);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn register_with_a_paid_plan_stays_on_free_until_checkout() {
    let app = TestApp::spawn().await;
    let resp = app
        .post_anon(
            "/api/auth/register",
            json!({"company_name": "Paid", "email": "p@paid.io", "password": "Sup3rsecret",
                   "first_name": "P", "last_name": "Q", "plan_code": "starter"}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let b: Value = resp.json().await.unwrap();
    let pool = app.pool();
    let mut conn = pool.get().await.unwrap();
    let tenant: catalytic_db::ids::TenantId = b["tenant_id"].as_str().unwrap().parse().unwrap();
    let (sub, plan) = catalytic_db::plans::for_tenant(&mut conn, tenant)
        .await
        .unwrap();
    assert_eq!(plan.code, "free");
    let starter = catalytic_db::plans::by_code(&mut conn, "starter")
        .await
        .unwrap();
    assert_eq!(sub.pending_plan_id, Some(starter.id));

    let resp = app
        .post_anon(
            "/api/auth/register",
            json!({"company_name": "X", "email": "x@paid.io", "password": "Sup3rsecret",
                   "first_name": "P", "last_name": "Q", "plan_code": "platinum"}),
        )
        .await;
    assert_eq!(resp.status(), 422);
    drop(conn);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn register_refuses_weak_passwords_with_field_errors_and_duplicate_emails_with_409() {
    let app = TestApp::spawn().await;
    for (pw, needle) in [
        ("short1A", "8 characters"),
        ("alllowercase1", "upper-case"),
        ("ALLUPPERCASE1", "lower-case"),
        ("NoDigitsHere", "digit"),
    ] {
        let resp = app
            .post_anon(
                "/api/auth/register",
                json!({"company_name": "C", "email": "a@b.io", "password": pw,
                       "first_name": "A", "last_name": "B"}),
            )
            .await;
        assert_eq!(resp.status(), 422, "{pw}");
        let b: Value = resp.json().await.unwrap();
        assert_eq!(b["type"], "validation_error");
        assert_eq!(b["errors"][0]["field"], "password");
        assert!(
            b["errors"][0]["message"].as_str().unwrap().contains(needle),
            "{b}"
        );
    }
    app.register("C", "dup@b.io").await;
    let resp = app
        .post_anon(
            "/api/auth/register",
            json!({"company_name": "D", "email": "DUP@b.io", "password": "Sup3rsecret",
                   "first_name": "A", "last_name": "B"}),
        )
        .await;
    assert_eq!(resp.status(), 409);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["type"], "conflict");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn login_succeeds_and_wrong_email_or_password_answer_the_same_401() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    let (access, _) = app.login(&owner.email, &owner.password).await;
    let me: Value = app.get("/api/auth/me", &access).await.json().await.unwrap();
    assert_eq!(me["user"]["email"], owner.email.as_str());
    assert_eq!(me["tenant"]["plan_code"], "free");

    let wrong_pw = app
        .post_anon(
            "/api/auth/login",
            json!({"email": owner.email, "password": "Wr0ngpassword"}),
        )
        .await;
    let wrong_email = app
        .post_anon(
            "/api/auth/login",
            json!({"email": "nobody@nowhere.io", "password": "Wr0ngpassword"}),
        )
        .await;
    assert_eq!(wrong_pw.status(), 401);
    assert_eq!(wrong_email.status(), 401);
    let mut a: Value = wrong_pw.json().await.unwrap();
    let mut b: Value = wrong_email.json().await.unwrap();
    a["request_id"] = Value::Null;
    b["request_id"] = Value::Null;
    assert_eq!(a, b);

    // Both failures take a password verification: their times are of one order.
    let time = |email: &'static str| {
        let app = &app;
        async move {
            let t = std::time::Instant::now();
            app.post_anon(
                "/api/auth/login",
                json!({"email": email, "password": "Wr0ngpassword"}),
            )
            .await;
            t.elapsed()
        }
    };
    let email: &'static str = Box::leak(owner.email.clone().into_boxed_str());
    let known = time(email).await;
    let unknown = time("nobody@nowhere.io").await;
    let ratio = known.as_secs_f64() / unknown.as_secs_f64();
    assert!(
        (0.2..5.0).contains(&ratio),
        "known {known:?} vs unknown {unknown:?}"
    );

    // The audit log has both outcomes.
    let logs: Value = app
        .get("/api/audit-logs?action=auth.login_failed", &access)
        .await
        .json()
        .await
        .unwrap();
    assert!(!logs["items"].as_array().unwrap().is_empty());
    let logs: Value = app
        .get("/api/audit-logs?action=auth.login_succeeded", &access)
        .await
        .json()
        .await
        .unwrap();
    assert!(!logs["items"].as_array().unwrap().is_empty());
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_rotates_and_a_reused_refresh_token_revokes_the_whole_family() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    let r1 = owner.refresh.clone();
    let resp = app
        .post_anon("/api/auth/refresh", json!({"refresh_token": r1}))
        .await;
    assert_eq!(resp.status(), 200);
    let b: Value = resp.json().await.unwrap();
    let r2 = b["refresh_token"].as_str().unwrap().to_owned();
    let a2 = b["access_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    assert_eq!(app.get("/api/auth/me", &a2).await.status(), 200);

    // r1 again: reuse. 401, and r2 (same family) dies too.
    let resp = app
        .post_anon("/api/auth/refresh", json!({"refresh_token": r1}))
        .await;
    assert_eq!(resp.status(), 401);
    let resp = app
        .post_anon("/api/auth/refresh", json!({"refresh_token": r2}))
        .await;
    assert_eq!(resp.status(), 401);
    let logs: Value = app
        .get("/api/audit-logs?action=auth.token_reuse_detected", &a2)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(logs["items"].as_array().unwrap().len(), 1);

    // Another login's family is unaffected.
    let (_, other_refresh) = app.login(&owner.email, &owner.password).await;
    let resp = app
        .post_anon("/api/auth/refresh", json!({"refresh_token": other_refresh}))
        .await;
    assert_eq!(resp.status(), 200);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_denies_the_access_token_and_revokes_its_refresh_family() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    let resp = app.post("/api/auth/logout", &owner.access, json!({})).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(app.get("/api/auth/me", &owner.access).await.status(), 401);
    let resp = app
        .post_anon("/api/auth/refresh", json!({"refresh_token": owner.refresh}))
        .await;
    assert_eq!(resp.status(), 401);
    let resp = app
        .post_anon("/api/auth/verify", json!({"token": owner.access}))
        .await;
    assert_eq!(resp.status(), 401);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_returns_the_claims_of_valid_tokens() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    let b: Value = app
        .post_anon("/api/auth/verify", json!({"token": owner.access}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(b["sub"], owner.user_id.as_str());
    assert_eq!(b["tenant_id"], owner.tenant_id.as_str());
    assert_eq!(b["role"], "owner");
    assert_eq!(b["type"], "access");
    assert_eq!(
        b["exp"].as_i64().unwrap() - b["iat"].as_i64().unwrap(),
        15 * 60
    );
    let b: Value = app
        .post_anon(
            "/api/auth/verify",
            json!({"token": owner.refresh, "token_type": "refresh"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(b["type"], "refresh");
    assert_eq!(
        b["exp"].as_i64().unwrap() - b["iat"].as_i64().unwrap(),
        7 * 24 * 3600
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jwks_publishes_the_key_that_verifies_issued_tokens() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    let jwks: Value = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(&owner.access).unwrap();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header.kid.clone().unwrap().as_str())
        .expect("token kid published");
    assert_eq!(key["alg"], "RS256");
    let dk = jsonwebtoken::DecodingKey::from_rsa_components(
        key["n"].as_str().unwrap(),
        key["e"].as_str().unwrap(),
    )
    .unwrap();
    let mut v = jsonwebtoken::Validation::new(Algorithm::RS256);
    v.set_audience(&["catalytic-api"]);
    let data = jsonwebtoken::decode::<Value>(&owner.access, &dk, &v).unwrap();
    assert_eq!(data.claims["sub"], owner.user_id.as_str());
    app.cleanup().await;
}

fn private_key() -> EncodingKey {
    let pem = std::fs::read(env("JWT_PRIVATE_KEY_PATH")).unwrap();
    EncodingKey::from_rsa_pem(&pem).unwrap()
}

fn forged(claims: &Value, kid: Option<String>) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = kid;
    jsonwebtoken::encode(&h, claims, &private_key()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_attack_list_is_refused() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    let header = jsonwebtoken::decode_header(&owner.access).unwrap();
    let kid = header.kid.clone();
    let payload = owner.access.split('.').nth(1).unwrap().to_owned();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&payload).unwrap()).unwrap();
    let now = chrono::Utc::now().timestamp();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims.clone();
        c["jti"] = json!(uuid::Uuid::new_v4());
        f(&mut c);
        c
    };

    // The control: a token we forge correctly is accepted, so the refusals below are
    // about the single change each makes.
    let good = forged(&with(&|_| {}), kid.clone());
    assert_eq!(app.get("/api/auth/me", &good).await.status(), 200);

    let mut attacks: Vec<(&str, String)> = Vec::new();
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    attacks.push(("alg none", format!("{none_header}.{payload}.")));
    let public_pem = std::fs::read(env("JWT_PUBLIC_KEY_PATH")).unwrap();
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = kid.clone();
    attacks.push((
        "HS256 signed with the public key",
        jsonwebtoken::encode(&hs, &claims, &EncodingKey::from_secret(&public_pem)).unwrap(),
    ));
    attacks.push((
        "wrong kid",
        forged(&with(&|_| {}), Some("not-our-kid".into())),
    ));
    attacks.push(("no kid", forged(&with(&|_| {}), None)));
    let mut bad_sig = good.clone();
    let last = bad_sig.pop().unwrap();
    bad_sig.push(if last == 'A' { 'B' } else { 'A' });
    attacks.push(("bad signature", bad_sig));
    attacks.push((
        "expired",
        forged(
            &with(&|c| {
                c["iat"] = json!(now - 3600);
                c["nbf"] = json!(now - 3600);
                c["exp"] = json!(now - 1800);
            }),
            kid.clone(),
        ),
    ));
    attacks.push((
        "not yet valid",
        forged(&with(&|c| c["nbf"] = json!(now + 3600)), kid.clone()),
    ));
    attacks.push((
        "wrong audience",
        forged(&with(&|c| c["aud"] = json!("someone-else")), kid.clone()),
    ));
    attacks.push((
        "wrong issuer",
        forged(&with(&|c| c["iss"] = json!("evil")), kid.clone()),
    ));
    attacks.push(("refresh token as access token", owner.refresh.clone()));
    attacks.push(("garbage", "not.a.token".into()));

    for (name, token) in &attacks {
        let resp = app.get("/api/auth/me", token).await;
        assert_eq!(resp.status(), 401, "{name} was accepted");
        let b: Value = resp.json().await.unwrap();
        assert_eq!(b["type"], "unauthorized", "{name}");
    }

    // A denied jti.
    let resp = app.post("/api/auth/logout", &good, json!({})).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(
        app.get("/api/auth/me", &good).await.status(),
        401,
        "denied jti accepted"
    );
    // No credential at all.
    let resp = app
        .client
        .get(app.url("/api/auth/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    app.cleanup().await;
}

async fn reset_token_from_outbox(app: &TestApp, tenant: &str) -> String {
    let pool = app.pool();
    let mut conn = pool.get().await.unwrap();
    let mails = catalytic_db::outbox::list_for_tenant(&mut conn, tenant.parse().unwrap())
        .await
        .unwrap();
    let mail = mails
        .iter()
        .rev()
        .find(|m| m.template == "password_reset")
        .expect("reset email in outbox");
    let url = mail.data["reset_url"].as_str().unwrap();
    assert!(
        url.starts_with("http://app.test/reset-password?token="),
        "{url}"
    );
    url.rsplit('=').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn password_reset_is_single_use_changes_the_password_and_revokes_sessions() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    // Unknown email: same 202, no email.
    let resp = app
        .post_anon(
            "/api/auth/password-reset",
            json!({"email": "ghost@nowhere.io"}),
        )
        .await;
    assert_eq!(resp.status(), 202);
    let ghost: Value = resp.json().await.unwrap();
    let resp = app
        .post_anon("/api/auth/password-reset", json!({"email": owner.email}))
        .await;
    assert_eq!(resp.status(), 202);
    let known: Value = resp.json().await.unwrap();
    assert_eq!(ghost, known);
    let token = reset_token_from_outbox(&app, &owner.tenant_id).await;

    let resp = app
        .post_anon(
            "/api/auth/password-reset/confirm",
            json!({"token": token, "new_password": "weak"}),
        )
        .await;
    assert_eq!(resp.status(), 422);
    let resp = app
        .post_anon(
            "/api/auth/password-reset/confirm",
            json!({"token": token, "new_password": "N3w-password"}),
        )
        .await;
    assert_eq!(resp.status(), 204);
    // Single use.
    let resp = app
        .post_anon(
            "/api/auth/password-reset/confirm",
            json!({"token": token, "new_password": "An0ther-password"}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    // Old sessions are gone, the old password too.
    let resp = app
        .post_anon("/api/auth/refresh", json!({"refresh_token": owner.refresh}))
        .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(app.get("/api/auth/me", &owner.access).await.status(), 401);
    let resp = app
        .post_anon(
            "/api/auth/login",
            json!({"email": owner.email, "password": owner.password}),
        )
        .await;
    assert_eq!(resp.status(), 401);
    let (access, _) = app.login(&owner.email, "N3w-password").await;
    let logs: Value = app
        .get("/api/audit-logs?action=auth.password_reset", &access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(logs["items"].as_array().unwrap().len(), 1);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_password_reset_token_is_refused() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    app.post_anon("/api/auth/password-reset", json!({"email": owner.email}))
        .await;
    let token = reset_token_from_outbox(&app, &owner.tenant_id).await;
    catalytic_db::provision::execute_raw(
        &app.db.url,
        "UPDATE password_reset_tokens SET expires_at = now() - interval '1 minute'",
    )
    .await
    .unwrap();
    let resp = app
        .post_anon(
            "/api/auth/password-reset/confirm",
            json!({"token": token, "new_password": "N3w-password"}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn during_a_key_rotation_tokens_of_the_old_and_new_keys_both_verify() {
    let dir = std::env::temp_dir().join(format!("catalytic-keys-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let new_private = dir.join("new-private.pem");
    let new_public = dir.join("new-public.pem");
    let ok = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&new_private)
        .status()
        .unwrap()
        .success()
        && std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&new_private)
            .arg("-out")
            .arg(&new_public)
            .status()
            .unwrap()
            .success();
    assert!(ok, "openssl generates the new key");
    let both = format!("{},{}", env("JWT_PUBLIC_KEY_PATH"), new_public.display());
    // The old replica signs with the old key; the new one with the new key; both
    // verify both. Same database and Redis namespace.
    let both_for_old = both.clone();
    let old = TestApp::spawn_with(|e| {
        e.insert("JWT_PUBLIC_KEY_PATH", both_for_old);
    })
    .await;
    let (db_url, prefix) = (old.db.url.clone(), old.prefix.clone());
    let new_private_path = new_private.display().to_string();
    let new = TestApp::spawn_with(|e| {
        e.insert("DATABASE_URL", db_url);
        e.insert("REDIS_KEY_PREFIX", prefix);
        e.insert("JWT_PRIVATE_KEY_PATH", new_private_path);
        e.insert("JWT_PUBLIC_KEY_PATH", both);
    })
    .await;
    let owner = old.tenant().await;
    let (new_token, _) = new.login(&owner.email, &owner.password).await;
    assert_ne!(
        jsonwebtoken::decode_header(&owner.access).unwrap().kid,
        jsonwebtoken::decode_header(&new_token).unwrap().kid
    );
    for app in [&old, &new] {
        assert_eq!(app.get("/api/auth/me", &owner.access).await.status(), 200);
        assert_eq!(app.get("/api/auth/me", &new_token).await.status(), 200);
        let jwks: Value = app
            .client
            .get(app.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    }
    new.cleanup().await;
    old.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}
