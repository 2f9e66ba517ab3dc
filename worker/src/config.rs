//! Configuration: flags, then environment variables, then defaults, resolved once at start
//! into typed structs. An error names the flag or variable at fault.

use std::{fmt, net::SocketAddr, str::FromStr, time::Duration};

use catalytic_jobs::{QueueName, WorkerConfig};

use crate::cli::RunArgs;

/// A missing or invalid setting.
#[derive(Debug)]
pub enum ConfigError {
    /// A required variable is not set.
    Missing(&'static str),
    /// A value does not parse.
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(name) => write!(f, "{name} is not set"),
            Self::Invalid {
                name,
                value,
                reason,
            } => write!(f, "{name}={value:?} is invalid: {reason}"),
        }
    }
}

impl std::error::Error for ConfigError {}

fn invalid(name: &str, value: &str, reason: impl fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_owned(),
        value: value.to_owned(),
        reason: reason.to_string(),
    }
}

/// Reads `.env` from the working directory when present; variables already set win.
pub fn load_dotenv() -> Result<(), String> {
    match dotenvy::from_path(".env") {
        Ok(()) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(e) => Err(format!("cannot read .env: {e}")),
    }
}

fn env(name: &'static str) -> Result<Option<String>, ConfigError> {
    match std::env::var(name) {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => {
            Err(invalid(name, &v.to_string_lossy(), "not valid UTF-8"))
        }
    }
}

fn required(name: &'static str) -> Result<String, ConfigError> {
    env(name)?.ok_or(ConfigError::Missing(name))
}

/// A flag's value, or its variable's, with the name to blame when it does not parse.
fn flag_or_env(
    flag: Option<&String>,
    flag_name: &'static str,
    var: &'static str,
) -> Result<Option<(String, &'static str)>, ConfigError> {
    match flag {
        Some(v) => Ok(Some((v.clone(), flag_name))),
        None => Ok(env(var)?.map(|v| (v, var))),
    }
}

/// Settings every command needs.
#[derive(Debug, Clone)]
pub struct Common {
    /// `REDIS_URL`.
    pub redis_url: String,
    /// `LOG_LEVEL`: a level or `tracing` filter directives. Default `info`.
    pub log_level: String,
    /// `REDIS_KEY_PREFIX`: prefix of every Redis key, the API's too. Default empty.
    pub queue_prefix: String,
}

impl Common {
    pub fn from_env() -> Result<Self, ConfigError> {
        let redis_url = required("REDIS_URL")?;
        if let Err(e) = redis::Client::open(redis_url.as_str()) {
            return Err(invalid("REDIS_URL", &redis_url, e));
        }
        let log_level = env("LOG_LEVEL")?.unwrap_or_else(|| "info".to_owned());
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log_level) {
            return Err(invalid("LOG_LEVEL", &log_level, e));
        }
        let queue_prefix = env("REDIS_KEY_PREFIX")?.unwrap_or_default();
        Ok(Self {
            redis_url,
            log_level,
            queue_prefix,
        })
    }
}

/// Settings of `run`.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub common: Common,
    /// What the handlers need: `DATABASE_URL`, `DATABASE_POOL_SIZE` (default 8), and the
    /// Redis settings above.
    pub worker: WorkerConfig,
    /// `--queues` / `WORKER_QUEUES`. Default: all.
    pub queues: Vec<QueueName>,
    /// `--concurrency` / `WORKER_CONCURRENCY`: jobs at once per queue. Default 4.
    pub concurrency: usize,
    /// `--metrics-addr` / `WORKER_METRICS_ADDR`. Default `127.0.0.1:0`.
    pub metrics_addr: SocketAddr,
    /// `--shutdown-timeout` / `WORKER_SHUTDOWN_TIMEOUT`. Default 30 s.
    pub shutdown_timeout: Duration,
    /// `WORKER_CLAIM_IDLE`: a job without heartbeat this long is taken from its (dead)
    /// worker. Default 10 s.
    pub claim_idle: Duration,
}

