//! Prometheus metrics of the queue.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use super::client::QueueStats;

/// Queue metrics: counters and histograms updated by the backend, gauges refreshed from
/// Redis by [`QueueMetrics::observe_stats`] (call it before each scrape).
///
/// Cheap to clone (collectors are reference counted).
#[derive(Debug, Clone)]
pub struct QueueMetrics {
    /// Jobs finished per queue and outcome (`succeeded`, `retried`, `failed`, `aborted`,
    /// `reclaimed`, `lost`, `undecodable`).
    pub jobs: IntCounterVec,
    /// Job run time per queue and outcome, in seconds.
    pub duration: HistogramVec,
    /// Time from an entry becoming available to a worker starting it, per queue, seconds.
    pub pickup: HistogramVec,
    /// Entries waiting in the stream, not yet delivered to a consumer.
    pub depth: IntGaugeVec,
    /// Entries delivered to a consumer and not acknowledged yet (running or orphaned).
    pub pending: IntGaugeVec,
    /// Entries waiting in the delayed set (retries in backoff, scheduled jobs).
    pub delayed: IntGaugeVec,
    /// Entries in the dead-letter stream.
    pub dead: IntGaugeVec,
}

impl Default for QueueMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl QueueMetrics {
    /// Creates the collectors (unregistered; see [`QueueMetrics::register`]).
    ///
    /// The `expect`s cannot fire: names, labels and buckets are constants.
    pub fn new() -> Self {
        let gauge = |name: &str, help: &str| {
            IntGaugeVec::new(Opts::new(name, help), &["queue"]).expect("valid gauge options")
        };
        Self {
            jobs: IntCounterVec::new(
                Opts::new("catalytic_queue_jobs_total", "Jobs by queue and outcome"),
                &["queue", "outcome"],
            )
            .expect("valid counter options"),
            duration: HistogramVec::new(
                HistogramOpts::new("catalytic_queue_job_duration_seconds", "Job run time").buckets(
                    vec![
                        0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                        300.0, 900.0,
                    ],
                ),
                &["queue", "outcome"],
            )
            .expect("valid histogram options"),
            pickup: HistogramVec::new(
                HistogramOpts::new(
                    "catalytic_queue_pickup_latency_seconds",
                    "Time from an entry becoming available to a worker starting it",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0,
                ]),
                &["queue"],
            )
            .expect("valid histogram options"),
            depth: gauge("catalytic_queue_depth", "Entries waiting for a consumer"),
            pending: gauge(
                "catalytic_queue_pending",
                "Entries claimed by a consumer and not acknowledged",
            ),
            delayed: gauge(
                "catalytic_queue_delayed",
                "Entries waiting for their retry or schedule time",
            ),
            dead: gauge("catalytic_queue_dead", "Entries in the dead-letter stream"),
        }
    }

    /// Registers every collector in `registry`.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.jobs.clone()))?;
        registry.register(Box::new(self.duration.clone()))?;
        registry.register(Box::new(self.pickup.clone()))?;
        registry.register(Box::new(self.depth.clone()))?;
        registry.register(Box::new(self.pending.clone()))?;
        registry.register(Box::new(self.delayed.clone()))?;
        registry.register(Box::new(self.dead.clone()))?;
        Ok(())
    }

    /// Sets the gauges of `queue` from a [`QueueStats`] snapshot.
    pub fn observe_stats(&self, queue: &str, stats: &QueueStats) {
        let set = |g: &IntGaugeVec, v: u64| {
            g.with_label_values(&[queue])
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        set(&self.depth, stats.waiting);
        set(&self.pending, stats.pending);
        set(&self.delayed, stats.delayed);
        set(&self.dead, stats.dead);
    }

    pub(crate) fn finished(&self, queue: &str, outcome: &str, secs: Option<f64>) {
        self.jobs.with_label_values(&[queue, outcome]).inc();
        if let Some(secs) = secs {
            self.duration
                .with_label_values(&[queue, outcome])
                .observe(secs);
        }
    }

    pub(crate) fn count(&self, queue: &str, outcome: &str, n: u64) {
        if n > 0 {
            self.jobs.with_label_values(&[queue, outcome]).inc_by(n);
        }
    }

    pub(crate) fn picked_up(&self, queue: &str, secs: f64) {
        self.pickup.with_label_values(&[queue]).observe(secs);
    }
}
