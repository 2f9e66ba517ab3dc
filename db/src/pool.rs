//! The diesel-async connection pool.

use std::time::Duration;

use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::deadpool::{Object, Pool as DeadPool};

use crate::{DbError, DbResult};

/// A connection as the query functions take it.
pub type Conn = AsyncPgConnection;
/// A pooled connection; derefs to [`Conn`].
pub type PooledConn = Object<AsyncPgConnection>;

/// A cloneable handle to the PostgreSQL pool.
#[derive(Clone)]
pub struct Pool {
    inner: DeadPool<AsyncPgConnection>,
}

impl Pool {
    /// Builds a pool; connections are opened lazily, so this succeeds while the database
    /// is down and the first query reports [`DbError::Unavailable`].
    pub fn new(database_url: &str, max_size: usize) -> DbResult<Self> {
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(database_url);
        let inner = DeadPool::builder(manager)
            .max_size(max_size)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(3)))
            .recycle_timeout(Some(Duration::from_secs(3)))
            .runtime(deadpool_runtime())
            .build()
            .map_err(|e| DbError::Other(e.to_string()))?;
        Ok(Self { inner })
    }

    /// Takes a connection from the pool.
    pub async fn get(&self) -> DbResult<PooledConn> {
        self.inner.get().await.map_err(DbError::from)
    }

    /// Round trip to the database, for health checks.
    pub async fn ping(&self) -> DbResult<()> {
        use diesel_async::RunQueryDsl;
        let mut conn = self.get().await?;
        diesel::sql_query("SELECT 1").execute(&mut conn).await?;
        Ok(())
    }
}

fn deadpool_runtime() -> deadpool::Runtime {
    deadpool::Runtime::Tokio1
}
