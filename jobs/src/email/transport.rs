//! The SMTP side: building the MIME message, sending it with lettre, and probing the
//! server for the status endpoint.

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

/// One worker's SMTP client: a small pool of connections to the configured server.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    timeout: Duration,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Builds the client; nothing connects until the first send.
    pub fn new(settings: &SmtpSettings, pool_size: u32) -> anyhow::Result<Self> {
        Ok(Self {
            transport: transport(settings, pool_size)?,
            timeout: settings.timeout,
        })
    }

    /// Sends `message`, bounded by the SMTP timeout as a whole. Returns the server's
    /// final response (`250 ...`); any failure is `JobError::Retry` with a description.
    pub async fn send(&self, message: Message) -> Result<String, JobError> {
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(Ok(response)) => {
                let lines: Vec<&str> = response.message().collect();
                Ok(format!("{} {}", response.code(), lines.join(" "))
                    .trim()
                    .to_owned())
            }
            Ok(Err(e)) => Err(JobError::Retry(describe(&e))),
            Err(_) => Err(JobError::Retry(format!(
                "SMTP send timed out after {} s",
                self.timeout.as_secs()
            ))),
        }
    }
}

fn transport(
    settings: &SmtpSettings,
    pool_size: u32,
) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let tls = match settings.tls {
        SmtpTls::None => Tls::None,
        SmtpTls::StartTls => Tls::Required(TlsParameters::new(settings.host.clone())?),
        SmtpTls::Tls => Tls::Wrapper(TlsParameters::new(settings.host.clone())?),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
        .port(settings.port)
        .tls(tls)
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
