//! Stripe: the public billing configuration, Checkout and billing portal sessions, and the
//! webhook endpoint (verified, stored once, reconciled by a worker).

use catalytic_db::stripe_customers::StripeCustomer;
use catalytic_db::stripe_events::{self, NewEvent};
use catalytic_db::{DbError, plans, tenants, users};
use catalytic_jobs::billing::catalog::{self, Interval};
use catalytic_jobs::billing::webhook::{self, Rejection};
use catalytic_jobs::billing::{Stripe, customers, reconcile, sessions};
use poem::web::Data;
use poem::{FromRequest, Request, RequestBody};
use poem_openapi::param::Header;
use poem_openapi::payload::{Json, ParsePayload, Payload};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::{ApiRequest, Enum, Object, OpenApi};

use crate::auth::principal::authenticate;
use crate::auth::{Credentials, Principal};
use crate::error::{ApiError, ApiResult};
use crate::http::request_id;
use crate::routes::ApiTags;
use crate::state::AppState;
use crate::validate;

/// A billing interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum BillingInterval {
    Month,
    Year,
}

impl From<BillingInterval> for Interval {
    fn from(i: BillingInterval) -> Self {
        match i {
            BillingInterval::Month => Interval::Month,
            BillingInterval::Year => Interval::Year,
        }
    }
}

#[derive(Debug, Object)]
pub struct PlanPrice {
    /// The Stripe price id (absent until `catalytic-api stripe-sync` has run).
    pub price_id: Option<String>,
    pub amount_cents: i64,
}

#[derive(Debug, Object)]
pub struct PlanOffer {
    /// free, starter, professional or enterprise.
    pub code: String,
    pub name: String,
    pub currency: String,
    pub monthly: PlanPrice,
    pub yearly: PlanPrice,
    /// Absent: unlimited.
    pub api_calls_per_month: Option<i64>,
    pub max_lattices: Option<i32>,
    pub max_users: Option<i32>,
    pub storage_bytes: Option<i64>,
    pub max_dimensions: i32,
    pub max_vertices: Option<i64>,
    pub rate_limit_per_minute: i32,
}

#[derive(Debug, Object)]
pub struct StripeConfig {
    /// Whether Stripe is configured on this server (checkout and portal answer 503 if not).
    pub billing_enabled: bool,
    /// For Stripe.js in the browser.
    pub publishable_key: Option<String>,
    pub plans: Vec<PlanOffer>,
}

#[derive(Debug, Object)]
pub struct CheckoutRequest {
    /// starter, professional or enterprise.
    pub plan_code: String,
    pub interval: BillingInterval,
}

#[derive(Debug, Object)]
pub struct CheckoutCreated {
    /// The Stripe-hosted Checkout page: send the user there.
    pub url: String,
    pub session_id: String,
}

#[derive(Debug, Object)]
pub struct PortalCreated {
    /// The Stripe-hosted billing portal: send the user there.
    pub url: String,
}

#[derive(Debug, Object)]
pub struct WebhookReceived {
    pub received: bool,
    /// The event id was already stored: nothing more was done.
    pub duplicate: bool,
}

/// A JSON body kept as the exact bytes received: the webhook signature covers them, so
/// they are verified before anything parses them.
pub struct RawJson(pub Vec<u8>);

impl Payload for RawJson {
    const CONTENT_TYPE: &'static str = "application/json";

    fn check_content_type(content_type: &str) -> bool {
        content_type
            .split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            description: Some("A Stripe event object, as Stripe sent it."),
            ..MetaSchema::new("object")
        }))
    }
}

impl ParsePayload for RawJson {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        Ok(Self(<Vec<u8>>::from_request(request, body).await?))
    }
}

/// The body of a webhook delivery.
#[derive(ApiRequest)]
pub enum StripeEventBody {
    /// A Stripe event, exactly as Stripe sent it.
    Event(RawJson),
}

/// The Stripe client, or 503 when billing is not configured.
pub fn stripe(state: &AppState) -> ApiResult<&Stripe> {
    state
        .stripe
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("stripe", "STRIPE_SECRET_KEY is not set".into()))
}

