//! Benchmark (d): what the door costs. The same 20-row read of a shared-tier tenant's monitors,
//! once through a `TenantTx` (which sets the tenant in the `BEGIN` round trip and reads a table
//! under row-level security) and once in a plain transaction on the same runtime pool, reading an
//! unprotected copy of the table with the same columns, indexes and rows. Two diagnostic paths
//! split the difference between the door's `BEGIN` statement and row-level security. Every path
//! runs one operation at a time on one task, so the figures are latencies, not throughput.

use std::time::Duration;

use tenantry_tenancy::Isolation;

use crate::door_paths::{LIMIT, Path, Probe, copy_unprotected, fill};
use crate::report::Row;
use crate::seed::new_tenant;
use crate::setup::Bench;
use crate::stats::{Summary, fmt};

const ROUNDS: usize = 10;
const TARGET: f64 = 1.15;

pub async fn run(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let per_round = (bench.sizes.door_ops / ROUNDS).max(1);
    println!();
    println!(
        "[d] The door: a {LIMIT}-row read, {} ops per path in {ROUNDS} interleaved rounds of {per_round}, after {per_round} warm-up ops per path",
        per_round * ROUNDS
    );
    let engine = bench.open("door", tenantry_app::tenant_schema()).await?;
    let record = engine
        .create_tenant(&new_tenant("door", Isolation::Shared, 0)?)
        .await?;
    let ctx = engine.resolve_id(record.id).await?;
    let tenant = record.id.as_uuid();
    fill(&ctx, tenant).await?;
    // The benchmark's own pools: the door's statements measured against the raw ones.
    let operator = tenantry_tenancy::Operator::new(&engine);
    copy_unprotected(operator.control(), engine.naming(), tenant).await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(20)
        .connect_with(operator.runtime_options().clone())
        .await?;
    let probe = Probe::new(&ctx, &pool, tenant);

    // Warm up every path: connections, prepared statements, caches.
    for _ in 0..per_round {
        for path in Path::ALL {
            probe.op(path).await?;
        }
    }
    let mut samples: [Vec<Duration>; 4] = Default::default();
    let mut round_ratios = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let mut this_round: [Vec<Duration>; 4] = Default::default();
        // Rotate which path goes first, so none always runs on a warmer cache.
        for k in 0..Path::ALL.len() {
            let path = Path::ALL[(round + k) % Path::ALL.len()];
            for _ in 0..per_round {
                this_round[path.index()].push(probe.op(path).await?);
            }
        }
        round_ratios.push(ratio(
            Summary::of(&this_round[Path::Door.index()])?.mean,
            Summary::of(&this_round[Path::Plain.index()])?.mean,
        ));
        for (all, new) in samples.iter_mut().zip(this_round) {
            all.extend(new);
        }
    }
    bench.discard(engine).await?;

    let mut summaries = Vec::with_capacity(Path::ALL.len());
    for path in Path::ALL {
        let summary = Summary::of(&samples[path.index()])?;
        println!(
            "    {:<40} mean {}, {}",
            path.label(),
            fmt(summary.mean),
            summary.line()
        );
        summaries.push(summary);
    }
    let [door, plain, door_begin, set_config] = [0, 1, 2, 3].map(|i| summaries[i]);
    let mean_ratio = ratio(door.mean, plain.mean);
    let p50_ratio = ratio(door.p50, plain.p50);
    let rounds: Vec<String> = round_ratios.iter().map(|r| format!("{r:.3}")).collect();
    println!(
        "    TenantTx / plain, mean of each round: {}",
        rounds.join(", ")
    );
    println!(
        "    TenantTx / plain: {mean_ratio:.3}x on the mean, {p50_ratio:.3}x on the median. On the \
         median the door adds {:+.1} µs: its BEGIN statement {:+.1} µs, row-level security and \
         the schema switch {:+.1} µs. Made with SELECT set_config, the settings would add {:+.1} µs.",
        micros(door.p50) - micros(plain.p50),
        micros(door_begin.p50) - micros(plain.p50),
        micros(door.p50) - micros(door_begin.p50),
        micros(set_config.p50) - micros(plain.p50),
    );
    let target = format!("<= {TARGET:.2}x");
    let per_op = |s: Summary| format!("mean {}, p50 {}", fmt(s.mean), fmt(s.p50));
    Ok(vec![
        Row::info("(d) read in a TenantTx, per op", per_op(door)),
        Row::info("(d) same read, plain transaction, per op", per_op(plain)),
        Row::info(
            "(d) diagnostic: plain, begun with the door's statement",
            per_op(door_begin),
        ),
        Row::info(
            "(d) diagnostic: plain, begun with SELECT set_config",
            per_op(set_config),
        ),
        Row::judged(
            "(d) TenantTx / plain, mean",
            format!("{mean_ratio:.3}x"),
            &target,
            mean_ratio <= TARGET,
        ),
        Row::judged(
            "(d) TenantTx / plain, p50",
            format!("{p50_ratio:.3}x"),
            &target,
            p50_ratio <= TARGET,
        ),
    ])
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(f64::MIN_POSITIVE)
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
