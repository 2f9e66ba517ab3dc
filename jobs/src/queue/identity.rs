//! Worker identity: unique per process, so restarts never collide.

use rand::Rng;

/// A consumer name unique to this process: `<host>:<pid>:<random>`.
///
/// A process restarted by systemd gets a new pid and a new random suffix, so it never
/// inherits (or is refused because of) a previous instance's name.
pub fn worker_identity() -> String {
    let host = hostname();
    let suffix: u32 = rand::rng().random();
    format!("{host}:{}:{suffix:08x}", std::process::id())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_identities_of_one_process_differ() {
        let a = worker_identity();
        let b = worker_identity();
        assert_ne!(a, b);
        assert!(a.contains(&format!(":{}:", std::process::id())));
    }
}
