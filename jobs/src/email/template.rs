//! Which templates exist, what data each takes, and rendering an outbox row's template and
//! data into a subject, an HTML part and a text part.

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use super::views::{
    AccountSuspended, Custom, EmailData, Invitation, PasswordReset, PaymentFailed, PaymentSuccess,
    QuotaWarning, TrialEnding, Welcome,
};
use crate::JobError;

/// Every template (the `email_outbox.template` CHECK lists the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TemplateKind {
    Welcome,
    PasswordReset,
    Invitation,
    PaymentSuccess,
    PaymentFailed,
    TrialEnding,
    AccountSuspended,
    QuotaWarning,
    Custom,
}

impl TemplateKind {
    pub const ALL: [TemplateKind; 9] = [
        TemplateKind::Welcome,
        TemplateKind::PasswordReset,
        TemplateKind::Invitation,
        TemplateKind::PaymentSuccess,
        TemplateKind::PaymentFailed,
        TemplateKind::TrialEnding,
        TemplateKind::AccountSuspended,
        TemplateKind::QuotaWarning,
        TemplateKind::Custom,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            TemplateKind::Welcome => "welcome",
            TemplateKind::PasswordReset => "password_reset",
            TemplateKind::Invitation => "invitation",
            TemplateKind::PaymentSuccess => "payment_success",
            TemplateKind::PaymentFailed => "payment_failed",
            TemplateKind::TrialEnding => "trial_ending",
            TemplateKind::AccountSuspended => "account_suspended",
            TemplateKind::QuotaWarning => "quota_warning",
            TemplateKind::Custom => "custom",
        }
    }

    /// Links filled in from `FRONTEND_URL` when the data does not carry them, and a
    /// greeting name when it has none.
    fn defaults(self, site: &str) -> Vec<(&'static str, Value)> {
        let link = |path: &str| Value::String(format!("{site}{path}"));
        let mut out = vec![("first_name", Value::String("there".into()))];
        if !matches!(
            self,
            TemplateKind::Welcome | TemplateKind::Invitation | TemplateKind::PasswordReset
        ) {
            out.push(("company_name", Value::String("your organisation".into())));
        }
        match self {
            TemplateKind::Welcome | TemplateKind::Invitation => {
                out.push(("login_url", link("/login")));
            }
            TemplateKind::PaymentSuccess => out.push(("invoice_url", link("/billing"))),
            TemplateKind::PaymentFailed
            | TemplateKind::TrialEnding
            | TemplateKind::AccountSuspended => out.push(("billing_url", link("/billing"))),
            TemplateKind::QuotaWarning => {
                out.push(("usage_url", link("/usage")));
                out.push(("metric", Value::String("api_calls".into())));
            }
            TemplateKind::PasswordReset | TemplateKind::Custom => {}
        }
        out
    }
}

