//! The ways benchmark (d) performs its read, and the data it reads: a shared-tier tenant's 100
//! monitors, and an unprotected copy of them for the plain transaction.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use sqlx::PgPool;
use tenantry_tenancy::{Naming, SHARED_SCHEMA, TenantCtx, quote_ident};
use uuid::Uuid;

pub const MONITORS: i64 = 100;
pub const LIMIT: usize = 20;
const TENANT_READ: &str =
    "SELECT id, name FROM monitors WHERE tenant_id = $1 ORDER BY created_at LIMIT 20";
const PLAIN_READ: &str =
    "SELECT id, name FROM bench_plain.monitors WHERE tenant_id = $1 ORDER BY created_at LIMIT 20";

/// One way of doing the read: begin, read 20 rows, commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Through the door: `TenantCtx::begin`, the table under row-level security.
    Door,
    /// A plain `BEGIN` on the same runtime pool, the unprotected copy.
    Plain,
    /// Diagnostic: the door's own `BEGIN` statement (`BEGIN; SET LOCAL …`) on the same pool, the
    /// unprotected copy. Separates the cost of that statement from that of RLS.
    DoorBegin,
    /// Diagnostic: the same two settings made by `SELECT set_config(…)` instead, the unprotected
    /// copy: what the alternative statement costs.
    SetConfigBegin,
}

impl Path {
    pub const ALL: [Path; 4] = [
        Path::Door,
        Path::Plain,
        Path::DoorBegin,
        Path::SetConfigBegin,
    ];

    pub fn index(self) -> usize {
        match self {
            Path::Door => 0,
            Path::Plain => 1,
            Path::DoorBegin => 2,
            Path::SetConfigBegin => 3,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Path::Door => "TenantTx (door)",
            Path::Plain => "plain transaction",
            Path::DoorBegin => "plain, begun with the door's statement",
            Path::SetConfigBegin => "plain, begun with SELECT set_config",
        }
    }
}

/// Everything the paths need.
pub struct Probe<'a> {
    pub ctx: &'a TenantCtx,
    pub pool: &'a PgPool,
    pub tenant: Uuid,
    door_begin: String,
    set_config_begin: String,
}

impl<'a> Probe<'a> {
    pub fn new(ctx: &'a TenantCtx, pool: &'a PgPool, tenant: Uuid) -> Self {
        let schema = quote_ident(SHARED_SCHEMA);
        Self {
            ctx,
            pool,
            tenant,
            // As `TenantCtx::begin` writes it.
            door_begin: format!(
                "BEGIN; SET LOCAL app.tenant_id = '{tenant}'; SET LOCAL search_path = {schema}"
            ),
            // The alternative: the same settings made by a SELECT of `set_config` calls.
            set_config_begin: format!(
                "BEGIN; SELECT set_config('app.tenant_id', '{tenant}', true), \
                 set_config('search_path', '{schema}', true)"
            ),
        }
    }

    /// Performs the read once along `path`; returns how long it took.
    pub async fn op(&self, path: Path) -> anyhow::Result<Duration> {
        match path {
            Path::Door => self.door_op().await,
            Path::Plain => self.plain_op(None).await,
            Path::DoorBegin => self.plain_op(Some(&self.door_begin)).await,
            Path::SetConfigBegin => self.plain_op(Some(&self.set_config_begin)).await,
        }
    }

    /// One request's worth of work through the door: begin (a reading transaction, as read
    /// requests open), read, commit.
    async fn door_op(&self) -> anyhow::Result<Duration> {
        let start = Instant::now();
        let mut tx = self.ctx.begin_read().await?;
        let rows: Vec<(Uuid, String)> = sqlx::query_as(TENANT_READ)
            .bind(self.tenant)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let took = start.elapsed();
        ensure!(rows.len() == LIMIT, "the TenantTx read {} rows", rows.len());
        Ok(took)
    }

    /// The same work in a plain transaction on the same pool, begun with `begin` when given.
    async fn plain_op(&self, begin: Option<&str>) -> anyhow::Result<Duration> {
        let start = Instant::now();
        let mut tx = match begin {
            Some(statement) => self.pool.begin_with(statement.to_string()).await?,
            None => self.pool.begin().await?,
        };
        let rows: Vec<(Uuid, String)> = sqlx::query_as(PLAIN_READ)
            .bind(self.tenant)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let took = start.elapsed();
        ensure!(rows.len() == LIMIT, "the plain read {} rows", rows.len());
        Ok(took)
    }
}

/// Inserts the tenant's monitors through the door, a minute apart.
pub async fn fill(ctx: &TenantCtx, tenant: Uuid) -> anyhow::Result<()> {
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
pub async fn copy_unprotected(owner: &PgPool, naming: &Naming, tenant: Uuid) -> anyhow::Result<()> {
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
