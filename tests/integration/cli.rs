//! The operator CLI: tenants list, set-plan, suspend/resume, platform administrators.

use catalytic_tests::TestApp;
use catalytic_tests::api_bin;
use serde_json::{Value, json};

fn cli(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(api_bin())
        .args(args)
        .env_clear()
        .env("DATABASE_URL", &app.db.url)
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_list_tenants_change_plans_and_suspend_with_audit_entries() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    let (ok, out, _) = cli(&app, &["tenants", "list"]);
    assert!(ok);
    assert!(out.contains(&owner.slug) && out.contains("free"), "{out}");

    let (ok, out, err) = cli(&app, &["tenants", "set-plan", &owner.slug, "professional"]);
    assert!(ok, "{err}");
    assert!(out.contains("professional"));
    let me: Value = app
        .get("/api/auth/me", &owner.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        me["tenant"]["plan_code"], "professional",
        "the new plan applies at once"
    );
    let (ok, _, err) = cli(&app, &["tenants", "set-plan", &owner.slug, "platinum"]);
    assert!(!ok && err.contains("no plan"), "{err}");
    let (ok, _, err) = cli(&app, &["tenants", "set-plan", "no-such-tenant", "free"]);
    assert!(!ok && err.contains("no tenant"), "{err}");

    let (ok, _, err) = cli(&app, &["tenants", "suspend", &owner.tenant_id]);
    assert!(ok, "{err}");
    let resp = app
        .post(
            "/api/lattices",
            &owner.access,
            json!({"name": "x", "dimensions": 2, "size": 4}),
        )
        .await;
    assert_eq!(resp.status(), 402);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["type"], "account_suspended");
    assert_eq!(
        app.get("/api/lattices", &owner.access).await.status(),
        200,
        "reads still work"
    );
    let (ok, _, _) = cli(&app, &["tenants", "resume", &owner.slug]);
    assert!(ok);
    let resp = app
        .post(
            "/api/lattices",
            &owner.access,
            json!({"name": "x", "dimensions": 2, "size": 4}),
        )
        .await;
    assert_eq!(resp.status(), 201);

    let (ok, out, err) = cli(&app, &["users", "set-platform-admin", &owner.email, "true"]);
    assert!(ok, "{err}");
    assert!(out.contains("true"));
    let logs: Value = app
        .get("/api/audit-logs?limit=100", &owner.access)
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
    for a in [
        "plan.changed",
        "tenant.suspended",
        "tenant.resumed",
        "user.platform_admin_changed",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    app.cleanup().await;
}
