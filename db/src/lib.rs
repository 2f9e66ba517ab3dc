//! Catalytic's PostgreSQL layer: the diesel schema, models, typed ids, the async pool,
//! embedded migrations and every query the services run. Nothing outside this crate
//! writes SQL.

pub mod error;
pub mod ids;
pub mod migrate;
pub mod pool;
pub mod provision;
pub mod schema;

pub mod api_keys;
pub mod audit;
pub mod invoices;
pub mod jobs;
pub mod lattices;
pub mod notifications;
pub mod outbox;
pub mod plans;
pub mod stripe_customers;
pub mod stripe_events;
pub mod subscriptions;
pub mod tenants;
pub mod tokens;
pub mod usage;
pub mod users;

pub use diesel::result::Error as DieselError;
pub use diesel_async::AsyncConnection;
pub use error::DbError;
pub use pool::{Conn, Pool, PooledConn};

/// The result type of every query function.
pub type DbResult<T> = Result<T, DbError>;
