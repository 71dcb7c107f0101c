//! Benchmark (l): pools under churn. Many more database-tier tenants are read round-robin than
//! the pools keep connections for, as a busy installation's traffic spreads over its tenants:
//! 16 clients, client `i` starting at tenant `i × 31`, each request one door transaction (the
//! registry record from the engine's cache, `begin_read`, a read of the tenant's settings,
//! commit). The same workload over as many shared-tier tenants is the reference. Printed: the
//! requests/s and latency of each, the PostgreSQL connections open at the peak (sampled), pools
//! opened and evicted per request, and what one new connection costs on its own, which is what a
//! request pays when its tenant has none.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::{ConnectOptions, Connection};
use tenantry_tenancy::{Isolation, Operator, PoolConfig, Tenancy, TenantId};

use crate::report::Row;
use crate::seed::create_many;
use crate::setup::Bench;
use crate::stats::{Summary, fmt};

const CLIENTS: usize = 16;
/// Set to a number of tenants per tier to read instead of 500.
const TENANTS_VAR: &str = "TENANTRY_BENCH_CHURN_TENANTS";
/// The most PostgreSQL connections in all (runtime, owner and tenant pools).
const CONNECTIONS: i64 = 100;
const P99_TARGET: Duration = Duration::from_millis(20);
const SHARE_TARGET: f64 = 0.5;

