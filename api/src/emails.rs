//! Emails from the API: a row in the outbox inside the caller's transaction, then a push
//! to the `email` queue after the commit. A push that fails leaves the row pending, and
//! the worker's sweeper delivers it later: nothing is lost, nothing is sent twice.

use catalytic_db::Conn;
use catalytic_db::ids::{EmailId, TenantId};

use crate::error::ApiResult;
use crate::http::request_id;
use crate::state::AppState;

/// Writes an email to the outbox (call inside the business transaction).
pub async fn queue(
    state: &AppState,
    conn: &mut Conn,
    tenant: Option<TenantId>,
    to: &str,
    template: &str,
    data: serde_json::Value,
) -> ApiResult<EmailId> {
    Ok(catalytic_db::outbox::insert(
        conn,
        tenant,
        to,
        template,
        data,
        &state.config.message_id_domain(),
    )
    .await?)
}

/// Pushes committed outbox rows to the `email` queue; failures are logged, not returned.
pub async fn push_after_commit(state: &AppState, ids: &[EmailId]) {
    for id in ids {
        if let Err(e) = catalytic_jobs::enqueue::push_email(
            &state.queue,
            id.as_uuid(),
            Some(request_id::current()),
        )
        .await
        {
            tracing::warn!(email.id = %id, error = %e, "email push failed; the sweeper will deliver it");
        }
    }
}
