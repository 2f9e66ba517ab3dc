//! The Stripe emulator, driven by the real client (async-stripe 1.0): every response and
//! every webhook event it produces must parse with async-stripe's types and verify with its
//! signature check, and its state must follow Stripe's rules.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use catalytic_tests::stripe::{Completion, EmulatorOptions, StripeEmulator, emulator_bin};
use poem::listener::TcpAcceptor;
use poem::{Request, Response, Server};
use serde_json::{Value, json};
use stripe::{Client, ClientBuilder, RequestStrategy, StripeError, StripeRequest};
use stripe_billing::billing_portal_session::CreateBillingPortalSession;
use stripe_billing::invoice::{ListInvoice, PayInvoice, RetrieveInvoice};
use stripe_billing::subscription::{
    CancelSubscription, CreateSubscription, CreateSubscriptionItems,
    CreateSubscriptionPaymentBehavior, ListSubscription, RetrieveSubscription, UpdateSubscription,
    UpdateSubscriptionItems, UpdateSubscriptionProrationBehavior,
};
use stripe_billing::{InvoiceStatus, SubscriptionStatus};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionSubscriptionData,
    ExpireCheckoutSession, ListLineItemsCheckoutSession, RetrieveCheckoutSession,
};
use stripe_checkout::{CheckoutSessionMode, CheckoutSessionPaymentStatus, CheckoutSessionStatus};
use stripe_core::customer::{
    CreateCustomer, DeleteCustomer, ListCustomer, OptionalFieldsCustomerAddress, RetrieveCustomer,
    RetrieveCustomerReturned, SearchCustomer, UpdateCustomer,
};
use stripe_product::price::{
    CreatePrice, CreatePriceRecurring, CreatePriceRecurringInterval, ListPrice, SearchPrice,
    UpdatePrice,
};
use stripe_product::product::{
    CreateProduct, DeleteProduct, ListProduct, RetrieveProduct, SearchProduct, UpdateProduct,
};
use stripe_types::Currency;
use stripe_webhook::{EventObject, Webhook};

const WEBHOOK_SECRET: &str = "whsec_emulator_tests";

/// An event as the test receiver got it.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    type_: String,
    /// Verified and parsed into a typed object (not `EventObject::Unknown`).
    typed: bool,
    error: Option<String>,
    object_id: Option<String>,
}

