//! The typed data of each template and its compile-time checked views (askama,
//! `jobs/templates/email/`): an HTML view, escaped, and a plain-text view of the same data.
//!
//! Links the data does not carry are filled in from `FRONTEND_URL` before the data is
//! read (see [`super::template`]), so every URL field here is set.

use askama::Template;
use chrono::{DateTime, Utc};
use serde::Deserialize;

/// A template's data: its subject and both parts.
pub(super) trait EmailData: serde::de::DeserializeOwned {
    fn subject(&self) -> String;
    fn html(&self, site: &str) -> askama::Result<String>;
    fn text(&self, site: &str) -> askama::Result<String>;
    /// The URL fields, checked to be http(s) before anything renders.
    fn urls(&self) -> Vec<(&'static str, &str)>;
}

/// Implements [`EmailData`] with a pair of views named `$html` and `$text`.
macro_rules! views {
    ($data:ty, $html:ident, $text:ident, |$d:ident| $subject:expr, [$($url:ident),*]) => {
        impl EmailData for $data {
            fn subject(&self) -> String {
                let $d = self;
                $subject
            }
            fn html(&self, site: &str) -> askama::Result<String> {
                $html { d: self, site }.render()
            }
            fn text(&self, site: &str) -> askama::Result<String> {
                $text { d: self, site }.render()
            }
            fn urls(&self) -> Vec<(&'static str, &str)> {
                vec![$((stringify!($url), self.$url.as_str())),*]
            }
        }
    };
}

fn date(at: &DateTime<Utc>) -> String {
    at.format("%-d %B %Y").to_string()
}

/// `2900, "usd"` → `29.00 USD`.
fn money(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!(
        "{sign}{}.{:02} {}",
        c / 100,
        c % 100,
        currency.to_uppercase()
    )
}

#[derive(Debug, Deserialize)]
pub struct Welcome {
    pub first_name: String,
    pub company_name: String,
    pub login_url: String,
}

#[derive(Template)]
#[template(path = "email/welcome.html")]
struct WelcomeHtml<'a> {
    d: &'a Welcome,
    site: &'a str,
}

#[derive(Template)]
#[template(path = "email/welcome.txt")]
struct WelcomeText<'a> {
    d: &'a Welcome,
    site: &'a str,
}

views!(
    Welcome,
    WelcomeHtml,
    WelcomeText,
    |d| format!("Welcome to Catalytic, {}", d.first_name),
    [login_url]
);

#[derive(Debug, Deserialize)]
pub struct PasswordReset {
    pub first_name: String,
    pub reset_url: String,
    pub expires_minutes: i64,
}

#[derive(Template)]
#[template(path = "email/password_reset.html")]
struct PasswordResetHtml<'a> {
    d: &'a PasswordReset,
    site: &'a str,
}

#[derive(Template)]
#[template(path = "email/password_reset.txt")]
struct PasswordResetText<'a> {
    d: &'a PasswordReset,
    site: &'a str,
}

views!(
    PasswordReset,
    PasswordResetHtml,
    PasswordResetText,
    |_d| "Reset your Catalytic password".to_owned(),
    [reset_url]
);

#[derive(Debug, Deserialize)]
pub struct Invitation {
    pub first_name: String,
    pub company_name: String,
    pub role: String,
    pub set_password_url: Option<String>,
    pub login_url: String,
}

impl Invitation {
    pub fn role_article(&self) -> &'static str {
        if self.role.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        }
    }
}

#[derive(Template)]
#[template(path = "email/invitation.html")]
struct InvitationHtml<'a> {
    d: &'a Invitation,
    site: &'a str,
}

#[derive(Template)]
#[template(path = "email/invitation.txt")]
struct InvitationText<'a> {
    d: &'a Invitation,
    site: &'a str,
}

