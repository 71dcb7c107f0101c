//! Notes: a toy multi-tenant application on the tenancy engine alone.
//!
//! It registers its own tenant table (`notes`, and an append-only `ledger`), creates one tenant
//! in each isolation tier, writes and reads through the door, shows that one tenant cannot see
//! another's rows, moves a tenant between tiers while keeping its data, ships a new migration to
//! the whole fleet, and removes what it made.
//!
//! ```text
//! cargo run -p tenantry-tenancy --example notes -- postgres://me@localhost/postgres
//! ```
//!
//! The URL names a PostgreSQL role with CREATEDB and CREATEROLE (`DATABASE_URL` works too). The
//! example makes a control database `notes_example`, roles prefixed `notes_`, and one database for
//! the database-tier tenant; it removes its tenants when it is done.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use tenantry_tenancy::{
    EngineConfig, Isolation, MigrationSet, MoveOptions, NewTenant, PgConnectOptions, PoolConfig,
    Quiet, Slug, Tenancy, TenantCtx, TenantSchema, TenantSet,
};
use uuid::Uuid;

/// The application's tenant tables: one migration set, applied after the engine's own.
fn schema() -> TenantSchema {
    TenantSchema::new([TenantSet::new(
        "notes",
        MigrationSet::from_files(&[
            ("notes/0001_notes.sql", include_str!("notes/0001_notes.sql")),
            (
                "notes/0002_ledger.sql",
                include_str!("notes/0002_ledger.sql"),
            ),
        ]),
    )])
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .context(
            "give the URL of a PostgreSQL role with CREATEDB and CREATEROLE, as the first \
             argument or in DATABASE_URL",
        )?;
    let config = EngineConfig {
        owner: PgConnectOptions::from_str(&url).context("not a PostgreSQL URL")?,
        control_database: "notes_example".to_string(),
        prefix: "notes".to_string(),
        pools: PoolConfig::default(),
    };

    // Opening creates the control database and the runtime role, and migrates.
    let engine = Tenancy::open_with(config.clone(), schema()).await?;
    println!("opened; tenant schema at {}", engine.schema().latest());

    // One tenant in each tier. Slugs are unique across runs, so the example can run again.
    let run = &Uuid::new_v4().simple().to_string()[..8];
    let mut slugs = Vec::new();
    for (name, tier) in [
        ("acme", Isolation::Shared),
        ("globex", Isolation::Schema),
        ("initech", Isolation::Database),
    ] {
        let record = engine
            .create_tenant(&NewTenant {
                name: name.to_string(),
                slug: Slug::parse(&format!("{name}-{run}"))?,
                isolation: tier,
                plan: None,
                server: None,
            })
            .await?;
        println!(
            "created {} in the {} tier (database {}, schema {})",
            record.slug, record.isolation, record.database_name, record.schema_name
        );
        slugs.push(record.slug);
    }
    let (acme, globex) = (&slugs[0], &slugs[1]);

    // Every read and write of tenant data goes through a TenantTx: the tenant's storage, its
    // row-level security context, and nothing else.
    for slug in &slugs {
        let ctx = engine.resolve(slug).await?;
        add_note(&ctx, &format!("hello from {slug}")).await?;
    }
    let acme_ctx = engine.resolve(acme).await?;
    add_note(&acme_ctx, "a second note").await?;
    for slug in &slugs {
        let names = note_names(&engine.resolve(slug).await?).await?;
        println!("{slug} sees {names:?}");
        let greeting = format!("hello from {slug}");
        anyhow::ensure!(
            names
                .iter()
                .filter(|n| n.starts_with("hello from"))
                .eq([&greeting]),
            "{slug} saw another tenant's note"
        );
    }

    // A tenant moves between tiers while in use; its rows come along, checked by checksum.
    let report = engine
        .move_tenant(
            acme,
            Isolation::Database,
            &MoveOptions {
                drain: Duration::ZERO,
                ..MoveOptions::default()
            },
            &|_| {},
        )
        .await?;
    println!(
        "moved {} from {} to {}: {} rows, writes paused {:.1} ms",
        report.slug, report.from, report.to, report.rows_copied, report.write_pause_ms
    );
    // A writer holding a context from before the move is sent to the new placement by the
    // write gate; a context resolved now names the new placement.
    add_note(&acme_ctx, "written after the move").await?;
    let moved = engine.resolve(acme).await?;
    anyhow::ensure!(moved.isolation() == Isolation::Database);
    anyhow::ensure!(note_names(&moved).await?.len() == 3, "a note was lost");

    // A new migration, applied to the shared schema once and to every other tenant's storage.
    engine.close().await;
    let next = schema().with(
        "notes",
        "notes/0003_labels.sql",
        "ALTER TABLE notes ADD COLUMN label text",
    );
    let engine = Tenancy::open_with(config, next).await?;
    let migrated = engine.migrate_fleet(4, &Quiet).await?;
    anyhow::ensure!(migrated.failed.is_empty(), "{:?}", migrated.failed);
    println!(
        "migrated the fleet to {} ({} tenants with storage of their own)",
        migrated.latest,
        migrated.migrated.len()
    );
    let mut tx = engine.resolve(globex).await?.begin().await?;
    sqlx::query("UPDATE notes SET label = 'migrated'")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;

    // Removing a tenant drops its rows, schema or database, and role.
    for slug in &slugs {
        engine.hard_delete(slug, slug).await?;
    }
    println!("removed {} tenants", slugs.len());
    engine.close().await;
    Ok(())
}

async fn add_note(ctx: &TenantCtx, name: &str) -> anyhow::Result<()> {
    let mut tx = ctx.begin().await?;
    sqlx::query("INSERT INTO notes (tenant_id, id, name) VALUES ($1, $2, $3)")
        .bind(ctx.tenant_id().as_uuid())
        .bind(Uuid::now_v7())
        .bind(name)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO ledger (tenant_id, seq, entry)
         SELECT $1, coalesce(max(seq), 0) + 1, $2 FROM ledger",
    )
    .bind(ctx.tenant_id().as_uuid())
    .bind(format!("added {name:?}"))
    .execute(&mut *tx)
    .await?;
    Ok(tx.commit().await?)
}

async fn note_names(ctx: &TenantCtx) -> anyhow::Result<Vec<String>> {
    let mut tx = ctx.begin_read().await?;
    let names = sqlx::query_scalar("SELECT name FROM notes ORDER BY created_at, id")
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(names)
}
