//! Redis key names of a queue. All keys of one queue share one hash tag.

use std::sync::Arc;

/// The consumer group every worker of a queue joins.
pub const CONSUMER_GROUP: &str = "workers";

/// The Redis keys of one queue, e.g. `{catalytic:lattice}:stream`.
///
/// The hash tag (`{...}`) is the prefix plus the queue name, so every key of the queue maps
/// to one Redis Cluster slot and each script touches one slot.
#[derive(Debug, Clone)]
pub struct QueueKeys(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    queue: String,
    tag: String,
    stream: String,
    delayed: String,
    delayed_data: String,
    dead: String,
}

impl QueueKeys {
    /// Keys of `queue` under `prefix` (e.g. `catalytic:`; tests use a random prefix).
    pub fn new(prefix: &str, queue: &str) -> Self {
        let tag = format!("{{{prefix}{queue}}}");
        Self(Arc::new(Inner {
            queue: queue.to_owned(),
            stream: format!("{tag}:stream"),
            delayed: format!("{tag}:delayed"),
            delayed_data: format!("{tag}:delayed:data"),
            dead: format!("{tag}:dead"),
            tag,
        }))
    }

    /// The queue name (without prefix).
    pub fn queue(&self) -> &str {
        &self.0.queue
    }

    /// The hash tag, braces included.
    pub fn tag(&self) -> &str {
        &self.0.tag
    }

    /// The stream consumers read (`XREADGROUP`).
    pub fn stream(&self) -> &str {
        &self.0.stream
    }

    /// Sorted set of delayed entries (member = job id, score = due time in ms).
    pub fn delayed(&self) -> &str {
        &self.0.delayed
    }

    /// Hash of delayed entries' fields (field = job id, value = msgpack of the fields).
    pub fn delayed_data(&self) -> &str {
        &self.0.delayed_data
    }

    /// The dead-letter stream.
    pub fn dead(&self) -> &str {
        &self.0.dead
    }

    /// The dedupe key for `key`.
    pub fn dedupe(&self, key: &str) -> String {
        format!("{}:dedupe:{key}", self.0.tag)
    }

    /// A key of this slot that is never written, passed where a script needs a key slot
    /// filled but the caller has none (e.g. no dedupe key).
    pub fn unused(&self) -> String {
        format!("{}:unused", self.0.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_queue_shares_the_hash_tag() {
        let k = QueueKeys::new("catalytic:", "lattice");
        assert_eq!(k.stream(), "{catalytic:lattice}:stream");
        assert_eq!(k.delayed(), "{catalytic:lattice}:delayed");
        assert_eq!(k.delayed_data(), "{catalytic:lattice}:delayed:data");
        assert_eq!(k.dead(), "{catalytic:lattice}:dead");
        assert_eq!(k.dedupe("job-1"), "{catalytic:lattice}:dedupe:job-1");
        assert!(k.unused().starts_with("{catalytic:lattice}:"));
    }
}
