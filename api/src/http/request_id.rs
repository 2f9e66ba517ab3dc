//! Request ids: taken from `X-Request-Id` when sane, generated otherwise, echoed back,
//! put in every log line of the request and carried into any job it enqueues.

tokio::task_local! {
    static REQUEST_ID: String;
}

pub const HEADER: &str = "x-request-id";

/// The id of the request being served ("-" outside a request).
pub fn current() -> String {
    REQUEST_ID
        .try_with(|id| id.clone())
        .unwrap_or_else(|_| "-".to_owned())
}

/// Runs `fut` with `id` as the current request id.
pub async fn scope<F: std::future::Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// Accepts a client's id when it is 1..=128 visible ASCII characters; else makes one.
pub fn from_header(value: Option<&str>) -> String {
    match value {
        Some(v) if !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()) => {
            v.to_owned()
        }
        _ => uuid::Uuid::now_v7().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_client_id_is_kept_and_a_bad_one_replaced() {
        assert_eq!(from_header(Some("abc-123")), "abc-123");
        assert_ne!(from_header(Some("has space")), "has space");
        assert_ne!(from_header(Some(&"x".repeat(200))), "x".repeat(200));
        assert_eq!(from_header(None).len(), 36);
    }
}
