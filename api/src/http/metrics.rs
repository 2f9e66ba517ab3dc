//! Prometheus metrics of the API process.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};

/// The API's metric families, registered in their own registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    pub jobs_enqueued: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("catalytic".into()), None)
            .unwrap_or_else(|_| Registry::new());
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status"),
            &["method", "route", "status"],
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}"));
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0,
            ]),
            &["method", "route"],
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}"));
        let jobs_enqueued = IntCounterVec::new(
            Opts::new("jobs_enqueued_total", "Jobs enqueued by queue and kind"),
            &["queue", "kind"],
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}"));
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(jobs_enqueued.clone()),
        ] {
            registry
                .register(c)
                .unwrap_or_else(|e| panic!("metric registration: {e}"));
        }
        Self {
            registry,
            requests,
            latency,
            jobs_enqueued,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
