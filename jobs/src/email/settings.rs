//! Email settings, read from the environment by both binaries through one parser, so the
//! API's SMTP probe and the worker's delivery agree on where the server is.

use std::fmt;
use std::time::Duration;

use lettre::message::Mailbox;

use crate::QueueName;
use crate::RetryPolicy;

/// How the SMTP connection is secured (`SMTP_TLS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text: only for a relay on this machine (the local sink).
    None,
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
}

impl SmtpTls {
    pub const fn as_str(self) -> &'static str {
        match self {
            SmtpTls::None => "none",
            SmtpTls::StartTls => "starttls",
            SmtpTls::Tls => "tls",
        }
    }

    /// The usual port of each mode.
    pub const fn default_port(self) -> u16 {
        match self {
            SmtpTls::None => 25,
            SmtpTls::StartTls => 587,
            SmtpTls::Tls => 465,
        }
    }
}

impl std::str::FromStr for SmtpTls {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" | "off" | "plain" => Ok(SmtpTls::None),
            "starttls" => Ok(SmtpTls::StartTls),
            "tls" | "ssl" | "smtps" => Ok(SmtpTls::Tls),
            _ => Err("expected none, starttls or tls".into()),
        }
    }
}

/// Where the SMTP server is and how to log in.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    /// `SMTP_HOST` (default 127.0.0.1).
    pub host: String,
    /// `SMTP_PORT` (default: 25, 587 or 465 by `SMTP_TLS`).
    pub port: u16,
    /// `SMTP_TLS`: none, starttls or tls (default none on a loopback host, starttls
    /// elsewhere).
    pub tls: SmtpTls,
    /// `SMTP_USERNAME` (optional; `apikey` for SendGrid).
    pub username: Option<String>,
    /// `SMTP_PASSWORD` (required with a username; never printed).
    pub password: Option<String>,
    /// `SMTP_TIMEOUT_SECS`: bound of one whole send, connection included (default 30).
    pub timeout: Duration,
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "****"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl SmtpSettings {
    /// Whether the host is this machine (where plain text is acceptable).
    pub fn is_loopback(&self) -> bool {
        is_loopback(&self.host)
    }

    /// `host:port`, for logs.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Reads the `SMTP_*` variables through `lookup`.
    pub fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        let get = |var: &'static str| lookup(var).filter(|v| !v.trim().is_empty());
        let host = get("SMTP_HOST").unwrap_or_else(|| "127.0.0.1".into());
        let host = host.trim().to_owned();
        if host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/')
        {
            return Err(SettingError::new(
                "SMTP_HOST",
                &host,
                "expected a host name or IP address",
            ));
        }
        let tls = match get("SMTP_TLS") {
            Some(v) => v
                .parse()
                .map_err(|e| SettingError::new("SMTP_TLS", &v, e))?,
            None if is_loopback(&host) => SmtpTls::None,
            None => SmtpTls::StartTls,
        };
        let port = match get("SMTP_PORT") {
            Some(v) => match v.trim().parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(SettingError::new("SMTP_PORT", &v, "expected a port number")),
            },
            None => tls.default_port(),
        };
        let username = get("SMTP_USERNAME");
        let password = get("SMTP_PASSWORD");
        if username.is_some() && password.is_none() {
            return Err(SettingError::missing(
                "SMTP_PASSWORD",
                "is required with SMTP_USERNAME",
            ));
        }
        if username.is_some() && tls == SmtpTls::None && !is_loopback(&host) {
            return Err(SettingError::new(
                "SMTP_TLS",
                "none",
                "would send SMTP_PASSWORD in plain text to a remote host; use starttls or tls",
            ));
        }
        let timeout = match get("SMTP_TIMEOUT_SECS") {
            Some(v) => match v.trim().parse::<u64>() {
                Ok(s) if (1..=600).contains(&s) => Duration::from_secs(s),
                _ => {
                    return Err(SettingError::new(
                        "SMTP_TIMEOUT_SECS",
                        &v,
                        "expected seconds between 1 and 600",
                    ));
                }
            },
            None => Duration::from_secs(30),
        };
        Ok(Self {
            host,
            port,
            tls,
            username,
            password,
            timeout,
        })
    }
}

/// Everything email delivery needs.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub smtp: SmtpSettings,
    /// `EMAIL_FROM` (default `Catalytic <no-reply@localhost>`).
    pub from: Mailbox,
    /// `FRONTEND_URL` (default http://127.0.0.1:8000): base of links the data lacks.
    pub frontend_url: String,
    /// The `email` queue's retry policy: `EMAIL_MAX_ATTEMPTS` (default 6),
    /// `EMAIL_RETRY_BASE_MS` (default 2000) and `EMAIL_RETRY_CAP_MS` (default 300000).
    pub retry: RetryPolicy,
}

