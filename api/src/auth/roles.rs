//! Who may call what: the minimum role of every authenticated operation, by operation
//! id. This table is the single source of truth: handlers look their operation up here,
//! the README prints it, and a test calls every entry with every role.
//!
//! Roles rank owner > admin > member > viewer; a role may do everything a weaker one may.

use catalytic_db::users::Role;

/// One authenticated operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub operation_id: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    pub min_role: Role,
    /// Writes are refused (402) while the tenant is suspended; reads are not.
    pub write: bool,
    /// Platform administrators only (a flag set by the CLI, never by the API).
    pub platform_admin: bool,
}

const fn rule(
    operation_id: &'static str,
    method: &'static str,
    path: &'static str,
    min_role: Role,
    write: bool,
) -> Rule {
    Rule {
        operation_id,
        method,
        path,
        min_role,
        write,
        platform_admin: false,
    }
}

/// An operation for platform administrators only (any tenant's data; never a tenant
/// role's).
const fn platform_rule(
    operation_id: &'static str,
    method: &'static str,
    path: &'static str,
) -> Rule {
    Rule {
        operation_id,
        method,
        path,
        min_role: Role::Viewer,
        write: false,
        platform_admin: true,
    }
}

use Role::{Admin, Member, Owner, Viewer};

pub const RULES: &[Rule] = &[
    rule("ping", "GET", "/api/ping", Viewer, false),
    rule("auth_me", "GET", "/api/auth/me", Viewer, false),
    rule("auth_logout", "POST", "/api/auth/logout", Viewer, false),
    rule("users_list", "GET", "/api/users", Viewer, false),
    rule("users_create", "POST", "/api/users", Admin, true),
    rule("users_update", "PATCH", "/api/users/{id}", Admin, true),
    rule("users_delete", "DELETE", "/api/users/{id}", Admin, true),
    rule("api_keys_create", "POST", "/api/api-keys", Admin, true),
    rule("api_keys_list", "GET", "/api/api-keys", Admin, false),
    rule(
        "api_keys_delete",
        "DELETE",
        "/api/api-keys/{id}",
        Admin,
        true,
    ),
    rule("audit_logs_list", "GET", "/api/audit-logs", Admin, false),
    rule("lattices_create", "POST", "/api/lattices", Member, true),
    rule("lattices_list", "GET", "/api/lattices", Viewer, false),
    rule("lattices_get", "GET", "/api/lattices/{id}", Viewer, false),
    rule(
        "lattices_delete",
        "DELETE",
        "/api/lattices/{id}",
        Member,
        true,
    ),
    rule(
        "jobs_submit",
        "POST",
        "/api/lattices/{id}/jobs",
        Member,
        true,
    ),
    rule("jobs_get", "GET", "/api/jobs/{id}", Viewer, false),
    rule("jobs_list", "GET", "/api/jobs", Viewer, false),
    rule("jobs_cancel", "DELETE", "/api/jobs/{id}", Member, true),
    rule("lattices_path", "POST", "/api/lattices/path", Member, true),
    rule(
        "lattices_transform",
        "POST",
        "/api/lattices/{id}/transform",
        Member,
        true,
    ),
    rule("usage_series", "GET", "/api/usage", Viewer, false),
    rule("usage_summary", "GET", "/api/usage/summary", Viewer, false),
    rule("email_send", "POST", "/api/email/send", Admin, true),
    rule("email_status", "GET", "/api/email/send", Admin, false),
    rule("email_get", "GET", "/api/email/{id}", Admin, false),
    // Billing stays open to a suspended tenant (write: false), so it can pay and recover.
    rule(
        "stripe_checkout",
        "POST",
        "/api/stripe/checkout",
        Admin,
        false,
    ),
    rule("stripe_portal", "POST", "/api/stripe/portal", Admin, false),
    rule(
        "subscriptions_status",
        "GET",
        "/api/subscriptions/status",
        Viewer,
        false,
    ),
    rule(
        "subscriptions_update",
        "PUT",
        "/api/subscriptions/update",
        Admin,
        false,
    ),
    rule(
        "subscriptions_cancel",
        "DELETE",
        "/api/subscriptions/cancel",
        Admin,
        false,
    ),
    rule(
        "subscriptions_customer_info",
        "PUT",
        "/api/subscriptions/customer-info",
        Admin,
        false,
    ),
    rule("invoices_list", "GET", "/api/invoices", Admin, false),
    platform_rule(
        "subscriptions_set_limits",
        "PUT",
        "/api/subscriptions/limits",
    ),
    platform_rule(
        "subscriptions_tenant_status",
        "GET",
        "/api/subscriptions/status/{tenant_id}",
    ),
];

/// The rule of an operation. Every authenticated handler has one (a test checks it).
pub fn rule_for(operation_id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.operation_id == operation_id)
}

/// The roles table as Markdown, for the README.
pub fn markdown_table() -> String {
    let mut out =
        String::from("| endpoint | owner | admin | member | viewer |\n|---|:-:|:-:|:-:|:-:|\n");
    for r in RULES {
        let cells: Vec<&str> = [Owner, Admin, Member, Viewer]
            .iter()
            .map(|role| {
                if r.platform_admin {
                    "platform admin"
                } else if role.at_least(r.min_role) {
                    "yes"
                } else {
                    "—"
                }
            })
            .collect();
        out.push_str(&format!(
            "| `{} {}` | {} |\n",
            r.method,
            r.path,
            cells.join(" | ")
        ));
    }
    out
}