impl EmailData for Invitation {
    fn subject(&self) -> String {
        format!("You are invited to {} on Catalytic", self.company_name)
    }
    fn html(&self, site: &str) -> askama::Result<String> {
        InvitationHtml { d: self, site }.render()
    }
    fn text(&self, site: &str) -> askama::Result<String> {
        InvitationText { d: self, site }.render()
    }
    fn urls(&self) -> Vec<(&'static str, &str)> {
        let mut out = vec![("login_url", self.login_url.as_str())];
        if let Some(u) = &self.set_password_url {
            out.push(("set_password_url", u.as_str()));
        }
        out
    }
}

#[derive(Debug, Deserialize)]
pub struct PaymentSuccess {
    pub first_name: String,
    pub company_name: String,
    pub plan_name: String,
    pub amount_cents: i64,
    pub currency: String,
    pub invoice_url: String,
    #[serde(default)]
    pub period_end: Option<DateTime<Utc>>,
}

impl PaymentSuccess {
    pub fn amount(&self) -> String {
        money(self.amount_cents, &self.currency)
    }
    pub fn period_end_date(&self) -> Option<String> {
        self.period_end.as_ref().map(date)
    }
}

#[derive(Template)]
#[template(path = "email/payment_success.html")]
struct PaymentSuccessHtml<'a> {
    d: &'a PaymentSuccess,
    site: &'a str,
}

#[derive(Template)]
#[template(path = "email/payment_success.txt")]
struct PaymentSuccessText<'a> {
    d: &'a PaymentSuccess,
    site: &'a str,
}

views!(
    PaymentSuccess,
    PaymentSuccessHtml,
    PaymentSuccessText,
    |d| format!("Payment received: {}", d.amount()),
    [invoice_url]
);

#[derive(Debug, Deserialize)]
pub struct PaymentFailed {
    pub first_name: String,
    pub company_name: String,
    pub plan_name: String,
    pub amount_cents: i64,
    pub currency: String,
    pub billing_url: String,
    #[serde(default)]
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl PaymentFailed {
    pub fn amount(&self) -> String {
        money(self.amount_cents, &self.currency)
    }
    pub fn next_attempt_date(&self) -> Option<String> {
        self.next_attempt_at.as_ref().map(date)
    }
}

#[derive(Template)]
#[template(path = "email/payment_failed.html")]
struct PaymentFailedHtml<'a> {
    d: &'a PaymentFailed,
    site: &'a str,
}

#[derive(Template)]
#[template(path = "email/payment_failed.txt")]
struct PaymentFailedText<'a> {
    d: &'a PaymentFailed,
    site: &'a str,
}

views!(
    PaymentFailed,
    PaymentFailedHtml,
    PaymentFailedText,
    |_d| "Action needed: your Catalytic payment failed".to_owned(),
    [billing_url]
);

#[derive(Debug, Deserialize)]
pub struct TrialEnding {
    pub first_name: String,
    pub company_name: String,
    pub plan_name: String,
    pub trial_end: DateTime<Utc>,
    pub billing_url: String,
}

impl TrialEnding {
    pub fn trial_end_date(&self) -> String {
        date(&self.trial_end)
    }
}

#[derive(Template)]
#[template(path = "email/trial_ending.html")]
struct TrialEndingHtml<'a> {
    d: &'a TrialEnding,
    site: &'a str,
}

#[derive(Template)]
#[template(path = "email/trial_ending.txt")]
struct TrialEndingText<'a> {
    d: &'a TrialEnding,
    site: &'a str,
}

views!(
    TrialEnding,
    TrialEndingHtml,
    TrialEndingText,
    |d| format!("Your Catalytic trial ends on {}", d.trial_end_date()),
    [billing_url]
);

#[derive(Debug, Deserialize)]
pub struct AccountSuspended {
    pub first_name: String,
    pub company_name: String,
    #[serde(default)]
    pub reason: Option<String>,
    pub billing_url: String,
}

