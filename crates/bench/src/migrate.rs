//! Benchmarks (b) and (c): fleet migrations. (b) times `migrate_fleet` over a fleet with nothing
//! pending, which must be decided from the registry without connecting to any tenant; (c) times a
//! real migration (a column and an index) over a fleet of schema-tier tenants.

use std::time::{Duration, Instant};

use anyhow::ensure;
use tenantry_tenancy::{Isolation, Quiet, Tenancy};

use crate::report::Row;
use crate::seed::{SEED_CONCURRENCY, Seeded, create_many};
use crate::setup::Bench;
use crate::stats::{Summary, fmt};

/// The `jobs` argument of the no-op fleet migration.
const NOOP_JOBS: usize = 8;
/// How many times the no-op migration is repeated after the first, timed, run.
const NOOP_REPEATS: usize = 10;
/// The `jobs` argument of the real fleet migration.
const MIGRATE_JOBS: usize = 4;
const NOTE_NAME: &str = "bench_add_note";
const NOTE_SQL: &str = "ALTER TABLE monitors ADD COLUMN note text; \
                        CREATE INDEX monitors_note_idx ON monitors (tenant_id, note);";

/// (b) A no-op `migrate_fleet` over a mixed fleet: 80 % schema, 18 % shared, 2 % database tier.
pub async fn noop(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let total = bench.sizes.noop_fleet;
    let database = (total / 50).max(1);
    let shared = total * 18 / 100;
    let schema = total - shared - database;
    let mix = [
        (Isolation::Schema, schema),
        (Isolation::Shared, shared),
        (Isolation::Database, database),
    ];
    println!();
    println!(
        "[b] No-op migrate_fleet({NOOP_JOBS}) over {total} tenants ({schema} schema, {shared} shared, {database} database tier)"
    );
    let engine = bench.open("noop", tenantry_app::tenant_schema()).await?;
    let seeded = create_many(&engine, "noop", &mix, SEED_CONCURRENCY).await?;
    print_seeding(total, &seeded);
    let listed = engine.list().await?.len();
    ensure!(
        listed == total,
        "the registry lists {listed} tenants, not {total}"
    );

    let mut samples = Vec::with_capacity(NOOP_REPEATS + 1);
    let mut all_noop = true;
    for _ in 0..=NOOP_REPEATS {
        let start = Instant::now();
        let report = engine.migrate_fleet(NOOP_JOBS, &Quiet).await?;
        samples.push(start.elapsed());
        all_noop &= report.noop && report.migrated.is_empty() && report.failed.is_empty();
    }
    let first = samples[0];
    let repeats = Summary::of(&samples[1..])?;
    println!(
        "    first run {}, noop = {all_noop}; {NOOP_REPEATS} repeats: {}",
        fmt(first),
        repeats.line()
    );
    bench.discard(engine).await?;
    Ok(vec![
        seeding_row("(b)", total, &seeded),
        Row::judged(
            format!("(b) no-op migrate_fleet({NOOP_JOBS}), {total} tenants, first run"),
            format!("{} (noop = {all_noop})", fmt(first)),
            "< 1 s, noop",
            first < Duration::from_secs(1) && all_noop,
        ),
        Row::info(
            format!("(b) the same, median of {NOOP_REPEATS} repeats"),
            fmt(repeats.p50),
        ),
    ])
}

/// (c) A real migration over a fleet of schema-tier tenants, created with the built-in tenant
/// schema and then migrated by an engine opened with the extended set.
pub async fn real(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let total = bench.sizes.migrate_fleet;
    println!();
    println!(
        "[c] Real migration ({NOTE_NAME}: a column and an index) over {total} schema-tier tenants, migrate_fleet({MIGRATE_JOBS})"
    );
    let config = bench.config("migrate");
    let before = Tenancy::open_with(config.clone(), tenantry_app::tenant_schema()).await?;
    let seeded = create_many(
        &before,
        "mig",
        &[(Isolation::Schema, total)],
        SEED_CONCURRENCY,
    )
    .await?;
    print_seeding(total, &seeded);
    before.close().await;
    drop(before);

    let set = tenantry_app::tenant_schema().with("monitoring", NOTE_NAME, NOTE_SQL);
    let latest = set.latest();
    let engine = Tenancy::open_with(config, set).await?;
    let start = Instant::now();
    let report = engine.migrate_fleet(MIGRATE_JOBS, &Quiet).await?;
    let took = start.elapsed();
    for (slug, error) in report.failed.iter().take(5) {
        println!("    FAILED {slug}: {error}");
    }
    // Every tenant schema and the shared schema should now have the index.
    let indexes: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_indexes WHERE indexname = 'monitors_note_idx'")
            .fetch_one(tenantry_tenancy::Operator::new(&engine).control())
            .await?;
    let again = engine.migrate_fleet(MIGRATE_JOBS, &Quiet).await?;
    let complete = report.failed.is_empty()
        && report.migrated.len() == total
        && report.latest == latest
        && report.shared_to == latest
        && indexes == i64::try_from(total)? + 1
        && again.noop;
    println!(
        "    {} in {}: {} migrated, {} failed, shared schema {} -> {}, {indexes} indexes built, \
         a second run is a no-op: {}",
        NOTE_NAME,
        fmt(took),
        report.migrated.len(),
        report.failed.len(),
        report.shared_from,
        report.shared_to,
        again.noop
    );
    println!(
        "    {:.1} ms per tenant, {:.1} tenants/s",
        took.as_secs_f64() * 1e3 / total as f64,
        total as f64 / took.as_secs_f64()
    );
    bench.discard(engine).await?;
    Ok(vec![
        seeding_row("(c)", total, &seeded),
        Row::judged(
            format!("(c) migrate_fleet({MIGRATE_JOBS}), column + index, {total} schema tenants"),
            format!(
                "{} ({} migrated, {} failed)",
                fmt(took),
                report.migrated.len(),
                report.failed.len()
            ),
            "< 60 s, no failures",
            took < Duration::from_secs(60) && complete,
        ),
    ])
}

fn print_seeding(total: usize, seeded: &Seeded) {
    println!(
        "    seeded {total} tenants in {} ({:.1} tenants/s, {SEED_CONCURRENCY} at a time)",
        fmt(seeded.took),
        total as f64 / seeded.took.as_secs_f64()
    );
    if let Some(error) = &seeded.first_error {
        println!(
            "    {} create_tenant calls failed and were resumed by calling again; the first: {error}",
            seeded.resumed
        );
    }
}

fn seeding_row(section: &str, total: usize, seeded: &Seeded) -> Row {
    Row::info(
        format!("{section} seeding: create_tenant x {total}, {SEED_CONCURRENCY} at a time"),
        format!(
            "{} ({:.1}/s, {} resumed)",
            fmt(seeded.took),
            total as f64 / seeded.took.as_secs_f64(),
            seeded.resumed
        ),
    )
}
