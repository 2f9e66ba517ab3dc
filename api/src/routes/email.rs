//! Email: send a template or a custom email to a user of the tenant, the email service's
//! status, and one email's delivery status. Sending writes an outbox row (with an audit
//! entry) in one transaction and pushes its delivery after the commit; a worker sends it.

use std::time::Duration;

use catalytic_db::AsyncConnection as _;
use catalytic_db::DbError;
use catalytic_db::ids::{EmailId, TenantId};
use catalytic_db::outbox::{self, OutboxEmail};
use catalytic_jobs::email::{self, TemplateKind};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::auth::principal::authenticate;
use crate::auth::{Credentials, Principal};
use crate::emails;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::routes::ApiTags;
use crate::state::AppState;
use crate::validate::{self, Checks};

/// How long the status endpoint waits for the SMTP server.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_SUBJECT: usize = 200;
const MAX_BODY_CHARS: usize = 200_000;
const MAX_DATA_BYTES: usize = 64 * 1024;

/// A template email `{to, template, data}` or a custom one `{to, subject, html, text}`.
#[derive(Debug, Object)]
pub struct SendEmailRequest {
    /// The recipient: a user of your organisation (any address for a platform
    /// administrator).
    pub to: String,
    /// welcome, password_reset, invitation, payment_success, payment_failed,
    /// trial_ending, account_suspended or quota_warning; omit for a custom email.
    pub template: Option<String>,
    /// The template's data (its fields are listed in the README).
    pub data: Option<Value>,
    /// Custom email: the subject line (one line).
    pub subject: Option<String>,
    /// Custom email: the HTML part, sent as written.
    pub html: Option<String>,
    /// Custom email: the plain-text part.
    pub text: Option<String>,
}

#[derive(Debug, Object)]
pub struct EmailAccepted {
    pub email_id: Uuid,
    /// Always `pending`: poll `GET /api/email/{id}`.
    pub status: String,
}

#[derive(ApiResponse)]
pub enum Sent {
    /// Queued for delivery.
    #[oai(status = 202)]
    Accepted(Json<EmailAccepted>),
}

#[derive(Debug, Object)]
pub struct SmtpStatus {
    /// A fresh connection, EHLO (and STARTTLS/AUTH when configured) and NOOP succeeded.
    pub reachable: bool,
    /// How long the probe took.
    pub latency_ms: u64,
}

#[derive(Debug, Object)]
pub struct EmailServiceStatus {
    pub smtp: SmtpStatus,
    /// The tenant's emails waiting for delivery (pending or being sent).
    pub pending: i64,
    /// The tenant's emails that failed after their last attempt.
    pub failed: i64,
    /// The tenant's emails delivered to the SMTP server.
    pub sent: i64,
    /// Emails the tenant may send through this API per hour.
    pub limit_per_hour: u32,
    /// Emails sent through this API in the current hour.
    pub sent_this_hour: u64,
}

