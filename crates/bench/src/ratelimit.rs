//! Benchmark (e): what a rate-limit check costs a request. `Limiter::check` in process
//! (`governor`, keyed by tenant) one at a time on one task, and from two tasks at once on
//! separate tenants (no lock is shared between tenants, so the throughput should scale); then
//! against a throwaway `redis-server` on loopback (the Lua script, one round trip), next to a
//! bare `PING` on a connection of its own for scale. Without `redis-server` the Redis figures are
//! skipped, saying so. Needs no PostgreSQL.

use std::time::{Duration, Instant};

use tenantry_ratelimit::Limiter;
use tenantry_ratelimit::server::{RedisServer, ServerError};
use uuid::Uuid;

use crate::report::Row;
use crate::setup::Sizes;
use crate::stats::{Summary, fmt};

/// Tenants the checks are spread over.
const TENANTS: usize = 1_000;
/// The budget of each (the enterprise plan's): every check is admitted.
const PER_MINUTE: i64 = 60_000;
/// In-process checks are timed in batches of this many (one check is shorter than the clock's
/// own resolution is reliable for).
const BATCH: usize = 1_000;
const LOCAL_TARGET: Duration = Duration::from_micros(5);
const REDIS_TARGET: Duration = Duration::from_millis(1);

pub async fn run(sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    let local_ops = sizes.limiter_ops * 50;
    println!();
    println!(
        "[e] Rate-limit checks: {local_ops} in process over {TENANTS} tenants ({PER_MINUTE}/min \
         each), {} against Redis",
        sizes.limiter_ops
    );
    let tenants: Vec<Uuid> = (0..TENANTS).map(|_| Uuid::new_v4()).collect();
    let mut rows = in_process(&tenants, local_ops).await?;
    rows.extend(redis(&tenants, sizes.limiter_ops).await?);
    Ok(rows)
}

async fn in_process(tenants: &[Uuid], ops: usize) -> anyhow::Result<Vec<Row>> {
    let limiter = Limiter::in_process();
    // Warm up: every tenant's state exists, as in a running server.
    checks(&limiter, tenants, TENANTS * 10).await;
    let mut batches = Vec::with_capacity(ops / BATCH);
    for _ in 0..(ops / BATCH).max(1) {
        let started = Instant::now();
        checks(&limiter, tenants, BATCH).await;
        batches.push(started.elapsed() / BATCH as u32);
    }
    let one = Summary::of(&batches)?;
    println!(
        "    in process, one task:  mean {} per check; per batch of {BATCH}: median {}, p90 {}, \
         max {} per check",
        nanos(one.mean),
        nanos(one.p50),
        nanos(one.p90),
        nanos(one.max)
    );

    // Throughput on the two worker threads: one task; two tasks on one limiter, each on its
    // own half of the tenants; and, as the control, two tasks on two limiters sharing nothing.
    // Best of 3 interleaved rounds each, so that other load on the machine matters less.
    let (left, right) = tenants.split_at(TENANTS / 2);
    let (mut single, mut shared, mut separate) = (0f64, 0f64, 0f64);
    for _ in 0..3 {
        single = single.max(throughput(vec![(limiter.clone(), tenants.to_vec())], ops).await?);
        shared = shared.max(
            throughput(
                vec![
                    (limiter.clone(), left.to_vec()),
                    (limiter.clone(), right.to_vec()),
                ],
                ops,
            )
            .await?,
        );
        let other = Limiter::in_process();
        checks(&other, right, TENANTS * 10).await;
        separate = separate.max(
            throughput(
                vec![(limiter.clone(), left.to_vec()), (other, right.to_vec())],
                ops,
            )
            .await?,
        );
    }
    println!(
        "    in process, throughput: {:.2} M checks/s on one task; on two: {:.2} M/s with one \
         limiter, {:.2} M/s with two sharing nothing ({:.2}x)",
        single / 1e6,
        shared / 1e6,
        separate / 1e6,
        shared / separate
    );
    Ok(vec![
        Row::judged(
            "(e) rate-limit check in process, per check",
            format!("mean {}", nanos(one.mean)),
            &format!("< {}", fmt(LOCAL_TARGET)),
            one.mean < LOCAL_TARGET,
        ),
        Row::info(
            "(e) checks/s: 1 task / 2 tasks / 2 tasks, 2 limiters",
            format!(
                "{:.2} M / {:.2} M / {:.2} M",
                single / 1e6,
                shared / 1e6,
                separate / 1e6
            ),
        ),
        Row::info(
            "(e) 2 tasks on one limiter / on two sharing nothing",
            format!("{:.2}x", shared / separate),
        ),
    ])
}

