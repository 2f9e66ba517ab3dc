//! Lattice definitions (tenant-scoped).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::ids::{LatticeId, TenantId};
use crate::schema::lattices;
use crate::{Conn, DbError, DbResult};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = lattices)]
pub struct Lattice {
    pub id: LatticeId,
    pub tenant_id: TenantId,
    pub name: String,
    pub dimensions: i32,
    pub size: i64,
    pub obstacle_density: f64,
    pub seed: i64,
    pub boundary: String,
    pub vertices: i64,
    pub created_at: DateTime<Utc>,
}

pub struct NewLattice<'a> {
    pub tenant_id: TenantId,
    pub name: &'a str,
    pub dimensions: i32,
    pub size: i64,
    pub obstacle_density: f64,
    pub seed: i64,
    pub boundary: &'a str,
    pub vertices: i64,
}

/// Inserts a lattice; a taken name is `Conflict("lattices_tenant_name_key")`.
#[tracing::instrument(skip_all, fields(tenant.id = %new.tenant_id))]
pub async fn insert(conn: &mut Conn, new: NewLattice<'_>) -> DbResult<Lattice> {
    Ok(diesel::insert_into(lattices::table)
        .values((
            lattices::id.eq(LatticeId::generate()),
            lattices::tenant_id.eq(new.tenant_id),
            lattices::name.eq(new.name),
            lattices::dimensions.eq(new.dimensions),
            lattices::size.eq(new.size),
            lattices::obstacle_density.eq(new.obstacle_density),
            lattices::seed.eq(new.seed),
            lattices::boundary.eq(new.boundary),
            lattices::vertices.eq(new.vertices),
        ))
        .returning(Lattice::as_returning())
        .get_result(conn)
        .await?)
}

#[tracing::instrument(skip_all, fields(tenant.id = %tenant, lattice.id = %id))]
pub async fn get(conn: &mut Conn, tenant: TenantId, id: LatticeId) -> DbResult<Lattice> {
    Ok(lattices::table
        .filter(lattices::id.eq(id).and(lattices::tenant_id.eq(tenant)))
        .select(Lattice::as_select())
        .first(conn)
        .await?)
}

/// A lattice by id for a worker (the job row already carries the tenant).
pub async fn get_any(conn: &mut Conn, id: LatticeId) -> DbResult<Lattice> {
    Ok(lattices::table
        .find(id)
        .select(Lattice::as_select())
        .first(conn)
        .await?)
}

#[tracing::instrument(skip_all, fields(tenant.id = %tenant))]
pub async fn list(
    conn: &mut Conn,
    tenant: TenantId,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<Lattice>, i64)> {
    let items = lattices::table
        .filter(lattices::tenant_id.eq(tenant))
        .order((lattices::created_at.desc(), lattices::id.desc()))
        .limit(limit)
        .offset(offset)
        .select(Lattice::as_select())
        .load(conn)
        .await?;
    let total = count(conn, tenant).await?;
    Ok((items, total))
}

pub async fn count(conn: &mut Conn, tenant: TenantId) -> DbResult<i64> {
    Ok(lattices::table
        .filter(lattices::tenant_id.eq(tenant))
        .count()
        .get_result(conn)
        .await?)
}

#[tracing::instrument(skip_all, fields(tenant.id = %tenant, lattice.id = %id))]
pub async fn delete(conn: &mut Conn, tenant: TenantId, id: LatticeId) -> DbResult<()> {
    let n = diesel::delete(
        lattices::table.filter(lattices::id.eq(id).and(lattices::tenant_id.eq(tenant))),
    )
    .execute(conn)
    .await?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}
