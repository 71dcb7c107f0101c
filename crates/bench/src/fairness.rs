//! Benchmark (h): the check scheduler's fairness, throughput and overhead.
//!
//! Fairness: 50 small organizations with a few monitors each, checked every 10 s against a local
//! target answering in 200 ms, by an instance whose worker pool can run all of theirs but not a
//! noisy organization's 100 times as many on top. The small organizations' lag (check due →
//! check started, from the stored results) is measured without and then with the noisy
//! neighbour; the target is a p99 ratio of at most 1.5.
//!
//! Throughput: thousands of checks due at once against a target answering at once, on a large
//! pool: checks per second per core, and the scheduler's own time per check (claiming, reading
//! the monitor, recording, releasing; the checks themselves excluded).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::routing::get;
use chrono::{DateTime, Utc};
use tenantry_monitoring::checks::{Checker, CheckerConfig};
use tenantry_monitoring::scheduler::{self, Scheduler, SchedulerConfig, SchedulerMetrics};
use tenantry_monitoring::{self as monitoring, MonitorInput};
use tenantry_tenancy::{Isolation, NewTenant, Slug, Tenancy, TenantCtx};
use tokio::sync::oneshot;

use crate::report::Row;
use crate::setup::Bench;
use crate::stats::fmt;

const SMALL_TENANTS: usize = 50;
const NOISE_FACTOR: usize = 100;
const INTERVAL: i32 = 10;
const TARGET_DELAY: Duration = Duration::from_millis(200);

pub async fn run(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let quick = bench.sizes.quick;
    let per_small = if quick { 2 } else { 8 };
    // Each small organization's monitors keep per_small × 0.2 s / 10 s of a worker busy: all 50
    // need per_small workers, the noisy one twice that. The pool has twice what the small ones
    // need: room for them, two thirds of what everyone wants.
    let workers = per_small * 2;
    let window = Duration::from_secs(if quick { 30 } else { 90 });
    println!();
    println!(
        "[h] Scheduler fairness: {SMALL_TENANTS} organizations × {per_small} monitors, a noisy one with {} monitors, every {INTERVAL} s against a target answering in {} ms, {workers} workers",
        per_small * NOISE_FACTOR,
        TARGET_DELAY.as_millis()
    );
    let engine = open(bench, "fairness").await?;
    let slow = target(TARGET_DELAY).await?;
    let url = format!("http://{slow}/");
    let mut random = SplitMix::seeded();
    let mut small = Vec::new();
    for i in 0..SMALL_TENANTS {
        let ctx = tenant(&engine, &format!("small-{i}")).await?;
        for _ in 0..per_small {
            create(&engine, &ctx, &url).await?;
        }
        spread(&engine, &ctx, &mut random).await?;
        small.push(ctx);
    }
    let config = SchedulerConfig {
        workers,
        prefetch: workers / 2,
        ..SchedulerConfig::default()
    };

    let alone = measure(&engine, &config, &small, window).await?;
    println!(
        "  without the noisy neighbour: small organizations' lag {}",
        alone.line()
    );

    let noisy = tenant(&engine, "noisy").await?;
    for _ in 0..per_small * NOISE_FACTOR {
        create(&engine, &noisy, &url).await?;
    }
    spread(&engine, &noisy, &mut random).await?;
    let crowded = measure(&engine, &config, &small, window).await?;
    let noisy_lag = lags(&noisy, crowded.since).await?;
    println!(
        "  with it:                     small organizations' lag {}",
        crowded.line()
    );
    println!(
        "  the noisy organization's own lag meanwhile: p50 {}, p99 {} ({} checks)",
        fmt(percentile(&noisy_lag, 0.50)),
        fmt(percentile(&noisy_lag, 0.99)),
        noisy_lag.len()
    );
    let ratio = crowded.p99.as_secs_f64() / alone.p99.as_secs_f64().max(1e-6);
    bench.discard(engine).await?;

    let (rate, overhead) = throughput(bench, quick).await?;
    Ok(vec![
        Row::info(
            "(h) small tenants' lag p99, alone",
            format!("{} ({} checks)", fmt(alone.p99), alone.count),
        ),
        Row::info(
            "(h) small tenants' lag p99, noisy neighbour",
            format!("{} ({} checks)", fmt(crowded.p99), crowded.count),
        ),
        Row::info(
            "(h) lag the noisy neighbour adds (p99)",
            fmt(crowded.p99.saturating_sub(alone.p99)),
        ),
        Row::judged(
            "(h) noisy-neighbour lag ratio (p99)",
            format!("{ratio:.2}×"),
            "<= 1.5×",
            ratio <= 1.5,
        ),
        Row::info(
            "(h) noisy tenant's own lag p99",
            fmt(percentile(&noisy_lag, 0.99)),
        ),
        Row::info("(h) checks per second per core", format!("{rate:.0}")),
        Row::info("(h) scheduler overhead per check", fmt(overhead)),
    ])
}

