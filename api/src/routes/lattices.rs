//! Lattices: define, list, read, delete. Plan limits bound their count, dimensions, size
//! and vertex count.

use catalytic_db::DbError;
use catalytic_db::ids::LatticeId;
use catalytic_db::lattices::{self, Lattice, NewLattice};
use catalytic_jobs::lattice::{Boundary, LatticeSpec};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use uuid::Uuid;

use crate::auth::principal::authenticate;
use crate::auth::{Credentials, Principal};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::routes::{ApiTags, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::state::AppState;
use crate::validate;

/// Boundary condition along every axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum BoundaryKind {
    /// Coordinates stop at 0 and size-1.
    Open,
    /// Coordinates wrap around (a torus).
    Periodic,
}

#[derive(Debug, Object)]
pub struct CreateLatticeRequest {
    pub name: String,
    /// 1 to 10 (and at most the plan's bound).
    pub dimensions: u32,
    /// Vertices per side, at least 2.
    pub size: u64,
    /// Share of blocked vertices, 0 to 0.9 (default 0). See the README for the rule.
    pub obstacle_density: Option<f64>,
    /// Seed of the obstacle field (default 0), at most 2^63-1.
    pub seed: Option<u64>,
    /// `open` (default) or `periodic`.
    pub boundary: Option<BoundaryKind>,
}

#[derive(Debug, Object)]
pub struct LatticeView {
    pub id: Uuid,
    pub name: String,
    pub dimensions: u32,
    pub size: u64,
    pub obstacle_density: f64,
    pub seed: u64,
    pub boundary: BoundaryKind,
    /// size^dimensions.
    pub vertices: u64,
    /// Edges of the full lattice (ignoring obstacles).
    pub edges: u64,
    /// Working memory of a search in the implicit form, in bytes.
    pub memory_bytes: u64,
    /// Memory an adjacency-list graph of the same lattice would need, in bytes.
    pub explicit_memory_bytes: u64,
    /// explicit_memory_bytes / memory_bytes.
    pub memory_reduction: f64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Object)]
pub struct LatticePage {
    pub items: Vec<LatticeView>,
    pub total: i64,
    pub limit: u32,
    pub offset: u32,
}

#[derive(ApiResponse)]
pub enum LatticeCreated {
    /// The lattice.
    #[oai(status = 201)]
    Created(Json<LatticeView>),
}

#[derive(ApiResponse)]
pub enum LatticeDeleted {
    /// Deleted; its finished jobs stay readable.
    #[oai(status = 204)]
    Deleted,
}

fn sat(v: u128) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

pub fn spec_of(row: &Lattice) -> ApiResult<LatticeSpec> {
    catalytic_jobs::kinds::lattice::spec_of(row).map_err(ApiError::internal)
}

pub fn view(row: Lattice) -> ApiResult<LatticeView> {
    let spec = spec_of(&row)?;
    Ok(LatticeView {
        id: row.id.as_uuid(),
        name: row.name,
        dimensions: spec.dimensions(),
        size: spec.size(),
        obstacle_density: spec.obstacle_density(),
        seed: spec.seed(),
        boundary: match spec.boundary() {
            Boundary::Open => BoundaryKind::Open,
            Boundary::Periodic => BoundaryKind::Periodic,
        },
        vertices: spec.vertices(),
        edges: sat(spec.edges()),
        memory_bytes: sat(spec.memory_bytes()),
        explicit_memory_bytes: sat(spec.explicit_memory_bytes()),
        memory_reduction: spec.memory_reduction(),
        created_at: row.created_at,
    })
}

/// A tenant's lattice; another tenant's is 404.
pub async fn load(state: &AppState, p: &Principal, id: Uuid) -> ApiResult<Lattice> {
    let mut conn = state.db.get().await?;
    lattices::get(&mut conn, p.tenant_id, LatticeId::from_uuid(id))
        .await
        .map_err(|e| match e {
            DbError::NotFound => ApiError::not_found("lattice"),
            other => other.into(),
        })
}