pub async fn run(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let tenants = match std::env::var(TENANTS_VAR) {
        Ok(n) => n
            .parse()
            .with_context(|| format!("{TENANTS_VAR} must be a number of tenants"))?,
        Err(_) if crate::setup::quick() => 50,
        Err(_) => 500,
    };
    let seconds = if crate::setup::quick() { 3 } else { 10 };
    println!();
    println!(
        "[l] Pools under churn: {tenants} tenants per tier read round-robin by {CLIENTS} clients for {seconds} s, at most {CONNECTIONS} PostgreSQL connections"
    );
    let pools = PoolConfig::default();
    println!(
        "    pools: runtime {}, owner {}, tenant budget {} ({} per tenant, so {} tenant pools cached)",
        pools.runtime_max,
        pools.owner_max,
        pools.tenant_connection_budget,
        pools.per_tenant_max,
        pools.tenant_pool_capacity()
    );
    let mut config = bench.config("churn");
    config.pools = pools;
    let engine = Tenancy::open_with(config, tenantry_app::tenant_schema())
        .await
        .context("failed to open the engine for the churn benchmark")?;
    let seeded = create_many(
        &engine,
        "churn",
        &[(Isolation::Shared, tenants), (Isolation::Database, tenants)],
        4,
    )
    .await?;
    println!(
        "    created {} tenants in {:.0} s",
        tenants * 2,
        seeded.took.as_secs_f64()
    );
    let records = engine.list().await?;
    let of = |tier: Isolation| -> Vec<TenantId> {
        records
            .iter()
            .filter(|r| r.isolation == tier)
            .map(|r| r.id)
            .collect()
    };
    engine.start_cache_listener();
    let start_cost = connection_cost(&engine, &records).await?;
    let mut rows = Vec::new();
    let mut figures = Vec::new();
    for tier in [Isolation::Shared, Isolation::Database] {
        let ids = of(tier);
        // A short warm-up: the registry cache, the prepared statements of the pools kept.
        round_robin(&engine, &ids, Duration::from_secs(1)).await?;
        let before = engine.pool_stats();
        let peak = Arc::new(AtomicI64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = tokio::spawn(sample_connections(
            Operator::new(&engine).connect_options().clone(),
            peak.clone(),
            stop.clone(),
        ));
        let run = round_robin(&engine, &ids, Duration::from_secs(seconds)).await?;
        stop.store(true, Ordering::Relaxed);
        sampler.await??;
        let after = engine.pool_stats();
        let requests = run.latencies.len() as f64;
        let summary = Summary::of(&run.latencies)?;
        let per_second = requests / run.took.as_secs_f64();
        let opened = (after.tenant_pools_opened - before.tenant_pools_opened) as f64 / requests;
        let evicted = (after.tenant_pools_evicted - before.tenant_pools_evicted) as f64 / requests;
        let peak = peak.load(Ordering::Relaxed);
        println!(
            "    {tier}: {per_second:.0} requests/s, {}; peak {peak} PostgreSQL connections; {opened:.2} pools opened and {evicted:.2} evicted per request; {} errors",
            summary.line(),
            run.errors
        );
        rows.push(Row::info(
            format!("(l) {tier} tier, {tenants} tenants round-robin"),
            format!(
                "{per_second:.0} requests/s, p50 {}, p99 {}, peak {peak} connections, {opened:.2} pools opened per request",
                fmt(summary.p50),
                fmt(summary.p99)
            ),
        ));
        figures.push((per_second, summary, peak, run.errors));
    }
    let [
        (shared, _, _, _),
        (database, db_summary, db_peak, db_errors),
    ] = [figures[0], figures[1]];
    let share = database / shared.max(f64::MIN_POSITIVE);
    println!(
        "    one new connection to a tenant's database (connect, one query, close): {}",
        start_cost.line()
    );
    rows.push(Row::info(
        "(l) one new tenant connection, on its own",
        format!("p50 {}, p99 {}", fmt(start_cost.p50), fmt(start_cost.p99)),
    ));
    rows.push(Row::judged(
        "(l) database tier / shared tier, requests/s",
        format!("{share:.2}x"),
        &format!(">= {SHARE_TARGET:.1}x"),
        share >= SHARE_TARGET,
    ));
    rows.push(Row::judged(
        "(l) database tier p99",
        fmt(db_summary.p99),
        &format!("< {}", fmt(P99_TARGET)),
        db_summary.p99 < P99_TARGET,
    ));
    rows.push(Row::judged(
        "(l) PostgreSQL connections at the peak, database tier",
        db_peak.to_string(),
        &format!("<= {CONNECTIONS}"),
        db_peak <= CONNECTIONS,
    ));
    rows.push(Row::judged(
        "(l) database tier errors",
        db_errors.to_string(),
        "0",
        db_errors == 0,
    ));
    bench.discard(engine).await?;
    Ok(rows)
}

struct Run {
    latencies: Vec<Duration>,
    errors: usize,
    took: Duration,
}

/// `CLIENTS` tasks reading the tenants round-robin for `duration`.
async fn round_robin(
    engine: &Tenancy,
    ids: &[TenantId],
    duration: Duration,
) -> anyhow::Result<Run> {
    let ids: Arc<Vec<TenantId>> = Arc::new(ids.to_vec());
    let started = Instant::now();
    let deadline = started + duration;
    let mut clients = Vec::with_capacity(CLIENTS);
    for client in 0..CLIENTS {
        let (engine, ids) = (engine.clone(), ids.clone());
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            let mut next = client * 31;
            while Instant::now() < deadline {
                let id = ids[next % ids.len()];
                next += 1;
                let began = Instant::now();
                match read(&engine, id).await {
                    Ok(()) => latencies.push(began.elapsed()),
                    Err(e) => {
                        if errors == 0 {
                            eprintln!("    a read failed: {e:#}");
                        }
                        errors += 1;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut run = Run {
        latencies: Vec::new(),
        errors: 0,
        took: Duration::ZERO,
    };
    for client in clients {
        let (latencies, errors) = client.await?;
        run.latencies.extend(latencies);
        run.errors += errors;
    }
    run.took = started.elapsed();
    Ok(run)
}

async fn read(engine: &Tenancy, id: TenantId) -> anyhow::Result<()> {
    let ctx = engine.resolve_id(id).await?;
    let mut tx = ctx.begin_read().await?;
    let _: Option<String> = sqlx::query_scalar("SELECT timezone FROM tenant_settings")
        .fetch_optional(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The most client connections PostgreSQL had at once, sampled every 20 ms.
async fn sample_connections(
    owner: sqlx::postgres::PgConnectOptions,
    peak: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let mut conn = owner.connect().await?;
    while !stop.load(Ordering::Relaxed) {
        // The sampler's own connection aside.
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) - 1 FROM pg_stat_activity WHERE backend_type = 'client backend'",
        )
        .fetch_one(&mut conn)
        .await?;
        peak.fetch_max(open, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    conn.close().await.ok();
    Ok(())
}

/// What a request pays when its tenant has no connection: a new connection to a tenant's
/// database (the owner's, made as the pools make theirs), one query, closed; 200 times, one at
/// a time.
async fn connection_cost(
    engine: &Tenancy,
    records: &[tenantry_tenancy::TenantRecord],
) -> anyhow::Result<Summary> {
    let operator = Operator::new(engine);
    let mut samples = Vec::with_capacity(200);
    for record in records
        .iter()
        .filter(|r| r.isolation == Isolation::Database)
        .cycle()
        .take(200)
    {
        let began = Instant::now();
        let mut conn = operator.tenant_storage(record).await?;
        sqlx::query("SELECT 1").execute(&mut conn).await?;
        conn.close().await?;
        samples.push(began.elapsed());
    }
    Summary::of(&samples)
}
