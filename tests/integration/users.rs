//! Users of a tenant: invitations, role changes, the last owner, the plan's user limit.

use catalytic_tests::TestApp;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn owners_invite_users_who_receive_an_invitation_email() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    app.set_plan(&owner.tenant_id, "professional").await;
    let resp = app
        .post(
            "/api/users",
            &owner.access,
            json!({"email": "New.Member@example.com", "first_name": "New", "last_name": "Member", "role": "member"}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["email"], "new.member@example.com");
    assert_eq!(b["role"], "member");
    let pool = app.pool();
    let mut conn = pool.get().await.unwrap();
    let mails = catalytic_db::outbox::list_for_tenant(&mut conn, owner.tenant_id.parse().unwrap())
        .await
        .unwrap();
    let invite = mails
        .iter()
        .find(|m| m.template == "invitation")
        .expect("invitation");
    assert_eq!(invite.to_address, "new.member@example.com");
    assert!(
        invite.data["set_password_url"]
            .as_str()
            .unwrap()
            .contains("token=")
    );
    let list: Value = app
        .get("/api/users", &owner.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    drop(conn);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_plan_user_limit_applies() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await; // Free: 1 user
    let resp = app
        .post(
            "/api/users",
            &owner.access,
            json!({"email": "second@example.com", "first_name": "S", "last_name": "U", "role": "member"}),
        )
        .await;
    assert_eq!(resp.status(), 403);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["type"], "plan_limit_exceeded");
    assert_eq!(b["limit"], 1);
    app.set_plan(&owner.tenant_id, "starter").await; // 3 users
    for i in 0..2 {
        let resp = app
            .post(
                "/api/users",
                &owner.access,
                json!({"email": format!("u{i}@example.com"), "first_name": "S", "last_name": "U", "role": "viewer"}),
            )
            .await;
        assert_eq!(resp.status(), 201);
    }
    let resp = app
        .post(
            "/api/users",
            &owner.access,
            json!({"email": "u9@example.com", "first_name": "S", "last_name": "U", "role": "viewer"}),
        )
        .await;
    assert_eq!(resp.status(), 403);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_always_keeps_one_active_owner() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    app.set_plan(&owner.tenant_id, "professional").await;
    let patch = |id: String, body: Value| {
        let app = &app;
        let token = owner.access.clone();
        async move {
            app.client
                .patch(app.url(&format!("/api/users/{id}")))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let resp = patch(owner.user_id.clone(), json!({"role": "admin"})).await;
    assert_eq!(resp.status(), 409);
    let resp = patch(owner.user_id.clone(), json!({"is_active": false})).await;
    assert_eq!(resp.status(), 409);
    let resp = app
        .client
        .delete(app.url(&format!("/api/users/{}", owner.user_id)))
        .bearer_auth(&owner.access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);

    // With a second owner, the first may step down.
    let (second, second_token) = app.user_with_role(&owner, "owner").await;
    let resp = patch(owner.user_id.clone(), json!({"role": "admin"})).await;
    assert_eq!(resp.status(), 200);
    // The demoted owner's old token is stale at once.
    assert_eq!(app.get("/api/auth/me", &owner.access).await.status(), 401);
    let resp = app
        .client
        .patch(app.url(&format!("/api/users/{second}")))
        .bearer_auth(&second_token)
        .json(&json!({"role": "member"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409, "the last owner cannot demote themself");
    let logs: Value = app
        .get("/api/audit-logs?action=user.role_changed", &second_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(logs["items"].as_array().unwrap().len(), 1);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admins_cannot_grant_or_touch_the_owner_role_and_deleted_users_lose_access() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    app.set_plan(&owner.tenant_id, "professional").await;
    let (_, admin) = app.user_with_role(&owner, "admin").await;
    let resp = app
        .post(
            "/api/users",
            &admin,
            json!({"email": "x@example.com", "first_name": "X", "last_name": "Y", "role": "owner"}),
        )
        .await;
    assert_eq!(resp.status(), 403);
    let resp = app
        .client
        .delete(app.url(&format!("/api/users/{}", owner.user_id)))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let (member_id, member) = app.user_with_role(&owner, "member").await;
    let resp = app
        .client
        .delete(app.url(&format!("/api/users/{member_id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(app.get("/api/auth/me", &member).await.status(), 401);
    app.cleanup().await;
}