/// Checks a lattice against the plan's bounds (dimensions, size, vertices).
pub fn check_plan_bounds(p: &Principal, spec: &LatticeSpec) -> Result<(), Vec<FieldError>> {
    let l = p.limits();
    let mut errors = Vec::new();
    if i64::from(spec.dimensions()) > l.max_dimensions {
        errors.push(FieldError::new(
            "dimensions",
            format!(
                "the {} plan allows at most {} dimensions",
                l.plan_code, l.max_dimensions
            ),
        ));
    }
    if let Some(max) = l.max_size
        && spec.size() > max as u64
    {
        errors.push(FieldError::new(
            "size",
            format!("the {} plan allows a size of at most {max}", l.plan_code),
        ));
    }
    if let Some(max) = l.max_vertices
        && spec.vertices() > max as u64
    {
        errors.push(FieldError::new(
            "size",
            format!(
                "{} vertices; the {} plan allows at most {max}",
                spec.vertices(),
                l.plan_code
            ),
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

pub struct LatticesApi;

#[OpenApi(tag = "ApiTags::Lattices")]
impl LatticesApi {
    /// Defines a lattice.
    #[oai(
        path = "/api/lattices",
        method = "post",
        operation_id = "lattices_create"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
        body: Json<CreateLatticeRequest>,
    ) -> ApiResult<LatticeCreated> {
        let p = authenticate(&state, &auth, "lattices_create").await?;
        let b = body.0;
        validate::text("name", &b.name, 200).map_err(|e| ApiError::Validation(vec![e]))?;
        let seed = b.seed.unwrap_or(0);
        if seed > i64::MAX as u64 {
            return Err(ApiError::invalid(
                "seed",
                "must be at most 9223372036854775807",
            ));
        }
        let boundary = match b.boundary.unwrap_or(BoundaryKind::Open) {
            BoundaryKind::Open => Boundary::Open,
            BoundaryKind::Periodic => Boundary::Periodic,
        };
        let spec = LatticeSpec::new(
            b.dimensions,
            b.size,
            b.obstacle_density.unwrap_or(0.0),
            seed,
            boundary,
        )
        .map_err(|e| {
            let field = match e {
                catalytic_jobs::lattice::LatticeError::InvalidDimensions { .. } => "dimensions",
                catalytic_jobs::lattice::LatticeError::InvalidDensity { .. } => "obstacle_density",
                _ => "size",
            };
            ApiError::invalid(field, e.to_string())
        })?;
        check_plan_bounds(&p, &spec).map_err(ApiError::Validation)?;
        let vertices = i64::try_from(spec.vertices())
            .map_err(|_| ApiError::invalid("size", "too many vertices"))?;
        let max_lattices = p.limits().max_lattices;
        let plan = p.limits().plan_code.clone();
        let mut conn = state.db.get().await?;
        use catalytic_db::AsyncConnection as _;
        let row = conn
            .transaction::<_, ApiError, _>(async |c| {
                // Serialise creations per tenant so the count check holds under races.
                catalytic_db::tenants::lock(c, p.tenant_id).await?;
                if let Some(max) = max_lattices
                    && lattices::count(c, p.tenant_id).await? >= max
                {
                    return Err(ApiError::PlanLimit {
                        detail: format!(
                            "the {plan} plan allows {max} lattices; existing ones stay readable — delete one or upgrade to create more"
                        ),
                        limit: Some(max),
                    });
                }
                Ok(lattices::insert(
                    c,
                    NewLattice {
                        tenant_id: p.tenant_id,
                        name: b.name.trim(),
                        dimensions: spec.dimensions() as i32,
                        size: spec.size() as i64,
                        obstacle_density: spec.obstacle_density(),
                        seed: seed as i64,
                        boundary: match boundary {
                            Boundary::Open => "open",
                            Boundary::Periodic => "periodic",
                        },
                        vertices,
                    },
                )
                .await?)
            })
            .await?;
        Ok(LatticeCreated::Created(Json(view(row)?)))
    }

    /// The tenant's lattices, newest first.
    #[oai(path = "/api/lattices", method = "get", operation_id = "lattices_list")]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))] limit: Query<Option<u32>>,
        offset: Query<Option<u32>>,
    ) -> ApiResult<Json<LatticePage>> {
        let p = authenticate(&state, &auth, "lattices_list").await?;
        let limit = limit.0.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE);
        let offset = offset.0.unwrap_or(0);
        let mut conn = state.db.get().await?;
        let (rows, total) =
            lattices::list(&mut conn, p.tenant_id, i64::from(limit), i64::from(offset)).await?;
        Ok(Json(LatticePage {
            items: rows.into_iter().map(view).collect::<ApiResult<_>>()?,
            total,
            limit,
            offset,
        }))
    }

    /// One lattice.
    #[oai(
        path = "/api/lattices/:id",
        method = "get",
        operation_id = "lattices_get"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
        id: Path<Uuid>,
    ) -> ApiResult<Json<LatticeView>> {
        let p = authenticate(&state, &auth, "lattices_get").await?;
        Ok(Json(view(load(&state, &p, id.0).await?)?))
    }

    /// Deletes a lattice. Its jobs keep their results.
    #[oai(
        path = "/api/lattices/:id",
        method = "delete",
        operation_id = "lattices_delete"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
        id: Path<Uuid>,
    ) -> ApiResult<LatticeDeleted> {
        let p = authenticate(&state, &auth, "lattices_delete").await?;
        let mut conn = state.db.get().await?;
        lattices::delete(&mut conn, p.tenant_id, LatticeId::from_uuid(id.0))
            .await
            .map_err(|e| match e {
                DbError::NotFound => ApiError::not_found("lattice"),
                other => other.into(),
            })?;
        Ok(LatticeDeleted::Deleted)
    }
}
