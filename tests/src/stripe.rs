//! The Stripe emulator (`stripe-emulator`, a binary of this crate) for tests: start one per
//! test, point the Stripe client at [`StripeEmulator::base_url`] with
//! [`StripeEmulator::secret_key`], and drive what customers and Stripe would do through the
//! test-control routes. The process is killed when the value is dropped.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::Sha256;

/// Any `sk_test_…` key works; this is the one the helper hands out.
pub const SECRET_KEY: &str = "sk_test_catalytic_emulator";
/// The publishable key tests configure (the emulator does not check it).
pub const PUBLISHABLE_KEY: &str = "pk_test_catalytic_emulator";

/// The emulator binary: `STRIPE_EMULATOR_BIN`, else this workspace's debug build.
pub fn emulator_bin() -> PathBuf {
    std::env::var_os("STRIPE_EMULATOR_BIN").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/debug/stripe-emulator"
            ))
        },
        PathBuf::from,
    )
}

/// How the emulator is started.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    pub webhook_url: Option<String>,
    pub webhook_secret: String,
    /// Delivery attempts per event, the first included.
    pub webhook_attempts: u32,
    /// The wait before the first retry (doubling after).
    pub webhook_backoff: Duration,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        Self {
            webhook_url: None,
            webhook_secret: "whsec_test_catalytic".into(),
            webhook_attempts: 6,
            webhook_backoff: Duration::from_millis(200),
        }
    }
}

/// A running emulator.
pub struct StripeEmulator {
    /// `http://127.0.0.1:PORT`: the client's API base (`STRIPE_API_BASE`).
    pub base_url: String,
    pub secret_key: String,
    pub webhook_secret: String,
    child: Child,
    http: reqwest::Client,
}

/// What a control action did: the objects it changed and the events it emitted.
#[derive(Debug, Clone, Deserialize)]
pub struct ControlOutcome {
    pub checkout_session: Option<Value>,
    pub subscription: Option<Value>,
    pub invoice: Option<Value>,
    pub events: Vec<EventRef>,
}

impl ControlOutcome {
    pub fn subscription_id(&self) -> Option<&str> {
        self.subscription.as_ref()?["id"].as_str()
    }

    pub fn invoice_id(&self) -> Option<&str> {
        self.invoice.as_ref()?["id"].as_str()
    }

