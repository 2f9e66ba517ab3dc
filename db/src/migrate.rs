//! Embedded migrations: the binaries carry `migrations/` and apply it on demand
//! (`catalytic-api migrate`), never implicitly on start.

use diesel::migration::MigrationSource;
use diesel::pg::Pg;
use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::{DbError, DbResult};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");

/// Where the database stands against the migrations this binary carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    pub known: usize,
    pub applied: Vec<String>,
    pub pending: Vec<String>,
}

async fn connect(url: &str) -> DbResult<AsyncPgConnection> {
    AsyncPgConnection::establish(url)
        .await
        .map_err(|e| DbError::Unavailable(e.to_string()))
}

fn harness_err(e: impl std::fmt::Display) -> DbError {
    DbError::Other(format!("migration failed: {e}"))
}

/// Applies every pending migration; returns the versions applied. Needs the multi-thread
/// tokio runtime (the harness blocks in place).
pub async fn run_pending(url: &str) -> DbResult<Vec<String>> {
    let conn = connect(url).await?;
    let mut harness = AsyncMigrationHarness::new(conn);
    let applied = harness
        .run_pending_migrations(MIGRATIONS)
        .map_err(harness_err)?;
    Ok(applied.iter().map(|v| v.to_string()).collect())
}

/// Reverts every applied migration, newest first (tests and operators rolling back).
pub async fn revert_all(url: &str) -> DbResult<Vec<String>> {
    let conn = connect(url).await?;
    let mut harness = AsyncMigrationHarness::new(conn);
    let reverted = harness
        .revert_all_migrations(MIGRATIONS)
        .map_err(harness_err)?;
    Ok(reverted.iter().map(|v| v.to_string()).collect())
}

/// Reports applied and pending migrations.
pub async fn status(url: &str) -> DbResult<MigrationStatus> {
    let conn = connect(url).await?;
    let mut harness = AsyncMigrationHarness::new(conn);
    let known = MigrationSource::<Pg>::migrations(&MIGRATIONS)
        .map_err(harness_err)?
        .len();
    let applied = harness
        .applied_migrations()
        .map_err(harness_err)?
        .iter()
        .map(|v| v.to_string())
        .collect();
    let pending = harness
        .pending_migrations(MIGRATIONS)
        .map_err(harness_err)?
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    Ok(MigrationStatus {
        known,
        applied,
        pending,
    })
}

/// A fingerprint of every migration file (computed at build time).
pub const FINGERPRINT: &str = env!("CATALYTIC_MIGRATIONS_HASH");
