//! The tenant's subscription: status with limits and usage, plan change and cancellation
//! through Stripe, billing details; and for platform administrators, any tenant's status
//! and limit overrides.

use std::sync::Arc;

use catalytic_db::AsyncConnection as _;
use catalytic_db::ids::TenantId;
use catalytic_db::{DbError, plans, stripe_customers, tenants};
use catalytic_jobs::billing::catalog::{self, Interval};
use catalytic_jobs::billing::customers::{self, Address};
use catalytic_jobs::billing::subscriptions::{self as stripe_subs, Actor, Snapshot};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

use crate::auth::principal::{authenticate, tenant_context};
use crate::auth::{Credentials, Principal};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::routes::ApiTags;
use crate::routes::stripe::{BillingInterval, customer_of, stripe};
use crate::routes::usage::{self, CurrentUsage};
use crate::state::AppState;
use crate::tenancy::{Limits, Overrides, TenantContext};
use crate::validate::{self, Checks};

#[derive(Debug, Object)]
pub struct PlanView {
    pub code: String,
    pub name: String,
    pub currency: String,
    pub price_monthly_cents: i64,
    pub price_yearly_cents: i64,
}

#[derive(Debug, Object)]
pub struct LimitsView {
    /// Absent: unlimited.
    pub api_calls_per_month: Option<i64>,
    pub max_lattices: Option<i64>,
    pub max_users: Option<i64>,
    pub storage_bytes: Option<i64>,
    pub max_dimensions: i64,
    pub max_size: Option<i64>,
    pub max_vertices: Option<i64>,
    pub rate_limit_per_minute: u32,
}

impl From<&Limits> for LimitsView {
    fn from(l: &Limits) -> Self {
        Self {
            api_calls_per_month: l.api_calls_per_month,
            max_lattices: l.max_lattices,
            max_users: l.max_users,
            storage_bytes: l.storage_bytes,
            max_dimensions: l.max_dimensions,
            max_size: l.max_size,
            max_vertices: l.max_vertices,
            rate_limit_per_minute: l.rate_limit_per_minute,
        }
    }
}

#[derive(Debug, Object)]
pub struct SubscriptionStatus {
    pub tenant_id: Uuid,
    pub plan: PlanView,
    /// The paid plan waiting for a completed checkout, if any.
    pub pending_plan_code: Option<String>,
    /// active, trialing, past_due, canceled, incomplete, incomplete_expired, unpaid, paused.
    pub status: String,
    /// `month` or `year`.
    pub billing_interval: Option<String>,
    pub current_period_start: Option<DateTime<Utc>>,
    pub current_period_end: Option<DateTime<Utc>>,
    /// The subscription ends at the period's end.
    pub cancel_at_period_end: bool,
    pub trial_end: Option<DateTime<Utc>>,
    /// Since when a payment is overdue.
    pub past_due_since: Option<DateTime<Utc>>,
    /// When the account will be suspended if the payment stays overdue.
    pub suspends_at: Option<DateTime<Utc>>,
    /// `active` or `suspended` (writes refused with 402, reads allowed).
    pub account_status: String,
    pub suspended_at: Option<DateTime<Utc>>,
    /// Whether the organisation has a Stripe customer (checkout or portal used).
    pub has_billing_account: bool,
    /// Limits in force: the plan's, with any platform-administrator overrides.
    pub limits: LimitsView,
    /// Platform-administrator overrides of the plan's limits.
    pub limit_overrides: serde_json::Value,
    pub usage: CurrentUsage,
}

#[derive(Debug, Object)]
pub struct UpdateSubscriptionRequest {
    /// starter, professional or enterprise.
    pub plan_code: String,
    pub interval: BillingInterval,
}

#[derive(Debug, Object)]
pub struct CustomerAddress {
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    /// Two-letter ISO country code, e.g. `GB`.
    pub country: Option<String>,
}

#[derive(Debug, Object)]
pub struct CustomerInfoRequest {
    /// The name on invoices.
    pub name: Option<String>,
    /// Where Stripe sends receipts and invoices.
    pub email: Option<String>,
    pub address: Option<CustomerAddress>,
}

#[derive(Debug, Object)]
pub struct CustomerInfo {
    pub customer_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub address: Option<serde_json::Value>,
}

#[derive(Debug, Object)]
pub struct SetLimitsRequest {
    pub tenant_id: Uuid,
    /// Replaces the tenant's overrides: any of api_calls_per_month, max_lattices,
    /// max_users, storage_bytes, max_dimensions, max_size, max_vertices,
    /// rate_limit_per_minute (non-negative integers; `{}` removes every override).
    pub overrides: serde_json::Value,
}

