//! Tenant isolation: every endpoint that takes an id answers 404 to another tenant's ids.

use catalytic_tests::TestApp;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn every_endpoint_taking_an_id_answers_404_to_another_tenants_ids() {
    let app = TestApp::spawn().await;
    let a = app.tenant().await;
    let b = app.tenant().await;
    app.set_plan(&a.tenant_id, "enterprise").await;
    app.set_plan(&b.tenant_id, "enterprise").await;
    let (b_user, _) = app.user_with_role(&b, "member").await;
    let key: Value = app
        .post("/api/api-keys", &b.access, json!({"name": "b-key"}))
        .await
        .json()
        .await
        .unwrap();
    let b_key = key["id"].as_str().unwrap().to_owned();

    let c = &app.client;
    let probes: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "PATCH /api/users/{id}",
            c.patch(app.url(&format!("/api/users/{b_user}")))
                .json(&json!({"role": "viewer"})),
        ),
        (
            "DELETE /api/users/{id}",
            c.delete(app.url(&format!("/api/users/{b_user}"))),
        ),
        (
            "PATCH /api/users/{owner}",
            c.patch(app.url(&format!("/api/users/{}", b.user_id)))
                .json(&json!({"is_active": false})),
        ),
        (
            "DELETE /api/api-keys/{id}",
            c.delete(app.url(&format!("/api/api-keys/{b_key}"))),
        ),
    ];
    for (name, req) in probes {
        let resp = req.bearer_auth(&a.access).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{name} with another tenant's id");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["type"], "not_found", "{name}");
    }
    // And nothing changed on B's side.
    let users: Value = app.get("/api/users", &b.access).await.json().await.unwrap();
    assert_eq!(users["items"].as_array().unwrap().len(), 2);
    assert!(
        users["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["is_active"] == true)
    );
    let keys: Value = app
        .get("/api/api-keys", &b.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(keys["items"].as_array().unwrap().len(), 1);
    // Listings show only one's own tenant.
    let users: Value = app.get("/api/users", &a.access).await.json().await.unwrap();
    assert!(users.to_string().contains(&a.email) && !users.to_string().contains(&b.email));
    app.cleanup().await;
}