/// Checks per second of one task per `(limiter, tenants)`, each making `ops` checks.
async fn throughput(work: Vec<(Limiter, Vec<Uuid>)>, ops: usize) -> anyhow::Result<f64> {
    let tasks = work.len();
    let started = Instant::now();
    let handles: Vec<_> = work
        .into_iter()
        .map(|(limiter, tenants)| {
            tokio::spawn(async move { checks(&limiter, &tenants, ops).await })
        })
        .collect();
    for handle in handles {
        handle.await?;
    }
    Ok((tasks * ops) as f64 / started.elapsed().as_secs_f64().max(1e-9))
}

async fn checks(limiter: &Limiter, tenants: &[Uuid], n: usize) {
    for i in 0..n {
        let decision = limiter.check(tenants[i % tenants.len()], PER_MINUTE).await;
        std::hint::black_box(decision);
    }
}

async fn redis(tenants: &[Uuid], ops: usize) -> anyhow::Result<Vec<Row>> {
    let server = match RedisServer::start().await {
        Ok(server) => server,
        Err(ServerError::NotInstalled) => {
            println!(
                "    against Redis: SKIPPED, redis-server is not installed (Debian: `apt-get \
                 install redis-server`)"
            );
            return Ok(vec![Row::info(
                "(e) rate-limit check against Redis",
                "skipped: no redis-server".to_string(),
            )]);
        }
        Err(e) => return Err(e.into()),
    };
    let limiter = Limiter::with_redis(&server.url()).await?;
    anyhow::ensure!(limiter.is_shared(), "the benchmark's Redis does not answer");
    let client = redis::Client::open(server.url())?;
    let mut connection = client.get_multiplexed_async_connection().await?;

    for i in 0..ops.min(1_000) {
        limiter.check(tenants[i % tenants.len()], PER_MINUTE).await;
        redis::cmd("PING")
            .query_async::<()>(&mut connection)
            .await?;
    }
    let mut script = Vec::with_capacity(ops);
    let mut ping = Vec::with_capacity(ops);
    for i in 0..ops {
        let started = Instant::now();
        let decision = limiter.check(tenants[i % tenants.len()], PER_MINUTE).await;
        script.push(started.elapsed());
        std::hint::black_box(decision);
        let started = Instant::now();
        redis::cmd("PING")
            .query_async::<()>(&mut connection)
            .await?;
        ping.push(started.elapsed());
    }
    anyhow::ensure!(
        limiter.is_shared(),
        "Redis failed during the benchmark: the figures mix in in-process checks"
    );
    let script = Summary::of(&script)?;
    let ping = Summary::of(&ping)?;
    println!("    against Redis (loopback TCP): {}", script.line());
    println!("    a bare PING, for scale:       {}", ping.line());
    Ok(vec![
        Row::judged(
            "(e) rate-limit check against Redis, per check",
            format!(
                "p50 {}, mean {}, p90 {}",
                fmt(script.p50),
                fmt(script.mean),
                fmt(script.p90)
            ),
            &format!("p50 < {}", fmt(REDIS_TARGET)),
            script.p50 < REDIS_TARGET,
        ),
        Row::info(
            "(e) diagnostic: a bare Redis PING",
            format!("p50 {}, mean {}", fmt(ping.p50), fmt(ping.mean)),
        ),
    ])
}

fn nanos(d: Duration) -> String {
    format!("{} ns", d.as_nanos())
}
