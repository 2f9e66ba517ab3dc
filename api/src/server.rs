//! Serving: binds HOST:PORT, refuses to start against a database whose migrations are
//! behind, drains in-flight requests on SIGTERM.

use std::time::Duration;

use poem::Server;
use poem::listener::{Acceptor, Listener, TcpListener};

use crate::app;
use crate::config::Config;
use crate::state::AppState;

/// Checks that every migration this binary carries is applied.
pub async fn check_migrations(config: &Config) -> anyhow::Result<()> {
    let status = catalytic_db::migrate::status(config.database_url.expose()).await?;
    if !status.pending.is_empty() {
        anyhow::bail!(
            "the database is behind: {} migration(s) pending ({}); run `catalytic-api migrate` first",
            status.pending.len(),
            status.pending.join(", ")
        );
    }
    Ok(())
}

/// A running server (tests start one on port 0).
pub struct Running {
    pub addr: std::net::SocketAddr,
    pub handle: tokio::task::JoinHandle<std::io::Result<()>>,
    pub shutdown: tokio::sync::oneshot::Sender<()>,
}

/// Binds and serves until `shutdown` fires; then stops accepting and waits for in-flight
/// requests up to the configured timeout.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let addr = std::net::SocketAddr::new(config.host, config.port);
    let timeout = Duration::from_secs(config.shutdown_timeout_secs);
    let state = AppState::build(config).await?;
    let acceptor = TcpListener::bind(addr).into_acceptor().await?;
    let local = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .ok_or_else(|| anyhow::anyhow!("no local address"))?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let endpoint = app::build(state);
    let handle = tokio::spawn(async move {
        Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(
                endpoint,
                async {
                    let _ = rx.await;
                },
                Some(timeout),
            )
            .await
    });
    Ok(Running {
        addr: local,
        handle,
        shutdown: tx,
    })
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
