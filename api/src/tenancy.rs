//! The tenant context of a request: status, plan and effective limits, cached for a
//! moment per process so a request costs no database round trip for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use catalytic_db::ids::TenantId;
use catalytic_db::plans::Plan;
use catalytic_db::tenants::Tenant;
use serde::Deserialize;

/// Limits in force for a tenant: its plan's, with platform-administrator overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub plan_code: String,
    pub api_calls_per_month: Option<i64>,
    pub max_lattices: Option<i64>,
    pub max_users: Option<i64>,
    pub storage_bytes: Option<i64>,
    pub max_dimensions: i64,
    pub max_size: Option<i64>,
    pub max_vertices: Option<i64>,
    pub rate_limit_per_minute: u32,
}

/// Overrides a platform administrator may set (`PUT /api/subscriptions/limits`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    pub api_calls_per_month: Option<i64>,
    pub max_lattices: Option<i64>,
    pub max_users: Option<i64>,
    pub storage_bytes: Option<i64>,
    pub max_dimensions: Option<i64>,
    pub max_size: Option<i64>,
    pub max_vertices: Option<i64>,
    pub rate_limit_per_minute: Option<u32>,
}

impl Limits {
    pub fn of(plan: &Plan, overrides: &serde_json::Value) -> Self {
        let o: Overrides = serde_json::from_value(overrides.clone()).unwrap_or_default();
        Self {
            plan_code: plan.code.clone(),
            api_calls_per_month: o.api_calls_per_month.or(plan.api_calls_per_month),
            max_lattices: o.max_lattices.or(plan.max_lattices.map(i64::from)),
            max_users: o.max_users.or(plan.max_users.map(i64::from)),
            storage_bytes: o.storage_bytes.or(plan.storage_bytes),
            max_dimensions: o.max_dimensions.unwrap_or(i64::from(plan.max_dimensions)),
            max_size: o.max_size.or(plan.max_size),
            max_vertices: o.max_vertices.or(plan.max_vertices),
            rate_limit_per_minute: o
                .rate_limit_per_minute
                .unwrap_or(plan.rate_limit_per_minute.max(1) as u32),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TenantContext {
    pub tenant: Tenant,
    pub limits: Limits,
}

impl TenantContext {
    pub fn suspended(&self) -> bool {
        self.tenant.is_suspended()
    }
}

/// When an entry was loaded, and the entry.
type CacheEntry = (Instant, Arc<TenantContext>);

/// A per-process cache with a short time to live. Changes made through this process
/// (plan change, suspension) invalidate at once; other replicas see them within the TTL.
#[derive(Clone)]
pub struct TenantCache {
    ttl: Duration,
    entries: Arc<Mutex<HashMap<TenantId, CacheEntry>>>,
}

impl TenantCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub fn get(&self, id: TenantId) -> Option<Arc<TenantContext>> {
        let map = self.entries.lock().ok()?;
        map.get(&id)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, ctx)| ctx.clone())
    }

    pub fn put(&self, ctx: TenantContext) -> Arc<TenantContext> {
        let ctx = Arc::new(ctx);
        if let Ok(mut map) = self.entries.lock() {
            if map.len() > 10_000 {
                map.retain(|_, (at, _)| at.elapsed() < self.ttl);
            }
            map.insert(ctx.tenant.id, (Instant::now(), ctx.clone()));
        }
        ctx
    }

    pub fn invalidate(&self, id: TenantId) {
        if let Ok(mut map) = self.entries.lock() {
            map.remove(&id);
        }
    }
}
