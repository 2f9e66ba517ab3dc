//! The SMTP side: building the MIME message, sending it with lettre, and probing the
//! server for the status endpoint.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::settings::{SmtpSettings, SmtpTls};
use super::template::Rendered;
use crate::JobError;

/// Builds the multipart/alternative message (text first, then HTML, as RFC 2046 orders
/// them) with the outbox row's own Message-ID, so every attempt sends the same id.
pub fn build_message(
    from: &Mailbox,
    to: &str,
    message_id: &str,
    email: &Rendered,
) -> Result<Message, JobError> {
    let to: Mailbox = to
        .parse()
        .map_err(|e| JobError::Abort(format!("invalid recipient address: {e}")))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(email.subject.clone())
        .message_id(Some(message_id.to_owned()))
        .multipart(MultiPart::alternative_plain_html(
            email.text.clone(),
            email.html.clone(),
        ))
        .map_err(|e| JobError::Abort(format!("the message could not be built: {e}")))
}

/// One worker's SMTP client: a small pool of connections to the configured server,
/// created on first use (lettre's pool needs a running Tokio runtime).
#[derive(Clone)]
pub struct Mailer {
    settings: SmtpSettings,
    pool_size: u32,
    transport: Arc<OnceLock<AsyncSmtpTransport<Tokio1Executor>>>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("server", &self.settings.address())
            .field("tls", &self.settings.tls)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Checks the settings (the TLS configuration is built now); nothing connects until
    /// the first send.
    pub fn new(settings: &SmtpSettings, pool_size: u32) -> anyhow::Result<Self> {
        tls(settings)?;
        Ok(Self {
            settings: settings.clone(),
            pool_size,
            transport: Arc::new(OnceLock::new()),
        })
    }

    fn transport(&self) -> Result<&AsyncSmtpTransport<Tokio1Executor>, JobError> {
        if let Some(t) = self.transport.get() {
            return Ok(t);
        }
        let built = transport(&self.settings, self.pool_size)
            .map_err(|e| JobError::Retry(format!("the SMTP client could not be built: {e}")))?;
        Ok(self.transport.get_or_init(|| built))
    }

    /// Sends `message`, bounded by the SMTP timeout as a whole. Returns the server's
    /// final response (`250 ...`); any failure is `JobError::Retry` with a description.
    pub async fn send(&self, message: Message) -> Result<String, JobError> {
        let transport = self.transport()?;
        let timeout = self.settings.timeout;
        match tokio::time::timeout(timeout, transport.send(message)).await {
            Ok(Ok(response)) => {
                let lines: Vec<&str> = response.message().collect();
                Ok(format!("{} {}", response.code(), lines.join(" "))
                    .trim()
                    .to_owned())
            }
            Ok(Err(e)) => Err(JobError::Retry(describe(&e))),
            Err(_) => Err(JobError::Retry(format!(
                "SMTP send timed out after {} s",
                timeout.as_secs()
            ))),
        }
    }
}

fn tls(settings: &SmtpSettings) -> Result<Tls, lettre::transport::smtp::Error> {
    Ok(match settings.tls {
        SmtpTls::None => Tls::None,
        SmtpTls::StartTls => Tls::Required(TlsParameters::new(settings.host.clone())?),
        SmtpTls::Tls => Tls::Wrapper(TlsParameters::new(settings.host.clone())?),
    })
}

fn transport(
    settings: &SmtpSettings,
    pool_size: u32,
) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
        .port(settings.port)
        .tls(tls(settings)?)
        .timeout(Some(settings.timeout))
        .pool_config(
            PoolConfig::new()
                .max_size(pool_size.max(1))
                .idle_timeout(Duration::from_secs(30)),
        );
    if let (Some(user), Some(password)) = (&settings.username, &settings.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    Ok(builder.build())
}

/// A failure as an operator reads it: the server's code and text for a refusal,
/// otherwise what broke (connection, TLS, timeout), with the underlying cause.
fn describe(e: &lettre::transport::smtp::Error) -> String {
    use std::error::Error as _;
    let mut text = if let Some(code) = e.status() {
        let kind = if e.is_permanent() {
            "permanent"
        } else {
            "transient"
        };
        format!("SMTP server refused the message ({kind} {code})")
    } else if e.is_timeout() {
        "SMTP server timed out".to_owned()
    } else if e.is_tls() {
        "TLS with the SMTP server failed".to_owned()
    } else {
        "SMTP server unreachable".to_owned()
    };
    text.push_str(": ");
    text.push_str(&e.to_string());
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// What a probe of the SMTP server found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Connected, said EHLO (and STARTTLS/AUTH when configured) and got an answer to NOOP.
    pub reachable: bool,
    pub latency_ms: u64,
    /// Why not, for the log.
    pub error: Option<String>,
}

/// Opens a fresh connection to the server, bounded by `timeout`.
pub async fn probe(settings: &SmtpSettings, timeout: Duration) -> Probe {
    let started = Instant::now();
    let mut settings = settings.clone();
    settings.timeout = timeout;
    let outcome = match transport(&settings, 1) {
        Err(e) => Err(e.to_string()),
        Ok(t) => match tokio::time::timeout(timeout, t.test_connection()).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err("the server did not answer NOOP".to_owned()),
            Ok(Err(e)) => Err(describe(&e)),
            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
        },
    };
    Probe {
        reachable: outcome.is_ok(),
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        error: outcome.err(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_multipart_alternative_with_the_given_message_id() {
        let from: Mailbox = "Catalytic <no-reply@catalytic.test>".parse().unwrap();
        let rendered = Rendered {
            subject: "Hello".into(),
            html: "<p>Hi</p>".into(),
            text: "Hi".into(),
        };
        let m = build_message(&from, "ada@example.com", "<abc@catalytic.test>", &rendered).unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(raw.contains("Message-ID: <abc@catalytic.test>"), "{raw}");
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("text/plain"));
        assert!(raw.contains("text/html"));
        assert!(raw.contains("To: ada@example.com"));
    }

    fn settings(tls: SmtpTls, port: u16) -> SmtpSettings {
        SmtpSettings {
            host: "127.0.0.1".into(),
            port,
            tls,
            username: None,
            password: None,
            timeout: Duration::from_secs(2),
        }
    }

    #[test]
    fn clients_build_for_every_tls_mode() {
        for tls in [SmtpTls::None, SmtpTls::StartTls, SmtpTls::Tls] {
            let mut s = settings(tls, tls.default_port());
            s.host = "smtp.example.com".into();
            Mailer::new(&s, 2).unwrap();
        }
    }

    #[tokio::test]
    async fn a_probe_of_a_closed_port_is_unreachable_at_once() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let p = probe(&settings(SmtpTls::None, port), Duration::from_secs(2)).await;
        assert!(!p.reachable);
        assert!(p.latency_ms < 2000);
        assert!(p.error.unwrap().contains("unreachable"));
    }

    #[test]
    fn a_recipient_with_a_line_break_is_refused() {
        let from: Mailbox = "a@b.test".parse().unwrap();
        let rendered = Rendered {
            subject: "s".into(),
            html: "h".into(),
            text: "t".into(),
        };
        assert!(build_message(&from, "a@b.test\r\nBcc: c@d.test", "<x@y>", &rendered).is_err());
    }
}