#[derive(Debug, Object)]
pub struct EmailView {
    pub id: Uuid,
    pub to: String,
    pub template: String,
    /// pending, sending, sent or failed.
    pub status: String,
    /// Send attempts so far.
    pub attempts: i32,
    /// Why the last attempt failed, or why it was a re-send.
    pub last_error: Option<String>,
    /// The SMTP server's answer to the accepted message.
    pub smtp_response: Option<String>,
    /// The Message-ID header, the same on every attempt.
    pub message_id: String,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

impl From<OutboxEmail> for EmailView {
    fn from(e: OutboxEmail) -> Self {
        Self {
            id: e.id.as_uuid(),
            to: e.to_address,
            template: e.template,
            status: e.status,
            attempts: e.attempts,
            last_error: e.last_error,
            smtp_response: e.smtp_response,
            message_id: e.message_id,
            created_at: e.created_at,
            sent_at: e.sent_at,
        }
    }
}

/// A validated request: recipient, template and the data stored in the outbox.
struct Outgoing {
    to: String,
    template: TemplateKind,
    data: Value,
}

/// Line breaks in a header value would let a caller add headers (Bcc: ...).
fn no_line_breaks(field: &str, value: &str) -> Result<(), FieldError> {
    if value.contains(['\r', '\n']) {
        return Err(FieldError::new(
            field,
            "must not contain line breaks (header injection)",
        ));
    }
    Ok(())
}

fn body_text(field: &str, value: Option<&String>) -> Result<(), FieldError> {
    match value {
        None => Err(FieldError::new(field, "is required for a custom email")),
        Some(v) if v.trim().is_empty() => Err(FieldError::new(field, "must not be empty")),
        Some(v) if v.chars().count() > MAX_BODY_CHARS => Err(FieldError::new(
            field,
            format!("must be at most {MAX_BODY_CHARS} characters"),
        )),
        Some(v) => validate::multiline(field, v),
    }
}

/// Checks the request's shape and renders it once, so data that does not fit its
/// template is a 422 now rather than a failed delivery later.
fn validate(state: &AppState, p: &Principal, b: SendEmailRequest) -> ApiResult<Outgoing> {
    let mut checks = Checks::new();
    checks.check(no_line_breaks("to", &b.to));
    let to = validate::email("to", &b.to);
    checks.check(to.as_ref().map(|_| ()).map_err(Clone::clone));
    let (template, data) = match (&b.template, &b.subject) {
        (Some(_), Some(_)) => {
            checks.check(Err(FieldError::new(
                "template",
                "send either a template with data, or a custom subject, html and text",
            )));
            (TemplateKind::Custom, Value::Null)
        }
        (Some(name), None) => match name.parse::<TemplateKind>() {
            Ok(TemplateKind::Custom) | Err(_) => {
                checks.check(Err(FieldError::new(
                    "template",
                    "must be welcome, password_reset, invitation, payment_success, payment_failed, \
                     trial_ending, account_suspended or quota_warning (a custom email has subject, html and text)",
                )));
                (TemplateKind::Custom, Value::Null)
            }
            Ok(kind) => {
                let data = b.data.clone().unwrap_or_else(|| json!({}));
                if data.to_string().len() > MAX_DATA_BYTES {
                    checks.check(Err(FieldError::new(
                        "data",
                        format!("must be at most {MAX_DATA_BYTES} bytes of JSON"),
                    )));
                } else {
                    checks.check(validate::json_text("data", &data));
                }
                (kind, data)
            }
        },
        (None, subject) => {
            match subject {
                None => {
                    checks.check(Err(FieldError::new(
                        "subject",
                        "is required for a custom email (or give a template)",
                    )));
                }
                Some(s) => {
                    checks
                        .check(no_line_breaks("subject", s))
                        .check(validate::text("subject", s, MAX_SUBJECT));
                }
            }
            checks
                .check(body_text("html", b.html.as_ref()))
                .check(body_text("text", b.text.as_ref()));
            let data = json!({
                "subject": b.subject,
                "html": b.html,
                "text": b.text,
                "company_name": p.tenant.tenant.name,
            });
            (TemplateKind::Custom, data)
        }
    };
    checks.finish()?;
    let to = to.map_err(|e| ApiError::Validation(vec![e]))?;
    email::render(template.as_str(), &data, &state.config.frontend_url)
        .map_err(|e| ApiError::invalid("data", e.to_string()))?;
    Ok(Outgoing { to, template, data })
}

/// Whether the caller is a platform administrator (read from the user row, never from
/// a token).
async fn is_platform_admin(state: &AppState, p: &Principal) -> ApiResult<bool> {
    let Some(user) = p.user_id else {
        return Ok(false);
    };
    let mut conn = state.db.get().await?;
    match catalytic_db::users::by_id_any_tenant(&mut conn, user).await {
        Ok(u) => Ok(u.is_platform_admin && u.is_active),
        Err(DbError::NotFound) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Recipients are the tenant's own active users, unless a platform administrator sends.
async fn check_recipient(state: &AppState, p: &Principal, to: &str) -> ApiResult<()> {
    let mut conn = state.db.get().await?;
    let member = catalytic_db::users::by_email(&mut conn, to, Some(p.tenant_id))
        .await?
        .is_some_and(|u| u.is_active);
    drop(conn);
    if member || is_platform_admin(state, p).await? {
        return Ok(());
    }
    Err(ApiError::invalid(
        "to",
        "must be an active user of your organisation",
    ))
}

fn hour_key(state: &AppState, tenant: TenantId, now: DateTime<Utc>) -> String {
    state.key(&format!("email:sends:{tenant}:{}", now.timestamp() / 3600))
}

/// Counts one send against the tenant's hourly limit (a Redis counter per clock hour).
async fn take_allowance(state: &AppState, tenant: TenantId) -> ApiResult<String> {
    let now = Utc::now();
    let key = hour_key(state, tenant, now);
    let mut redis = state.redis.get().await?;
    let (count,): (u64,) = redis::pipe()
        .atomic()
        .incr(&key, 1)
        .expire(&key, 3700)
        .ignore()
        .query_async(&mut redis)
        .await?;
    if count > u64::from(state.config.email_send_limit_per_hour) {
        let retry_after_secs =
            u64::try_from(3600 - now.timestamp().rem_euclid(3600)).unwrap_or(3600);
        return Err(ApiError::RateLimited { retry_after_secs });
    }
    Ok(key)
}

/// Gives a send back when its transaction did not commit.
async fn refund(state: &AppState, key: &str) {
    let Ok(mut redis) = state.redis.get().await else {
        return;
    };
    let _: Result<i64, _> = redis::cmd("DECR").arg(key).query_async(&mut redis).await;
}

async fn sent_this_hour(state: &AppState, tenant: TenantId) -> ApiResult<u64> {
    let mut redis = state.redis.get().await?;
    let n: Option<u64> = redis::cmd("GET")
        .arg(hour_key(state, tenant, Utc::now()))
        .query_async(&mut redis)
        .await?;
    Ok(n.unwrap_or(0)
        .min(u64::from(state.config.email_send_limit_per_hour)))
}

pub struct EmailApi;

#[OpenApi(tag = "ApiTags::Email")]
impl EmailApi {
    /// Queues an email to a user of the organisation: a template with its data, or a
    /// custom subject, HTML and text. Limited per tenant and hour (429 beyond).
    #[oai(path = "/api/email/send", method = "post", operation_id = "email_send")]
    async fn send(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
        body: Json<SendEmailRequest>,
    ) -> ApiResult<Sent> {
        let p = authenticate(&state, &auth, "email_send").await?;
        let out = validate(&state, &p, body.0)?;
        check_recipient(&state, &p, &out.to).await?;
        let allowance = take_allowance(&state, p.tenant_id).await?;
        let st = state.clone();
        let mut conn = state.db.get().await?;
        let written = conn
            .transaction::<_, ApiError, _>(async |c| {
                let id = emails::queue(
                    &st,
                    c,
                    Some(p.tenant_id),
                    &out.to,
                    out.template.as_str(),
                    out.data.clone(),
                )
                .await?;
                let mut entry = p.audit("email.queued");
                entry.target_type = Some("email");
                entry.target_id = Some(id.to_string());
                entry.details = json!({ "to": out.to, "template": out.template.as_str() });
                catalytic_db::audit::record(c, entry).await?;
                Ok(id)
            })
            .await;
        let id = match written {
            Ok(id) => id,
            Err(e) => {
                refund(&state, &allowance).await;
                return Err(e);
            }
        };
        emails::push_after_commit(&state, &[id]).await;
        Ok(Sent::Accepted(Json(EmailAccepted {
            email_id: id.as_uuid(),
            status: "pending".into(),
        })))
    }

    /// The email service: whether the SMTP server answers, and the tenant's pending,
    /// failed and sent counts.
    #[oai(
        path = "/api/email/send",
        method = "get",
        operation_id = "email_status"
    )]
    async fn status(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
    ) -> ApiResult<Json<EmailServiceStatus>> {
        let p = authenticate(&state, &auth, "email_status").await?;
        let counts = {
            let mut conn = state.db.get().await?;
            outbox::counts_for_tenant(&mut conn, p.tenant_id).await?
        };
        let sent_this_hour = sent_this_hour(&state, p.tenant_id).await?;
        let probe = email::probe(&state.config.smtp, PROBE_TIMEOUT).await;
        if let Some(e) = &probe.error {
            tracing::warn!(smtp = %state.config.smtp.address(), error = %e, "SMTP probe failed");
        }
        Ok(Json(EmailServiceStatus {
            smtp: SmtpStatus {
                reachable: probe.reachable,
                latency_ms: probe.latency_ms,
            },
            pending: counts.pending,
            failed: counts.failed,
            sent: counts.sent,
            limit_per_hour: state.config.email_send_limit_per_hour,
            sent_this_hour,
        }))
    }

    /// One email's delivery status.
    #[oai(path = "/api/email/:id", method = "get", operation_id = "email_get")]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: Credentials,
        id: Path<Uuid>,
    ) -> ApiResult<Json<EmailView>> {
        let p = authenticate(&state, &auth, "email_get").await?;
        let mut conn = state.db.get().await?;
        outbox::get_for_tenant(&mut conn, p.tenant_id, EmailId::from_uuid(id.0))
            .await
            .map(|e| Json(e.into()))
            .map_err(|e| match e {
                DbError::NotFound => ApiError::not_found("email"),
                other => other.into(),
            })
    }
}