impl fmt::Display for TemplateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TemplateKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TemplateKind::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = TemplateKind::ALL.iter().map(|t| t.as_str()).collect();
                format!(
                    "unknown template {s:?} (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line: control characters are replaced by spaces.
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// Renders `template` with `data`; `site` is `FRONTEND_URL`. A template that does not
/// exist or data that does not fit it is a permanent failure (`JobError::Abort`) with a
/// message fit for a client.
pub fn render(template: &str, data: &Value, site: &str) -> Result<Rendered, JobError> {
    let kind: TemplateKind = template.parse().map_err(JobError::Abort)?;
    let site = site.trim_end_matches('/');
    let data = with_defaults(kind, data, site)?;
    match kind {
        TemplateKind::Welcome => render_as::<Welcome>(kind, data, site),
        TemplateKind::PasswordReset => render_as::<PasswordReset>(kind, data, site),
        TemplateKind::Invitation => render_as::<Invitation>(kind, data, site),
        TemplateKind::PaymentSuccess => render_as::<PaymentSuccess>(kind, data, site),
        TemplateKind::PaymentFailed => render_as::<PaymentFailed>(kind, data, site),
        TemplateKind::TrialEnding => render_as::<TrialEnding>(kind, data, site),
        TemplateKind::AccountSuspended => render_as::<AccountSuspended>(kind, data, site),
        TemplateKind::QuotaWarning => render_as::<QuotaWarning>(kind, data, site),
        TemplateKind::Custom => render_as::<Custom>(kind, data, site),
    }
}

fn with_defaults(kind: TemplateKind, data: &Value, site: &str) -> Result<Value, JobError> {
    let mut map: Map<String, Value> = match data {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        _ => {
            return Err(JobError::Abort(format!(
                "data of the {kind} template must be a JSON object"
            )));
        }
    };
    for (field, value) in kind.defaults(site) {
        let missing = match map.get(field) {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.trim().is_empty(),
            Some(_) => false,
        };
        if missing {
            map.insert(field.to_owned(), value);
        }
    }
    Ok(Value::Object(map))
}

fn render_as<T: EmailData>(
    kind: TemplateKind,
    data: Value,
    site: &str,
) -> Result<Rendered, JobError> {
    let d: T = serde_json::from_value(data)
        .map_err(|e| JobError::Abort(format!("data of the {kind} template: {e}")))?;
    for (field, url) in d.urls() {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(JobError::Abort(format!(
                "data of the {kind} template: {field} must be an http:// or https:// URL"
            )));
        }
    }
    let engine =
        |e: askama::Error| JobError::Abort(format!("the {kind} template failed to render: {e}"));
    Ok(Rendered {
        subject: one_line(&d.subject()),
        html: d.html(site).map_err(engine)?,
        text: d.text(site).map_err(engine)?,
    })
}

