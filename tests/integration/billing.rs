//! Billing end to end: the real API, a real worker process on the `webhooks` queue, and
//! the Stripe emulator delivering signed webhooks.

use std::time::Duration;

use catalytic_db::ids::TenantId;
use catalytic_db::plans::{Plan, Subscription};
use catalytic_db::stripe_events::StripeEvent;
use catalytic_tests::api_bin;
use catalytic_tests::stripe::{Completion, StripeEmulator, sign_header};
use catalytic_tests::{Owner, TestApp, Worker, eventually};
use rand::seq::SliceRandom;
use serde_json::{Value, json};
use stripe::{Client, ClientBuilder};
use stripe_billing::subscription::{
    CancelSubscription, UpdateSubscription, UpdateSubscriptionItems,
    UpdateSubscriptionProrationBehavior,
};
use stripe_core::customer::UpdateCustomer;

const WEBHOOK_SECRET: &str = "whsec_billing_tests";
const WAIT: Duration = Duration::from_secs(40);

/// An API wired to its own Stripe emulator, the plans synced to it, webhooks delivered to
/// the API, and (optionally) a worker on the `webhooks` queue.
pub struct Billing {
    pub app: TestApp,
    pub stripe: StripeEmulator,
    worker: Option<Worker>,
    grace_secs: u64,
}

impl Billing {
    pub async fn start(grace_secs: u64, with_worker: bool) -> Self {
        let stripe = StripeEmulator::start(None, WEBHOOK_SECRET);
        let app = TestApp::spawn_with(|env| {
            stripe.api_env(env);
            env.insert("BILLING_GRACE_SECS", grace_secs.to_string());
        })
        .await;
        stripe
            .set_webhook(Some(&app.url("/api/stripe/webhooks")), None)
            .await
            .unwrap();
        sync_plans(&app, &stripe).await;
        let mut b = Self {
            app,
            stripe,
            worker: None,
            grace_secs,
        };
        if with_worker {
            b.worker = Some(b.spawn_worker());
        }
        b
    }

    pub fn spawn_worker(&self) -> Worker {
        let mut env = self.app.worker_env();
        env.extend(self.stripe.worker_env());
        env.push(("BILLING_GRACE_SECS".into(), self.grace_secs.to_string()));
        Worker::spawn(&env, "webhooks", &[])
    }

    pub fn client(&self) -> Client {
        ClientBuilder::new(&self.stripe.secret_key)
            .url(&self.stripe.base_url)
            .build()
            .unwrap()
    }

    /// Waits until the emulator delivered every event and the worker settled them all.
    pub async fn settle(&self) {
        self.stripe.wait_for_deliveries(WAIT).await.unwrap();
        self.wait_settled().await;
    }

    /// Waits until no stored event is pending.
    pub async fn wait_settled(&self) {
        eventually(WAIT, "every stripe event settled", || async {
            let pending: Vec<StripeEvent> = events(&self.app)
                .await
                .into_iter()
                .filter(|e| e.status == "pending")
                .collect();
            pending.is_empty().then_some(())
        })
        .await;
    }

    /// Starts a Checkout for `plan` as `owner` through the API; returns the session id.
    pub async fn checkout(&self, owner: &Owner, plan: &str, interval: &str) -> String {
        let resp = self
            .app
            .post(
                "/api/stripe/checkout",
                &owner.access,
                json!({"plan_code": plan, "interval": interval}),
            )
            .await;
        assert_eq!(
            resp.status(),
            200,
            "checkout: {}",
            resp.text().await.unwrap_or_default()
        );
        let b: Value = resp.json().await.unwrap();
        assert!(b["url"].as_str().unwrap().contains("/checkout/"));
        b["session_id"].as_str().unwrap().to_owned()
    }

    /// Checkout completed by the customer; returns the subscription id.
    pub async fn subscribe(&self, owner: &Owner, plan: &str, completion: Completion) -> String {
        let session = self.checkout(owner, plan, "month").await;
        let done = self
            .stripe
            .complete_checkout(&session, completion)
            .await
            .unwrap();
        done.subscription_id().unwrap().to_owned()
    }

    pub async fn cleanup(mut self) {
        if let Some(w) = self.worker.take() {
            w.kill_hard().await;
        }
        self.app.cleanup().await;
    }
}

/// Syncs the plans to the emulator as `catalytic-api stripe-sync` does.
pub async fn sync_plans(app: &TestApp, stripe: &StripeEmulator) {
    let client = catalytic_jobs::billing::Stripe::new(&stripe.settings()).unwrap();
    catalytic_jobs::billing::catalog::sync(&client, &app.pool())
        .await
        .unwrap();
}