#[derive(Template)]
#[template(path = "email/account_suspended.html")]
struct AccountSuspendedHtml<'a> {
    d: &'a AccountSuspended,
    site: &'a str,
}

#[derive(Template)]
#[template(path = "email/account_suspended.txt")]
struct AccountSuspendedText<'a> {
    d: &'a AccountSuspended,
    site: &'a str,
}

views!(
    AccountSuspended,
    AccountSuspendedHtml,
    AccountSuspendedText,
    |_d| "Your Catalytic account is suspended".to_owned(),
    [billing_url]
);

#[derive(Debug, Deserialize)]
pub struct QuotaWarning {
    pub first_name: String,
    pub company_name: String,
    /// What is metered (default `api_calls`).
    pub metric: String,
    pub used: i64,
    pub limit: i64,
    /// The threshold reached (80, 100); computed from `used` and `limit` when absent.
    #[serde(default)]
    pub percent: Option<i64>,
    #[serde(default, alias = "reset_at")]
    pub resets_at: Option<DateTime<Utc>>,
    pub usage_url: String,
    /// Where to upgrade; the button leads there when set.
    #[serde(default)]
    pub upgrade_url: Option<String>,
}

impl QuotaWarning {
    pub fn percent(&self) -> i64 {
        match self.percent {
            Some(p) => p,
            None if self.limit <= 0 => 100,
            None => self.used.saturating_mul(100) / self.limit,
        }
    }
    pub fn metric_label(&self) -> String {
        self.metric.replace('_', " ")
    }
    pub fn resets_date(&self) -> Option<String> {
        self.resets_at.as_ref().map(date)
    }
    /// The button: upgrade when the data has a link for it, else the usage page.
    pub fn action(&self) -> (&str, &'static str) {
        match &self.upgrade_url {
            Some(u) => (u.as_str(), "Upgrade the plan"),
            None => (self.usage_url.as_str(), "View usage"),
        }
    }
}

#[derive(Template)]
#[template(path = "email/quota_warning.html")]
struct QuotaWarningHtml<'a> {
    d: &'a QuotaWarning,
    site: &'a str,
}

#[derive(Template)]
#[template(path = "email/quota_warning.txt")]
struct QuotaWarningText<'a> {
    d: &'a QuotaWarning,
    site: &'a str,
}

impl EmailData for QuotaWarning {
    fn subject(&self) -> String {
        format!(
            "You have used {}% of this month's {}",
            self.percent(),
            self.metric_label()
        )
    }
    fn html(&self, site: &str) -> askama::Result<String> {
        QuotaWarningHtml { d: self, site }.render()
    }
    fn text(&self, site: &str) -> askama::Result<String> {
        QuotaWarningText { d: self, site }.render()
    }
    fn urls(&self) -> Vec<(&'static str, &str)> {
        let mut out = vec![("usage_url", self.usage_url.as_str())];
        if let Some(u) = &self.upgrade_url {
            out.push(("upgrade_url", u.as_str()));
        }
        out
    }
}

/// A tenant's own email: its HTML is the sender's and is sent as written, inside the
/// layout; the footer names the sending organisation.
#[derive(Debug, Deserialize)]
pub struct Custom {
    pub subject: String,
    pub html: String,
    pub text: String,
    pub company_name: String,
}

#[derive(Template)]
#[template(path = "email/custom.html")]
struct CustomHtml<'a> {
    d: &'a Custom,
    site: &'a str,
}

#[derive(Template)]
#[template(path = "email/custom.txt")]
struct CustomText<'a> {
    d: &'a Custom,
    site: &'a str,
}

views!(Custom, CustomHtml, CustomText, |d| d.subject.clone(), []);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_has_two_decimals_and_an_upper_case_currency() {
        assert_eq!(money(2900, "usd"), "29.00 USD");
        assert_eq!(money(5, "eur"), "0.05 EUR");
        assert_eq!(money(-150, "usd"), "-1.50 USD");
    }
}
