//! The queue's error type.

/// An error of the queue layer.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Redis answered with an error or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A payload could not be encoded or decoded.
    #[error("payload codec: {0}")]
    Codec(#[from] serde_json::Error),
    /// Redis answered something the queue did not expect.
    #[error("unexpected reply from redis: {0}")]
    Protocol(String),
}
