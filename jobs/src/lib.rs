//! Jobs: the contract between the API and the workers. Payload types, queue names and
//! their retry policies, enqueue helpers, the handlers and the services they use.

pub mod enqueue;
pub mod envelope;
pub mod error;
pub mod queue;
pub mod queues;

pub use envelope::Envelope;
pub use error::JobError;
pub use queues::{QueueName, RetryPolicy};
