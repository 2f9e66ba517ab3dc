//! The HTTP operations, one module per resource.

pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod email;
pub mod health;
pub mod invoices;
pub mod jobs;
pub mod lattices;
pub mod password_reset;
pub mod stripe;
pub mod subscriptions;
pub mod usage;
pub mod users;

use poem_openapi::Tags;

/// Groups of the OpenAPI spec.
#[derive(Tags)]
pub enum ApiTags {
    /// Liveness and dependency health.
    Health,
    /// Sign-up, login, tokens.
    Auth,
    /// Users of a tenant.
    Users,
    /// API keys of a tenant.
    ApiKeys,
    /// The tenant's audit log.
    Audit,
    /// Lattice definitions.
    Lattices,
    /// Jobs: computations on lattices.
    Jobs,
    /// Email: send to the organisation's users, delivery status.
    Email,
    /// Metered usage against the plan.
    Usage,
    /// Plans, Stripe checkout and portal, subscription, invoices, webhooks.
    Billing,
}

/// Paging parameters' bounds.
pub const MAX_PAGE_SIZE: u32 = 100;
pub const DEFAULT_PAGE_SIZE: u32 = 20;
