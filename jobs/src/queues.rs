//! The queues and the retry policy each one runs under.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Every queue of the system. Workers choose which ones they serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueName {
    /// Lattice computations (CPU-bound).
    Lattice,
    /// Stripe webhook reconciliation.
    Webhooks,
    /// Email delivery over SMTP.
    Email,
    /// Usage rollups (cron).
    Usage,
}

/// How often a job is tried and how long it waits between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles for each further one.
    pub backoff_base: Duration,
    /// Upper bound of any delay.
    pub backoff_cap: Duration,
    /// Whether delays are randomised ("full jitter" over the upper half of the delay).
    pub jitter: bool,
}

impl RetryPolicy {
    /// The delay before attempt `next_attempt` (2 for the first retry), without jitter.
    pub fn base_delay(&self, next_attempt: u32) -> Duration {
        let exp = next_attempt.saturating_sub(2).min(30);
        let delay = self.backoff_base.saturating_mul(1u32 << exp);
        delay.min(self.backoff_cap)
    }

    /// The delay before attempt `next_attempt`, with jitter drawn from `[d/2, d]`.
    pub fn delay(&self, next_attempt: u32) -> Duration {
        let d = self.base_delay(next_attempt);
        if !self.jitter || d.is_zero() {
            return d;
        }
        let half = d / 2;
        let extra = rand::random_range(0..=half.as_millis() as u64);
        half + Duration::from_millis(extra)
    }
}

impl QueueName {
    pub const ALL: [QueueName; 4] = [
        QueueName::Lattice,
        QueueName::Webhooks,
        QueueName::Email,
        QueueName::Usage,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            QueueName::Lattice => "lattice",
            QueueName::Webhooks => "webhooks",
            QueueName::Email => "email",
            QueueName::Usage => "usage",
        }
    }

    /// Longest a single attempt may run: the worker drops the attempt at this point and it
    /// counts as failed (and is retried per the policy).
    pub const fn job_timeout(self) -> Duration {
        match self {
            QueueName::Lattice => Duration::from_secs(3600),
            QueueName::Webhooks | QueueName::Email | QueueName::Usage => Duration::from_secs(300),
        }
    }

    /// The default retry policy of each queue. Webhook reconciliation and email talk to
    /// third parties that may be down for a while, so they retry longer.
    pub const fn policy(self) -> RetryPolicy {
        match self {
            QueueName::Lattice => RetryPolicy {
                max_attempts: 3,
                backoff_base: Duration::from_secs(2),
                backoff_cap: Duration::from_secs(60),
                jitter: true,
            },
            QueueName::Webhooks => RetryPolicy {
                max_attempts: 8,
                backoff_base: Duration::from_secs(2),
                backoff_cap: Duration::from_secs(300),
                jitter: true,
            },
            QueueName::Email => RetryPolicy {
                max_attempts: 6,
                backoff_base: Duration::from_secs(2),
                backoff_cap: Duration::from_secs(300),
                jitter: true,
            },
            QueueName::Usage => RetryPolicy {
                max_attempts: 3,
                backoff_base: Duration::from_secs(1),
                backoff_cap: Duration::from_secs(10),
                jitter: false,
            },
        }
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for QueueName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        QueueName::ALL
            .into_iter()
            .find(|q| q.as_str() == s.trim())
            .ok_or_else(|| {
                format!("unknown queue {s:?} (expected lattice, webhooks, email or usage)")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_and_stops_at_the_cap() {
        let p = RetryPolicy {
            max_attempts: 10,
            backoff_base: Duration::from_secs(2),
            backoff_cap: Duration::from_secs(10),
            jitter: false,
        };
        assert_eq!(p.delay(2), Duration::from_secs(2));
        assert_eq!(p.delay(3), Duration::from_secs(4));
        assert_eq!(p.delay(4), Duration::from_secs(8));
        assert_eq!(p.delay(5), Duration::from_secs(10));
        assert_eq!(p.delay(40), Duration::from_secs(10));
    }

    #[test]
    fn jittered_delay_stays_within_half_and_full() {
        let p = QueueName::Email.policy();
        for attempt in 2..8 {
            let full = p.base_delay(attempt);
            let d = p.delay(attempt);
            assert!(
                d >= full / 2 && d <= full,
                "{d:?} outside [{:?}, {full:?}]",
                full / 2
            );
        }
    }

    #[test]
    fn queue_names_parse_back() {
        for q in QueueName::ALL {
            assert_eq!(q.as_str().parse::<QueueName>(), Ok(q));
        }
        assert!("nope".parse::<QueueName>().is_err());
    }
}