/// The tenant's Stripe customer, created on first use (named after the organisation,
/// with the caller's or the first owner's email).
pub async fn customer_of(state: &AppState, p: &Principal) -> ApiResult<StripeCustomer> {
    let stripe = stripe(state)?;
    let (tenant, email) = {
        let mut conn = state.db.get().await?;
        let tenant = tenants::get(&mut conn, p.tenant_id).await?;
        let email = match &p.email {
            Some(e) => Some(e.clone()),
            None => users::owners(&mut conn, p.tenant_id)
                .await?
                .into_iter()
                .next()
                .map(|u| u.email),
        };
        (tenant, email)
    };
    Ok(customers::ensure(stripe, &state.db, &tenant, email.as_deref()).await?)
}

fn rejected(r: Rejection) -> ApiError {
    tracing::info!(reason = %r, "stripe webhook refused");
    ApiError::BadRequest(match r {
        Rejection::MissingSignature => "the Stripe-Signature header is missing".into(),
        Rejection::BadSignature | Rejection::Stale => {
            "the Stripe-Signature does not verify (wrong secret or stale timestamp)".into()
        }
        Rejection::Malformed => "the body is not a Stripe event".into(),
    })
}

pub struct StripeApi;

#[OpenApi(tag = "ApiTags::Billing")]
impl StripeApi {
    /// The publishable key and the plans with their prices (no authentication).
    #[oai(
        path = "/api/stripe/config",
        method = "get",
        operation_id = "stripe_config"
    )]
    async fn config(&self, state: Data<&AppState>) -> ApiResult<Json<StripeConfig>> {
        let mut conn = state.db.get().await?;
        let plans = plans::list(&mut conn).await?;
        Ok(Json(StripeConfig {
            billing_enabled: state.stripe.is_some(),
            publishable_key: state.config.stripe_publishable_key.clone(),
            plans: plans
                .into_iter()
                .map(|p| PlanOffer {
                    monthly: PlanPrice {
                        price_id: p.stripe_price_monthly_id.clone(),
                        amount_cents: p.price_monthly_cents,
                    },
                    yearly: PlanPrice {
                        price_id: p.stripe_price_yearly_id.clone(),
                        amount_cents: p.price_yearly_cents,
                    },
                    code: p.code,
                    name: p.name,
                    currency: p.currency,
                    api_calls_per_month: p.api_calls_per_month,
                    max_lattices: p.max_lattices,
                    max_users: p.max_users,
                    storage_bytes: p.storage_bytes,
                    max_dimensions: p.max_dimensions,
                    max_vertices: p.max_vertices,
                    rate_limit_per_minute: p.rate_limit_per_minute,
                })
                .collect(),
        }))
    }

    /// Starts a subscription: a Stripe Checkout session for a paid plan. The tenant's
    /// Stripe customer is created on first use. The plan applies once Stripe reports the
    /// payment (webhook).
    #[oai(
        path = "/api/stripe/checkout",
        method = "post",
        operation_id = "stripe_checkout"
    )]
    async fn checkout(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
        body: Json<CheckoutRequest>,
    ) -> ApiResult<Json<CheckoutCreated>> {
        let p = authenticate(&state, &auth, "stripe_checkout").await?;
        validate::no_control("plan_code", &body.plan_code)
            .map_err(|e| ApiError::Validation(vec![e]))?;
        let interval = Interval::from(body.interval);
        let stripe = stripe(&state)?;
        let (plan, current) = {
            let mut conn = state.db.get().await?;
            let plan = match plans::by_code(&mut conn, body.plan_code.trim()).await {
                Ok(plan) if catalog::is_paid(&plan) => plan,
                Ok(_) | Err(DbError::NotFound) => {
                    return Err(ApiError::invalid(
                        "plan_code",
                        "must be a paid plan: starter, professional or enterprise",
                    ));
                }
                Err(e) => return Err(e.into()),
            };
            let (current, _) = plans::for_tenant(&mut conn, p.tenant_id).await?;
            (plan, current)
        };
        let live = current.stripe_subscription_id.is_some()
            && !catalytic_jobs::billing::subscriptions::ended(&current.status)
            && current.status != "incomplete";
        if live {
            return Err(ApiError::Conflict(
                "the organisation already has a subscription: change its plan with PUT /api/subscriptions/update"
                    .into(),
            ));
        }
        let price = interval.price_id(&plan).ok_or_else(|| {
            ApiError::Unavailable(
                "stripe",
                format!(
                    "plan {} has no Stripe price: run catalytic-api stripe-sync",
                    plan.code
                ),
            )
        })?;
        let customer = customer_of(&state, &p).await?;
        let site = &state.config.frontend_url;
        let session = sessions::checkout(
            stripe,
            sessions::CheckoutRequest {
                tenant: p.tenant_id,
                customer_id: &customer.stripe_customer_id,
                price_id: price,
                plan_code: &plan.code,
                interval,
                success_url: &format!(
                    "{site}/billing?checkout=success&session_id={{CHECKOUT_SESSION_ID}}"
                ),
                cancel_url: &format!("{site}/billing?checkout=canceled"),
            },
        )
        .await?;
        let mut conn = state.db.get().await?;
        catalytic_db::audit::record(
            &mut conn,
            catalytic_db::audit::NewAudit {
                target_type: Some("checkout_session"),
                target_id: Some(session.id.clone()),
                details: serde_json::json!({ "plan_code": plan.code, "interval": interval.as_str() }),
                ..p.audit("billing.checkout_started")
            },
        )
        .await?;
        Ok(Json(CheckoutCreated {
            url: session.url,
            session_id: session.id,
        }))
    }

    /// A Stripe billing portal session: payment methods, invoices, plan and cancellation.
    #[oai(
        path = "/api/stripe/portal",
        method = "post",
        operation_id = "stripe_portal"
    )]
    async fn portal(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
    ) -> ApiResult<Json<PortalCreated>> {
        let p = authenticate(&state, &auth, "stripe_portal").await?;
        let stripe = stripe(&state)?;
        let customer = customer_of(&state, &p).await?;
        let url = sessions::portal(
            stripe,
            &customer.stripe_customer_id,
            &format!("{}/billing", state.config.frontend_url),
        )
        .await?;
        Ok(Json(PortalCreated { url }))
    }

    /// Stripe's webhook endpoint. The `Stripe-Signature` header is verified against
    /// `STRIPE_WEBHOOK_SECRET` on the exact body; a bad or stale signature or a body that
    /// is not an event answers 400 and stores nothing. An event is stored once by id and
    /// reconciled by a worker; duplicates and unknown types are acknowledged.
    #[oai(
        path = "/api/stripe/webhooks",
        method = "post",
        operation_id = "stripe_webhooks"
    )]
    async fn webhooks(
        &self,
        state: Data<&AppState>,
        #[oai(name = "Stripe-Signature")] signature: Header<Option<String>>,
        body: StripeEventBody,
    ) -> ApiResult<Json<WebhookReceived>> {
        let secret = state.config.stripe_webhook_secret.as_ref().ok_or_else(|| {
            ApiError::Unavailable("stripe", "STRIPE_WEBHOOK_SECRET is not set".into())
        })?;
        let StripeEventBody::Event(RawJson(raw)) = body;
        let event =
            webhook::verify(&raw, signature.0.as_deref(), secret.expose()).map_err(rejected)?;
        let handled = reconcile::handles(&event.event_type);
        let mut conn = state.db.get().await?;
        let stored = stripe_events::insert_once(
            &mut conn,
            NewEvent {
                stripe_event_id: &event.id,
                event_type: &event.event_type,
                livemode: event.livemode,
                payload: event.payload,
                event_created: event.created,
                status: if handled { "pending" } else { "ignored" },
            },
        )
        .await?;
        let Some(row) = stored else {
            tracing::info!(stripe.event = %event.id, "duplicate stripe event acknowledged");
            return Ok(Json(WebhookReceived {
                received: true,
                duplicate: true,
            }));
        };
        if handled
            && let Err(e) = catalytic_jobs::enqueue::push_stripe_event(
                &state.queue,
                row.as_uuid(),
                Some(request_id::current()),
            )
            .await
        {
            tracing::warn!(stripe.event = %event.id, error = %e, "push failed; the sweeper will reconcile the event");
        }
        Ok(Json(WebhookReceived {
            received: true,
            duplicate: false,
        }))
    }
}