/// Gives `owner`'s tenant a live subscription to `plan` (reusing one it has), applied at
/// once without a worker; returns its id.
pub async fn live_subscription(
    app: &TestApp,
    stripe: &StripeEmulator,
    owner: &Owner,
    plan: &str,
) -> String {
    let (sub, _) = subscription(app, &owner.tenant_id).await;
    if let Some(id) = sub
        .stripe_subscription_id
        .filter(|_| sub.status == "active")
    {
        return id;
    }
    let resp = app
        .post(
            "/api/stripe/checkout",
            &owner.access,
            json!({"plan_code": plan, "interval": "month"}),
        )
        .await;
    assert_eq!(
        resp.status(),
        200,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    let b: Value = resp.json().await.unwrap();
    let done = stripe
        .complete_checkout(b["session_id"].as_str().unwrap(), Completion::default())
        .await
        .unwrap();
    let id = done.subscription_id().unwrap().to_owned();
    let client = catalytic_jobs::billing::Stripe::new(&stripe.settings()).unwrap();
    catalytic_jobs::billing::subscriptions::refresh(
        &client,
        &app.pool(),
        owner.tenant_id.parse().unwrap(),
        &id,
    )
    .await
    .unwrap();
    id
}

fn tenant(id: &str) -> TenantId {
    id.parse().unwrap()
}

pub async fn subscription(app: &TestApp, tenant_id: &str) -> (Subscription, Plan) {
    let pool = app.pool();
    let mut conn = pool.get().await.unwrap();
    catalytic_db::plans::for_tenant(&mut conn, tenant(tenant_id))
        .await
        .unwrap()
}

async fn events(app: &TestApp) -> Vec<StripeEvent> {
    let pool = app.pool();
    let mut conn = pool.get().await.unwrap();
    catalytic_db::stripe_events::list(&mut conn).await.unwrap()
}

async fn outbox(
    app: &TestApp,
    tenant_id: &str,
    template: &str,
) -> Vec<catalytic_db::outbox::OutboxEmail> {
    let pool = app.pool();
    let mut conn = pool.get().await.unwrap();
    catalytic_db::outbox::list_for_tenant(&mut conn, tenant(tenant_id))
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.template == template)
        .collect()
}

async fn invoices(app: &TestApp, tenant_id: &str) -> Vec<catalytic_db::invoices::Invoice> {
    let pool = app.pool();
    let mut conn = pool.get().await.unwrap();
    catalytic_db::invoices::list(&mut conn, tenant(tenant_id), 100, 0)
        .await
        .unwrap()
        .0
}

