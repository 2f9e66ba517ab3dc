//! The worker's own Prometheus endpoint.

use std::{net::SocketAddr, sync::Arc};

use catalytic_jobs::{
    QueueName,
    queue::{QueueClient, QueueMetrics},
};
use poem::{
    EndpointExt, Response, Route, Server, get, handler,
    http::StatusCode,
    listener::{Acceptor, Listener, TcpListener},
    web::Data,
};
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::sync::oneshot;

/// What `/metrics` reads.
pub struct MetricsState {
    pub registry: Registry,
    pub metrics: QueueMetrics,
    pub client: QueueClient,
    pub queues: Vec<QueueName>,
}

/// A running metrics server.
pub struct MetricsServer {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    join: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl MetricsServer {
    /// Binds `addr` (port 0 picks a free port) and serves `/metrics`.
    pub async fn start(addr: SocketAddr, state: MetricsState) -> anyhow::Result<Self> {
        let acceptor = TcpListener::bind(addr.to_string())
            .into_acceptor()
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for metrics: {e}"))?;
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .unwrap_or(addr);
        let app = Route::new()
            .at("/metrics", get(metrics))
            .data(Arc::new(state));
        let (stop, stopped) = oneshot::channel::<()>();
        let join = tokio::spawn(
            Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
                app,
                async move {
                    let _ = stopped.await;
                },
                Some(std::time::Duration::from_secs(2)),
            ),
        );
        Ok(Self { addr, stop, join })
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        match self.join.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "metrics server failed"),
            Err(e) => tracing::warn!(error = %e, "metrics server task failed"),
        }
    }
}

#[handler]
async fn metrics(state: Data<&Arc<MetricsState>>) -> Response {
    for queue in &state.queues {
        match state.client.stats(queue.as_str()).await {
            Ok(stats) => state.metrics.observe_stats(queue.as_str(), &stats),
            Err(e) => tracing::warn!(queue = queue.as_str(), error = %e, "queue stats unavailable"),
        }
    }
    let mut body = Vec::new();
    let encoder = TextEncoder::new();
    match encoder.encode(&state.registry.gather(), &mut body) {
        Ok(()) => Response::builder()
            .content_type(encoder.format_type())
            .body(body),
        Err(e) => Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .body(e.to_string()),
    }
}
