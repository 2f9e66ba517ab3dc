//! API keys: shown once, stored hashed, authenticate like a bearer token, revocable.

use catalytic_tests::TestApp;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn an_api_key_is_shown_once_stored_hashed_and_authenticates_until_revoked() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    let resp = app
        .post(
            "/api/api-keys",
            &owner.access,
            json!({"name": "ci", "role": "viewer"}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let b: Value = resp.json().await.unwrap();
    let key = b["key"].as_str().unwrap().to_owned();
    let id = b["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("cat_") && key.len() > 30);
    assert!(key.starts_with(b["prefix"].as_str().unwrap()));

    let list: Value = app
        .get("/api/api-keys", &owner.access)
        .await
        .json()
        .await
        .unwrap();
    let listed = &list["items"][0];
    assert_eq!(listed["name"], "ci");
    assert!(listed.get("key").is_none(), "listing never shows the key");
    assert!(!list.to_string().contains(&key));
    // Only the hash is stored.
    let hits = catalytic_db::provision::execute_raw(
        &app.db.url,
        &format!("SELECT 1 FROM api_keys WHERE key_hash = '{key}' OR prefix = '{key}'"),
    )
    .await
    .unwrap();
    assert_eq!(hits, 0);

    let me = app
        .client
        .get(app.url("/api/auth/me"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["role"], "viewer");
    assert_eq!(me["tenant"]["id"], owner.tenant_id.as_str());
    assert_eq!(me["api_key_id"], id.as_str());
    assert!(me["user"].is_null());

    // A viewer key cannot create keys.
    let resp = app
        .client
        .post(app.url("/api/api-keys"))
        .header("x-api-key", &key)
        .json(&json!({"name": "escalate", "role": "owner"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    let resp = app
        .client
        .delete(app.url(&format!("/api/api-keys/{id}")))
        .bearer_auth(&owner.access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let me = app
        .client
        .get(app.url("/api/auth/me"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
    let logs: Value = app
        .get("/api/audit-logs", &owner.access)
        .await
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = logs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"api_key.created") && actions.contains(&"api_key.revoked"),
        "{actions:?}"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_keys_and_unknown_keys_are_refused() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    let resp = app
        .post(
            "/api/api-keys",
            &owner.access,
            json!({"name": "past", "expires_at": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(resp.status(), 422);
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339();
    let b: Value = app
        .post(
            "/api/api-keys",
            &owner.access,
            json!({"name": "soon", "expires_at": soon}),
        )
        .await
        .json()
        .await
        .unwrap();
    let key = b["key"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    for k in [key.as_str(), "cat_doesnotexist", "nonsense"] {
        let resp = app
            .client
            .get(app.url("/api/auth/me"))
            .header("x-api-key", k)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{k}");
    }
    app.cleanup().await;
}
