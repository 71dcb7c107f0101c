//! Benchmark (f): export and import throughput. A shared-tier tenant with 100,000 monitors
//! (seeded by one `INSERT ... SELECT generate_series` as the owner in the tenant's scope) is
//! exported to a `.tar.gz` file with `tenantry_archive::export`, and that archive imported into
//! a new tenant of each tier with `tenantry_archive::import` (which checks the archive whole,
//! writes every row, and compares every table with the manifest before committing). Rows per
//! second count every row of the archive, the tenant tables and the control side alike.

use std::time::{Duration, Instant};

use anyhow::Context;
use tenantry_archive::{ImportOptions, Quiet};
use tenantry_tenancy::{Isolation, Tenancy};

use crate::report::Row;
use crate::seed::new_tenant;
use crate::setup::Bench;
use crate::stats::fmt;

const MONITORS: i64 = 100_000;

pub async fn run(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let monitors = if bench.sizes.quick {
        MONITORS / 10
    } else {
        MONITORS
    };
    println!();
    println!(
        "[f] Export and import: a shared-tier tenant with {monitors} monitors, exported to a \
         file, then imported into each tier"
    );
    let engine = Tenancy::open_full(
        bench.config("archive"),
        tenantry_app::tenant_schema(),
        &tenantry_app::control_schemas(),
    )
    .await
    .context("failed to open the engine for the archive benchmark")?;
    let result = measure(&engine, monitors).await;
    bench.discard(engine).await?;
    result
}

async fn measure(engine: &Tenancy, monitors: i64) -> anyhow::Result<Vec<Row>> {
    let record = engine
        .create_tenant(&new_tenant("archive", Isolation::Shared, 0)?)
        .await?;
    let mut conn = tenantry_tenancy::Operator::new(engine)
        .tenant_storage(&record)
        .await?;
    sqlx::query(
        "INSERT INTO monitors (tenant_id, id, name, kind, target, interval_seconds, enabled,
             timeout_seconds, keyword, status)
         SELECT $1, gen_random_uuid(), 'monitor ' || i,
                (ARRAY['http', 'tcp', 'keyword', 'heartbeat'])[1 + i % 4],
                'https://example.com/health/' || i, 60 + i % 600, i % 7 <> 0, 30,
                CASE WHEN i % 4 = 2 THEN 'ok' END, 'up'
         FROM generate_series(1, $2) AS i",
    )
    .bind(record.id.as_uuid())
    .bind(monitors)
    .execute(&mut conn)
    .await
    .context("failed to seed the monitors")?;
    sqlx::query("ANALYZE monitors").execute(&mut conn).await?;
    sqlx::Connection::close(conn).await.ok();

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("archive.tar.gz");
    let file = std::fs::File::create(&path)?;
    let started = Instant::now();
    let exported = tenantry_archive::export(engine, &record, file, &Quiet).await?;
    exported.out.sync_all()?;
    let export_time = started.elapsed();
    let rows: u64 = exported.manifest.files.iter().map(|f| f.rows).sum();
    let bytes = std::fs::metadata(&path)?.len();
    println!(
        "    export:               {} for {rows} rows: {:.0} rows/s, a {:.1} MB archive",
        fmt(export_time),
        per_second(rows, export_time),
        bytes as f64 / 1e6
    );
    let mut out = vec![Row::info(
        format!("(f) export, {monitors} monitors (shared tier)"),
        format!(
            "{:.0} rows/s ({}, {:.1} MB)",
            per_second(rows, export_time),
            fmt(export_time),
            bytes as f64 / 1e6
        ),
    )];
    for tier in [Isolation::Shared, Isolation::Schema, Isolation::Database] {
        let started = Instant::now();
        let report = tenantry_archive::import(
            engine,
            &path,
            &ImportOptions {
                slug: format!("imported-{tier}"),
                isolation: tier,
                name: None,
            },
            &Quiet,
        )
        .await
        .with_context(|| format!("failed to import into the {tier} tier"))?;
        let took = started.elapsed();
        let restored: u64 = report.tables.iter().map(|(_, n)| n).sum();
        anyhow::ensure!(
            restored as i64 > monitors,
            "the import into the {tier} tier restored {restored} rows"
        );
        println!(
            "    import into {:<9} {} for {rows} rows: {:.0} rows/s",
            format!("{tier}:"),
            fmt(took),
            per_second(rows, took)
        );
        out.push(Row::info(
            format!("(f) import into the {tier} tier"),
            format!("{:.0} rows/s ({})", per_second(rows, took), fmt(took)),
        ));
    }
    Ok(out)
}

fn per_second(rows: u64, took: Duration) -> f64 {
    rows as f64 / took.as_secs_f64().max(1e-9)
}
