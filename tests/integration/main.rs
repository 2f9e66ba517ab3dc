//! The one integration-test binary: real PostgreSQL, Redis and worker processes.

mod api_keys;
mod auth;
mod foundation;
mod isolation;
mod lattices;
mod migrations;
mod openapi;
mod ratelimit;
mod roles;
mod systemd;
mod users;
mod worker;
