//! Rate limits in Redis with GCRA (one Lua script, atomic, clock from Redis `TIME`), and
//! the request gate that also checks the token denylist and user revocations in the
//! same round trip.

use redis::Script;
use std::sync::LazyLock;

/// The outcome of one gate call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// The token's `jti` is on the denylist (logged out).
    TokenDenied,
    /// The user was changed (role, deactivation, password) after the token was issued.
    TokenStale,
    RateLimited,
}

/// What goes into the `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
    /// Seconds until the next request is allowed (when limited).
    pub retry_after_secs: u64,
}

// KEYS[1] rate key, KEYS[2] denylist key ("" to skip), KEYS[3] user revocation key ("" to skip)
// ARGV[1] limit per minute, ARGV[2] token issue time (unix ms; 0 to skip)
// Returns {verdict, remaining, reset_ms, retry_after_ms}; verdict 0 ok, 1 denied,
// 2 stale, 3 limited.
static GATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local limit = tonumber(ARGV[1])
if KEYS[2] ~= "" and redis.call('EXISTS', KEYS[2]) == 1 then
  return {1, 0, 0, 0}
end
if KEYS[3] ~= "" then
  local rev = redis.call('GET', KEYS[3])
  if rev and tonumber(ARGV[2]) < tonumber(rev) then
    return {2, 0, 0, 0}
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local period = 60000
local interval = period / limit
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - period
if now < allow_at then
  local remaining = 0
  return {3, remaining, math.ceil(tat - now), math.ceil(allow_at - now)}
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
local remaining = math.floor((period - (new_tat - now)) / interval)
if remaining < 0 then remaining = 0 end
return {0, remaining, math.ceil(new_tat - now), 0}
"#,
    )
});

/// Runs the gate: one round trip.
pub async fn gate<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    rate_key: &str,
    deny_key: Option<&str>,
    revocation_key: Option<&str>,
    token_issued_ms: i64,
    limit_per_minute: u32,
) -> redis::RedisResult<(Verdict, RateInfo)> {
    let limit = limit_per_minute.max(1);
    let (code, remaining, reset_ms, retry_ms): (i64, i64, i64, i64) = GATE
        .key(rate_key)
        .key(deny_key.unwrap_or(""))
        .key(revocation_key.unwrap_or(""))
        .arg(limit)
        .arg(token_issued_ms)
        .invoke_async(conn)
        .await?;
    let verdict = match code {
        0 => Verdict::Allowed,
        1 => Verdict::TokenDenied,
        2 => Verdict::TokenStale,
        _ => Verdict::RateLimited,
    };
    Ok((
        verdict,
        RateInfo {
            limit,
            remaining: remaining.clamp(0, i64::from(limit)) as u32,
            reset_secs: (reset_ms.max(0) as u64).div_ceil(1000),
            retry_after_secs: (retry_ms.max(0) as u64).div_ceil(1000),
        },
    ))
}

tokio::task_local! {
    static RATE: std::sync::Mutex<Option<RateInfo>>;
}

/// Runs `fut` with a slot for the request's rate-limit figures.
pub async fn scope<F: std::future::Future>(fut: F) -> F::Output {
    RATE.scope(std::sync::Mutex::new(None), fut).await
}

/// Records the figures for the response headers.
pub fn record(info: RateInfo) {
    let _ = RATE.try_with(|slot| {
        if let Ok(mut s) = slot.lock() {
            *s = Some(info);
        }
    });
}

/// The figures recorded during this request, if any.
pub fn recorded() -> Option<RateInfo> {
    RATE.try_with(|slot| slot.lock().ok().and_then(|s| *s))
        .ok()
        .flatten()
}