/// A webhook endpoint that verifies and parses every delivery with async-stripe-webhook.
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener)
    }

    fn serve(listener: tokio::net::TcpListener) -> Self {
        let url = format!("http://{}/webhooks", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        let endpoint = poem::endpoint::make(move |req: Request| {
            let sink = sink.clone();
            async move { receive(req, &sink).await }
        });
        let acceptor = TcpAcceptor::from_tokio(listener).unwrap();
        let server = tokio::spawn(async move {
            let _ = Server::new_with_acceptor(acceptor).run(endpoint).await;
        });
        Self {
            url,
            received,
            server,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until every listed event arrived, and checks that each verified and parsed.
    async fn expect_all(&self, event_ids: &[String]) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.received();
            let missing: Vec<&String> = event_ids
                .iter()
                .filter(|id| !got.iter().any(|r| &r.id == *id))
                .collect();
            if missing.is_empty() {
                for r in &got {
                    assert!(
                        r.error.is_none(),
                        "event {} ({}) failed: {:?}",
                        r.id,
                        r.type_,
                        r.error
                    );
                    assert!(r.typed, "event {} ({}) parsed as Unknown", r.id, r.type_);
                }
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "webhooks never arrived: {missing:?}; got {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(mut req: Request, sink: &Mutex<Vec<Received>>) -> Response {
    let signature = req
        .headers()
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = req.take_body().into_string().await.unwrap_or_default();
    let raw: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let (typed, error, object_id) =
        match Webhook::construct_event(&body, &signature, WEBHOOK_SECRET) {
            Ok(event) => {
                let typed = !matches!(event.data.object, EventObject::Unknown(_));
                assert_eq!(event.id.as_str(), raw["id"].as_str().unwrap_or_default());
                (
                    typed,
                    None,
                    raw["data"]["object"]["id"].as_str().map(str::to_owned),
                )
            }
            Err(e) => (false, Some(e.to_string()), None),
        };
    sink.lock().unwrap().push(Received {
        id: raw["id"].as_str().unwrap_or_default().to_owned(),
        type_: raw["type"].as_str().unwrap_or_default().to_owned(),
        typed,
        error: error.clone(),
        object_id,
    });
    Response::builder()
        .status(if error.is_none() {
            poem::http::StatusCode::OK
        } else {
            poem::http::StatusCode::BAD_REQUEST
        })
        .finish()
}

fn emulator(webhook_url: Option<String>) -> StripeEmulator {
    StripeEmulator::start_with(
        &bin(),
        EmulatorOptions {
            webhook_url,
            webhook_secret: WEBHOOK_SECRET.into(),
            ..EmulatorOptions::default()
        },
    )
}

/// Cargo builds the binary for this test target; `STRIPE_EMULATOR_BIN` overrides.
fn bin() -> std::path::PathBuf {
    if std::env::var_os("STRIPE_EMULATOR_BIN").is_some() {
        emulator_bin()
    } else {
        env!("CARGO_BIN_EXE_stripe-emulator").into()
    }
}

fn client(emulator: &StripeEmulator) -> Client {
    ClientBuilder::new(&emulator.secret_key)
        .url(&emulator.base_url)
        .build()
        .unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// A product with a monthly price under `lookup_key`.
async fn monthly_price(client: &Client, product: &str, amount: i64, lookup_key: &str) -> String {
    let price = CreatePrice::new(Currency::USD)
        .product(product)
        .unit_amount(amount)
        .recurring(CreatePriceRecurring::new(
            CreatePriceRecurringInterval::Month,
        ))
        .lookup_key(lookup_key)
        .send(client)
        .await
        .unwrap();
    price.id.to_string()
}

async fn all_event_ids(emulator: &StripeEmulator) -> Vec<String> {
    emulator
        .events()
        .await
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn async_stripe_drives_checkout_plan_change_portal_and_cancellation() {
    let receiver = Receiver::start().await;
    let emulator = emulator(Some(receiver.url.clone()));
    let client = client(&emulator);

    let customer = CreateCustomer::new()
        .email("owner@tenant.example")
        .name("Tenant One")
        .metadata([("tenant_id".to_owned(), "t-1".to_owned())])
        .send(&client)
        .await
        .unwrap();
    assert!(customer.id.as_str().starts_with("cus_"));
    assert_eq!(customer.metadata.as_ref().unwrap()["tenant_id"], "t-1");

    let product = CreateProduct::new("Starter")
        .id("catalytic_starter")
        .send(&client)
        .await
        .unwrap();
    assert_eq!(product.id.as_str(), "catalytic_starter");
    let pro = CreateProduct::new("Professional")
        .send(&client)
        .await
        .unwrap();
    let starter_month = monthly_price(&client, product.id.as_str(), 2900, "starter_month").await;
    let yearly = CreatePrice::new(Currency::USD)
        .product(product.id.as_str())
        .unit_amount(29000)
        .recurring(CreatePriceRecurring::new(
            CreatePriceRecurringInterval::Year,
        ))
        .lookup_key("starter_year")
        .send(&client)
        .await
        .unwrap();
    let pro_month = monthly_price(&client, pro.id.as_str(), 9900, "pro_month").await;

    // Lookup keys: list and search find exactly the prices that carry them.
    let listed = ListPrice::new()
        .lookup_keys(vec!["starter_month".to_owned(), "starter_year".to_owned()])
        .send(&client)
        .await
        .unwrap();
    let mut ids: Vec<String> = listed.data.iter().map(|p| p.id.to_string()).collect();
    ids.sort();
    let mut want = vec![starter_month.clone(), yearly.id.to_string()];
    want.sort();
    assert_eq!(ids, want);
    let found = SearchPrice::new("lookup_key:'pro_month'")
        .send(&client)
        .await
        .unwrap();
    assert_eq!(found.data.len(), 1);
    assert_eq!(found.data[0].id.as_str(), pro_month);
    assert_eq!(found.data[0].unit_amount, Some(9900));

    // Checkout, completed by the customer.
    let session = CreateCheckoutSession::new()
        .mode(CheckoutSessionMode::Subscription)
        .customer(customer.id.as_str())
        .line_items(vec![CreateCheckoutSessionLineItems {
            price: Some(starter_month.clone()),
            quantity: Some(1),
            ..CreateCheckoutSessionLineItems::new()
        }])
        .success_url("https://app.example/billing?session={CHECKOUT_SESSION_ID}")
        .cancel_url("https://app.example/billing")
        .metadata([("tenant_id".to_owned(), "t-1".to_owned())])
        .subscription_data(CreateCheckoutSessionSubscriptionData {
            metadata: Some([("tenant_id".to_owned(), "t-1".to_owned())].into()),
            ..CreateCheckoutSessionSubscriptionData::new()
        })
        .send(&client)
        .await
        .unwrap();
    assert!(session.id.as_str().starts_with("cs_test_"));
    let url = session.url.clone().unwrap();
    assert_eq!(
        url,
        format!("{}/checkout/{}", emulator.base_url, session.id.as_str())
    );
    assert_eq!(session.status, Some(CheckoutSessionStatus::Open));
    assert_eq!(session.amount_total, Some(2900));
    let page = http().get(&url).send().await.unwrap();
    assert!(page.status().is_success());

    let completed = emulator
        .complete_checkout(session.id.as_str(), Completion::default())
        .await
        .unwrap();
    assert_eq!(
        completed.event_types(),
        [
            "customer.subscription.created",
            "invoice.created",
            "invoice.finalized",
            "invoice.paid",
            "invoice.payment_succeeded",
            "checkout.session.completed"
        ]
    );
    let subscription_id = completed.subscription_id().unwrap().to_owned();

    let session = RetrieveCheckoutSession::new(session.id.as_str())
        .expand(vec!["subscription".to_owned()])
        .send(&client)
        .await
        .unwrap();
    assert_eq!(session.status, Some(CheckoutSessionStatus::Complete));
    assert_eq!(session.payment_status, CheckoutSessionPaymentStatus::Paid);
    let expanded = session.subscription.as_ref().unwrap().as_object().unwrap();
    assert_eq!(expanded.id.as_str(), subscription_id);

    let subscription = RetrieveSubscription::new(subscription_id.as_str())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(subscription.status, SubscriptionStatus::Active);
    assert_eq!(subscription.metadata["tenant_id"], "t-1");
    assert_eq!(subscription.customer.id().as_str(), customer.id.as_str());
    let item = &subscription.items.data[0];
    assert_eq!(item.price.id.as_str(), starter_month);
    assert!(item.current_period_end > item.current_period_start);
    let period_end = item.current_period_end;

    let invoice_id = subscription
        .latest_invoice
        .as_ref()
        .unwrap()
        .id()
        .as_ref()
        .unwrap()
        .to_string();
    let invoice = RetrieveInvoice::new(invoice_id.as_str())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(invoice.status, Some(InvoiceStatus::Paid));
    assert_eq!(invoice.amount_paid, 2900);
    assert_eq!(invoice.lines.data.len(), 1);

    // A plan change swaps the item's price and keeps the period; prorations wait for the
    // next invoice.
    let updated = UpdateSubscription::new(subscription_id.as_str())
        .items(vec![UpdateSubscriptionItems {
            id: Some(item.id.to_string()),
            price: Some(pro_month.clone()),
            ..UpdateSubscriptionItems::new()
        }])
        .proration_behavior(UpdateSubscriptionProrationBehavior::CreateProrations)
        .send(&client)
        .await
        .unwrap();
    assert_eq!(updated.items.data.len(), 1);
    assert_eq!(updated.items.data[0].price.id.as_str(), pro_month);
    assert_eq!(updated.items.data[0].id, item.id);
    assert_eq!(updated.items.data[0].current_period_end, period_end);
    let changed = emulator
        .events_of_type("customer.subscription.updated")
        .await
        .unwrap();
    let last = changed.last().unwrap();
    assert_eq!(
        last["data"]["object"]["items"]["data"][0]["price"]["id"],
        json!(pro_month)
    );
    assert_eq!(
        last["data"]["previous_attributes"]["items"]["data"][0]["price"]["id"],
        json!(starter_month)
    );

    // Cancel at period end, then for good.
    let scheduled = UpdateSubscription::new(subscription_id.as_str())
        .cancel_at_period_end(true)
        .send(&client)
        .await
        .unwrap();
    assert!(scheduled.cancel_at_period_end);
    assert_eq!(scheduled.cancel_at, Some(period_end));
    assert_eq!(scheduled.status, SubscriptionStatus::Active);

    let portal = CreateBillingPortalSession::new()
        .customer(customer.id.as_str())
        .return_url("https://app.example/billing")
        .send(&client)
        .await
        .unwrap();
    assert!(portal.id.as_str().starts_with("bps_"));
    assert!(
        portal
            .url
            .starts_with(&format!("{}/billing_portal/", emulator.base_url))
    );
    assert!(
        http()
            .get(&portal.url)
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );

    let invoices = ListInvoice::new()
        .subscription(subscription_id.as_str())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(invoices.data.len(), 1);

    let canceled = CancelSubscription::new(subscription_id.as_str())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(canceled.status, SubscriptionStatus::Canceled);
    assert!(canceled.ended_at.is_some());
    let live = ListSubscription::new()
        .customer(customer.id.as_str())
        .send(&client)
        .await
        .unwrap();
    assert!(
        live.data.is_empty(),
        "canceled subscriptions are not listed by default"
    );
    let err = CancelSubscription::new(subscription_id.as_str())
        .send(&client)
        .await
        .unwrap_err();
    assert!(matches!(err, StripeError::Stripe(_, 400)), "{err:?}");

    // Customer details.
    let customer = UpdateCustomer::new(customer.id.as_str())
        .name("Tenant One Ltd")
        .email("billing@tenant.example")
        .address(OptionalFieldsCustomerAddress {
            line1: Some("1 Lattice Way".into()),
            city: Some("Cambridge".into()),
            country: Some("GB".into()),
            postal_code: Some("CB1 1AA".into()),
            ..OptionalFieldsCustomerAddress::new()
        })
        .send(&client)
        .await
        .unwrap();
    assert_eq!(customer.name.as_deref(), Some("Tenant One Ltd"));
    let address = customer.address.as_ref().unwrap();
    assert_eq!(address.city.as_deref(), Some("Cambridge"));
    assert_eq!(address.line2, None);
    match RetrieveCustomer::new(customer.id.as_str())
        .send(&client)
        .await
        .unwrap()
    {
        RetrieveCustomerReturned::Customer(c) => {
            assert_eq!(c.email.as_deref(), Some("billing@tenant.example"));
        }
        RetrieveCustomerReturned::DeletedCustomer(_) => panic!("customer deleted"),
    }

    // Every event went out signed, and async-stripe-webhook verified and typed each one.
    let ids = all_event_ids(&emulator).await;
    let got = receiver.expect_all(&ids).await;
    let types: Vec<&str> = got.iter().map(|r| r.type_.as_str()).collect();
    for wanted in [
        "customer.created",
        "product.created",
        "price.created",
        "checkout.session.completed",
        "customer.subscription.created",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.updated",
    ] {
        assert!(types.contains(&wanted), "no {wanted} in {types:?}");
    }
    // Events are retrievable by id, with the object as it was.
    let first = &ids[0];
    let event: Value = http()
        .get(format!("{}/v1/events/{first}", emulator.base_url))
        .bearer_auth(&emulator.secret_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(event["object"], "event");
    assert_eq!(event["type"], "customer.created");
    assert!(event["request"]["id"].as_str().unwrap().starts_with("req_"));
}

#[tokio::test(flavor = "multi_thread")]
async fn trials_dunning_and_renewals_follow_stripe_and_their_events_parse() {
    let receiver = Receiver::start().await;
    let emulator = emulator(Some(receiver.url.clone()));
    let client = client(&emulator);
    let product = CreateProduct::new("Professional")
        .send(&client)
        .await
        .unwrap();
    let price = monthly_price(&client, product.id.as_str(), 9900, "pro_month").await;

    // No customer on the session: Checkout creates one from the email.
    let session = CreateCheckoutSession::new()
        .mode(CheckoutSessionMode::Subscription)
        .customer_email("new@tenant.example")
        .line_items(vec![CreateCheckoutSessionLineItems {
            price: Some(price.clone()),
            quantity: Some(1),
            ..CreateCheckoutSessionLineItems::new()
        }])
        .success_url("https://app.example/ok")
        .send(&client)
        .await
        .unwrap();
    let done = emulator
        .complete_checkout(
            session.id.as_str(),
            Completion {
                trial_days: Some(14),
                ..Completion::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(done.event_types()[0], "customer.created");
    let id = done.subscription_id().unwrap().to_owned();
    let sub = RetrieveSubscription::new(id.as_str())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(sub.status, SubscriptionStatus::Trialing);
    let trial_end = sub.trial_end.unwrap();
    assert_eq!(sub.items.data[0].current_period_end, trial_end);
    let first_invoice = done.invoice.as_ref().unwrap();
    assert_eq!(first_invoice["amount_due"], 0);
    assert_eq!(first_invoice["status"], "paid");
    let session = RetrieveCheckoutSession::new(session.id.as_str())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(
        session.payment_status,
        CheckoutSessionPaymentStatus::NoPaymentRequired
    );
    assert_eq!(
        session.customer_details.as_ref().unwrap().email.as_deref(),
        Some("new@tenant.example")
    );

    let notice = emulator.trial_will_end(&id).await.unwrap();
    assert_eq!(
        notice.event_types(),
        ["customer.subscription.trial_will_end"]
    );

    let ended = emulator.end_trial(&id).await.unwrap();
    assert_eq!(ended.subscription.as_ref().unwrap()["status"], "active");
    assert_eq!(ended.invoice.as_ref().unwrap()["amount_paid"], 9900);
    assert!(
        emulator.trial_will_end(&id).await.is_err(),
        "no longer trialing"
    );

    // A declined renewal: past_due with an open, attempted invoice; paying recovers.
    let failed = emulator.fail_payment(&id).await.unwrap();
    assert!(failed.event_types().contains(&"invoice.payment_failed"));
    assert!(
        failed
            .event_types()
            .contains(&"customer.subscription.updated")
    );
    let invoice_id = failed.invoice_id().unwrap().to_owned();
    let invoice = RetrieveInvoice::new(invoice_id.as_str())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(invoice.status, Some(InvoiceStatus::Open));
    assert!(invoice.attempted);
    assert_eq!(invoice.amount_remaining, 9900);
    let sub = RetrieveSubscription::new(id.as_str())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(sub.status, SubscriptionStatus::PastDue);
    let again = emulator.fail_payment(&id).await.unwrap();
    assert_eq!(
        again.invoice_id(),
        Some(invoice_id.as_str()),
        "the same invoice is retried"
    );
    assert_eq!(again.invoice.as_ref().unwrap()["attempt_count"], 2);

    let paid = emulator.pay(&id).await.unwrap();
    assert_eq!(
        paid.event_types(),
        [
            "invoice.paid",
            "invoice.payment_succeeded",
            "customer.subscription.updated"
        ]
    );
    let sub = RetrieveSubscription::new(id.as_str())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(sub.status, SubscriptionStatus::Active);
    assert!(emulator.pay(&id).await.is_err(), "nothing left to pay");

    // A renewal moves the period one month on and bills it.
    let (start, end) = (
        sub.items.data[0].current_period_start,
        sub.items.data[0].current_period_end,
    );
    let renewed = emulator.advance_period(&id).await.unwrap();
    let sub = RetrieveSubscription::new(id.as_str())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(sub.items.data[0].current_period_start, end);
    assert!(sub.items.data[0].current_period_end - end >= 28 * 86_400);
    assert!(end > start);
    assert_eq!(
        renewed.invoice.as_ref().unwrap()["billing_reason"],
        "subscription_cycle"
    );

    // Scheduled cancellation takes effect at the next period end.
    UpdateSubscription::new(id.as_str())
        .cancel_at_period_end(true)
        .send(&client)
        .await
        .unwrap();
    let last = emulator.advance_period(&id).await.unwrap();
    assert_eq!(last.event_types(), ["customer.subscription.deleted"]);
    let sub = RetrieveSubscription::new(id.as_str())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(sub.status, SubscriptionStatus::Canceled);
    assert_eq!(sub.ended_at, Some(sub.items.data[0].current_period_end));

    let ids = all_event_ids(&emulator).await;
    let got = receiver.expect_all(&ids).await;
    for wanted in [
        "customer.subscription.trial_will_end",
        "invoice.payment_failed",
        "customer.subscription.deleted",
    ] {
        assert!(got.iter().any(|r| r.type_ == wanted), "no {wanted}");
    }
    assert!(got.iter().all(|r| r.object_id.is_some()));
}

#[tokio::test(flavor = "multi_thread")]
async fn prorations_land_on_the_next_invoice_and_interval_changes_bill_at_once() {
    let emulator = emulator(None);
    let client = client(&emulator);
    let product = CreateProduct::new("Starter").send(&client).await.unwrap();
    let cheap = monthly_price(&client, product.id.as_str(), 2900, "starter_month").await;
    let dear = monthly_price(&client, product.id.as_str(), 9900, "pro_month").await;
    let yearly = CreatePrice::new(Currency::USD)
        .product(product.id.as_str())
        .unit_amount(99000)
        .recurring(CreatePriceRecurring::new(
            CreatePriceRecurringInterval::Year,
        ))
        .send(&client)
        .await
        .unwrap();
    let customer = CreateCustomer::new()
        .email("p@tenant.example")
        .send(&client)
        .await
        .unwrap();
    let session = CreateCheckoutSession::new()
        .mode(CheckoutSessionMode::Subscription)
        .customer(customer.id.as_str())
        .line_items(vec![CreateCheckoutSessionLineItems {
            price: Some(cheap.clone()),
            quantity: Some(1),
            ..CreateCheckoutSessionLineItems::new()
        }])
        .success_url("https://app.example/ok")
        .send(&client)
        .await
        .unwrap();
    let done = emulator
        .complete_checkout(session.id.as_str(), Completion::default())
        .await
        .unwrap();
    let id = done.subscription_id().unwrap().to_owned();
    let item = done.subscription.as_ref().unwrap()["items"]["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    UpdateSubscription::new(id.as_str())
        .items(vec![UpdateSubscriptionItems {
            id: Some(item.clone()),
            price: Some(dear.clone()),
            ..UpdateSubscriptionItems::new()
        }])
        .send(&client)
        .await
        .unwrap();
    let renewed = emulator.advance_period(&id).await.unwrap();
    let lines = renewed.invoice.as_ref().unwrap()["lines"]["data"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        lines.len(),
        3,
        "credit, debit and the new period: {lines:?}"
    );
    let total: i64 = lines.iter().map(|l| l["amount"].as_i64().unwrap()).sum();
    // Changed at the very start of the period: almost the whole difference is prorated.
    assert!(
        (9900 + 6900 - 10..=9900 + 7000).contains(&total),
        "total {total}"
    );
    let invoice = RetrieveInvoice::new(renewed.invoice_id().unwrap())
        .send(&client)
        .await
        .unwrap();
    assert!(invoice.lines.data.iter().filter(|l| l.amount < 0).count() == 1);

    // Monthly → yearly restarts the period and bills now.
    let before = emulator.events().await.unwrap().len();
    let updated = UpdateSubscription::new(id.as_str())
        .items(vec![UpdateSubscriptionItems {
            id: Some(item.clone()),
            price: Some(yearly.id.to_string()),
            ..UpdateSubscriptionItems::new()
        }])
        .proration_behavior(UpdateSubscriptionProrationBehavior::AlwaysInvoice)
        .send(&client)
        .await
        .unwrap();
    let period = &updated.items.data[0];
    assert!(period.current_period_end - period.current_period_start >= 365 * 86_400);
    let latest = updated
        .latest_invoice
        .as_ref()
        .unwrap()
        .id()
        .as_ref()
        .unwrap()
        .to_string();
    let invoice = RetrieveInvoice::new(latest.as_str())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(invoice.status, Some(InvoiceStatus::Paid));
    assert!(invoice.lines.data.iter().any(|l| l.amount == 99000));
    let types: Vec<String> = emulator.events().await.unwrap()[before..]
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        types.contains(&"invoice.payment_succeeded".to_owned()),
        "{types:?}"
    );

    // Mixed intervals on one subscription are refused, as Stripe does.
    let err = UpdateSubscription::new(id.as_str())
        .items(vec![UpdateSubscriptionItems {
            price: Some(cheap.clone()),
            ..UpdateSubscriptionItems::new()
        }])
        .send(&client)
        .await
        .unwrap_err();
    assert!(matches!(err, StripeError::Stripe(_, 400)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_stripe_shaped_and_the_api_can_be_taken_down() {
    let emulator = emulator(None);
    let client = client(&emulator);

    match RetrieveSubscription::new("sub_missing")
        .send(&client)
        .await
        .unwrap_err()
    {
        StripeError::Stripe(error, 404) => {
            assert_eq!(
                error.message.as_deref(),
                Some("No such subscription: 'sub_missing'")
            );
            assert_eq!(error.param.as_deref(), Some("id"));
        }
        other => panic!("{other:?}"),
    }
    let bad_key = ClientBuilder::new("sk_live_nope")
        .url(&emulator.base_url)
        .build()
        .unwrap();
    let err = CreateCustomer::new().send(&bad_key).await.unwrap_err();
    assert!(matches!(err, StripeError::Stripe(_, 401)), "{err:?}");

    // Parameters Stripe does not know, or wrong, are refused with the parameter named.
    let response = http()
        .post(format!("{}/v1/customers", emulator.base_url))
        .bearer_auth(&emulator.secret_key)
        .form(&[("emial", "typo@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["param"], "emial");
    assert!(response_has_request_id(&emulator).await);

    let product = CreateProduct::new("Starter").send(&client).await.unwrap();
    monthly_price(&client, product.id.as_str(), 2900, "starter_month").await;
    let dup = CreatePrice::new(Currency::USD)
        .product(product.id.as_str())
        .unit_amount(3000)
        .lookup_key("starter_month")
        .send(&client)
        .await
        .unwrap_err();
    assert!(
        matches!(&dup, StripeError::Stripe(e, 400) if e.param.as_deref() == Some("lookup_key")),
        "{dup:?}"
    );
    let moved = CreatePrice::new(Currency::USD)
        .product(product.id.as_str())
        .unit_amount(3000)
        .recurring(CreatePriceRecurring::new(
            CreatePriceRecurringInterval::Month,
        ))
        .lookup_key("starter_month")
        .transfer_lookup_key(true)
        .send(&client)
        .await
        .unwrap();
    let holders = ListPrice::new()
        .lookup_keys(vec!["starter_month".to_owned()])
        .send(&client)
        .await
        .unwrap();
    assert_eq!(holders.data.len(), 1);
    assert_eq!(holders.data[0].id, moved.id);

    let missing_quantity = http()
        .post(format!("{}/v1/checkout/sessions", emulator.base_url))
        .bearer_auth(&emulator.secret_key)
        .form(&[
            ("mode", "subscription"),
            ("line_items[0][price]", moved.id.as_str()),
            ("success_url", "https://app.example/ok"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(missing_quantity.status(), 400);
    let body: Value = missing_quantity.json().await.unwrap();
    assert_eq!(body["error"]["param"], "line_items[0][quantity]");

    // The outage switch: every API call answers 503 until the emulator is up again.
    emulator.down().await.unwrap();
    let err = CreateCustomer::new().send(&client).await.unwrap_err();
    assert!(matches!(err, StripeError::Stripe(_, 503)), "{err:?}");
    assert!(emulator.events().await.is_ok(), "control routes stay up");
    emulator.up().await.unwrap();
    CreateCustomer::new().send(&client).await.unwrap();
}

async fn response_has_request_id(emulator: &StripeEmulator) -> bool {
    let response = http()
        .get(format!("{}/v1/customers", emulator.base_url))
        .bearer_auth(&emulator.secret_key)
        .send()
        .await
        .unwrap();
    response
        .headers()
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("req_"))
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotent_requests_replay_the_first_answer() {
    let emulator = emulator(None);
    let client = client(&emulator);
    let key = stripe::IdempotencyKey::new("signup-t-1").unwrap();
    let request = CreateCustomer::new().email("once@tenant.example");
    let first = request
        .customize()
        .request_strategy(RequestStrategy::Idempotent(key.clone()))
        .send(&client)
        .await
        .unwrap();
    let second = request
        .customize()
        .request_strategy(RequestStrategy::Idempotent(key.clone()))
        .send(&client)
        .await
        .unwrap();
    assert_eq!(first.id, second.id);
    assert_eq!(
        emulator
            .events_of_type("customer.created")
            .await
            .unwrap()
            .len(),
        1
    );
    let other = CreateCustomer::new()
        .email("twice@tenant.example")
        .customize()
        .request_strategy(RequestStrategy::Idempotent(key))
        .send(&client)
        .await
        .unwrap_err();
    assert!(matches!(other, StripeError::Stripe(_, 400)), "{other:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn deliveries_are_retried_until_the_receiver_is_up_and_can_be_redelivered() {
    // Reserve a port, release it: deliveries to it fail until the receiver takes it.
    let reserved = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = reserved.local_addr().unwrap();
    drop(reserved);
    let emulator = StripeEmulator::start_with(
        &bin(),
        EmulatorOptions {
            webhook_url: Some(format!("http://{addr}/webhooks")),
            webhook_secret: WEBHOOK_SECRET.into(),
            webhook_attempts: 8,
            webhook_backoff: Duration::from_millis(100),
        },
    );
    let client = client(&emulator);
    let customer = CreateCustomer::new()
        .email("late@tenant.example")
        .send(&client)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while emulator.deliveries().await.unwrap().len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no retry happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        emulator
            .deliveries()
            .await
            .unwrap()
            .iter()
            .all(|d| !d.delivered)
    );

    let receiver = Receiver::serve(tokio::net::TcpListener::bind(addr).await.unwrap());
    let ids = all_event_ids(&emulator).await;
    let got = receiver.expect_all(&ids).await;
    assert_eq!(got[0].object_id.as_deref(), Some(customer.id.as_str()));
    emulator
        .wait_for_deliveries(Duration::from_secs(5))
        .await
        .unwrap();
    let deliveries = emulator.deliveries().await.unwrap();
    let success = deliveries.iter().find(|d| d.delivered).unwrap();
    assert!(success.attempt > 1);
    assert_eq!(success.status, Some(200));

    emulator.redeliver(&ids[0]).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while receiver
        .received()
        .iter()
        .filter(|r| r.id == ids[0])
        .count()
        < 2
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "redelivery never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A signature made with another secret is rejected by async-stripe's check.
    let payload = serde_json::to_string(&emulator.events().await.unwrap()[0]).unwrap();
    let forged = catalytic_tests::stripe::sign_header(
        "whsec_other",
        &payload,
        chrono::Utc::now().timestamp(),
    );
    assert!(Webhook::construct_event(&payload, &forged, WEBHOOK_SECRET).is_err());
    let good = emulator.signature(&payload, chrono::Utc::now().timestamp());
    assert!(Webhook::construct_event(&payload, &good, WEBHOOK_SECRET).is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_webhook_endpoint_can_be_set_after_start() {
    let emulator = StripeEmulator::start(None, WEBHOOK_SECRET);
    let client = client(&emulator);
    CreateCustomer::new().send(&client).await.unwrap();
    assert!(
        emulator.deliveries().await.unwrap().is_empty(),
        "no endpoint, no delivery"
    );
    let receiver = Receiver::start().await;
    emulator
        .set_webhook(Some(&receiver.url), None)
        .await
        .unwrap();
    let customer = CreateCustomer::new().send(&client).await.unwrap();
    let events = emulator.events().await.unwrap();
    let got = receiver
        .expect_all(&[events[1]["id"].as_str().unwrap().to_owned()])
        .await;
    assert_eq!(got[0].object_id.as_deref(), Some(customer.id.as_str()));
    assert!(
        receiver
            .received()
            .iter()
            .all(|r| r.id != events[0]["id"].as_str().unwrap())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hosted_pages_let_a_person_pay_switch_plan_and_cancel() {
    let emulator = emulator(None);
    let client = client(&emulator);
    let product = CreateProduct::new("Starter").send(&client).await.unwrap();
    let starter = monthly_price(&client, product.id.as_str(), 2900, "starter_month").await;
    let pro = monthly_price(&client, product.id.as_str(), 9900, "pro_month").await;
    let customer = CreateCustomer::new()
        .email("click@tenant.example")
        .send(&client)
        .await
        .unwrap();
    let session = CreateCheckoutSession::new()
        .mode(CheckoutSessionMode::Subscription)
        .customer(customer.id.as_str())
        .line_items(vec![CreateCheckoutSessionLineItems {
            price: Some(starter.clone()),
            quantity: Some(1),
            ..CreateCheckoutSessionLineItems::new()
        }])
        .success_url("https://app.example/done?session={CHECKOUT_SESSION_ID}")
        .send(&client)
        .await
        .unwrap();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let paid = browser
        .post(format!("{}/pay", session.url.as_deref().unwrap()))
        .form(&[("email", "click@tenant.example")])
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 303);
    assert_eq!(
        paid.headers()["location"].to_str().unwrap(),
        format!("https://app.example/done?session={}", session.id.as_str())
    );
    let subs = ListSubscription::new()
        .customer(customer.id.as_str())
        .send(&client)
        .await
        .unwrap();
    let sub = &subs.data[0];
    assert_eq!(sub.status, SubscriptionStatus::Active);

    let portal = CreateBillingPortalSession::new()
        .customer(customer.id.as_str())
        .send(&client)
        .await
        .unwrap();
    let page = browser
        .get(&portal.url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(sub.id.as_str()));
    let switched = browser
        .post(format!(
            "{}/subscriptions/{}/price",
            portal.url,
            sub.id.as_str()
        ))
        .form(&[("price", pro.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(switched.status(), 303);
    let canceled = browser
        .post(format!(
            "{}/subscriptions/{}/cancel",
            portal.url,
            sub.id.as_str()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(canceled.status(), 303);
    let sub = RetrieveSubscription::new(sub.id.as_str())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(sub.items.data[0].price.id.as_str(), pro);
    assert!(sub.cancel_at_period_end);

    // `expand[]` reaches into lists too.
    let list: Value = http()
        .get(format!(
            "{}/v1/subscriptions?expand[]=data.customer",
            emulator.base_url
        ))
        .bearer_auth(&emulator.secret_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"][0]["customer"]["email"], "click@tenant.example");
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_customer_and_direct_subscription_endpoints_parse() {
    let receiver = Receiver::start().await;
    let emulator = emulator(Some(receiver.url.clone()));
    let client = client(&emulator);

    let product = CreateProduct::new("Enterprise")
        .id("catalytic_enterprise")
        .metadata([("plan_code".to_owned(), "enterprise".to_owned())])
        .send(&client)
        .await
        .unwrap();
    let dup = CreateProduct::new("Again")
        .id("catalytic_enterprise")
        .send(&client)
        .await;
    assert!(matches!(dup, Err(StripeError::Stripe(_, 400))));
    let product = UpdateProduct::new(product.id.as_str())
        .description("Unlimited")
        .send(&client)
        .await
        .unwrap();
    assert_eq!(product.description.as_deref(), Some("Unlimited"));
    let fetched = RetrieveProduct::new(product.id.as_str())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(fetched.name, "Enterprise");
    let listed = ListProduct::new().active(true).send(&client).await.unwrap();
    assert_eq!(listed.data.len(), 1);
    let found = SearchProduct::new("metadata['plan_code']:'enterprise'")
        .send(&client)
        .await
        .unwrap();
    assert_eq!(found.data[0].id, product.id);
    let price = monthly_price(&client, product.id.as_str(), 49900, "enterprise_month").await;
    let old = UpdatePrice::new(price.as_str())
        .active(false)
        .send(&client)
        .await
        .unwrap();
    assert!(!old.active);
    let price = monthly_price(&client, product.id.as_str(), 49900, "enterprise_month_v2").await;
    let in_use = DeleteProduct::new(product.id.as_str()).send(&client).await;
    assert!(
        matches!(in_use, Err(StripeError::Stripe(_, 400))),
        "a product with prices stays"
    );

    let customer = CreateCustomer::new()
        .email("direct@tenant.example")
        .send(&client)
        .await
        .unwrap();
    let customers = ListCustomer::new()
        .email("direct@tenant.example")
        .send(&client)
        .await
        .unwrap();
    assert_eq!(customers.data.len(), 1);
    let customers = SearchCustomer::new("email:'direct@tenant.example'")
        .send(&client)
        .await
        .unwrap();
    assert_eq!(customers.data[0].id, customer.id);

    // A subscription created through the API, left incomplete, then paid.
    let sub = CreateSubscription::new()
        .customer(customer.id.as_str())
        .items(vec![CreateSubscriptionItems {
            price: Some(price.clone()),
            ..CreateSubscriptionItems::new()
        }])
        .payment_behavior(CreateSubscriptionPaymentBehavior::DefaultIncomplete)
        .send(&client)
        .await
        .unwrap();
    assert_eq!(sub.status, SubscriptionStatus::Incomplete);
    let open = sub
        .latest_invoice
        .as_ref()
        .unwrap()
        .id()
        .as_ref()
        .unwrap()
        .to_string();
    let paid = PayInvoice::new(open.as_str()).send(&client).await.unwrap();
    assert_eq!(paid.status, Some(InvoiceStatus::Paid));
    let sub = RetrieveSubscription::new(sub.id.as_str())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(sub.status, SubscriptionStatus::Active);

    // Checkout line items and expiry.
    let session = CreateCheckoutSession::new()
        .mode(CheckoutSessionMode::Subscription)
        .customer(customer.id.as_str())
        .line_items(vec![CreateCheckoutSessionLineItems {
            price: Some(price.clone()),
            quantity: Some(2),
            ..CreateCheckoutSessionLineItems::new()
        }])
        .success_url("https://app.example/ok")
        .send(&client)
        .await
        .unwrap();
    assert_eq!(session.amount_total, Some(2 * 49900));
    let items = ListLineItemsCheckoutSession::new(session.id.as_str())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(items.data[0].quantity, Some(2));
    assert_eq!(items.data[0].price.as_ref().unwrap().id.as_str(), price);
    let expired = ExpireCheckoutSession::new(session.id.as_str())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(expired.status, Some(CheckoutSessionStatus::Expired));
    assert!(
        emulator
            .complete_checkout(session.id.as_str(), Completion::default())
            .await
            .is_err()
    );

    // Deleting a customer cancels their subscriptions; the customer reads as deleted.
    let deleted = DeleteCustomer::new(customer.id.as_str())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(deleted.id, customer.id);
    assert!(matches!(
        RetrieveCustomer::new(customer.id.as_str())
            .send(&client)
            .await
            .unwrap(),
        RetrieveCustomerReturned::DeletedCustomer(_)
    ));
    let sub = RetrieveSubscription::new(sub.id.as_str())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(sub.status, SubscriptionStatus::Canceled);

    let ids = all_event_ids(&emulator).await;
    let got = receiver.expect_all(&ids).await;
    for wanted in [
        "product.updated",
        "price.updated",
        "checkout.session.expired",
        "customer.deleted",
        "invoice.paid",
    ] {
        assert!(got.iter().any(|r| r.type_ == wanted), "no {wanted}");
    }
}