async fn audit_actions(app: &TestApp, tenant_id: &str) -> Vec<String> {
    let pool = app.pool();
    let mut conn = pool.get().await.unwrap();
    catalytic_db::audit::list(&mut conn, tenant(tenant_id), None, 500, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect()
}

async fn tenant_row(app: &TestApp, tenant_id: &str) -> catalytic_db::tenants::Tenant {
    let pool = app.pool();
    let mut conn = pool.get().await.unwrap();
    catalytic_db::tenants::get(&mut conn, tenant(tenant_id))
        .await
        .unwrap()
}

async fn customer_row(
    app: &TestApp,
    tenant_id: &str,
) -> Option<catalytic_db::stripe_customers::StripeCustomer> {
    let pool = app.pool();
    let mut conn = pool.get().await.unwrap();
    catalytic_db::stripe_customers::for_tenant(&mut conn, tenant(tenant_id))
        .await
        .unwrap()
}

async fn stripe_get(stripe: &StripeEmulator, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{}{path}", stripe.base_url))
        .bearer_auth(&stripe.secret_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn post_event(app: &TestApp, body: &str, signature: Option<String>) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/api/stripe/webhooks"))
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_owned());
    if let Some(sig) = signature {
        req = req.header("stripe-signature", sig);
    }
    req.send().await.unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test(flavor = "multi_thread")]
async fn stripe_sync_creates_products_and_prices_once_and_a_second_run_changes_nothing() {
    let stripe = StripeEmulator::start(None, WEBHOOK_SECRET);
    let app = TestApp::spawn_with(|env| stripe.api_env(env)).await;
    let run = || {
        let out = std::process::Command::new(api_bin())
            .arg("stripe-sync")
            .env_clear()
            .env("DATABASE_URL", &app.db.url)
            .env("STRIPE_SECRET_KEY", &stripe.secret_key)
            .env("STRIPE_API_BASE", &stripe.base_url)
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let plans = || async {
        let pool = app.pool();
        let mut conn = pool.get().await.unwrap();
        catalytic_db::plans::list(&mut conn).await.unwrap()
    };

    let first = run();
    assert!(
        first.contains("created product catalytic_starter"),
        "{first}"
    );
    let after_first: Vec<_> = plans()
        .await
        .into_iter()
        .map(|p| {
            (
                p.code,
                p.stripe_product_id,
                p.stripe_price_monthly_id,
                p.stripe_price_yearly_id,
            )
        })
        .collect();
    for (code, product, month, year) in &after_first {
        if code == "free" {
            assert_eq!(
                (product, month, year),
                (&None, &None, &None),
                "Free has no price"
            );
        } else {
            assert_eq!(
                product.as_deref(),
                Some(format!("catalytic_{code}").as_str())
            );
            assert!(month.as_deref().unwrap().starts_with("price_"));
            assert!(year.as_deref().unwrap().starts_with("price_"));
        }
    }
    let second = run();
    assert_eq!(second.matches("(unchanged)").count(), 3, "{second}");
    let after_second: Vec<_> = plans()
        .await
        .into_iter()
        .map(|p| {
            (
                p.code,
                p.stripe_product_id,
                p.stripe_price_monthly_id,
                p.stripe_price_yearly_id,
            )
        })
        .collect();
    assert_eq!(after_first, after_second, "same ids");
    let products = stripe_get(&stripe, "/v1/products?limit=100").await;
    assert_eq!(products["data"].as_array().unwrap().len(), 3);
    let prices = stripe_get(&stripe, "/v1/prices?limit=100").await;
    assert_eq!(prices["data"].as_array().unwrap().len(), 6);
    let starter = stripe_get(&stripe, "/v1/prices?lookup_keys[]=catalytic_starter_year").await;
    assert_eq!(starter["data"][0]["unit_amount"], 29000);
    assert_eq!(starter["data"][0]["recurring"]["interval"], "year");

    // The public configuration lists the plans with their prices.
    let config: Value = app
        .client
        .get(app.url("/api/stripe/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["billing_enabled"], true);
    assert_eq!(
        config["publishable_key"],
        catalytic_tests::stripe::PUBLISHABLE_KEY
    );
    let pro = config["plans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "professional")
        .unwrap();
    assert_eq!(pro["monthly"]["amount_cents"], 9900);
    assert!(
        pro["yearly"]["price_id"]
            .as_str()
            .unwrap()
            .starts_with("price_")
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn billing_answers_503_without_a_stripe_key_and_the_config_says_so() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await;
    let resp = app
        .post(
            "/api/stripe/checkout",
            &owner.access,
            json!({"plan_code": "starter", "interval": "month"}),
        )
        .await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "service_unavailable");
    assert!(
        !body["detail"].as_str().unwrap().contains("STRIPE"),
        "no internals: {body}"
    );
    let config: Value = app
        .client
        .get(app.url("/api/stripe/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["billing_enabled"], false);
    assert_eq!(config["plans"].as_array().unwrap().len(), 4);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn checkout_creates_the_tenants_stripe_customer_once_even_when_raced() {
    let b = Billing::start(3600, false).await;
    let owner = b.app.tenant().await;
    let first = b.checkout(&owner, "starter", "month").await;
    let second = b.checkout(&owner, "professional", "year").await;
    assert_ne!(first, second);
    let racer = b.app.tenant().await;
    let (x, y) = tokio::join!(
        b.checkout(&racer, "starter", "month"),
        b.checkout(&racer, "starter", "year")
    );
    assert_ne!(x, y);

    for o in [&owner, &racer] {
        let pool = b.app.pool();
        let mut conn = pool.get().await.unwrap();
        assert_eq!(
            catalytic_db::stripe_customers::count_for_tenant(&mut conn, tenant(&o.tenant_id))
                .await
                .unwrap(),
            1
        );
        let customers = stripe_get(&b.stripe, "/v1/customers?limit=100").await;
        let theirs: Vec<&Value> = customers["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["metadata"]["tenant_id"] == json!(o.tenant_id))
            .collect();
        assert_eq!(
            theirs.len(),
            1,
            "one Stripe customer per tenant: {theirs:?}"
        );
        assert_eq!(theirs[0]["email"], json!(o.email));
        let row = customer_row(&b.app, &o.tenant_id).await.unwrap();
        assert_eq!(row.stripe_customer_id, theirs[0]["id"].as_str().unwrap());
    }

    // The session and the subscription it creates carry the tenant.
    let session = stripe_get(&b.stripe, &format!("/v1/checkout/sessions/{first}")).await;
    assert_eq!(session["metadata"]["tenant_id"], json!(owner.tenant_id));
    assert_eq!(session["mode"], "subscription");
    let done = b
        .stripe
        .complete_checkout(&first, Completion::default())
        .await
        .unwrap();
    assert_eq!(
        done.subscription.as_ref().unwrap()["metadata"]["tenant_id"],
        json!(owner.tenant_id)
    );

    // Only owners and admins, only paid plans.
    b.app.set_plan(&owner.tenant_id, "starter").await;
    let (_, member) = b.app.user_with_role(&owner, "member").await;
    let resp = b
        .app
        .post(
            "/api/stripe/checkout",
            &member,
            json!({"plan_code": "starter", "interval": "month"}),
        )
        .await;
    assert_eq!(resp.status(), 403);
    for plan in ["free", "platinum"] {
        let resp = b
            .app
            .post(
                "/api/stripe/checkout",
                &owner.access,
                json!({"plan_code": plan, "interval": "month"}),
            )
            .await;
        assert_eq!(resp.status(), 422, "{plan}");
    }
    let portal: Value = b
        .app
        .post("/api/stripe/portal", &owner.access, json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        portal["url"].as_str().unwrap().contains("/billing_portal/"),
        "{portal}"
    );

    // Billing details go to the Stripe customer and its row.
    let resp = b
        .app
        .client
        .put(b.app.url("/api/subscriptions/customer-info"))
        .bearer_auth(&owner.access)
        .json(&json!({"name": "Acme Ltd", "email": "Billing@Acme.example",
                      "address": {"line1": "1 Lattice Way", "city": "Cambridge", "country": "gb"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    let row = customer_row(&b.app, &owner.tenant_id).await.unwrap();
    assert_eq!(row.name.as_deref(), Some("Acme Ltd"));
    assert_eq!(row.email.as_deref(), Some("billing@acme.example"));
    assert_eq!(row.address.as_ref().unwrap()["country"], "GB");
    let theirs = stripe_get(
        &b.stripe,
        &format!("/v1/customers/{}", row.stripe_customer_id),
    )
    .await;
    assert_eq!(theirs["address"]["city"], "Cambridge");
    let resp = b
        .app
        .client
        .put(b.app.url("/api/subscriptions/customer-info"))
        .bearer_auth(&owner.access)
        .json(&json!({"email": "not-an-email", "address": {"country": "Britain"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    b.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn each_event_type_reconciles_into_rows_and_emails_from_the_current_stripe_objects() {
    let b = Billing::start(3600, true).await;
    let app = &b.app;
    let owner = app.tenant().await;
    let client = b.client();

    // checkout.session.completed, customer.subscription.created, invoice.payment_succeeded.
    let sub_id = b.subscribe(&owner, "starter", Completion::default()).await;
    b.settle().await;
    let (sub, plan) = subscription(app, &owner.tenant_id).await;
    assert_eq!(plan.code, "starter");
    assert_eq!(sub.status, "active");
    assert_eq!(sub.billing_interval.as_deref(), Some("month"));
    assert_eq!(sub.stripe_subscription_id.as_deref(), Some(sub_id.as_str()));
    assert!(sub.current_period_end.unwrap() > sub.current_period_start.unwrap());
    assert!(sub.pending_plan_id.is_none());
    let stored = events(app).await;
    for t in [
        "checkout.session.completed",
        "customer.subscription.created",
        "invoice.payment_succeeded",
    ] {
        let e = stored
            .iter()
            .find(|e| e.event_type == t)
            .unwrap_or_else(|| panic!("no {t}"));
        assert_eq!(e.status, "processed", "{t}");
        assert!(e.processed_at.is_some());
    }
    let created = stored
        .iter()
        .find(|e| e.event_type == "invoice.created")
        .unwrap();
    assert_eq!(
        created.status, "ignored",
        "unknown types are stored and acknowledged"
    );
    let inv = invoices(app, &owner.tenant_id).await;
    assert_eq!(inv.len(), 1);
    assert_eq!(
        (inv[0].status.as_str(), inv[0].amount_paid_cents),
        ("paid", 2900)
    );
    assert_eq!(
        inv[0].stripe_subscription_id.as_deref(),
        Some(sub_id.as_str())
    );
    let paid = outbox(app, &owner.tenant_id, "payment_success").await;
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0].to_address, owner.email);
    assert_eq!(paid[0].data["amount_cents"], 2900);
    let actions = audit_actions(app, &owner.tenant_id).await;
    assert!(actions.contains(&"plan.changed".to_owned()), "{actions:?}");
    assert!(actions.contains(&"invoice.paid".to_owned()), "{actions:?}");
    let status: Value = app
        .get("/api/subscriptions/status", &owner.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["plan"]["code"], "starter");
    assert_eq!(status["limits"]["max_lattices"], 5);
    assert_eq!(status["usage"]["lattices"]["limit"], 5);
    let page: Value = app
        .get("/api/invoices?limit=10", &owner.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["status"], "paid");

    // customer.updated (a change made in the portal, not through Catalytic).
    let customer = customer_row(app, &owner.tenant_id).await.unwrap();
    UpdateCustomer::new(customer.stripe_customer_id.as_str())
        .name("Acme Lattices Ltd")
        .send(&client)
        .await
        .unwrap();
    b.settle().await;
    let customer = customer_row(app, &owner.tenant_id).await.unwrap();
    assert_eq!(customer.name.as_deref(), Some("Acme Lattices Ltd"));

    // invoice.payment_failed: past due, once-only email.
    b.stripe.fail_payment(&sub_id).await.unwrap();
    b.settle().await;
    let (sub, plan) = subscription(app, &owner.tenant_id).await;
    assert_eq!(
        (sub.status.as_str(), plan.code.as_str()),
        ("past_due", "starter")
    );
    assert!(sub.past_due_since.is_some());
    let failed = outbox(app, &owner.tenant_id, "payment_failed").await;
    assert_eq!(failed.len(), 1);
    assert!(
        invoices(app, &owner.tenant_id)
            .await
            .iter()
            .any(|i| i.status == "open")
    );

    // Paid again.
    b.stripe.pay(&sub_id).await.unwrap();
    b.settle().await;
    let (sub, _) = subscription(app, &owner.tenant_id).await;
    assert_eq!(sub.status, "active");
    assert!(sub.past_due_since.is_none());
    assert!(
        invoices(app, &owner.tenant_id)
            .await
            .iter()
            .all(|i| i.status == "paid")
    );
    assert_eq!(
        outbox(app, &owner.tenant_id, "payment_success").await.len(),
        2
    );

    // customer.subscription.updated: cancellation scheduled in the portal.
    UpdateSubscription::new(sub_id.as_str())
        .cancel_at_period_end(true)
        .send(&client)
        .await
        .unwrap();
    b.settle().await;
    let (sub, plan) = subscription(app, &owner.tenant_id).await;
    assert!(sub.cancel_at_period_end);
    assert_eq!(plan.code, "starter", "the plan stays until the period ends");

    // customer.subscription.deleted: back to Free.
    CancelSubscription::new(sub_id.as_str())
        .send(&client)
        .await
        .unwrap();
    b.settle().await;
    let (sub, plan) = subscription(app, &owner.tenant_id).await;
    assert_eq!(
        (plan.code.as_str(), sub.status.as_str()),
        ("free", "canceled")
    );
    assert!(!sub.cancel_at_period_end);
    let actions = audit_actions(app, &owner.tenant_id).await;
    assert!(
        actions.contains(&"subscription.canceled".to_owned()),
        "{actions:?}"
    );
    let me: Value = app
        .get("/api/auth/me", &owner.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["tenant"]["plan_code"], "free", "Free's limits apply");

    // customer.subscription.trial_will_end: a trialing tenant hears about it once.
    let trial = app.tenant().await;
    let trial_sub = b
        .subscribe(
            &trial,
            "professional",
            Completion {
                trial_days: Some(14),
                ..Completion::default()
            },
        )
        .await;
    b.settle().await;
    let (sub, plan) = subscription(app, &trial.tenant_id).await;
    assert_eq!(
        (sub.status.as_str(), plan.code.as_str()),
        ("trialing", "professional")
    );
    assert!(sub.trial_end.is_some());
    b.stripe.trial_will_end(&trial_sub).await.unwrap();
    b.settle().await;
    let ending = outbox(app, &trial.tenant_id, "trial_ending").await;
    assert_eq!(ending.len(), 1);
    assert_eq!(ending[0].data["plan_name"], "Professional");
    assert!(
        outbox(app, &trial.tenant_id, "payment_success")
            .await
            .is_empty(),
        "a free trial pays nothing"
    );

    let failed: Vec<_> = events(app)
        .await
        .into_iter()
        .filter(|e| e.status == "failed")
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    b.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_stale_and_malformed_webhooks_are_refused_and_nothing_is_stored() {
    let b = Billing::start(3600, false).await;
    let app = &b.app;
    b.stripe.wait_for_deliveries(WAIT).await.unwrap();
    b.stripe.set_webhook(None, None).await.unwrap();
    let before = events(app).await.len();
    let owner = app.tenant().await;
    b.checkout(&owner, "starter", "month").await;
    let event = b
        .stripe
        .events_of_type("customer.created")
        .await
        .unwrap()
        .remove(0);
    let body = serde_json::to_string(&event).unwrap();

    let refused = [
        ("no signature", body.clone(), None),
        (
            "another secret",
            body.clone(),
            Some(sign_header("whsec_forged", &body, now())),
        ),
        (
            "stale",
            body.clone(),
            Some(sign_header(WEBHOOK_SECRET, &body, now() - 400)),
        ),
        (
            "from the future",
            body.clone(),
            Some(sign_header(WEBHOOK_SECRET, &body, now() + 400)),
        ),
        (
            "tampered",
            body.replace("cus_", "cus_x"),
            Some(sign_header(WEBHOOK_SECRET, &body, now())),
        ),
        (
            "garbage header",
            body.clone(),
            Some("t=abc,v1=zz".to_owned()),
        ),
        (
            "not json",
            "{not json".to_owned(),
            Some(sign_header(WEBHOOK_SECRET, "{not json", now())),
        ),
        (
            "not an event",
            "{\"id\":\"x\"}".to_owned(),
            Some(sign_header(WEBHOOK_SECRET, "{\"id\":\"x\"}", now())),
        ),
    ];
    for (what, payload, sig) in refused {
        let resp = post_event(app, &payload, sig).await;
        assert_eq!(resp.status(), 400, "{what}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["type"], "bad_request", "{what}");
    }
    assert_eq!(events(app).await.len(), before, "nothing stored");

    // Several v1 signatures: one valid is enough. Stored once; a duplicate does nothing.
    let t = now();
    let good = sign_header(WEBHOOK_SECRET, &body, t);
    let rotated = format!(
        "t={t},v1={},{}",
        "0".repeat(64),
        good.split_once(',').unwrap().1
    );
    let first: Value = post_event(app, &body, Some(rotated))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first, json!({"received": true, "duplicate": false}));
    let again = post_event(app, &body, Some(sign_header(WEBHOOK_SECRET, &body, now()))).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["duplicate"], true);
    let stored = events(app).await;
    assert_eq!(stored.len(), before + 1);
    let row = stored.last().unwrap();
    assert_eq!(row.stripe_event_id, event["id"].as_str().unwrap());
    assert_eq!(row.status, "ignored", "customer.created is not reconciled");
    assert_eq!(row.payload, event);
    b.cleanup().await;
}

/// What must agree between in-order and shuffled delivery.
async fn billing_state(app: &TestApp, tenant_id: &str) -> Value {
    let (sub, plan) = subscription(app, tenant_id).await;
    // Statuses only: prorated amounts depend on the second each story ran in.
    let mut inv: Vec<String> = invoices(app, tenant_id)
        .await
        .into_iter()
        .map(|i| i.status)
        .collect();
    inv.sort();
    let t = tenant_row(app, tenant_id).await;
    json!({
        "plan": plan.code,
        "status": sub.status,
        "interval": sub.billing_interval,
        "cancel_at_period_end": sub.cancel_at_period_end,
        "past_due": sub.past_due_since.is_some(),
        "has_subscription": sub.stripe_subscription_id.is_some(),
        "period_days": sub.current_period_end.zip(sub.current_period_start).map(|(e, s)| (e - s).num_days()),
        "invoices": inv,
        "tenant_status": t.status,
        "customer": customer_row(app, tenant_id).await.is_some(),
    })
}

/// The same life of a subscription: Starter, then Professional (prorated), a failed
/// payment, paid, cancellation scheduled.
async fn subscription_story(b: &Billing, owner: &Owner) {
    let client = b.client();
    let sub_id = b.subscribe(owner, "starter", Completion::default()).await;
    let pro_price = {
        let pool = b.app.pool();
        let mut conn = pool.get().await.unwrap();
        catalytic_db::plans::by_code(&mut conn, "professional")
            .await
            .unwrap()
            .stripe_price_monthly_id
            .unwrap()
    };
    let sub: Value = stripe_get(&b.stripe, &format!("/v1/subscriptions/{sub_id}")).await;
    UpdateSubscription::new(sub_id.as_str())
        .items(vec![UpdateSubscriptionItems {
            id: Some(sub["items"]["data"][0]["id"].as_str().unwrap().to_owned()),
            price: Some(pro_price),
            ..UpdateSubscriptionItems::new()
        }])
        .proration_behavior(UpdateSubscriptionProrationBehavior::CreateProrations)
        .send(&client)
        .await
        .unwrap();
    b.stripe.fail_payment(&sub_id).await.unwrap();
    b.stripe.pay(&sub_id).await.unwrap();
    UpdateSubscription::new(sub_id.as_str())
        .cancel_at_period_end(true)
        .send(&client)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn tripled_and_shuffled_deliveries_end_in_the_state_of_one_in_order_delivery() {
    let b = Billing::start(3600, true).await;
    let app = &b.app;

    // Tenant A: Stripe delivers each event once, in order.
    let in_order = app.tenant().await;
    subscription_story(&b, &in_order).await;
    b.settle().await;

    // Tenant B: the same story with delivery off; then every event three times, shuffled.
    let shuffled = app.tenant().await;
    b.stripe.set_webhook(None, None).await.unwrap();
    let before = b.stripe.events().await.unwrap().len();
    subscription_story(&b, &shuffled).await;
    let emitted: Vec<Value> = b.stripe.events().await.unwrap()[before..].to_vec();
    assert!(emitted.len() >= 8, "{}", emitted.len());
    let mut deliveries: Vec<&Value> = emitted.iter().chain(&emitted).chain(&emitted).collect();
    deliveries.shuffle(&mut rand::rng());
    for event in deliveries {
        let body = serde_json::to_string(event).unwrap();
        let resp = post_event(app, &body, Some(sign_header(WEBHOOK_SECRET, &body, now()))).await;
        assert_eq!(resp.status(), 200);
    }
    b.wait_settled().await;

    let a = billing_state(app, &in_order.tenant_id).await;
    let s = billing_state(app, &shuffled.tenant_id).await;
    assert_eq!(a, s, "in order: {a}\nshuffled: {s}");
    assert_eq!(a["plan"], "professional");
    assert_eq!(a["cancel_at_period_end"], true);
    assert_eq!(a["status"], "active");

    // Each event stored once however often it came, and its email sent once.
    let stored = events(app).await;
    for e in &emitted {
        let id = e["id"].as_str().unwrap();
        assert_eq!(
            stored.iter().filter(|s| s.stripe_event_id == id).count(),
            1,
            "{id}"
        );
    }
    assert_eq!(
        outbox(app, &shuffled.tenant_id, "payment_success")
            .await
            .len(),
        outbox(app, &in_order.tenant_id, "payment_success")
            .await
            .len(),
    );
    b.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn past_due_beyond_the_grace_period_suspends_writes_and_a_payment_lifts_it() {
    let b = Billing::start(2, true).await;
    let app = &b.app;
    let owner = app.tenant().await;
    let sub_id = b.subscribe(&owner, "starter", Completion::default()).await;
    b.settle().await;
    let lattice = json!({"name": "before", "dimensions": 2, "size": 4});
    assert_eq!(
        app.post("/api/lattices", &owner.access, lattice)
            .await
            .status(),
        201
    );

    b.stripe.fail_payment(&sub_id).await.unwrap();
    b.settle().await;
    // The grace period runs out without any further event: the worker's periodic check
    // suspends the tenant.
    eventually(WAIT, "the tenant suspended", || async {
        tenant_row(app, &owner.tenant_id)
            .await
            .is_suspended()
            .then_some(())
    })
    .await;
    let t = tenant_row(app, &owner.tenant_id).await;
    assert_eq!(t.suspension_reason.as_deref(), Some("billing"));
    let resp = app
        .post(
            "/api/lattices",
            &owner.access,
            json!({"name": "during", "dimensions": 2, "size": 4}),
        )
        .await;
    assert_eq!(resp.status(), 402);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["type"], "account_suspended");
    assert_eq!(
        app.get("/api/lattices", &owner.access).await.status(),
        200,
        "reads still work"
    );
    let status: Value = app
        .get("/api/subscriptions/status", &owner.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["account_status"], "suspended");
    assert_eq!(status["status"], "past_due");
    let portal = app
        .post("/api/stripe/portal", &owner.access, json!({}))
        .await;
    assert_eq!(
        portal.status(),
        200,
        "a suspended tenant can still reach billing to pay"
    );
    let suspended = outbox(app, &owner.tenant_id, "account_suspended").await;
    assert_eq!(suspended.len(), 1);
    assert!(
        audit_actions(app, &owner.tenant_id)
            .await
            .contains(&"tenant.suspended".to_owned())
    );

    b.stripe.pay(&sub_id).await.unwrap();
    b.settle().await;
    eventually(WAIT, "the suspension lifted", || async {
        (!tenant_row(app, &owner.tenant_id).await.is_suspended()).then_some(())
    })
    .await;
    let (sub, _) = subscription(app, &owner.tenant_id).await;
    assert_eq!(sub.status, "active");
    let resp = app
        .post(
            "/api/lattices",
            &owner.access,
            json!({"name": "after", "dimensions": 2, "size": 4}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    assert!(
        audit_actions(app, &owner.tenant_id)
            .await
            .contains(&"tenant.resumed".to_owned())
    );
    assert_eq!(
        outbox(app, &owner.tenant_id, "account_suspended")
            .await
            .len(),
        1,
        "told once"
    );
    b.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_suspension_is_not_lifted_by_a_payment() {
    let b = Billing::start(3600, true).await;
    let app = &b.app;
    let owner = app.tenant().await;
    let sub_id = b.subscribe(&owner, "starter", Completion::default()).await;
    b.settle().await;
    {
        let pool = app.pool();
        let mut conn = pool.get().await.unwrap();
        catalytic_db::tenants::set_suspended(&mut conn, tenant(&owner.tenant_id), true)
            .await
            .unwrap();
    }
    b.stripe.advance_period(&sub_id).await.unwrap();
    b.settle().await;
    let t = tenant_row(app, &owner.tenant_id).await;
    assert!(t.is_suspended());
    assert_eq!(t.suspension_reason.as_deref(), Some("operator"));
    b.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_downgrade_below_usage_keeps_lattices_readable_and_refuses_new_ones() {
    let b = Billing::start(3600, true).await;
    let app = &b.app;
    let owner = app.tenant().await;
    b.subscribe(&owner, "professional", Completion::default())
        .await;
    b.settle().await;
    let again = app
        .post(
            "/api/stripe/checkout",
            &owner.access,
            json!({"plan_code": "enterprise", "interval": "month"}),
        )
        .await;
    assert_eq!(again.status(), 409, "one subscription per organisation");
    let mut ids = Vec::new();
    for i in 0..6 {
        let resp = app
            .post(
                "/api/lattices",
                &owner.access,
                json!({"name": format!("l{i}"), "dimensions": 2, "size": 4}),
            )
            .await;
        assert_eq!(resp.status(), 201);
        ids.push(
            resp.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }

    let resp = app
        .client
        .put(app.url("/api/subscriptions/update"))
        .bearer_auth(&owner.access)
        .json(&json!({"plan_code": "starter", "interval": "month"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    let status: Value = resp.json().await.unwrap();
    assert_eq!(status["plan"]["code"], "starter", "applied at once");
    assert_eq!(status["usage"]["lattices"]["used"], 6);
    assert_eq!(status["usage"]["lattices"]["limit"], 5);

    let list: Value = app
        .get("/api/lattices", &owner.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 6);
    for id in &ids {
        assert_eq!(
            app.get(&format!("/api/lattices/{id}"), &owner.access)
                .await
                .status(),
            200
        );
    }
    let resp = app
        .post(
            "/api/lattices",
            &owner.access,
            json!({"name": "one-more", "dimensions": 2, "size": 4}),
        )
        .await;
    assert_eq!(resp.status(), 403);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["type"], "plan_limit_exceeded");
    let detail = err["detail"].as_str().unwrap();
    assert!(
        detail.contains("starter plan allows 5 lattices") && detail.contains("stay readable"),
        "{detail}"
    );
    let resp = app
        .post(
            "/api/lattices",
            &owner.access,
            json!({"name": "big", "dimensions": 6, "size": 2}),
        )
        .await;
    assert_eq!(resp.status(), 422, "Starter allows 4 dimensions");

    // The webhooks of the change agree with what the API applied.
    b.settle().await;
    let (sub, plan) = subscription(app, &owner.tenant_id).await;
    assert_eq!(
        (plan.code.as_str(), sub.status.as_str()),
        ("starter", "active")
    );
    let stripe_sub = stripe_get(
        &b.stripe,
        &format!("/v1/subscriptions/{}", sub.stripe_subscription_id.unwrap()),
    )
    .await;
    assert_eq!(
        stripe_sub["items"]["data"][0]["price"]["lookup_key"],
        "catalytic_starter_month"
    );

    // Cancelling at the period's end keeps the plan until then; at once moves to Free.
    let resp = app
        .client
        .delete(app.url("/api/subscriptions/cancel"))
        .bearer_auth(&owner.access)
        .send()
        .await
        .unwrap();
    let status: Value = resp.json().await.unwrap();
    assert_eq!(
        (
            status["plan"]["code"].as_str(),
            status["cancel_at_period_end"].as_bool()
        ),
        (Some("starter"), Some(true))
    );
    let resp = app
        .client
        .delete(app.url("/api/subscriptions/cancel?immediately=true"))
        .bearer_auth(&owner.access)
        .send()
        .await
        .unwrap();
    let status: Value = resp.json().await.unwrap();
    assert_eq!(status["plan"]["code"], "free");
    assert_eq!(status["status"], "canceled");
    let resp = app
        .client
        .delete(app.url("/api/subscriptions/cancel"))
        .bearer_auth(&owner.access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409, "nothing left to cancel");
    b.settle().await;
    assert_eq!(subscription(app, &owner.tenant_id).await.1.code, "free");
    b.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_processing_retries_while_stripe_is_down_and_completes_when_it_is_back() {
    let b = Billing::start(3600, true).await;
    let app = &b.app;
    let owner = app.tenant().await;
    let session = b.checkout(&owner, "starter", "month").await;
    b.stripe.down().await.unwrap();
    b.stripe
        .complete_checkout(&session, Completion::default())
        .await
        .unwrap();
    b.stripe.wait_for_deliveries(WAIT).await.unwrap();
    let retried = eventually(WAIT, "a retried reconciliation", || async {
        events(app)
            .await
            .into_iter()
            .find(|e| e.event_type == "checkout.session.completed" && e.attempts >= 2)
    })
    .await;
    assert_eq!(retried.status, "pending");
    assert!(
        retried
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("unavailable"),
        "{:?}",
        retried.error
    );
    assert_eq!(subscription(app, &owner.tenant_id).await.1.code, "free");

    b.stripe.up().await.unwrap();
    b.wait_settled().await;
    let (sub, plan) = subscription(app, &owner.tenant_id).await;
    assert_eq!(
        (plan.code.as_str(), sub.status.as_str()),
        ("starter", "active")
    );
    assert!(events(app).await.iter().all(|e| e.status != "failed"));
    b.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn platform_admin_routes_are_404_to_tenant_users_and_work_for_platform_admins() {
    let b = Billing::start(3600, false).await;
    let app = &b.app;
    let admin = app.tenant().await;
    let other = app.tenant().await;
    let path = format!("/api/subscriptions/status/{}", other.tenant_id);
    let set_limits = |token: String, body: Value| {
        let c = app.client.clone();
        let url = app.url("/api/subscriptions/limits");
        async move {
            c.put(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let body = json!({"tenant_id": other.tenant_id, "overrides": {"max_lattices": 50}});
    assert_eq!(app.get(&path, &admin.access).await.status(), 404);
    assert_eq!(
        set_limits(admin.access.clone(), body.clone())
            .await
            .status(),
        404
    );
    assert_eq!(
        app.get(
            &format!("/api/subscriptions/status/{}", admin.tenant_id),
            &admin.access
        )
        .await
        .status(),
        404
    );

    let out = std::process::Command::new(api_bin())
        .args(["users", "set-platform-admin", &admin.email, "true"])
        .env_clear()
        .env("DATABASE_URL", &app.db.url)
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let status: Value = app.get(&path, &admin.access).await.json().await.unwrap();
    assert_eq!(status["tenant_id"], json!(other.tenant_id));
    assert_eq!(status["plan"]["code"], "free");
    let resp = set_limits(admin.access.clone(), body).await;
    assert_eq!(resp.status(), 200);
    let status: Value = resp.json().await.unwrap();
    assert_eq!(status["limits"]["max_lattices"], 50);
    assert_eq!(status["limit_overrides"], json!({"max_lattices": 50}));
    let theirs: Value = app
        .get("/api/subscriptions/status", &other.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        theirs["limits"]["max_lattices"], 50,
        "in force for the tenant at once"
    );
    for lattice in 0..2 {
        let resp = app
            .post(
                "/api/lattices",
                &other.access,
                json!({"name": format!("l{lattice}"), "dimensions": 2, "size": 4}),
            )
            .await;
        assert_eq!(resp.status(), 201, "Free allows 1; the override 50");
    }
    assert!(
        audit_actions(app, &other.tenant_id)
            .await
            .contains(&"tenant.limits_changed".to_owned())
    );

    for bad in [
        json!({"max_latices": 3}),
        json!({"max_lattices": -1}),
        json!({"max_lattices": "many"}),
        json!({"rate_limit_per_minute": 0}),
        json!({"max_dimensions": 11}),
        json!([1]),
    ] {
        let resp = set_limits(
            admin.access.clone(),
            json!({"tenant_id": other.tenant_id, "overrides": bad}),
        )
        .await;
        assert_eq!(resp.status(), 422, "{bad}");
    }
    let resp = set_limits(
        admin.access.clone(),
        json!({"tenant_id": uuid::Uuid::new_v4(), "overrides": {}}),
    )
    .await;
    assert_eq!(resp.status(), 404);
    let cleared = set_limits(
        admin.access.clone(),
        json!({"tenant_id": other.tenant_id, "overrides": {}}),
    )
    .await;
    let status: Value = cleared.json().await.unwrap();
    assert_eq!(status["limits"]["max_lattices"], 1);
    b.cleanup().await;
}