/// The status of a tenant, with its limits and usage.
async fn status_of(state: &AppState, ctx: &TenantContext) -> ApiResult<SubscriptionStatus> {
    let tenant = ctx.tenant.id;
    let (sub, plan, pending, has_customer) = {
        let mut conn = state.db.get().await?;
        let (sub, plan) = plans::for_tenant(&mut conn, tenant).await?;
        let pending = match sub.pending_plan_id {
            Some(id) => Some(plans::by_id(&mut conn, id).await?.code),
            None => None,
        };
        let has_customer = stripe_customers::for_tenant(&mut conn, tenant)
            .await?
            .is_some();
        (sub, plan, pending, has_customer)
    };
    let usage = usage::current(state, tenant, &ctx.limits).await?;
    let grace = chrono::Duration::seconds(
        i64::try_from(state.config.billing_grace_secs).unwrap_or(i64::MAX / 1000),
    );
    Ok(SubscriptionStatus {
        tenant_id: tenant.as_uuid(),
        plan: PlanView {
            code: plan.code,
            name: plan.name,
            currency: plan.currency,
            price_monthly_cents: plan.price_monthly_cents,
            price_yearly_cents: plan.price_yearly_cents,
        },
        pending_plan_code: pending,
        suspends_at: sub
            .past_due_since
            .filter(|_| !ctx.suspended())
            .and_then(|s| s.checked_add_signed(grace)),
        status: sub.status,
        billing_interval: sub.billing_interval,
        current_period_start: sub.current_period_start,
        current_period_end: sub.current_period_end,
        cancel_at_period_end: sub.cancel_at_period_end,
        trial_end: sub.trial_end,
        past_due_since: sub.past_due_since,
        account_status: ctx.tenant.status.clone(),
        suspended_at: ctx.tenant.suspended_at,
        has_billing_account: has_customer,
        limits: (&ctx.limits).into(),
        limit_overrides: ctx.tenant.limit_overrides.clone(),
        usage,
    })
}

/// The tenant's live Stripe subscription, read from Stripe; 409 when it has none.
async fn live_subscription(state: &AppState, p: &Principal) -> ApiResult<Snapshot> {
    let stripe = stripe(state)?;
    let id = {
        let mut conn = state.db.get().await?;
        let (sub, _) = plans::for_tenant(&mut conn, p.tenant_id).await?;
        sub.stripe_subscription_id
            .filter(|_| !stripe_subs::ended(&sub.status))
    };
    let none = || {
        ApiError::Conflict(
            "the organisation has no active subscription: start one with POST /api/stripe/checkout"
                .into(),
        )
    };
    let id = id.ok_or_else(none)?;
    let snap = stripe_subs::retrieve(stripe, &id).await?;
    if snap.ended() {
        return Err(none());
    }
    Ok(snap)
}

/// Applies what Stripe answered at once (the webhook that follows finds nothing new), so
/// the new plan's limits apply to the very next request on this replica.
async fn apply_now(state: &AppState, p: &Principal, snap: &Snapshot) -> ApiResult<()> {
    let actor = Actor {
        user_id: p.user_id,
        api_key_id: p.api_key_id,
        request_id: Some(crate::http::request_id::current()),
    };
    let mut conn = state.db.get().await?;
    conn.transaction::<_, ApiError, _>(async |c| {
        stripe_subs::apply(c, p.tenant_id, snap, &actor).await?;
        Ok(())
    })
    .await?;
    state.tenants.invalidate(p.tenant_id);
    Ok(())
}

/// Checks limit overrides: known keys, non-negative integers (`null` drops a key).
fn parse_overrides(raw: &serde_json::Value) -> ApiResult<serde_json::Value> {
    let map = raw
        .as_object()
        .ok_or_else(|| ApiError::invalid("overrides", "must be an object"))?;
    let mut clean = serde_json::Map::new();
    let mut errors = Vec::new();
    for (key, value) in map {
        if value.is_null() {
            continue;
        }
        match value.as_i64() {
            Some(n)
                if n >= 0
                    && !(key == "rate_limit_per_minute" && (n == 0 || n > i64::from(u32::MAX))) =>
            {
                clean.insert(key.clone(), value.clone());
            }
            _ => errors.push(FieldError::new(
                &format!("overrides.{key}"),
                "must be a non-negative integer (rate_limit_per_minute: positive)",
            )),
        }
    }
    let clean = serde_json::Value::Object(clean);
    if let Err(e) = serde_json::from_value::<Overrides>(clean.clone()) {
        // serde names the unknown key and lists the allowed ones.
        let message = e.to_string();
        let message = message.split(" at line").next().unwrap_or(&message);
        errors.push(FieldError::new("overrides", message));
    }
    if let Some(d) = clean.get("max_dimensions").and_then(|v| v.as_i64())
        && !(1..=10).contains(&d)
    {
        errors.push(FieldError::new(
            "overrides.max_dimensions",
            "must be between 1 and 10",
        ));
    }
    if errors.is_empty() {
        Ok(clean)
    } else {
        Err(ApiError::Validation(errors))
    }
}