    /// The types of the emitted events, in order.
    pub fn event_types(&self) -> Vec<&str> {
        self.events.iter().map(|e| e.type_.as_str()).collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct EventRef {
    pub id: String,
    #[serde(rename = "type")]
    pub type_: String,
}

/// One webhook delivery attempt.
#[derive(Debug, Clone, Deserialize)]
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

/// How a checkout is completed.
#[derive(Debug, Clone, Default)]
pub struct Completion {
    /// The email of the customer Checkout creates when the session has none.
    pub email: Option<String>,
    /// Starts the subscription trialing for this many days.
    pub trial_days: Option<u32>,
}

impl StripeEmulator {
    /// Starts `stripe-emulator` on a free port, delivering events to `webhook_url` (if any)
    /// signed with `webhook_secret`.
    pub fn start(webhook_url: Option<String>, webhook_secret: &str) -> Self {
        Self::start_with(
            &emulator_bin(),
            EmulatorOptions {
                webhook_url,
                webhook_secret: webhook_secret.to_owned(),
                ..EmulatorOptions::default()
            },
        )
    }

    /// Starts a given emulator binary with full options.
    pub fn start_with(bin: &Path, options: EmulatorOptions) -> Self {
        Self::try_start(bin, options).unwrap_or_else(|e| panic!("stripe emulator: {e:#}"))
    }

    fn try_start(bin: &Path, options: EmulatorOptions) -> anyhow::Result<Self> {
        let mut command = Command::new(bin);
        command
            .args(["--port", "0", "--webhook-secret", &options.webhook_secret])
            .args(["--webhook-attempts", &options.webhook_attempts.to_string()])
            .args([
                "--webhook-backoff-ms",
                &options.webhook_backoff.as_millis().to_string(),
            ])
            .env_remove("STRIPE_EMULATOR_WEBHOOK_URL")
            .env_remove("STRIPE_EMULATOR_PORT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("STRIPE_EMULATOR_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
        if let Some(url) = &options.webhook_url {
            command.args(["--webhook-url", url]);
        }
        let mut child = command.spawn().with_context(|| {
            format!(
                "starting {} (build it with `cargo build -p catalytic-tests --bin stripe-emulator` \
                 or set STRIPE_EMULATOR_BIN)",
                bin.display()
            )
        })?;
        let stdout = child.stdout.take().context("emulator stdout")?;
        let mut reader = BufReader::new(stdout);
        let mut first = String::new();
        reader
            .read_line(&mut first)
            .context("reading the emulator's address")?;
        let Some(addr) = first.trim().strip_prefix("listening on ") else {
            let status = child.wait().ok();
            bail!(
                "the emulator did not start (exit: {status:?}, said: {first:?}); run it by hand to see why"
            );
        };
        let base_url = format!("http://{addr}");
        // Keep the pipe drained so the emulator never blocks writing to it.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        Ok(Self {
            base_url,
            secret_key: SECRET_KEY.to_owned(),
            webhook_secret: options.webhook_secret,
            child,
            http: reqwest::Client::new(),
        })
    }

    /// Points an API's environment at this emulator (key, API base, webhook secret and a
    /// publishable key).
    pub fn api_env(&self, env: &mut std::collections::HashMap<&'static str, String>) {
        env.insert("STRIPE_SECRET_KEY", self.secret_key.clone());
        env.insert("STRIPE_API_BASE", self.base_url.clone());
        env.insert("STRIPE_WEBHOOK_SECRET", self.webhook_secret.clone());
        env.insert("STRIPE_PUBLISHABLE_KEY", PUBLISHABLE_KEY.to_owned());
    }

    /// The variables a worker needs to reach this emulator.
    pub fn worker_env(&self) -> Vec<(String, String)> {
        vec![
            ("STRIPE_SECRET_KEY".into(), self.secret_key.clone()),
            ("STRIPE_API_BASE".into(), self.base_url.clone()),
        ]
    }

    /// Client settings for this emulator (to call Stripe from a test).
    pub fn settings(&self) -> catalytic_jobs::billing::StripeSettings {
        catalytic_jobs::billing::StripeSettings {
            secret_key: self.secret_key.clone(),
            api_base: self.base_url.clone(),
        }
    }

    /// A `Stripe-Signature` header value for `payload` at time `t`, as the emulator signs.
    pub fn signature(&self, payload: &str, t: i64) -> String {
        sign_header(&self.webhook_secret, payload, t)
    }

    async fn control<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> anyhow::Result<T> {
        let url = format!("{}/_test/{path}", self.base_url);
        let response = self
            .http
            .request(method, &url)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("calling {url}"))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{url} answered {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("{url} answered {text}"))
    }

    async fn act(&self, path: &str, body: Value) -> anyhow::Result<ControlOutcome> {
        self.control(reqwest::Method::POST, path, body).await
    }

    /// The customer pays on the hosted Checkout page: the subscription starts (trialing with
    /// `trial_days`), its first invoice is paid, and the events go out.
    pub async fn complete_checkout(
        &self,
        session_id: &str,
        completion: Completion,
    ) -> anyhow::Result<ControlOutcome> {
        self.act(
            &format!("checkout_sessions/{session_id}/complete"),
            json!({ "email": completion.email, "trial_days": completion.trial_days }),
        )
        .await
    }

    pub async fn expire_checkout(&self, session_id: &str) -> anyhow::Result<ControlOutcome> {
        self.act(&format!("checkout_sessions/{session_id}/expire"), json!({}))
            .await
    }

