//! The one integration-test binary: real PostgreSQL, Redis and worker processes.

mod api_keys;
mod auth;
mod billing;
mod cli;
mod email;
mod foundation;
mod hardening;
mod isolation;
mod lattices;
mod migrations;
mod openapi;
mod ratelimit;
mod roles;
mod stripe_emulator;
mod systemd;
mod usage;
mod users;
mod worker;
