//! Prints the cost of verifying one access token: signature and claims alone, and with
//! the Redis denylist check a request makes. Run by `scripts/bench-api`.

use std::time::Instant;

use catalytic_api::auth::jwt::{JwtKeys, Subject, TokenType};
use catalytic_db::ids::{TenantId, UserId};
use catalytic_db::users::Role;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let private = std::env::var("JWT_PRIVATE_KEY_PATH")?;
    let public = std::env::var("JWT_PUBLIC_KEY_PATH")?;
    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let keys = JwtKeys::load(private.as_ref(), &[public], "catalytic", "catalytic-api")?;
    let (token, _) = keys.issue(
        TokenType::Access,
        &Subject {
            user: UserId::generate(),
            tenant: TenantId::generate(),
            email: "bench@example.com",
            role: Role::Member,
        },
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
    )?;
    let n = 20_000;
    for _ in 0..1000 {
        keys.verify(&token, TokenType::Access)?;
    }
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(keys.verify(std::hint::black_box(&token), TokenType::Access)?);
    }
    let verify_ns = t.elapsed().as_nanos() as f64 / f64::from(n);

    let client = redis::Client::open(redis_url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let t = Instant::now();
    for _ in 0..n {
        let claims = keys.verify(&token, TokenType::Access)?;
        let denied: bool = redis::cmd("EXISTS")
            .arg(format!("bench:auth:deny:{}", claims.jti))
            .query_async(&mut conn)
            .await?;
        std::hint::black_box(denied);
    }
    let with_redis_ns = t.elapsed().as_nanos() as f64 / f64::from(n);

    // What a request pays once its token is in the replica's verified-token cache.
    let cache = catalytic_api::auth::token_cache::TokenCache::default();
    cache.verify_access(&keys, &token)?;
    let t = Instant::now();
    for _ in 0..n {
        let claims = cache.verify_access(&keys, std::hint::black_box(&token))?;
        let denied: bool = redis::cmd("EXISTS")
            .arg(format!("bench:auth:deny:{}", claims.jti))
            .query_async(&mut conn)
            .await?;
        std::hint::black_box(denied);
    }
    let cached_ns = t.elapsed().as_nanos() as f64 / f64::from(n);
    println!(
        "token verify (RS256 signature + claims): {:>9.1} µs/op",
        verify_ns / 1000.0
    );
    println!(
        "token verify + Redis denylist check:     {:>9.1} µs/op",
        with_redis_ns / 1000.0
    );
    println!(
        "ratio (with denylist / verify alone):    {:>9.2}",
        with_redis_ns / verify_ns
    );
    println!(
        "cached token + Redis denylist check:     {:>9.1} µs/op",
        cached_ns / 1000.0
    );
    println!(
        "ratio (uncached / cached, both with the denylist check): {:.2}",
        with_redis_ns / cached_ns
    );
    Ok(())
}
