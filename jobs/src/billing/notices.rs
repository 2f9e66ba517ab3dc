//! Billing emails to a tenant's owners: outbox rows written in the reconciliation's
//! transaction, pushed to the `email` queue after it commits.

use catalytic_db::ids::{EmailId, TenantId};
use catalytic_db::{Conn, DbResult, outbox, tenants, users};
use serde_json::Value;

use crate::queue::QueueClient;

/// Queues `template` to every active owner of the tenant, with `data` plus each owner's
/// first name and the organisation's name. Returns the outbox ids to push after commit.
pub async fn to_owners(
    conn: &mut Conn,
    tenant: TenantId,
    template: &str,
    data: Value,
    message_domain: &str,
) -> DbResult<Vec<EmailId>> {
    let company = tenants::get(conn, tenant).await?.name;
    let mut ids = Vec::new();
    for owner in users::owners(conn, tenant).await? {
        let mut d = data.clone();
        d["first_name"] = Value::String(owner.first_name.clone());
        d["company_name"] = Value::String(company.clone());
        ids.push(
            outbox::insert(
                conn,
                Some(tenant),
                &owner.email,
                template,
                d,
                message_domain,
            )
            .await?,
        );
    }
    Ok(ids)
}

/// Pushes committed outbox rows; a failed push is left to the sweeper.
pub async fn push(queue: &QueueClient, ids: &[EmailId]) {
    for id in ids {
        if let Err(e) = crate::enqueue::push_email(queue, id.as_uuid(), None).await {
            tracing::warn!(email.id = %id, error = %e, "email push failed; the sweeper will deliver it");
        }
    }
}
