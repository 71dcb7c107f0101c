//! Benchmark (a): how long `create_tenant` takes in each isolation tier, one call at a time.

use std::time::{Duration, Instant};

use anyhow::ensure;
use tenantry_tenancy::{Isolation, Tenancy, TenantStatus};

use crate::report::Row;
use crate::seed::new_tenant;
use crate::setup::Bench;
use crate::stats::{Summary, fmt};

/// How many commits the commit-latency diagnostic times.
const COMMITS: usize = 50;

/// Each tier with its target for the median provisioning time.
const TIERS: [(Isolation, Duration, &str); 3] = [
    (Isolation::Shared, Duration::from_millis(10), "< 10 ms"),
    (Isolation::Schema, Duration::from_millis(100), "< 100 ms"),
    (Isolation::Database, Duration::from_secs(1), "< 1 s"),
];

pub async fn run(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let n = bench.sizes.provision_per_tier;
    println!();
    println!(
        "[a] Provisioning: {n} create_tenant calls per tier, one at a time (after one untimed warm-up call)"
    );
    let engine = bench.open("prov", tenantry_app::tenant_schema()).await?;
    let mut rows = Vec::new();
    for (tier, target, target_text) in TIERS {
        engine
            .create_tenant(&new_tenant("warmup", tier, 0)?)
            .await?;
        let mut samples = Vec::with_capacity(n);
        for i in 0..n {
            let new = new_tenant("prov", tier, i)?;
            let start = Instant::now();
            let record = engine.create_tenant(&new).await?;
            samples.push(start.elapsed());
            ensure!(
                record.status == TenantStatus::Active,
                "tenant {} ended {} after provisioning",
                record.slug,
                record.status
            );
        }
        let summary = Summary::of(&samples)?;
        println!("    {:<8} {}", tier.as_str(), summary.line());
        rows.push(Row::judged(
            format!("(a) provision a {tier}-tier tenant, median of {n}"),
            format!(
                "{} (p90 {}, min {}, max {})",
                fmt(summary.p50),
                fmt(summary.p90),
                fmt(summary.min),
                fmt(summary.max)
            ),
            target_text,
            summary.p50 < target,
        ));
    }
    let steps = shared_steps(&engine, n).await?;
    let listed: Vec<String> = steps
        .iter()
        .map(|(step, s)| format!("{step} {}", fmt(s.p50)))
        .collect();
    println!(
        "    shared tier step by step (register, then provision_next_step; medians of {n}): {}",
        listed.join(", ")
    );
    if let Some((step, slowest)) = steps.iter().max_by_key(|(_, s)| s.p50) {
        rows.push(Row::info(
            "(a) diagnostic: slowest shared-tier step, median",
            format!("{step} {}", fmt(slowest.p50)),
        ));
    }
    let commit = commit_latency(&engine).await?;
    println!(
        "    for scale: one durable commit (a 1-row INSERT) takes {}",
        commit.line()
    );
    rows.push(Row::info(
        format!("(a) diagnostic: one durable commit, median of {COMMITS}"),
        fmt(commit.p50),
    ));
    bench.discard(engine).await?;
    Ok(rows)
}

/// Provisions `n` shared-tier tenants one step at a time, timing each step. Every
/// `provision_next_step` call takes and releases the tenant lock, which `create_tenant` does once.
async fn shared_steps(engine: &Tenancy, n: usize) -> anyhow::Result<Vec<(String, Summary)>> {
    let mut by_step: Vec<(String, Vec<Duration>)> = Vec::new();
    let mut record = |step: &str, took: Duration| match by_step.iter_mut().find(|(s, _)| s == step)
    {
        Some((_, samples)) => samples.push(took),
        None => by_step.push((step.to_string(), vec![took])),
    };
    for i in 0..n {
        let new = new_tenant("steps", Isolation::Shared, i)?;
        let start = Instant::now();
        let id = engine.register(&new).await?.id;
        record("register", start.elapsed());
        loop {
            let start = Instant::now();
            let Some(step) = engine.provision_next_step(id).await? else {
                break;
            };
            record(step.as_str(), start.elapsed());
        }
    }
    by_step
        .into_iter()
        .map(|(step, samples)| Ok((step, Summary::of(&samples)?)))
        .collect()
}

/// The latency floor of anything that writes: a 1-row INSERT committed on its own (with
/// `synchronous_commit` on, each commit waits for its WAL to reach the disk).
async fn commit_latency(engine: &Tenancy) -> anyhow::Result<Summary> {
    let operator = tenantry_tenancy::Operator::new(engine);
    let pool = operator.control();
    sqlx::raw_sql("CREATE TABLE bench_commit (n integer)")
        .execute(pool)
        .await?;
    let mut samples = Vec::with_capacity(COMMITS);
    for i in 0..COMMITS + 5 {
        let start = Instant::now();
        sqlx::query("INSERT INTO bench_commit (n) VALUES ($1)")
            .bind(i32::try_from(i)?)
            .execute(pool)
            .await?;
        // The first few warm the connection up.
        if i >= 5 {
            samples.push(start.elapsed());
        }
    }
    Summary::of(&samples)
}
