//! catalytic-api: the HTTP service. Validates, authenticates, authorises, rate-limits and
//! meters requests, writes PostgreSQL in one transaction and enqueues work after commit.

pub mod admin;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod emails;
pub mod error;
pub mod http;
pub mod jobs_service;
pub mod quota;
pub mod ratelimit;
pub mod routes;
pub mod server;
pub mod sessions;
pub mod state;
pub mod telemetry;
pub mod tenancy;
pub mod validate;
