//! Benchmark (d): what the door costs. The same 20-row read of a shared-tier tenant's monitors,
//! once through a `TenantTx` (which sets the tenant in the `BEGIN` round trip and reads a table
//! under row-level security) and once in a plain transaction on the same runtime pool, reading an
//! unprotected copy of the table with the same columns, indexes and rows. Both loops run one
//! operation at a time on one task, so the figures are latencies, not throughput.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use sqlx::PgPool;
use tenantry_tenancy::{Isolation, MigrationSet, Naming, TenantCtx, quote_ident};
use uuid::Uuid;

use crate::report::Row;
use crate::seed::new_tenant;
use crate::setup::Bench;
use crate::stats::{Summary, fmt};

const MONITORS: i64 = 100;
const LIMIT: usize = 20;
const ROUNDS: usize = 10;
const TARGET: f64 = 1.15;
const TENANT_READ: &str =
    "SELECT id, name FROM monitors WHERE tenant_id = $1 ORDER BY created_at LIMIT 20";
const PLAIN_READ: &str =
    "SELECT id, name FROM bench_plain.monitors WHERE tenant_id = $1 ORDER BY created_at LIMIT 20";

pub async fn run(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let ops = bench.sizes.door_ops;
    let per_round = (ops / ROUNDS).max(1);
    println!();
    println!(
        "[d] The door: {LIMIT}-row read in a TenantTx vs a plain transaction, {} ops each in {ROUNDS} interleaved rounds",
        per_round * ROUNDS
    );
    let engine = bench.open("door", MigrationSet::tenant()).await?;
    let record = engine
        .create_tenant(&new_tenant("door", Isolation::Shared, 0)?)
        .await?;
    let ctx = engine.resolve_id(record.id).await?;
    let tenant = record.id.as_uuid();
    fill(&ctx, tenant).await?;
    copy_unprotected(engine.owner_pool(), engine.naming(), tenant).await?;
    let pool = engine.runtime_pool().clone();

    // Warm up both paths: connections, prepared statements, caches.
    for _ in 0..per_round {
        door_op(&ctx, tenant).await?;
        plain_op(&pool, tenant).await?;
    }
    let mut door = Vec::with_capacity(per_round * ROUNDS);
    let mut plain = Vec::with_capacity(per_round * ROUNDS);
    let mut round_ratios = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let (mut d, mut p) = (Vec::new(), Vec::new());
        // Alternate which path goes first, so neither always runs on a warmer cache.
        if round % 2 == 0 {
            for _ in 0..per_round {
                d.push(door_op(&ctx, tenant).await?);
            }
            for _ in 0..per_round {
                p.push(plain_op(&pool, tenant).await?);
            }
        } else {
            for _ in 0..per_round {
                p.push(plain_op(&pool, tenant).await?);
            }
            for _ in 0..per_round {
                d.push(door_op(&ctx, tenant).await?);
            }
        }
        round_ratios.push(ratio(Summary::of(&d)?.mean, Summary::of(&p)?.mean));
        door.extend(d);
        plain.extend(p);
    }
    let door = Summary::of(&door)?;
    let plain = Summary::of(&plain)?;
    let mean_ratio = ratio(door.mean, plain.mean);
    let p50_ratio = ratio(door.p50, plain.p50);
    println!("    TenantTx: mean {}, {}", fmt(door.mean), door.line());
    println!("    plain:    mean {}, {}", fmt(plain.mean), plain.line());
    let rounds: Vec<String> = round_ratios.iter().map(|r| format!("{r:.3}")).collect();
    println!("    mean ratio per round: {}", rounds.join(", "));
    println!(
        "    TenantTx / plain: {mean_ratio:.3}x on the mean, {p50_ratio:.3}x on the median; \
         the door adds {} per transaction on the median",
        fmt(door.p50.saturating_sub(plain.p50))
    );
    bench.discard(engine).await?;
    let target = format!("<= {TARGET:.2}x");
    Ok(vec![
        Row::info(
            "(d) read in a TenantTx, per op",
            format!("mean {}, p50 {}", fmt(door.mean), fmt(door.p50)),
        ),
        Row::info(
            "(d) same read, plain transaction, per op",
            format!("mean {}, p50 {}", fmt(plain.mean), fmt(plain.p50)),
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

/// One request's worth of work through the door: begin, read, commit.
async fn door_op(ctx: &TenantCtx, tenant: Uuid) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut tx = ctx.begin().await?;
    let rows: Vec<(Uuid, String)> = sqlx::query_as(TENANT_READ)
        .bind(tenant)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    let took = start.elapsed();
    ensure!(rows.len() == LIMIT, "the TenantTx read {} rows", rows.len());
    Ok(took)
}

/// The same work in a plain transaction on the same pool.
async fn plain_op(pool: &PgPool, tenant: Uuid) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut tx = pool.begin().await?;
    let rows: Vec<(Uuid, String)> = sqlx::query_as(PLAIN_READ)
        .bind(tenant)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    let took = start.elapsed();
    ensure!(rows.len() == LIMIT, "the plain read {} rows", rows.len());
    Ok(took)
}

/// Inserts the tenant's monitors through the door, a minute apart.
async fn fill(ctx: &TenantCtx, tenant: Uuid) -> anyhow::Result<()> {
    let mut tx = ctx.begin().await?;
    sqlx::query(
        "INSERT INTO monitors (tenant_id, id, name, kind, target, created_at)
         SELECT $1, gen_random_uuid(), 'monitor ' || g, 'http', 'https://example.com/' || g,
                now() - g * interval '1 minute'
         FROM generate_series(1, $2::bigint) AS g",
    )
    .bind(tenant)
    .bind(MONITORS)
    .execute(&mut *tx)
    .await
    .context("failed to insert the monitors")?;
    tx.commit().await?;
    Ok(())
}

/// Copies `shared.monitors` (its columns, indexes and the tenant's rows, without row-level
/// security) to `bench_plain.monitors`, readable by the runtime role. Runs as the owner role: on
/// the managed cluster the bootstrap superuser no longer logs in once the owner role exists.
async fn copy_unprotected(owner: &PgPool, naming: &Naming, tenant: Uuid) -> anyhow::Result<()> {
    let runtime = quote_ident(&naming.runtime_role());
    sqlx::raw_sql(&format!(
        "CREATE SCHEMA bench_plain;
         CREATE TABLE bench_plain.monitors (LIKE shared.monitors INCLUDING ALL);
         GRANT USAGE ON SCHEMA bench_plain TO {runtime};
         GRANT SELECT ON bench_plain.monitors TO {runtime};"
    ))
    .execute(owner)
    .await
    .context("failed to create the unprotected copy table")?;
    let mut tx = owner.begin().await?;
    // shared.monitors forces row-level security on its owner too: read as the tenant.
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await?;
    let copied = sqlx::query("INSERT INTO bench_plain.monitors SELECT * FROM shared.monitors")
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    ensure!(
        copied == MONITORS as u64,
        "copied {copied} monitors, not {MONITORS}"
    );
    sqlx::raw_sql("ANALYZE shared.monitors; ANALYZE bench_plain.monitors;")
        .execute(owner)
        .await?;
    Ok(())
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(f64::MIN_POSITIVE)
}
