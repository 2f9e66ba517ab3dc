//! `stripe-emulator`: a stateful emulator of the Stripe API for tests and local development.
//!
//! Objects are built from Stripe's official fixtures for the current API (the file
//! stripe-mock serves), so async-stripe parses them as it parses Stripe's, and they live in
//! memory with the state Stripe would give them: customers, products, prices (lookup keys,
//! search), Checkout and billing portal sessions, subscriptions (plan changes with
//! prorations, cancellation), invoices and events. Events are delivered to a webhook URL
//! with a real `Stripe-Signature`. Test-control routes under `/_test` do what a customer or
//! Stripe would (complete a checkout, fail or pay an invoice, end a trial, advance a period,
//! take the API down); see `control.rs`.
//!
//! ```text
//! stripe-emulator --port 0 --webhook-url http://127.0.0.1:8080/api/stripe/webhooks \
//!     --webhook-secret whsec_test
//! ```
//! prints `listening on 127.0.0.1:PORT` as its first line of standard output; logs go to
//! standard error. Point a client at `http://127.0.0.1:PORT` with any `sk_test_…` key.
//!
//! The modules live in `stripe_emulator/`, one per concern.

// The fixture overrides are large `json!` literals.
#![recursion_limit = "256"]

#[path = "stripe_emulator/api.rs"]
mod api;
#[path = "stripe_emulator/billing.rs"]
mod billing;
#[path = "stripe_emulator/checkout.rs"]
mod checkout;
#[path = "stripe_emulator/control.rs"]
mod control;
#[path = "stripe_emulator/customers.rs"]
mod customers;
#[path = "stripe_emulator/error.rs"]
mod error;
#[path = "stripe_emulator/events.rs"]
mod events;
#[path = "stripe_emulator/fixtures.rs"]
mod fixtures;
#[path = "stripe_emulator/form.rs"]
mod form;
#[path = "stripe_emulator/ids.rs"]
mod ids;
#[path = "stripe_emulator/invoices.rs"]
mod invoices;
#[path = "stripe_emulator/list.rs"]
mod list;
#[path = "stripe_emulator/pages.rs"]
mod pages;
#[path = "stripe_emulator/params.rs"]
mod params;
#[path = "stripe_emulator/portal.rs"]
mod portal;
#[path = "stripe_emulator/prices.rs"]
mod prices;
#[path = "stripe_emulator/products.rs"]
mod products;
#[path = "stripe_emulator/render.rs"]
mod render;
#[path = "stripe_emulator/search.rs"]
mod search;
#[path = "stripe_emulator/server.rs"]
mod server;
#[path = "stripe_emulator/state.rs"]
mod state;
#[path = "stripe_emulator/subscriptions.rs"]
mod subscriptions;
#[path = "stripe_emulator/webhooks.rs"]
mod webhooks;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use poem::listener::TcpAcceptor;
use poem::{Request, Server};

use crate::server::{DeliveryPolicy, Shared};
use crate::state::State;

/// The secret events are signed with when none is given.
pub const DEFAULT_WEBHOOK_SECRET: &str = "whsec_stripe_emulator";

/// The API version events carry: the one async-stripe 1.0.0-rc.10 is generated for.
const API_VERSION: &str = "2026-09-30.endive";

#[derive(Debug, Parser)]
#[command(
    name = "stripe-emulator",
    about = "A stateful Stripe API emulator for tests and local development"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "STRIPE_EMULATOR_HOST", default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on; 0 picks a free one (printed on the first line of stdout).
    #[arg(long, env = "STRIPE_EMULATOR_PORT", default_value_t = 12111)]
    port: u16,
    /// Stripe's fixtures (fixtures3.json from stripe/openapi, as stripe-mock serves them).
    #[arg(long, env = "STRIPE_FIXTURES", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/stripe/fixtures3.json"))]
    fixtures: PathBuf,
    /// Where to POST events; none by default (they are still recorded).
    #[arg(long, env = "STRIPE_EMULATOR_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// The endpoint's signing secret.
    #[arg(long, env = "STRIPE_WEBHOOK_SECRET", default_value = DEFAULT_WEBHOOK_SECRET)]
    webhook_secret: String,
    /// Delivery attempts per event, the first included.
    #[arg(long, default_value_t = 6)]
    webhook_attempts: u32,
    /// Wait before the first retry of a failed delivery, in milliseconds (doubling after).
    #[arg(long, default_value_t = 500)]
    webhook_backoff_ms: u64,
    /// The base URL hosted pages are linked at (default: the listening address).
    #[arg(long, env = "STRIPE_EMULATOR_PUBLIC_URL")]
    public_url: Option<String>,
    /// The `api_version` events carry.
    #[arg(long, default_value = API_VERSION)]
    api_version: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let fixtures = fixtures::Fixtures::load(&args.fixtures)?;
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("binding {}:{}", args.host, args.port))?;
    let addr = listener.local_addr()?;
    let base_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"))
        .trim_end_matches('/')
        .to_owned();
    let (outbox, deliveries) = tokio::sync::mpsc::unbounded_channel();
    let state = State::new(
        fixtures,
        base_url.clone(),
        args.api_version.clone(),
        args.webhook_url.clone(),
        args.webhook_secret.clone(),
        outbox,
    );
    let shared = Arc::new(Shared::new(
        state,
        DeliveryPolicy {
            attempts: args.webhook_attempts.max(1),
            backoff: Duration::from_millis(args.webhook_backoff_ms),
        },
    ));
    webhooks::spawn(shared.clone(), deliveries);

    let acceptor = TcpAcceptor::from_tokio(listener)?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {addr}")?;
    stdout.flush()?;
    tracing::info!(%base_url, webhook = ?args.webhook_url, "stripe emulator ready");

    let endpoint = poem::endpoint::make(move |req: Request| server::handle(shared.clone(), req));
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(endpoint, shutdown(), Some(Duration::from_secs(2)))
        .await?;
    Ok(())
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
