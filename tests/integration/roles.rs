//! The role table, enforced: every authenticated operation called by every role.

use catalytic_api::auth::roles::RULES;
use catalytic_db::users::Role;
use catalytic_tests::stripe::StripeEmulator;
use catalytic_tests::{Owner, TestApp};
use serde_json::{Value, json};

/// Calls `operation_id` as `token`, preparing whatever target it needs with `owner`.
async fn call(
    app: &TestApp,
    stripe: &StripeEmulator,
    owner: &Owner,
    op: &str,
    token: &str,
) -> reqwest::StatusCode {
    let c = &app.client;
    match op {
        "auth_me" => app.get("/api/auth/me", token).await.status(),
        "ping" => app.get("/api/ping", token).await.status(),
        "auth_logout" => app
            .post("/api/auth/logout", token, json!({}))
            .await
            .status(),
        "users_list" => app.get("/api/users", token).await.status(),
        "users_create" => app
            .post(
                "/api/users",
                token,
                json!({"email": format!("{}@example.com", uuid::Uuid::new_v4()), "first_name": "R",
                       "last_name": "T", "role": "viewer"}),
            )
            .await
            .status(),
        "users_update" => {
            let (target, _) = app.user_with_role(owner, "viewer").await;
            c.patch(app.url(&format!("/api/users/{target}")))
                .bearer_auth(token)
                .json(&json!({"is_active": true}))
                .send()
                .await
                .unwrap()
                .status()
        }
        "users_delete" => {
            let (target, _) = app.user_with_role(owner, "viewer").await;
            c.delete(app.url(&format!("/api/users/{target}")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
        "api_keys_create" => app
            .post(
                "/api/api-keys",
                token,
                json!({"name": "k", "role": "viewer"}),
            )
            .await
            .status(),
        "api_keys_list" => app.get("/api/api-keys", token).await.status(),
        "api_keys_delete" => {
            let b: Value = app
                .post(
                    "/api/api-keys",
                    &owner.access,
                    json!({"name": "victim", "role": "viewer"}),
                )
                .await
                .json()
                .await
                .unwrap();
            c.delete(app.url(&format!("/api/api-keys/{}", b["id"].as_str().unwrap())))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
        "audit_logs_list" => app.get("/api/audit-logs", token).await.status(),
        "usage_series" => app.get("/api/usage", token).await.status(),
        "usage_summary" => app.get("/api/usage/summary", token).await.status(),
        "lattices_create" => app
            .post(
                "/api/lattices",
                token,
                json!({"name": uuid::Uuid::new_v4().to_string(), "dimensions": 2, "size": 4}),
            )
            .await
            .status(),
        "lattices_list" => app.get("/api/lattices", token).await.status(),
        "lattices_get" => {
            let l = owner_lattice(app, owner).await;
            app.get(&format!("/api/lattices/{l}"), token).await.status()
        }
        "lattices_delete" => {
            let l = owner_lattice(app, owner).await;
            c.delete(app.url(&format!("/api/lattices/{l}")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
        "jobs_submit" => {
            let l = owner_lattice(app, owner).await;
            app.post(
                &format!("/api/lattices/{l}/jobs"),
                token,
                json!({"operation": "statistics"}),
            )
            .await
            .status()
        }
        "jobs_get" => {
            let j = owner_job(app, owner).await;
            app.get(&format!("/api/jobs/{j}"), token).await.status()
        }
        "jobs_list" => app.get("/api/jobs", token).await.status(),
        "jobs_cancel" => {
            let j = owner_job(app, owner).await;
            c.delete(app.url(&format!("/api/jobs/{j}")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
        // Without a worker the synchronous endpoints answer 202 after their bound, which
        // makes this test slow; a lattice of another tenant's id would be 404. Use an
        // unknown lattice: allowed roles get 404, forbidden ones 403 (checked first).
        "lattices_path" => app
            .post(
                "/api/lattices/path",
                token,
                json!({"lattice_id": uuid::Uuid::new_v4(), "start": [0, 0], "end": [1, 1]}),
            )
            .await
            .status(),
        "lattices_transform" => app
            .post(
                &format!("/api/lattices/{}/transform", uuid::Uuid::new_v4()),
                token,
                json!({"key": "k"}),
            )
            .await
            .status(),
        "email_send" => app
            .post(
                "/api/email/send",
                token,
                json!({"to": owner.email, "subject": "Roles", "html": "<p>r</p>", "text": "r"}),
            )
            .await
            .status(),
        "email_status" => app.get("/api/email/send", token).await.status(),
        "email_get" => {
            let pool = app.pool();
            let mut conn = pool.get().await.unwrap();
            let emails =
                catalytic_db::outbox::list_for_tenant(&mut conn, owner.tenant_id.parse().unwrap())
                    .await
                    .unwrap();
            app.get(&format!("/api/email/{}", emails[0].id), token)
                .await
                .status()
        }
        "stripe_checkout" => app
            .post(
                "/api/stripe/checkout",
                token,
                json!({"plan_code": "starter", "interval": "month"}),
            )
            .await
            .status(),
        "stripe_portal" => app
            .post("/api/stripe/portal", token, json!({}))
            .await
            .status(),
        "subscriptions_status" => app.get("/api/subscriptions/status", token).await.status(),
        "subscriptions_update" => {
            // Enterprise throughout: the users this test creates need its unlimited seats.
            crate::billing::live_subscription(app, stripe, owner, "enterprise").await;
            c.put(app.url("/api/subscriptions/update"))
                .bearer_auth(token)
                .json(&json!({"plan_code": "enterprise", "interval": "year"}))
                .send()
                .await
                .unwrap()
                .status()
        }
        "subscriptions_cancel" => {
            crate::billing::live_subscription(app, stripe, owner, "enterprise").await;
            c.delete(app.url("/api/subscriptions/cancel"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
        "subscriptions_customer_info" => c
            .put(app.url("/api/subscriptions/customer-info"))
            .bearer_auth(token)
            .json(&json!({"name": "Roles Ltd", "address": {"city": "Cambridge", "country": "GB"}}))
            .send()
            .await
            .unwrap()
            .status(),
        "invoices_list" => app.get("/api/invoices", token).await.status(),
        "subscriptions_set_limits" => c
            .put(app.url("/api/subscriptions/limits"))
            .bearer_auth(token)
            .json(&json!({"tenant_id": owner.tenant_id, "overrides": {"max_lattices": 100}}))
            .send()
            .await
            .unwrap()
            .status(),
        "subscriptions_tenant_status" => app
            .get(
                &format!("/api/subscriptions/status/{}", owner.tenant_id),
                token,
            )
            .await
            .status(),
        other => panic!("the role test has no call for {other}: add one"),
    }
}

async fn owner_lattice(app: &TestApp, owner: &Owner) -> String {
    let b: Value = app
        .post(
            "/api/lattices",
            &owner.access,
            json!({"name": uuid::Uuid::new_v4().to_string(), "dimensions": 2, "size": 4}),
        )
        .await
        .json()
        .await
        .unwrap();
    b["id"].as_str().unwrap().to_owned()
}

async fn owner_job(app: &TestApp, owner: &Owner) -> String {
    let l = owner_lattice(app, owner).await;
    let b: Value = app
        .post(
            &format!("/api/lattices/{l}/jobs"),
            &owner.access,
            json!({"operation": "statistics"}),
        )
        .await
        .json()
        .await
        .unwrap();
    b["job_id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_operation_answers_403_exactly_to_the_roles_below_its_minimum() {
    let stripe = StripeEmulator::start(None, "whsec_roles");
    let app = TestApp::spawn_with(|env| stripe.api_env(env)).await;
    crate::billing::sync_plans(&app, &stripe).await;
    let owner = app.tenant().await;
    app.set_plan(&owner.tenant_id, "enterprise").await;
    let mut failures = Vec::new();
    for rule in RULES {
        for role in Role::ALL {
            // A fresh user per call: logout and role changes must not leak between calls.
            let (_, token) = app.user_with_role(&owner, role.as_str()).await;
            let status = call(&app, &stripe, &owner, rule.operation_id, &token).await;
            let allowed = !rule.platform_admin && role.at_least(rule.min_role);
            let ok = if allowed {
                status != 403 && (status.is_success() || status == 404)
            } else {
                status == 403 || (rule.platform_admin && status == 404)
            };
            if !ok {
                failures.push(format!("{} as {}: {status}", rule.operation_id, role));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "role table violated:\n{}",
        failures.join("\n")
    );
    app.cleanup().await;
}

#[test]
fn the_readme_prints_the_role_table_the_code_enforces() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let table = catalytic_api::auth::roles::markdown_table();
    assert!(
        readme.contains(table.trim()),
        "README role table drifted; regenerate with `cargo run -q -p catalytic-api -- roles`"
    );
}
