//! JSON logs through tracing, filtered by LOG_LEVEL.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber: one JSON object per line on stdout.
pub fn init(level: &str) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .with_env_filter(filter)
        .try_init();
}
