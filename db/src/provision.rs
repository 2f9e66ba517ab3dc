//! Creating and dropping whole databases: used by the test harness (a fresh database per
//! test, cloned from a migrated template) and by operators' tooling.

use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::migrate;
use crate::{DbError, DbResult};

fn valid_name(name: &str) -> DbResult<()> {
    if name.is_empty()
        || name.len() > 63
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(DbError::Other(format!("invalid database name {name:?}")));
    }
    Ok(())
}

/// `admin_url` with its database replaced by `db`.
pub fn url_for(admin_url: &str, db: &str) -> String {
    match admin_url.rfind('/') {
        Some(i) => {
            let (base, rest) = admin_url.split_at(i + 1);
            let query = rest.find('?').map(|q| &rest[q..]).unwrap_or("");
            format!("{base}{db}{query}")
        }
        None => format!("{admin_url}/{db}"),
    }
}

async fn admin(admin_url: &str) -> DbResult<AsyncPgConnection> {
    AsyncPgConnection::establish(admin_url)
        .await
        .map_err(|e| DbError::Unavailable(e.to_string()))
}

async fn exists(conn: &mut AsyncPgConnection, name: &str) -> DbResult<bool> {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let c: Count = diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
        .bind::<diesel::sql_types::Text, _>(name)
        .get_result(conn)
        .await?;
    Ok(c.n > 0)
}

/// Ensures a migrated template database `name` exists (safe when many test processes
/// race: they serialise on an advisory lock).
pub async fn ensure_template(admin_url: &str, name: &str) -> DbResult<()> {
    valid_name(name)?;
    let mut conn = admin(admin_url).await?;
    diesel::sql_query("SELECT pg_advisory_lock(724201)")
        .execute(&mut conn)
        .await?;
    let result = async {
        if !exists(&mut conn, name).await? {
            let building = format!("{name}_building");
            diesel::sql_query(format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                .execute(&mut conn)
                .await?;
            diesel::sql_query(format!("CREATE DATABASE {building}"))
                .execute(&mut conn)
                .await?;
            migrate::run_pending(&url_for(admin_url, &building)).await?;
            diesel::sql_query(format!("ALTER DATABASE {building} RENAME TO {name}"))
                .execute(&mut conn)
                .await?;
        }
        Ok::<(), DbError>(())
    }
    .await;
    diesel::sql_query("SELECT pg_advisory_unlock(724201)")
        .execute(&mut conn)
        .await?;
    result
}

/// Creates database `name`, empty or as a copy of `template`.
pub async fn create(admin_url: &str, name: &str, template: Option<&str>) -> DbResult<()> {
    valid_name(name)?;
    let mut conn = admin(admin_url).await?;
    let sql = match template {
        Some(t) => {
            valid_name(t)?;
            format!("CREATE DATABASE {name} TEMPLATE {t}")
        }
        None => format!("CREATE DATABASE {name}"),
    };
    // Copying a template fails while another session is connected to it; retry briefly.
    let mut last = None;
    for _ in 0..50 {
        match diesel::sql_query(&sql).execute(&mut conn).await {
            Ok(_) => return Ok(()),
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    Err(last
        .map(DbError::from)
        .unwrap_or(DbError::Other("create failed".into())))
}

/// Drops database `name`, disconnecting its sessions.
pub async fn drop(admin_url: &str, name: &str) -> DbResult<()> {
    valid_name(name)?;
    let mut conn = admin(admin_url).await?;
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// Runs a statement outside the schema's query functions (tests that break a table on
/// purpose, operators' one-off fixes). Returns rows affected.
pub async fn execute_raw(url: &str, sql: &str) -> DbResult<usize> {
    let mut conn = admin(url).await?;
    Ok(diesel::sql_query(sql).execute(&mut conn).await?)
}

/// A name for the template that changes whenever a migration changes.
pub fn template_name() -> String {
    format!("catalytic_tpl_{}", migrate::FINGERPRINT)
}