/// Control characters (CR and LF above all) become spaces, runs of spaces one space.
pub fn one_line(s: &str) -> String {
    s.split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SITE: &str = "https://app.example.com";

    /// Data every template accepts, as the producers write it.
    pub(crate) fn sample(kind: TemplateKind) -> Value {
        match kind {
            TemplateKind::Welcome => json!({"first_name": "Ada", "company_name": "Acme"}),
            TemplateKind::PasswordReset => json!({"first_name": "Ada",
                "reset_url": "https://app.example.com/reset-password?token=t", "expires_minutes": 60}),
            TemplateKind::Invitation => json!({"first_name": "Ada", "company_name": "Acme",
                "role": "admin", "set_password_url": null}),
            TemplateKind::PaymentSuccess => json!({"company_name": "Acme", "plan_name": "Starter",
                "amount_cents": 2900, "currency": "usd", "period_end": "2026-12-01T00:00:00Z"}),
            TemplateKind::PaymentFailed => json!({"company_name": "Acme", "plan_name": "Starter",
                "amount_cents": 2900, "currency": "usd"}),
            TemplateKind::TrialEnding => json!({"company_name": "Acme", "plan_name": "Starter",
                "trial_end": "2026-12-01T00:00:00Z"}),
            TemplateKind::AccountSuspended => json!({"company_name": "Acme"}),
            TemplateKind::QuotaWarning => json!({"company_name": "Acme", "metric": "api_calls",
                "used": 80, "limit": 100}),
            TemplateKind::Custom => json!({"subject": "Hello", "html": "<p>Hi <b>all</b></p>",
                "text": "Hi all", "company_name": "Acme"}),
        }
    }

    #[test]
    fn every_template_renders_both_parts_and_a_subject() {
        for kind in TemplateKind::ALL {
            let r = render(kind.as_str(), &sample(kind), SITE).unwrap();
            assert!(!r.subject.is_empty(), "{kind}");
            assert!(r.html.contains("<html"), "{kind}: {}", r.html);
            assert!(!r.text.contains("<html"), "{kind}");
            assert!(r.text.contains(SITE), "{kind}: {}", r.text);
        }
    }

    #[test]
    fn user_data_is_escaped_in_html_and_verbatim_in_text() {
        let data = json!({"first_name": "Ada", "company_name": "<script>alert(1)</script> & Co"});
        let r = render("welcome", &data, SITE).unwrap();
        assert!(
            r.html
                .contains("&#60;script&#62;alert(1)&#60;/script&#62; &#38; Co")
                || r.html
                    .contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co"),
            "{}",
            r.html
        );
        assert!(!r.html.contains("<script>"));
        assert!(r.text.contains("<script>alert(1)</script> & Co"));
    }

    #[test]
    fn missing_links_come_from_the_frontend_url() {
        let r = render("welcome", &sample(TemplateKind::Welcome), SITE).unwrap();
        assert!(r.html.contains("https://app.example.com/login"));
        let r = render("payment_failed", &sample(TemplateKind::PaymentFailed), SITE).unwrap();
        assert!(r.text.contains("https://app.example.com/billing"));
        assert!(r.text.contains("29.00 USD"));
        assert!(r.text.starts_with("Hi there,"));
    }

    #[test]
    fn the_invitation_links_to_set_a_password_when_it_has_one() {
        let mut data = sample(TemplateKind::Invitation);
        data["set_password_url"] = json!("https://app.example.com/reset-password?token=abc");
        let r = render("invitation", &data, SITE).unwrap();
        assert!(r.text.contains("token=abc"));
        assert!(r.text.contains("as an admin"));
    }

    #[test]
    fn bad_data_and_unknown_templates_are_permanent_failures() {
        assert!(matches!(
            render("nope", &json!({}), SITE),
            Err(JobError::Abort(_))
        ));
        let e = render("password_reset", &json!({"first_name": "A"}), SITE).unwrap_err();
        assert!(e.to_string().contains("reset_url"), "{e}");
        let e = render(
            "password_reset",
            &json!({"reset_url": "javascript:alert(1)", "expires_minutes": 5}),
            SITE,
        )
        .unwrap_err();
        assert!(e.to_string().contains("http"), "{e}");
        assert!(render("welcome", &json!([1]), SITE).is_err());
    }

    #[test]
    fn the_quota_warning_takes_the_data_the_quota_check_writes() {
        let data = json!({"first_name": "Ada", "percent": 80, "used": 81, "limit": 100,
            "reset_at": "2026-12-01T00:00:00+00:00", "upgrade_url": "https://app.example.com/billing"});
        let r = render("quota_warning", &data, SITE).unwrap();
        assert_eq!(r.subject, "You have used 80% of this month's api calls");
        assert!(
            r.text
                .contains("your organisation has used 81 of its 100 api calls"),
            "{}",
            r.text
        );
        assert!(r.text.contains("1 December 2026"));
        assert!(r.html.contains("https://app.example.com/billing"));
    }

    #[test]
    fn the_billing_emails_take_the_data_the_reconciler_writes() {
        let base = json!({"first_name": "Ada", "company_name": "Acme", "plan_name": "Starter",
            "amount_cents": 2900, "currency": "usd"});
        let mut paid = base.clone();
        paid["invoice_url"] = Value::Null;
        paid["period_end"] = Value::Null;
        let r = render("payment_success", &paid, SITE).unwrap();
        assert!(r.text.contains("https://app.example.com/billing"));
        let mut failed = base.clone();
        failed["next_attempt_at"] = json!("2026-12-03T10:00:00Z");
        let r = render("payment_failed", &failed, SITE).unwrap();
        assert!(r.text.contains("3 December 2026"), "{}", r.text);
        let trial = json!({"first_name": "Ada", "company_name": "Acme", "plan_name": "Starter",
            "trial_end": "2026-12-01T00:00:00Z"});
        assert!(render("trial_ending", &trial, SITE).is_ok());
        let suspended = json!({"first_name": "Ada", "company_name": "Acme",
            "reason": "Your subscription payment is overdue."});
        let r = render("account_suspended", &suspended, SITE).unwrap();
        assert!(
            r.text
                .contains("suspended: Your subscription payment is overdue."),
            "{}",
            r.text
        );
    }

    #[test]
    fn subjects_are_one_line() {
        let data = json!({"first_name": "Ada\r\nBcc: x@y.z", "company_name": "Acme"});
        let r = render("welcome", &data, SITE).unwrap();
        assert_eq!(r.subject, "Welcome to Catalytic, Ada Bcc: x@y.z");
    }
}