fn optional_text(checks: &mut Checks, field: &str, value: Option<&str>, max: usize) {
    if let Some(v) = value {
        checks.check(validate::text(field, v, max));
    }
}

pub struct SubscriptionsApi;

#[OpenApi(tag = "ApiTags::Billing")]
impl SubscriptionsApi {
    /// The organisation's plan, subscription status and period, the limits in force and
    /// current usage against them.
    #[oai(
        path = "/api/subscriptions/status",
        method = "get",
        operation_id = "subscriptions_status"
    )]
    async fn status(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
    ) -> ApiResult<Json<SubscriptionStatus>> {
        let p = authenticate(&state, &auth, "subscriptions_status").await?;
        Ok(Json(status_of(&state, &p.tenant).await?))
    }

    /// Changes the plan (or interval) of the subscription through Stripe, prorated. A
    /// downgrade below current usage is allowed: existing lattices stay readable, creating
    /// more is refused until usage fits the plan.
    #[oai(
        path = "/api/subscriptions/update",
        method = "put",
        operation_id = "subscriptions_update"
    )]
    async fn update(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
        body: Json<UpdateSubscriptionRequest>,
    ) -> ApiResult<Json<SubscriptionStatus>> {
        let p = authenticate(&state, &auth, "subscriptions_update").await?;
        validate::no_control("plan_code", &body.plan_code)
            .map_err(|e| ApiError::Validation(vec![e]))?;
        let interval = Interval::from(body.interval);
        let plan = {
            let mut conn = state.db.get().await?;
            match plans::by_code(&mut conn, body.plan_code.trim()).await {
                Ok(plan) if catalog::is_paid(&plan) => plan,
                Ok(_) | Err(DbError::NotFound) => {
                    return Err(ApiError::invalid(
                        "plan_code",
                        "must be a paid plan (starter, professional, enterprise); \
                         to go back to Free, cancel the subscription",
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        };
        let price = interval.price_id(&plan).ok_or_else(|| {
            ApiError::Unavailable(
                "stripe",
                format!(
                    "plan {} has no Stripe price: run catalytic-api stripe-sync",
                    plan.code
                ),
            )
        })?;
        let current = live_subscription(&state, &p).await?;
        let snap = if current
            .price
            .as_ref()
            .is_some_and(|pr| pr.id.as_str() == price)
            && !current.cancel_at_period_end
        {
            current
        } else {
            stripe_subs::change_price(
                stripe(&state)?,
                &current,
                price,
                &plan.code,
                interval,
                p.tenant_id,
            )
            .await?
        };
        apply_now(&state, &p, &snap).await?;
        let ctx = tenant_context(&state, p.tenant_id).await?;
        Ok(Json(status_of(&state, &ctx).await?))
    }

    /// Cancels the subscription at the end of the period (the plan stays until then), or
    /// at once with `immediately=true` (the organisation moves to Free now).
    #[oai(
        path = "/api/subscriptions/cancel",
        method = "delete",
        operation_id = "subscriptions_cancel"
    )]
    async fn cancel(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
        immediately: Query<Option<bool>>,
    ) -> ApiResult<Json<SubscriptionStatus>> {
        let p = authenticate(&state, &auth, "subscriptions_cancel").await?;
        let current = live_subscription(&state, &p).await?;
        let snap =
            stripe_subs::cancel(stripe(&state)?, &current.id, immediately.0.unwrap_or(false))
                .await?;
        apply_now(&state, &p, &snap).await?;
        let ctx = tenant_context(&state, p.tenant_id).await?;
        Ok(Json(status_of(&state, &ctx).await?))
    }

    /// Changes the name, email or address on invoices (the Stripe customer; created if
    /// the organisation has none yet).
    #[oai(
        path = "/api/subscriptions/customer-info",
        method = "put",
        operation_id = "subscriptions_customer_info"
    )]
    async fn customer_info(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
        body: Json<CustomerInfoRequest>,
    ) -> ApiResult<Json<CustomerInfo>> {
        let p = authenticate(&state, &auth, "subscriptions_customer_info").await?;
        let b = body.0;
        let mut checks = Checks::new();
        optional_text(&mut checks, "name", b.name.as_deref(), 200);
        let email = match b.email.as_deref() {
            Some(e) => match validate::email("email", e) {
                Ok(e) => Some(e),
                Err(err) => {
                    checks.check(Err(err));
                    None
                }
            },
            None => None,
        };
        if let Some(a) = &b.address {
            for (field, value) in [
                ("address.line1", &a.line1),
                ("address.line2", &a.line2),
                ("address.city", &a.city),
                ("address.state", &a.state),
                ("address.postal_code", &a.postal_code),
            ] {
                optional_text(&mut checks, field, value.as_deref(), 200);
            }
            if let Some(c) = &a.country
                && !(c.len() == 2 && c.chars().all(|ch| ch.is_ascii_alphabetic()))
            {
                checks.check(Err(FieldError::new(
                    "address.country",
                    "must be a two-letter ISO country code",
                )));
            }
        }
        checks.finish()?;
        if b.name.is_none() && email.is_none() && b.address.is_none() {
            return Err(ApiError::invalid(
                "name",
                "give at least one of name, email, address",
            ));
        }
        let address = b.address.map(|a| Address {
            line1: a.line1,
            line2: a.line2,
            city: a.city,
            state: a.state,
            postal_code: a.postal_code,
            country: a.country.map(|c| c.to_ascii_uppercase()),
        });
        let customer = customer_of(&state, &p).await?;
        let details = customers::update(
            stripe(&state)?,
            &customer.stripe_customer_id,
            b.name.as_deref().map(str::trim),
            email.as_deref(),
            address.as_ref(),
        )
        .await?;
        let mut conn = state.db.get().await?;
        conn.transaction::<_, ApiError, _>(async |c| {
            stripe_customers::update_details(c, &customer.stripe_customer_id, &details).await?;
            catalytic_db::audit::record(
                c,
                catalytic_db::audit::NewAudit {
                    target_type: Some("stripe_customer"),
                    target_id: Some(customer.stripe_customer_id.clone()),
                    details: serde_json::json!({
                        "by": "api",
                        "name": details.name,
                        "email": details.email,
                        "address": details.address,
                    }),
                    ..p.audit("billing.customer_updated")
                },
            )
            .await?;
            Ok(())
        })
        .await?;
        Ok(Json(CustomerInfo {
            customer_id: customer.stripe_customer_id,
            name: details.name,
            email: details.email,
            address: details.address,
        }))
    }

    /// Platform administrators: replaces a tenant's limit overrides (they apply at once
    /// on this replica, within `TENANT_CACHE_TTL_MS` on others).
    #[oai(
        path = "/api/subscriptions/limits",
        method = "put",
        operation_id = "subscriptions_set_limits"
    )]
    async fn set_limits(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
        body: Json<SetLimitsRequest>,
    ) -> ApiResult<Json<SubscriptionStatus>> {
        let p = authenticate(&state, &auth, "subscriptions_set_limits").await?;
        let overrides = parse_overrides(&body.overrides)?;
        let tenant = TenantId::from_uuid(body.tenant_id);
        let mut conn = state.db.get().await?;
        conn.transaction::<_, ApiError, _>(async |c| {
            let before = tenants::get(c, tenant).await.map_err(|e| match e {
                DbError::NotFound => ApiError::not_found("tenant"),
                other => other.into(),
            })?;
            tenants::set_limit_overrides(c, tenant, overrides.clone()).await?;
            catalytic_db::audit::record(
                c,
                catalytic_db::audit::NewAudit {
                    tenant_id: Some(tenant),
                    target_type: Some("tenant"),
                    target_id: Some(tenant.to_string()),
                    details: serde_json::json!({
                        "by": "platform_admin",
                        "admin_tenant_id": p.tenant_id,
                        "from": before.limit_overrides,
                        "to": overrides,
                    }),
                    ..p.audit("tenant.limits_changed")
                },
            )
            .await?;
            Ok(())
        })
        .await?;
        state.tenants.invalidate(tenant);
        let ctx: Arc<TenantContext> = tenant_context(&state, tenant).await?;
        Ok(Json(status_of(&state, &ctx).await?))
    }

    /// Platform administrators: any tenant's subscription status, limits and usage.
    #[oai(
        path = "/api/subscriptions/status/:tenant_id",
        method = "get",
        operation_id = "subscriptions_tenant_status"
    )]
    async fn tenant_status(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
        tenant_id: Path<Uuid>,
    ) -> ApiResult<Json<SubscriptionStatus>> {
        authenticate(&state, &auth, "subscriptions_tenant_status").await?;
        let tenant = TenantId::from_uuid(tenant_id.0);
        {
            let mut conn = state.db.get().await?;
            tenants::get(&mut conn, tenant).await.map_err(|e| match e {
                DbError::NotFound => ApiError::not_found("tenant"),
                other => other.into(),
            })?;
        }
        let ctx = tenant_context(&state, tenant).await?;
        Ok(Json(status_of(&state, &ctx).await?))
    }
}
