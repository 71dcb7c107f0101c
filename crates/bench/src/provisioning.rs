//! Benchmark (a): how long `create_tenant` takes in each isolation tier, one call at a time.

use std::time::{Duration, Instant};

use anyhow::ensure;
use tenantry_tenancy::{Isolation, MigrationSet, TenantStatus};

use crate::report::Row;
use crate::seed::new_tenant;
use crate::setup::Bench;
use crate::stats::{Summary, fmt};

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
    let engine = bench.open("prov", MigrationSet::tenant()).await?;
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
    bench.discard(engine).await?;
    Ok(rows)
}
