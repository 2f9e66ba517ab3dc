//! The request gate: one Lua script, one Redis round trip per authenticated request. It
//! checks the token denylist and user revocations, applies the rate limit (GCRA, clock
//! from Redis `TIME`), checks the monthly quota, and meters the call (minute bucket per
//! tenant and route group, and the month's quota counter).

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
    /// The month's API calls are used up.
    QuotaExceeded,
}

/// What goes into the `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the allowance is full again.
    pub reset_secs: u64,
    /// Seconds until the next request is allowed (when limited).
    pub retry_after_secs: u64,
}

/// Metering of one request: where to count it.
#[derive(Debug, Clone)]
pub struct Metering {
    /// The minute bucket hash.
    pub bucket_key: String,
    /// The sorted set of unrolled buckets.
    pub minutes_key: String,
    pub minute: i64,
    /// Fields to increment in the bucket (`<tenant>|<metric>`).
    pub fields: Vec<String>,
    /// The month's quota counter, and the limit (`None`: unlimited, or a route that does
    /// not count against the quota).
    pub quota: Option<(String, i64)>,
}

/// One gate call's inputs.
#[derive(Debug, Clone, Default)]
pub struct Gate<'a> {
    pub rate_key: &'a str,
    pub limit_per_minute: u32,
    pub deny_key: Option<&'a str>,
    pub revocation_key: Option<&'a str>,
    /// When the token was issued (unix ms) for the revocation check.
    pub token_issued_ms: i64,
    pub metering: Option<Metering>,
}

// KEYS: 1 rate, 2 deny|"", 3 revocation|"", 4 quota|"", 5 bucket|"", 6 minutes|""
// ARGV: 1 limit/min, 2 issued ms, 3 quota limit (-1 none), 4 minute, 5.. bucket fields
// Returns {verdict, remaining, reset_ms, retry_ms, quota_count}
// verdict: 0 ok, 1 denied, 2 stale, 3 limited, 4 quota exceeded.
static GATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if KEYS[2] ~= "" and redis.call('EXISTS', KEYS[2]) == 1 then
  return {1, 0, 0, 0, 0}
end
if KEYS[3] ~= "" then
  local rev = redis.call('GET', KEYS[3])
  if rev and tonumber(ARGV[2]) < tonumber(rev) then
    return {2, 0, 0, 0, 0}
  end
end
local limit = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local period = 60000
local interval = period / limit
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - period
if now < allow_at then
  return {3, 0, math.ceil(tat - now), math.ceil(allow_at - now), 0}
end
local used = 0
local quota = tonumber(ARGV[3])
if KEYS[4] ~= "" then
  used = tonumber(redis.call('GET', KEYS[4]) or "0")
  if quota >= 0 and used >= quota then
    return {4, 0, 0, 0, used}
  end
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
local remaining = math.floor((period - (new_tat - now)) / interval)
if remaining < 0 then remaining = 0 end
if KEYS[4] ~= "" then
  used = redis.call('INCR', KEYS[4])
  if used == 1 then redis.call('EXPIRE', KEYS[4], 40 * 86400) end
end
if KEYS[5] ~= "" then
  for i = 5, #ARGV do
    redis.call('HINCRBY', KEYS[5], ARGV[i], 1)
  end
  redis.call('EXPIRE', KEYS[5], 7 * 86400)
  redis.call('ZADD', KEYS[6], ARGV[4], ARGV[4])
end
return {0, remaining, math.ceil(new_tat - now), 0, used}
"#,
    )
});

/// Runs the gate: one round trip. Returns the verdict, the rate figures and the month's
/// count after this request (0 when the quota is not counted).
pub async fn gate<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    g: &Gate<'_>,
) -> redis::RedisResult<(Verdict, RateInfo, i64)> {
    let limit = g.limit_per_minute.max(1);
    let m = g.metering.as_ref();
    let mut inv = GATE.key(g.rate_key);
    inv.key(g.deny_key.unwrap_or(""))
        .key(g.revocation_key.unwrap_or(""))
        .key(
            m.and_then(|m| m.quota.as_ref())
                .map(|q| q.0.as_str())
                .unwrap_or(""),
        )
        .key(m.map(|m| m.bucket_key.as_str()).unwrap_or(""))
        .key(m.map(|m| m.minutes_key.as_str()).unwrap_or(""))
        .arg(limit)
        .arg(g.token_issued_ms)
        .arg(m.and_then(|m| m.quota.as_ref()).map(|q| q.1).unwrap_or(-1))
        .arg(m.map(|m| m.minute).unwrap_or(0));
    if let Some(m) = m {
        for f in &m.fields {
            inv.arg(f);
        }
    }
    let (code, remaining, reset_ms, retry_ms, used): (i64, i64, i64, i64, i64) =
        inv.invoke_async(conn).await?;
    let verdict = match code {
        0 => Verdict::Allowed,
        1 => Verdict::TokenDenied,
        2 => Verdict::TokenStale,
        3 => Verdict::RateLimited,
        _ => Verdict::QuotaExceeded,
    };
    Ok((
        verdict,
        RateInfo {
            limit,
            remaining: remaining.clamp(0, i64::from(limit)) as u32,
            reset_secs: (reset_ms.max(0) as u64).div_ceil(1000),
            retry_after_secs: (retry_ms.max(0) as u64).div_ceil(1000),
        },
        used,
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
