//! The emulated Stripe account: every object as the JSON Stripe would hold, by type, in
//! creation order, plus the bookkeeping that is not part of any object (a session's line
//! items, a subscription's pending prorations, idempotent replies, webhook deliveries).

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

use crate::error::{ApiError, ApiResult};
use crate::fixtures::Fixtures;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Customer,
    Product,
    Price,
    CheckoutSession,
    PortalSession,
    Subscription,
    Invoice,
    Event,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Customer,
        Kind::Product,
        Kind::Price,
        Kind::CheckoutSession,
        Kind::PortalSession,
        Kind::Subscription,
        Kind::Invoice,
        Kind::Event,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The `object` value of this type.
    pub fn object(self) -> &'static str {
        match self {
            Kind::Customer => "customer",
            Kind::Product => "product",
            Kind::Price => "price",
            Kind::CheckoutSession => "checkout.session",
            Kind::PortalSession => "billing_portal.session",
            Kind::Subscription => "subscription",
            Kind::Invoice => "invoice",
            Kind::Event => "event",
        }
    }

    /// The noun of Stripe's `No such …` message.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::CheckoutSession => "checkout.session",
            Kind::PortalSession => "billing_portal.session",
            other => other.object(),
        }
    }
}

/// Objects of one type in creation order, indexed by id.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Value>,
    index: HashMap<String, usize>,
}

impl Table {
    fn insert(&mut self, id: String, object: Value) {
        match self.index.get(&id) {
            Some(&i) => self.rows[i] = object,
            None => {
                self.index.insert(id, self.rows.len());
                self.rows.push(object);
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<&Value> {
        self.index.get(id).map(|&i| &self.rows[i])
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut Value> {
        self.index.get(id).map(|&i| &mut self.rows[i])
    }

    /// Newest first, as Stripe lists.
    pub fn newest_first(&self) -> impl Iterator<Item = &Value> {
        self.rows.iter().rev()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Oldest first, from position `start` of creation order.
    pub fn since(&self, start: usize) -> &[Value] {
        self.rows.get(start..).unwrap_or_default()
    }
}

/// What a checkout session knows that its object does not show.
#[derive(Debug, Clone, Default)]
pub struct SessionExtra {
    /// `item` objects, returned by `/line_items` or `expand[]=line_items`.
    pub line_items: Vec<Value>,
    /// `subscription_data[metadata]`.
    pub subscription_metadata: Value,
    /// `subscription_data[trial_period_days]`.
    pub trial_period_days: Option<i64>,
    /// `subscription_data[description]`.
    pub subscription_description: Option<String>,
}

/// Where events go, and how they are signed.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookEndpoint {
    pub url: String,
    pub secret: String,
}

/// One attempt to deliver an event.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub event: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub attempt: u32,
    pub url: String,
    pub at: i64,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub delivered: bool,
}

/// A reply kept for an `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct StoredReply {
    pub fingerprint: String,
    pub status: u16,
    pub body: Value,
}

/// Who caused a change, as events record it (`request.id`, `request.idempotency_key`).
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    pub request_id: Option<String>,
    pub idempotency_key: Option<String>,
}

impl Ctx {
    /// A change Stripe makes on its own (a renewal, a customer paying on a hosted page).
    pub fn automatic() -> Self {
        Self::default()
    }
}

pub struct State {
    pub fixtures: Fixtures,
    pub base_url: String,
    pub api_version: String,
    /// One table per kind, at `Kind::index`.
    tables: [Table; Kind::ALL.len()],
    kinds: HashMap<String, Kind>,
    deleted: HashMap<String, Kind>,
    pub sessions: HashMap<String, SessionExtra>,
    /// Proration lines waiting for a subscription's next invoice.
    pub pending_lines: HashMap<String, Vec<Value>>,
    pub idempotency: HashMap<String, StoredReply>,
    pub webhook: Option<WebhookEndpoint>,
    /// The signing secret, kept while no endpoint is set.
    pub webhook_secret: String,
    pub deliveries: Vec<Delivery>,
    pub down: bool,
    pub portal_configuration: String,
    outbox: UnboundedSender<String>,
}

impl State {
    pub fn new(
        fixtures: Fixtures,
        base_url: String,
        api_version: String,
        webhook_url: Option<String>,
        webhook_secret: String,
        outbox: UnboundedSender<String>,
    ) -> Self {
        Self {
            fixtures,
            base_url,
            api_version,
            tables: Default::default(),
            kinds: HashMap::new(),
            deleted: HashMap::new(),
            sessions: HashMap::new(),
            pending_lines: HashMap::new(),
            idempotency: HashMap::new(),
            webhook: webhook_url.map(|url| WebhookEndpoint {
                url,
                secret: webhook_secret.clone(),
            }),
            webhook_secret,
            deliveries: Vec::new(),
            down: false,
            portal_configuration: crate::ids::with_len("bpc_", 24),
            outbox,
        }
    }

    pub fn template(&self, kind: &str) -> Value {
        self.fixtures.template(kind)
    }

    pub fn table(&self, kind: Kind) -> &Table {
        &self.tables[kind.index()]
    }

    /// Stores a new or changed object under its `id`.
    pub fn put(&mut self, kind: Kind, object: Value) {
        let id = object["id"].as_str().unwrap_or_default().to_owned();
        self.kinds.insert(id.clone(), kind);
        self.tables[kind.index()].insert(id, object);
    }

    pub fn get(&self, kind: Kind, id: &str) -> Option<&Value> {
        self.tables[kind.index()].get(id)
    }

    /// The object, or Stripe's 404 naming it.
    pub fn find(&self, kind: Kind, id: &str, param: &str) -> ApiResult<Value> {
        self.get(kind, id)
            .cloned()
            .ok_or_else(|| ApiError::no_such(kind.noun(), id, param))
    }

    pub fn get_mut(&mut self, kind: Kind, id: &str) -> Option<&mut Value> {
        self.tables[kind.index()].get_mut(id)
    }

    /// The type of any id the account has seen (custom product ids have no prefix).
    pub fn kind_of(&self, id: &str) -> Option<Kind> {
        self.kinds.get(id).copied()
    }

    pub fn is_deleted(&self, id: &str) -> bool {
        self.deleted.contains_key(id)
    }

    /// Removes an object; retrieving it afterwards answers Stripe's deleted stub.
    pub fn delete(&mut self, kind: Kind, id: &str) -> Value {
        self.deleted.insert(id.to_owned(), kind);
        deleted_stub(kind, id)
    }

    /// Hands an event to the webhook deliverer, when an endpoint is configured.
    pub fn enqueue_delivery(&self, event_id: &str) {
        if self.webhook.is_some() {
            // The receiver lives as long as the server; a send error only means shutdown.
            let _ = self.outbox.send(event_id.to_owned());
        }
    }
}

pub fn deleted_stub(kind: Kind, id: &str) -> Value {
    json!({ "id": id, "object": kind.object(), "deleted": true })
}
