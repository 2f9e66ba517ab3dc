//! The two credential schemes, as the OpenAPI spec declares them. They only extract the
//! raw credential; [`crate::auth::principal`] verifies it.

use poem_openapi::SecurityScheme;
use poem_openapi::auth::{ApiKey, Bearer};

/// `Authorization: Bearer <access token>` (RS256 JWT).
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT")]
pub struct BearerAuth(pub Bearer);

/// `X-API-Key: cat_...`
#[derive(SecurityScheme)]
#[oai(ty = "api_key", key_name = "X-API-Key", key_in = "header")]
pub struct ApiKeyAuth(pub ApiKey);

/// Either credential.
#[derive(SecurityScheme)]
pub enum Credentials {
    BearerAuth(BearerAuth),
    ApiKeyAuth(ApiKeyAuth),
}
