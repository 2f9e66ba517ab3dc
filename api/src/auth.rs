//! Authentication and authorisation: RS256 tokens, passwords, API keys, the credential
//! schemes of the OpenAPI spec, and the principal a handler acts for.

pub mod api_key;
pub mod jwt;
pub mod password;
pub mod principal;
pub mod roles;
pub mod scheme;
pub mod token_cache;

pub use principal::Principal;
pub use scheme::Credentials;
