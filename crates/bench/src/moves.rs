//! Benchmark (g): moving a tenant of 100,000 rows between tiers while it is written. One tenant
//! goes round every tier pair (shared → schema → database → shared → database → schema →
//! shared) with a writer inserting through the context it resolved at the start (so it follows
//! each switch through the door). Prints each move's total time, copy rate, the write pause the
//! switch reports, and the slowest write the writer saw during the move.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tenantry_tenancy::{Isolation, MoveOptions, NewTenant, Slug, TenantCtx};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::report::Row;
use crate::setup::Bench;

const ROUTE: [Isolation; 7] = [
    Isolation::Shared,
    Isolation::Schema,
    Isolation::Database,
    Isolation::Shared,
    Isolation::Database,
    Isolation::Schema,
    Isolation::Shared,
];

pub async fn run(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let rows: i64 = if bench.sizes.quick { 10_000 } else { 100_000 };
    println!();
    println!("[g] Moves of a tenant of {rows} rows round every tier pair, with a writer running");
    let engine = bench.open("moves", tenantry_app::tenant_schema()).await?;
    let record = engine
        .create_tenant(&NewTenant {
            name: "Moving".into(),
            slug: Slug::parse("moving")?,
            isolation: ROUTE[0],
            plan: None,
            server: None,
        })
        .await?;
    let ctx = engine.resolve(&record.slug).await?;
    seed(&ctx, rows).await?;

    let stop = Arc::new(AtomicBool::new(false));
    // The slowest write since the last reset, and the writes made.
    let slowest = Arc::new(Mutex::new((Duration::ZERO, 0u64)));
    let writer = {
        let (ctx, stop, slowest) = (ctx.clone(), stop.clone(), slowest.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                write_one(&ctx).await?;
                let took = started.elapsed();
                let mut s = slowest.lock().await;
                s.0 = s.0.max(took);
                s.1 += 1;
                drop(s);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            anyhow::Ok(())
        })
    };

    let mut out = Vec::new();
    let options = MoveOptions {
        drain: Duration::ZERO,
        ..MoveOptions::default()
    };
    for pair in ROUTE.windows(2) {
        let (from, to) = (pair[0], pair[1]);
        *slowest.lock().await = (Duration::ZERO, 0);
        let started = Instant::now();
        let report = engine
            .move_tenant(&record.slug, to, &options, &|_| {})
            .await?;
        let took = started.elapsed();
        let (slowest_write, writes) = *slowest.lock().await;
        let moved: i64 = report.tables.iter().map(|t| t.rows).sum();
        let rate = moved as f64 / took.as_secs_f64();
        println!(
            "    {from:>8} → {to:<8} {:>7.2} s, {rate:>9.0} rows/s; writes paused {:>7.1} ms at \
             the switch ({} rows then); slowest of {writes} writes {:.1} ms",
            took.as_secs_f64(),
            report.write_pause_ms,
            report.rows_at_switch,
            slowest_write.as_secs_f64() * 1000.0
        );
        out.push(Row::info(
            format!("(g) move {from} → {to}, {moved} rows"),
            format!(
                "{:.2} s ({rate:.0} rows/s), write pause {:.1} ms, slowest write {:.1} ms",
                took.as_secs_f64(),
                report.write_pause_ms,
                slowest_write.as_secs_f64() * 1000.0
            ),
        ));
    }
    stop.store(true, Ordering::Relaxed);
    writer.await??;

    // Nothing lost or doubled on the way round.
    let fresh = engine.resolve(&record.slug).await?;
    let mut tx = fresh.begin_read().await?;
    let (total, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT id) FROM monitors")
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    anyhow::ensure!(
        total == distinct && total >= rows,
        "after the moves the tenant has {total} monitors ({distinct} distinct), expected at least {rows}"
    );
    bench.discard(engine).await?;
    Ok(out)
}

async fn seed(ctx: &TenantCtx, rows: i64) -> anyhow::Result<()> {
    let mut tx = ctx.begin().await?;
    sqlx::query(
        "INSERT INTO monitors (tenant_id, id, name, kind, target, interval_seconds)
         SELECT $1, gen_random_uuid(), 'monitor ' || i, 'http', 'https://example.test/' || i, 60
         FROM generate_series(1, $2) AS i",
    )
    .bind(ctx.tenant_id().as_uuid())
    .bind(rows)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn write_one(ctx: &TenantCtx) -> anyhow::Result<()> {
    let mut tx = ctx.begin().await?;
    sqlx::query(
        "INSERT INTO monitors (tenant_id, id, name, kind, target)
         VALUES ($1, $2, 'written during a move', 'http', 'https://example.test')",
    )
    .bind(ctx.tenant_id().as_uuid())
    .bind(Uuid::now_v7())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
