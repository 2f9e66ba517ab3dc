//! Typed ids: one newtype per table, so a tenant id can never be passed where a user id
//! is expected. Each maps to a PostgreSQL `uuid`.

use std::fmt;
use std::str::FromStr;

use diesel::deserialize::{FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{Output, ToSql};
use diesel::sql_types::Uuid as SqlUuid;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! typed_id {
    ($($(#[$meta:meta])* $name:ident),+ $(,)?) => {$(
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            Serialize, Deserialize, AsExpression, FromSqlRow,
        )]
        #[diesel(sql_type = SqlUuid)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new time-ordered (v7) id.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl ToSql<SqlUuid, Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> diesel::serialize::Result {
                <Uuid as ToSql<SqlUuid, Pg>>::to_sql(&self.0, out)
            }
        }

        impl FromSql<SqlUuid, Pg> for $name {
            fn from_sql(bytes: PgValue<'_>) -> diesel::deserialize::Result<Self> {
                <Uuid as FromSql<SqlUuid, Pg>>::from_sql(bytes).map(Self)
            }
        }
    )+};
}

typed_id!(
    /// A tenant (organisation).
    TenantId,
    /// A user of a tenant.
    UserId,
    /// A subscription plan.
    PlanId,
    /// A tenant's subscription row.
    SubscriptionId,
    /// An API key.
    ApiKeyId,
    /// An audit log entry.
    AuditLogId,
    /// A notification.
    NotificationId,
    /// A lattice definition.
    LatticeId,
    /// A job (the client-visible row).
    JobId,
    /// A received Stripe event (inbox row).
    StripeEventId,
    /// An email in the outbox.
    EmailId,
    /// A refresh token (its `jti`).
    RefreshTokenId,
    /// A refresh token family (one login and all its rotations).
    TokenFamilyId,
    /// A password-reset token.
    PasswordResetId,
    /// An invoice row.
    InvoiceId,
);
