//! Email: typed templates rendered to HTML and text parts, the SMTP client, and the
//! delivery of `email_outbox` rows (the `email.send` job on the `email` queue).

pub mod delivery;
pub mod settings;
pub mod template;
pub mod transport;
mod views;

pub use settings::{EmailSettings, SettingError, SmtpSettings, SmtpTls};
pub use template::{Rendered, TemplateKind, render};
pub use transport::{Mailer, Probe, probe};