impl EmailSettings {
    /// Reads the `SMTP_*`, `EMAIL_*` and `FRONTEND_URL` variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        let smtp = SmtpSettings::from_lookup(&lookup)?;
        let get = |var: &'static str| lookup(var).filter(|v| !v.trim().is_empty());
        let from_raw = get("EMAIL_FROM").unwrap_or_else(|| "Catalytic <no-reply@localhost>".into());
        let from: Mailbox = from_raw
            .trim()
            .parse()
            .map_err(|e| SettingError::new("EMAIL_FROM", &from_raw, e))?;
        let frontend_url = get("FRONTEND_URL").unwrap_or_else(|| "http://127.0.0.1:8000".into());
        if !(frontend_url.starts_with("http://") || frontend_url.starts_with("https://")) {
            return Err(SettingError::new(
                "FRONTEND_URL",
                &frontend_url,
                "must be an http:// or https:// URL",
            ));
        }
        let default = QueueName::Email.policy();
        let number = |var: &'static str, default: u64, min: u64| -> Result<u64, SettingError> {
            match get(var) {
                None => Ok(default),
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(n) if n >= min => Ok(n),
                    _ => Err(SettingError::new(
                        var,
                        &v,
                        format!("expected an integer of at least {min}"),
                    )),
                },
            }
        };
        let max_attempts = number("EMAIL_MAX_ATTEMPTS", u64::from(default.max_attempts), 1)?;
        let base_ms = number("EMAIL_RETRY_BASE_MS", millis(default.backoff_base), 1)?;
        let cap_ms = number("EMAIL_RETRY_CAP_MS", millis(default.backoff_cap), base_ms)?;
        Ok(Self {
            smtp,
            from,
            frontend_url: frontend_url.trim().trim_end_matches('/').to_owned(),
            retry: RetryPolicy {
                max_attempts: u32::try_from(max_attempts.min(100)).unwrap_or(100),
                backoff_base: Duration::from_millis(base_ms),
                backoff_cap: Duration::from_millis(cap_ms),
                jitter: default.jitter,
            },
        })
    }

    /// How long a row stays `sending` before another attempt may take it over: a send
    /// is bounded by the SMTP timeout, so after this the attempt that claimed it is over
    /// (finished without recording, or dead).
    pub fn sending_lease(&self) -> Duration {
        self.smtp.timeout + Duration::from_secs(5)
    }
}

impl Default for EmailSettings {
    /// What an empty environment gives: a plain-text sink on 127.0.0.1:25.
    fn default() -> Self {
        Self::from_lookup(|_| None).expect("the defaults are valid settings")
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// A missing or invalid email setting, naming its variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub var: &'static str,
    /// The value at fault (`****` for a password); `None` when the variable is missing.
    pub value: Option<String>,
    pub reason: String,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={v:?} is invalid: {}", self.var, self.reason),
            None => write!(f, "{} {}", self.var, self.reason),
        }
    }
}

impl std::error::Error for SettingError {}

impl SettingError {
    fn new(var: &'static str, value: &str, reason: impl fmt::Display) -> Self {
        let shown = if var.contains("PASSWORD") {
            "****"
        } else {
            value
        };
        Self {
            var,
            value: Some(shown.to_owned()),
            reason: reason.to_string(),
        }
    }

    fn missing(var: &'static str, reason: &str) -> Self {
        Self {
            var,
            value: None,
            reason: reason.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<EmailSettings, SettingError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        EmailSettings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_point_at_a_local_plain_text_sink() {
        let s = load(&[]).unwrap();
        assert_eq!(s.smtp.host, "127.0.0.1");
        assert_eq!(s.smtp.tls, SmtpTls::None);
        assert_eq!(s.smtp.port, 25);
        assert_eq!(s.retry, QueueName::Email.policy());
        assert_eq!(s.from.email.to_string(), "no-reply@localhost");
    }

    #[test]
    fn a_remote_host_defaults_to_starttls_on_587() {
        let s = load(&[
            ("SMTP_HOST", "smtp.sendgrid.net"),
            ("SMTP_USERNAME", "apikey"),
            ("SMTP_PASSWORD", "SG.secret"),
        ])
        .unwrap();
        assert_eq!((s.smtp.tls, s.smtp.port), (SmtpTls::StartTls, 587));
        assert!(!format!("{s:?}").contains("SG.secret"));
    }

    #[test]
    fn bad_values_name_their_variable() {
        assert_eq!(load(&[("SMTP_TLS", "maybe")]).unwrap_err().var, "SMTP_TLS");
        assert_eq!(load(&[("SMTP_PORT", "0")]).unwrap_err().var, "SMTP_PORT");
        assert_eq!(
            load(&[("EMAIL_FROM", "not an address")]).unwrap_err().var,
            "EMAIL_FROM"
        );
        assert_eq!(
            load(&[("SMTP_USERNAME", "u")]).unwrap_err().var,
            "SMTP_PASSWORD"
        );
        assert_eq!(
            load(&[
                ("SMTP_HOST", "mail.example.com"),
                ("SMTP_TLS", "none"),
                ("SMTP_USERNAME", "u"),
                ("SMTP_PASSWORD", "p"),
            ])
            .unwrap_err()
            .var,
            "SMTP_TLS"
        );
        assert_eq!(
            load(&[
                ("EMAIL_RETRY_BASE_MS", "500"),
                ("EMAIL_RETRY_CAP_MS", "100")
            ])
            .unwrap_err()
            .var,
            "EMAIL_RETRY_CAP_MS"
        );
    }

    #[test]
    fn the_retry_policy_is_configurable() {
        let s = load(&[
            ("EMAIL_MAX_ATTEMPTS", "3"),
            ("EMAIL_RETRY_BASE_MS", "100"),
            ("EMAIL_RETRY_CAP_MS", "400"),
        ])
        .unwrap();
        assert_eq!(s.retry.max_attempts, 3);
        assert_eq!(s.retry.backoff_base, Duration::from_millis(100));
        assert_eq!(s.retry.backoff_cap, Duration::from_millis(400));
    }
}
