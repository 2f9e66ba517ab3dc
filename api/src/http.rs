//! HTTP plumbing shared by every route: request ids, error normalisation, security
//! headers, metrics and client addresses.

pub mod client_ip;
pub mod metrics;
pub mod middleware;
pub mod request_id;