impl RunSettings {
    pub fn resolve(args: &RunArgs) -> Result<Self, ConfigError> {
        let common = Common::from_env()?;
        let database_url = required("DATABASE_URL")?;
        if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
            return Err(invalid(
                "DATABASE_URL",
                &redact(&database_url),
                "expected a postgres:// URL",
            ));
        }
        let database_pool_size = match env("DATABASE_POOL_SIZE")? {
            None => 8,
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(invalid(
                        "DATABASE_POOL_SIZE",
                        &v,
                        "expected a positive integer",
                    ));
                }
            },
        };
        let worker = WorkerConfig {
            database_url,
            database_pool_size,
            redis_url: common.redis_url.clone(),
            redis_key_prefix: common.queue_prefix.clone(),
            email: catalytic_jobs::email::EmailSettings::from_lookup(|k| std::env::var(k).ok())
                .map_err(|e| match e.value {
                    Some(value) => invalid(e.var, &value, e.reason),
                    None => ConfigError::Missing(e.var),
                })?,
            stripe: catalytic_jobs::billing::StripeSettings::from_lookup(|k| std::env::var(k).ok()),
            billing_grace: match env("BILLING_GRACE_SECS")? {
                None => Duration::from_secs(7 * 24 * 3600),
                Some(v) => Duration::from_secs(v.trim().parse::<u64>().map_err(|_| {
                    invalid("BILLING_GRACE_SECS", &v, "expected a number of seconds")
                })?),
            },
        };

        let queues = match flag_or_env(args.queues.as_ref(), "--queues", "WORKER_QUEUES")? {
            None => QueueName::ALL.to_vec(),
            Some((list, name)) => parse_queues(&list).map_err(|e| invalid(name, &list, e))?,
        };
        let concurrency = match flag_or_env(
            args.concurrency.as_ref(),
            "--concurrency",
            "WORKER_CONCURRENCY",
        )? {
            None => 4,
            Some((v, name)) => match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => return Err(invalid(name, &v, "expected a positive integer")),
            },
        };
        let metrics_addr = match flag_or_env(
            args.metrics_addr.as_ref(),
            "--metrics-addr",
            "WORKER_METRICS_ADDR",
        )? {
            None => SocketAddr::from(([127, 0, 0, 1], 0)),
            Some((v, name)) => SocketAddr::from_str(v.trim())
                .map_err(|e| invalid(name, &v, format!("{e} (expected host:port)")))?,
        };
        let shutdown_timeout = match flag_or_env(
            args.shutdown_timeout.as_ref(),
            "--shutdown-timeout",
            "WORKER_SHUTDOWN_TIMEOUT",
        )? {
            None => Duration::from_secs(30),
            Some((v, name)) => parse_duration(&v).map_err(|e| invalid(name, &v, e))?,
        };
        let claim_idle = match env("WORKER_CLAIM_IDLE")? {
            None => Duration::from_secs(10),
            Some(v) => match parse_duration(&v) {
                Ok(d) if d >= Duration::from_millis(100) => d,
                Ok(_) => return Err(invalid("WORKER_CLAIM_IDLE", &v, "must be at least 100ms")),
                Err(e) => return Err(invalid("WORKER_CLAIM_IDLE", &v, e)),
            },
        };
        Ok(Self {
            common,
            worker,
            queues,
            concurrency,
            metrics_addr,
            shutdown_timeout,
            claim_idle,
        })
    }
}

impl RunSettings {
    /// The retry policy of `queue`: the email queue's comes from `EMAIL_MAX_ATTEMPTS`,
    /// `EMAIL_RETRY_BASE_MS` and `EMAIL_RETRY_CAP_MS`.
    pub fn policy(&self, queue: QueueName) -> catalytic_jobs::RetryPolicy {
        match queue {
            QueueName::Email => self.worker.email.retry,
            other => other.policy(),
        }
    }
}

/// `lattice,email` (or `lattice:email`, the form a systemd instance name can carry) →
/// queues, without duplicates, in the given order.
pub fn parse_queues(list: &str) -> Result<Vec<QueueName>, String> {
    let mut queues = Vec::new();
    for part in list
        .split([',', ':'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let q = part.parse::<QueueName>()?;
        if !queues.contains(&q) {
            queues.push(q);
        }
    }
    if queues.is_empty() {
        return Err("no queue given".to_owned());
    }
    Ok(queues)
}

/// `30`, `30s`, `500ms`, `2m`, `1h` → a duration (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| "expected a duration such as 30s, 500ms or 2m".to_owned())?;
    match unit.trim() {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        other => Err(format!("unknown unit {other:?} (use ms, s, m or h)")),
    }
}

/// A URL without its password, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!("{}:***{}", &url[..scheme + 3 + colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_usual_units() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3d").is_err());
    }

    #[test]
    fn queue_lists_parse_and_reject_unknown_names() {
        assert_eq!(
            parse_queues("email, lattice,email"),
            Ok(vec![QueueName::Email, QueueName::Lattice])
        );
        assert!(parse_queues("email,mail").is_err());
        assert!(parse_queues(" , ").is_err());
        assert_eq!(
            parse_queues("webhooks:email:usage"),
            Ok(vec![
                QueueName::Webhooks,
                QueueName::Email,
                QueueName::Usage
            ]),
            "systemd instance names separate with colons"
        );
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db".to_owned()
        );
        assert_eq!(redact("nopass"), "nopass");
    }
}
