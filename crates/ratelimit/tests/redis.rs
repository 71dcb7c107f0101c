//! The shared limiter against a real `redis-server` (started by each test on a free port): the
//! Lua script decides as `Gcra::step` does, instances share budgets, and a Redis that goes away
//! and comes back is survived. Budgets are per minute and tests count requests, never time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroU32;
use std::time::Duration;

use tenantry_ratelimit::server::RedisServer;
use tenantry_ratelimit::{Gcra, Limiter, RateLimitError, redis_api_key_key, redis_key};
use uuid::Uuid;

async fn redis() -> RedisServer {
    RedisServer::start()
        .await
        .unwrap_or_else(|e| panic!("these tests need a redis-server: {e}"))
}

/// Waits (up to a deadline, not a measured time) until the limiter uses Redis again.
async fn until_shared(limiter: &Limiter) {
    tenantry_testkit::eventually(
        "the limiter going back to Redis",
        Duration::from_secs(30),
        async || {
            if limiter.is_shared() {
                Ok(())
            } else {
                Err("still counting in process".to_string())
            }
        },
    )
    .await
}

async fn ttl_ms(server: &RedisServer, key: &str) -> i64 {
    let client = redis::Client::open(server.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut connection)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_script_decides_like_the_reference_gcra() {
    let server = redis().await;
    let limiter = Limiter::with_redis(&server.url()).await.unwrap();
    assert!(limiter.is_shared());
    let tenant = Uuid::new_v4();
    let gcra = Gcra::per_minute(NonZeroU32::new(5).unwrap());
    let (reference, _) = gcra.step(None, 0);
    let first = limiter.check(tenant, 5).await;
    assert_eq!(first, reference);
    let remaining: Vec<u32> = [
        first.remaining,
        limiter.check(tenant, 5).await.remaining,
        limiter.check(tenant, 5).await.remaining,
        limiter.check(tenant, 5).await.remaining,
        limiter.check(tenant, 5).await.remaining,
    ]
    .to_vec();
    assert_eq!(remaining, [4, 3, 2, 1, 0]);
    let refused = limiter.check(tenant, 5).await;
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    // 12 s per request, less the time the test took.
    assert!(refused.retry_after > Duration::from_secs(6), "{refused:?}");
    assert!(
        refused.retry_after <= Duration::from_secs(12),
        "{refused:?}"
    );
    assert_eq!(refused.reset_seconds(), 60);
    // The key expires once the budget is full again: within the minute.
    let ttl = ttl_ms(&server, &redis_key(tenant)).await;
    assert!(ttl > 0 && ttl <= 60_000, "{ttl}");
    // Another tenant is untouched.
    assert_eq!(limiter.check(Uuid::new_v4(), 5).await.remaining, 4);
}

#[tokio::test]
async fn two_instances_share_one_budget() {
    let server = redis().await;
    let a = Limiter::with_redis(&server.url()).await.unwrap();
    let b = Limiter::with_redis(&server.url()).await.unwrap();
    let tenant = Uuid::new_v4();
    let mut admitted = 0;
    for i in 0..40 {
        let limiter = if i % 2 == 0 { &a } else { &b };
        admitted += usize::from(limiter.check(tenant, 20).await.allowed);
    }
    assert_eq!(admitted, 20);
}

#[tokio::test]
async fn a_redis_that_goes_away_is_survived_and_used_again_when_back() {
    let mut server = redis().await;
    let limiter = Limiter::with_redis(&server.url()).await.unwrap();
    let tenant = Uuid::new_v4();
    for _ in 0..10 {
        assert!(limiter.check(tenant, 10).await.allowed);
    }
    assert!(!limiter.check(tenant, 10).await.allowed);

    server.stop().await;
    // Answered without Redis, from the in-process budget (untouched so far: full).
    let admitted = futures::future::join_all((0..15).map(|_| limiter.check(tenant, 10))).await;
    assert!(!limiter.is_shared());
    assert_eq!(admitted.iter().filter(|d| d.allowed).count(), 10);

    server.restart().await.unwrap();
    until_shared(&limiter).await;
    // The restarted Redis is empty: a full shared budget again.
    let admitted = futures::future::join_all((0..15).map(|_| limiter.check(tenant, 10))).await;
    assert_eq!(admitted.iter().filter(|d| d.allowed).count(), 10);
    assert!(ttl_ms(&server, &redis_key(tenant)).await > 0);
}

#[tokio::test]
async fn a_redis_absent_at_start_does_not_stop_the_limiter() {
    let mut server = redis().await;
    server.stop().await;
    let limiter = Limiter::with_redis(&server.url()).await.unwrap();
    assert!(!limiter.is_shared());
    let tenant = Uuid::new_v4();
    let decisions = futures::future::join_all((0..4).map(|_| limiter.check(tenant, 3))).await;
    assert_eq!(decisions.iter().filter(|d| d.allowed).count(), 3);
    server.restart().await.unwrap();
    until_shared(&limiter).await;
    assert_eq!(limiter.check(tenant, 3).await.remaining, 2);
}

async fn keys(server: &RedisServer) -> Vec<String> {
    let client = redis::Client::open(server.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut connection)
        .await
        .unwrap();
    keys.sort();
    keys
}

#[tokio::test]
async fn an_api_key_budget_is_its_own_and_shared_by_instances() {
    let server = redis().await;
    let a = Limiter::with_redis(&server.url()).await.unwrap();
    let b = Limiter::with_redis(&server.url()).await.unwrap();
    let tenant = Uuid::new_v4();
    let (small, other) = (Uuid::new_v4(), Uuid::new_v4());
    let mut admitted = 0;
    for i in 0..8 {
        let limiter = if i % 2 == 0 { &a } else { &b };
        admitted += usize::from(limiter.check_api_key(tenant, small, 3).await.allowed);
    }
    assert_eq!(admitted, 3);
    // Another key of the tenant, and the tenant's own budget, are untouched.
    assert_eq!(a.check_api_key(tenant, other, 3).await.remaining, 2);
    assert_eq!(b.check(tenant, 3).await.remaining, 2);
    let ttl = ttl_ms(&server, &redis_api_key_key(tenant, small)).await;
    assert!(ttl > 0 && ttl <= 60_000, "{ttl}");
    assert_eq!(
        redis_api_key_key(tenant, small),
        format!("tenantry:{tenant}:api_key:{small}")
    );
}

#[tokio::test]
async fn forgetting_a_tenant_removes_its_keys_only_and_its_local_state() {
    let mut server = redis().await;
    let limiter = Limiter::with_redis(&server.url()).await.unwrap();
    let (gone, kept) = (Uuid::new_v4(), Uuid::new_v4());
    let api_key = Uuid::new_v4();
    for _ in 0..2 {
        limiter.check(gone, 2).await;
        limiter.check_api_key(gone, api_key, 2).await;
        limiter.check(kept, 2).await;
    }
    // Many keys of other tenants, so the scan takes several rounds.
    let client = redis::Client::open(server.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let mut fill = redis::pipe();
    for _ in 0..3000 {
        fill.cmd("SET")
            .arg(format!("tenantry:{}:api_requests", Uuid::new_v4()))
            .arg(1)
            .arg("EX")
            .arg(600)
            .ignore();
    }
    fill.query_async::<()>(&mut connection).await.unwrap();
    assert_eq!(keys(&server).await.len(), 3003);

    assert_eq!(limiter.forget_tenant(gone).await.unwrap(), 2);
    let left = keys(&server).await;
    assert_eq!(left.len(), 3001);
    assert!(left.iter().all(|k| !k.contains(&gone.to_string())));
    assert!(left.contains(&redis_key(kept)));
    // Forgotten: a full budget again; the other tenant's stays spent.
    assert_eq!(limiter.check(gone, 2).await.remaining, 1);
    assert!(!limiter.check(kept, 2).await.allowed);

    // Without a limiter (the CLI): the same, from the URL alone.
    assert_eq!(
        Limiter::forget_tenant_at(&server.url(), gone)
            .await
            .unwrap(),
        1
    );
    assert_eq!(keys(&server).await.len(), 3001);

    // Redis down: an error, the in-process state dropped all the same.
    server.stop().await;
    limiter.check(gone, 2).await;
    limiter.check(gone, 2).await;
    assert!(!limiter.check(gone, 2).await.allowed);
    assert!(matches!(
        limiter.forget_tenant(gone).await,
        Err(RateLimitError::Redis(_))
    ));
    assert!(limiter.check(gone, 2).await.allowed);
    assert!(matches!(
        Limiter::forget_tenant_at(&server.url(), gone).await,
        Err(RateLimitError::Redis(_))
    ));
    assert!(matches!(
        Limiter::forget_tenant_at("http://nowhere", gone).await,
        Err(RateLimitError::InvalidUrl(_))
    ));
}

#[tokio::test]
async fn forgetting_a_tenant_in_process_drops_its_state() {
    let limiter = Limiter::in_process();
    let tenant = Uuid::new_v4();
    let api_key = Uuid::new_v4();
    assert!(limiter.check(tenant, 1).await.allowed);
    assert!(limiter.check_api_key(tenant, api_key, 1).await.allowed);
    assert!(!limiter.check(tenant, 1).await.allowed);
    assert!(!limiter.check_api_key(tenant, api_key, 1).await.allowed);
    assert_eq!(limiter.forget_tenant(tenant).await.unwrap(), 0);
    assert!(limiter.check(tenant, 1).await.allowed);
    assert!(limiter.check_api_key(tenant, api_key, 1).await.allowed);
}

#[tokio::test]
async fn a_malformed_url_is_an_error() {
    assert!(Limiter::with_redis("http://nowhere").await.is_err());
}

#[tokio::test]
async fn a_budget_of_zero_refuses_everything() {
    let limiter = Limiter::in_process();
    let decision = limiter.check(Uuid::new_v4(), 0).await;
    assert!(!decision.allowed);
    assert_eq!(decision.retry_after_seconds(), 60);
}
