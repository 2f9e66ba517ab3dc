//! Embedded migrations: the binaries carry `migrations/` and apply it on demand
//! (`catalytic-api migrate`), never implicitly on start.

use diesel::migration::MigrationSource;
use diesel::pg::Pg;
use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, RunQueryDsl};
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

/// The advisory lock `run_pending` holds: two `catalytic-api migrate` at once (the migrate
/// unit and an API's `ExecStartPre`, or several hosts) apply each migration once.
const MIGRATE_LOCK: i64 = 724_202;

/// Applies every pending migration; returns the versions applied. Runs under a session
/// advisory lock held on a second connection (released when it closes, also on a crash), so
/// concurrent runs wait for each other and the later ones find nothing pending. Needs the
/// multi-thread tokio runtime (the harness blocks in place).
pub async fn run_pending(url: &str) -> DbResult<Vec<String>> {
    let mut lock = connect(url).await?;
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(MIGRATE_LOCK)
        .execute(&mut lock)
        .await?;
    let conn = connect(url).await?;
    let mut harness = AsyncMigrationHarness::new(conn);
    let applied: DbResult<Vec<String>> = harness
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(|v| v.to_string()).collect())
        .map_err(harness_err);
    drop(harness);
    // Closing the connection releases the lock too; unlocking first frees it at once.
    diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<diesel::sql_types::BigInt, _>(MIGRATE_LOCK)
        .execute(&mut lock)
        .await?;
    applied
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
