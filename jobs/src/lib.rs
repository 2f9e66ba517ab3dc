//! Jobs: the contract between the API and the workers. Payload types, queue names and
//! their retry policies, enqueue helpers, the handlers and the services they use.

pub mod billing;
pub mod context;
pub mod email;
pub mod enqueue;
pub mod envelope;
pub mod error;
pub mod handler;
pub mod kinds;
pub mod lattice;
pub mod notify;
pub mod queue;
pub mod queues;
pub mod sweeper;
pub mod usage;

pub use context::{HandlerContext, WorkerConfig};
pub use envelope::Envelope;
pub use error::JobError;
pub use handler::handle;
pub use queues::{QueueName, RetryPolicy};
pub use sweeper::sweep_stale;
