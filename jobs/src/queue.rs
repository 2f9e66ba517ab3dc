//! The job queue: our own apalis backend over Redis Streams consumer groups.
//!
//! Every queue (lattice, webhooks, email, usage) is one Redis stream read by one consumer
//! group. Keys of one queue share a hash tag (`{<prefix><queue>}:stream`, `:delayed`,
//! `:delayed:data`, `:dead`, `:dedupe:<key>`), so every script touches one slot and the
//! backend runs unchanged on Redis Cluster.
//!
//! - [`QueueClient`] enqueues ([`QueueClient::push`], one round trip), reports
//!   [`QueueStats`], lists and re-drives dead letters, and hands a consumer's entries back.
//! - [`RedisStreamBackend`] is the apalis [`Backend`](apalis_core::backend::Backend) (and,
//!   through apalis' blanket impl, [`TaskSink`](apalis_core::backend::TaskSink)): it
//!   blocks on `XREADGROUP` (no polling tick), reads at most as many entries as the worker has
//!   free slots, and its middleware ([`AckLayer`]) heartbeats running jobs, acknowledges
//!   (`XACK` + `XDEL`) on success, schedules retries per the queue's
//!   [`RetryPolicy`](crate::RetryPolicy) in the delayed sorted set, and dead-letters after the
//!   last attempt or on [`AbortError`](apalis_core::error::AbortError).
//! - A maintenance task per backend promotes due delayed entries and reclaims entries of dead
//!   consumers (`XAUTOCLAIM` after [`ConsumerConfig::claim_idle`]).
//!
//! Delivery is at least once: handlers must be idempotent.

mod ack;
mod backend;
mod client;
mod config;
mod cron;
mod entry;
mod error;
mod identity;
mod keys;
mod maintenance;
mod metrics;
mod ops;
mod scripts;

pub use ack::{AckLayer, AckService};
pub use backend::RedisStreamBackend;
pub use client::{DeadEntry, PushOptions, Pushed, QueueClient, QueueStats};
pub use config::{ConsumerConfig, DeadLetterHook};
pub use cron::{CRON_TICK_TTL, cron_dedupe_key};
pub use entry::JobMeta;
pub use error::QueueError;
pub use identity::worker_identity;
pub use keys::{CONSUMER_GROUP, QueueKeys};
pub use metrics::QueueMetrics;
