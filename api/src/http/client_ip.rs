//! The client's address, for per-IP rate limits and the audit log.

use poem::Request;

/// The peer's IP address. Behind a reverse proxy, operators terminate at the proxy and
/// this is the proxy's address unless `X-Forwarded-For` is trusted (not done here: a
/// client could forge it to dodge per-IP limits).
pub fn of(req: &Request) -> String {
    req.remote_addr()
        .as_socket_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}