    /// A declined charge: `invoice.payment_failed`, the subscription goes past_due.
    pub async fn fail_payment(&self, subscription_id: &str) -> anyhow::Result<ControlOutcome> {
        self.act(
            &format!("subscriptions/{subscription_id}/fail_payment"),
            json!({}),
        )
        .await
    }

    /// The open invoices are paid; the subscription is active again.
    pub async fn pay(&self, subscription_id: &str) -> anyhow::Result<ControlOutcome> {
        self.act(&format!("subscriptions/{subscription_id}/pay"), json!({}))
            .await
    }

    pub async fn trial_will_end(&self, subscription_id: &str) -> anyhow::Result<ControlOutcome> {
        self.act(
            &format!("subscriptions/{subscription_id}/trial_will_end"),
            json!({}),
        )
        .await
    }

    pub async fn end_trial(&self, subscription_id: &str) -> anyhow::Result<ControlOutcome> {
        self.act(
            &format!("subscriptions/{subscription_id}/end_trial"),
            json!({}),
        )
        .await
    }

    /// The renewal: next period and a paid invoice, or the scheduled cancellation.
    pub async fn advance_period(&self, subscription_id: &str) -> anyhow::Result<ControlOutcome> {
        self.act(
            &format!("subscriptions/{subscription_id}/advance_period"),
            json!({}),
        )
        .await
    }

    /// Every `/v1` call answers 503 until [`Self::up`].
    pub async fn down(&self) -> anyhow::Result<()> {
        self.control::<Value>(reqwest::Method::POST, "down", json!({}))
            .await
            .map(drop)
    }

    pub async fn up(&self) -> anyhow::Result<()> {
        self.control::<Value>(reqwest::Method::POST, "up", json!({}))
            .await
            .map(drop)
    }

    /// Where events go from now on (`None` stops delivery); the secret is kept if not given.
    pub async fn set_webhook(&self, url: Option<&str>, secret: Option<&str>) -> anyhow::Result<()> {
        self.control::<Value>(
            reqwest::Method::POST,
            "webhook_endpoint",
            json!({ "url": url, "secret": secret }),
        )
        .await
        .map(drop)
    }

    /// Every event emitted so far, oldest first (full Stripe event objects).
    pub async fn events(&self) -> anyhow::Result<Vec<Value>> {
        let list: Value = self
            .control(reqwest::Method::GET, "events", Value::Null)
            .await?;
        Ok(list["data"].as_array().cloned().unwrap_or_default())
    }

    pub async fn events_of_type(&self, type_: &str) -> anyhow::Result<Vec<Value>> {
        Ok(self
            .events()
            .await?
            .into_iter()
            .filter(|e| e["type"] == json!(type_))
            .collect())
    }

    /// Queues the event for delivery again.
    pub async fn redeliver(&self, event_id: &str) -> anyhow::Result<()> {
        self.control::<Value>(
            reqwest::Method::POST,
            &format!("events/{event_id}/redeliver"),
            json!({}),
        )
        .await
        .map(drop)
    }

    /// Every delivery attempt so far.
    pub async fn deliveries(&self) -> anyhow::Result<Vec<Delivery>> {
        #[derive(Deserialize)]
        struct Deliveries {
            data: Vec<Delivery>,
        }
        let d: Deliveries = self
            .control(reqwest::Method::GET, "deliveries", Value::Null)
            .await?;
        Ok(d.data)
    }

    /// Waits until every event emitted so far has been delivered successfully.
    pub async fn wait_for_deliveries(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let events = self.events().await?;
            let delivered = self.deliveries().await?;
            let pending: Vec<&str> = events
                .iter()
                .filter_map(|e| e["id"].as_str())
                .filter(|id| !delivered.iter().any(|d| d.delivered && d.event == *id))
                .collect();
            if pending.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("events not delivered within {timeout:?}: {pending:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for StripeEmulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `t=<t>,v1=<hex HMAC-SHA256(secret, "t.payload")>`, Stripe's webhook signature header.
pub fn sign_header(secret: &str, payload: &str, t: i64) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{t}.{payload}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}