async fn open(bench: &Bench, what: &str) -> anyhow::Result<Tenancy> {
    Tenancy::open_full(
        bench.config(what),
        tenantry_app::tenant_schema(),
        &tenantry_app::control_schemas(),
    )
    .await
    .with_context(|| format!("failed to open the engine for {what}"))
}

/// A local HTTP target answering 200 after `delay`.
async fn target(delay: Duration) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let app = Router::new().route(
        "/",
        get(move || async move {
            tokio::time::sleep(delay).await;
            "ok"
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(address)
}

async fn tenant(engine: &Tenancy, slug: &str) -> anyhow::Result<TenantCtx> {
    let record = engine
        .create_tenant(&NewTenant {
            name: slug.to_string(),
            slug: Slug::parse(slug)?,
            isolation: Isolation::Shared,
            plan: None,
            server: None,
        })
        .await?;
    Ok(engine.resolve_id(record.id).await?)
}

async fn create(engine: &Tenancy, ctx: &TenantCtx, url: &str) -> anyhow::Result<()> {
    let input = MonitorInput {
        name: "bench".to_string(),
        kind: "http".to_string(),
        target: Some(url.to_string()),
        interval_seconds: Some(INTERVAL),
        timeout_seconds: Some(5),
        keyword: None,
        enabled: None,
        confirmations: None,
        agent_id: None,
    };
    let mut tx = ctx.begin().await?;
    let monitor = monitoring::create(&mut tx, &input).await?;
    scheduler::plan(
        engine.control_db(),
        ctx.tenant_id().as_uuid(),
        &monitor,
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Spreads the first checks of `ctx`'s monitors over an interval at random, as monitors created
/// at different times are (all due in the same second, they would measure a burst, not a
/// load). The offsets come from `random`, seeded once per run ([`SEED`], or
/// `TENANTRY_BENCH_SEED`), in the order the monitors were created, so every run places them
/// alike: random placements differ in how many checks happen to fall due together, which
/// moves the small organizations' p99 by several milliseconds from one placement to another.
async fn spread(engine: &Tenancy, ctx: &TenantCtx, random: &mut SplitMix) -> anyhow::Result<()> {
    let org = ctx.tenant_id().as_uuid();
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT monitor_id FROM monitoring.schedule WHERE org_id = $1 ORDER BY monitor_id",
    )
    .bind(org)
    .fetch_all(engine.control_db())
    .await?;
    let offsets: Vec<f64> = ids.iter().map(|_| random.unit()).collect();
    sqlx::query(
        "UPDATE monitoring.schedule s
         SET next_due_at = now() + o.offset_ * make_interval(secs => s.interval_seconds)
         FROM unnest($2::uuid[], $3::float8[]) AS o(monitor_id, offset_)
         WHERE s.org_id = $1 AND s.monitor_id = o.monitor_id",
    )
    .bind(org)
    .bind(&ids)
    .bind(&offsets)
    .execute(engine.control_db())
    .await?;
    Ok(())
}

/// The placement's seed when `TENANTRY_BENCH_SEED` is unset.
const SEED: u64 = 2026;

/// A small deterministic generator (SplitMix64) for the placement.
struct SplitMix(u64);

impl SplitMix {
    fn seeded() -> Self {
        let seed = std::env::var("TENANTRY_BENCH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(SEED);
        Self(seed)
    }

    /// A number in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Lag {
    since: DateTime<Utc>,
    count: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Lag {
    fn line(&self) -> String {
        format!(
            "p50 {}, p99 {}, max {} ({} checks)",
            fmt(self.p50),
            fmt(self.p99),
            fmt(self.max),
            self.count
        )
    }
}

/// Runs a scheduler for one interval to settle, then `window` measured; the lags of the checks
/// of `tenants` due in the window.
async fn measure(
    engine: &Tenancy,
    config: &SchedulerConfig,
    tenants: &[TenantCtx],
    window: Duration,
) -> anyhow::Result<Lag> {
    let (stop, stopped) = oneshot::channel::<()>();
    let scheduler = Scheduler::new(
        engine.clone(),
        Checker::new(CheckerConfig::default())?,
        config.clone(),
        SchedulerMetrics::new(),
    );
    let running = tokio::spawn(scheduler.run(async {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_secs(INTERVAL as u64)).await;
    let since = Utc::now();
    tokio::time::sleep(window).await;
    let _ = stop.send(());
    running.await?;
    let mut all = Vec::new();
    for ctx in tenants {
        all.extend(lags(ctx, since).await?);
    }
    all.sort();
    Ok(Lag {
        since,
        count: all.len(),
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
        max: all.last().copied().unwrap_or_default(),
    })
}

/// Due → started of each check of `ctx` due since `since`, sorted.
async fn lags(ctx: &TenantCtx, since: DateTime<Utc>) -> anyhow::Result<Vec<Duration>> {
    let mut tx = ctx.begin_read().await?;
    let rows: Vec<(DateTime<Utc>, DateTime<Utc>)> =
        sqlx::query_as("SELECT due_at, checked_at FROM check_results WHERE due_at >= $1")
            .bind(since)
            .fetch_all(&mut *tx)
            .await?;
    tx.commit().await?;
    let mut lags: Vec<Duration> = rows
        .into_iter()
        .map(|(due, started)| (started - due).to_std().unwrap_or_default())
        .collect();
    lags.sort();
    Ok(lags)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Checks per second per core with thousands due at once against an instant target on 64
/// workers, and the scheduler's own time per check measured apart on a single worker (where
/// it is not inflated by waiting for the CPU behind other workers).
async fn throughput(bench: &Bench, quick: bool) -> anyhow::Result<(f64, Duration)> {
    let monitors = if quick { 1_000 } else { 4_000 };
    let tenants = 20;
    println!(
        "  throughput: {monitors} checks due at once over {tenants} organizations, an instant target"
    );
    let engine = open(bench, "throughput").await?;
    let fast = target(Duration::ZERO).await?;
    let url = format!("http://{fast}/");
    let mut contexts = Vec::new();
    for i in 0..tenants {
        contexts.push(tenant(&engine, &format!("busy-{i}")).await?);
    }
    for n in 0..monitors {
        create(&engine, &contexts[n % tenants], &url).await?;
    }
    let (handled, took, _) = drain(&engine, 64, monitors as u64).await?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let rate = handled as f64 / took.as_secs_f64() / cores;
    println!(
        "  64 workers: {handled} checks in {} on {cores} cores: {rate:.0} checks/s/core",
        fmt(took)
    );
    // The same checks due again, for one worker.
    sqlx::query("UPDATE monitoring.schedule SET next_due_at = now()")
        .execute(engine.control_db())
        .await?;
    let sample = (monitors / 4) as u64;
    let (handled, took, overhead) = drain(&engine, 1, sample).await?;
    let per_check = overhead / handled.max(1) as u32;
    println!(
        "  1 worker: {handled} checks in {}; scheduler time per check {} (claim, read, record, release)",
        fmt(took),
        fmt(per_check)
    );
    bench.discard(engine).await?;
    Ok((rate, per_check))
}

/// Runs a scheduler of `workers` until it has handled `checks`; what it handled, in how long,
/// and its own time.
async fn drain(
    engine: &Tenancy,
    workers: usize,
    checks: u64,
) -> anyhow::Result<(u64, Duration, Duration)> {
    let metrics = SchedulerMetrics::new();
    // `serve`'s ratio, and at least 8 so that one worker's claims come in batches, as they do
    // on a busy instance.
    let config = SchedulerConfig {
        workers,
        prefetch: workers.div_ceil(2).max(8),
        poll: Duration::from_millis(100),
        ..SchedulerConfig::default()
    };
    let scheduler = Scheduler::new(
        engine.clone(),
        Checker::new(CheckerConfig::default())?,
        config,
        metrics.clone(),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let started = Instant::now();
    let running = tokio::spawn(scheduler.run(async {
        let _ = stopped.await;
    }));
    while metrics.totals().0 < checks {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    let _ = stop.send(());
    running.await?;
    let (handled, overhead) = metrics.totals();
    Ok((handled, took, overhead))
}
