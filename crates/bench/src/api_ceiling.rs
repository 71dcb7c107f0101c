//! The database side of benchmark (i): the ceiling, which is the read's door transaction sent
//! straight to the server's PostgreSQL by clients of the benchmark, and the count of transactions
//! PostgreSQL committed or rolled back.
//!
//! A ceiling client holds one connection as the role the server's requests use (the runtime role,
//! or for the database tier the tenant's own role, in the tenant's own database) and runs what a
//! read request runs through the door, round trip for round trip: `BEGIN READ ONLY` with the two
//! `SET LOCAL`s in one simple-query message, the read of one monitor by tenant and id (prepared
//! once, as the server's statement cache does), `COMMIT`. It skips everything around it (HTTP,
//! authentication, the pool, JSON), so its rate is what PostgreSQL can give these reads on this
//! machine with the same number of clients.
//!
//! The second form, [`Protocol::Statements`], is the ceiling as `pgbench -M prepared` measures
//! it with the door's five statements as its script (`BEGIN READ ONLY`, each `SET LOCAL`, the
//! read, `COMMIT`): each prepared once and run in a round trip of its own. Next to the first, it
//! shows what the door's merging of `BEGIN` and the settings into one message is worth.

use std::collections::BTreeMap;

use anyhow::Context;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, PgConnection};
use tenantry_tenancy::quote_ident;
use uuid::Uuid;

use crate::api_load::{Answer, Client};
use crate::api_setup::Org;

/// The columns the server reads for `GET /api/v1/monitors/{id}` (`tenantry_monitoring::get`).
const MONITOR_READ: &str = "SELECT id, name, kind, target, interval_seconds, timeout_seconds, \
    keyword, enabled, status, confirmations, last_checked_at, last_ping_at, agent_id, \
    created_at, updated_at FROM monitors WHERE tenant_id = $1 AND id = $2";

/// How a ceiling client sends the door's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Round trip for round trip as the server sends it: three.
    AsServer,
    /// Each of the five statements prepared and run on its own, as `pgbench -M prepared` runs a
    /// script: five round trips.
    Statements,
}

/// One ceiling client.
pub struct DoorClient {
    options: PgConnectOptions,
    protocol: Protocol,
    begin: String,
    settings: [String; 2],
    tenant: Uuid,
    monitor: Uuid,
    conn: Option<PgConnection>,
}

impl DoorClient {
    /// Connects now, so that connecting is not part of the run.
    pub async fn connect(
        options: PgConnectOptions,
        org: &Org,
        protocol: Protocol,
    ) -> anyhow::Result<Self> {
        let options = options.disable_statement_logging();
        let conn = options.connect().await.with_context(|| {
            format!(
                "failed to connect to {} as {} for the ceiling",
                org.database, org.role
            )
        })?;
        let settings = [
            format!("SET LOCAL app.tenant_id = '{}'", org.id),
            format!("SET LOCAL search_path = {}", quote_ident(&org.schema)),
        ];
        Ok(Self {
            options,
            protocol,
            // As `TenantCtx::begin_read` writes it.
            begin: format!(
                "BEGIN READ ONLY; SET LOCAL app.tenant_id = '{}'; SET LOCAL search_path = {}",
                org.id,
                quote_ident(&org.schema)
            ),
            settings,
            tenant: org.id,
            monitor: org.monitor,
            conn: Some(conn),
        })
    }

    async fn transaction(&mut self) -> anyhow::Result<bool> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(self.options.connect().await?),
        };
        let read = sqlx::query(MONITOR_READ)
            .bind(self.tenant)
            .bind(self.monitor);
        let row = match self.protocol {
            Protocol::AsServer => {
                // Text without arguments goes as one simple-query message, as the door sends it.
                conn.execute(self.begin.as_str()).await?;
                let row = read.fetch_optional(&mut *conn).await?;
                conn.execute("COMMIT").await?;
                row
            }
            Protocol::Statements => {
                // `sqlx::query` prepares each text once per connection and then binds and
                // executes it: one round trip per statement.
                sqlx::query("BEGIN READ ONLY").execute(&mut *conn).await?;
                for setting in &self.settings {
                    sqlx::query(setting).execute(&mut *conn).await?;
                }
                let row = read.fetch_optional(&mut *conn).await?;
                sqlx::query("COMMIT").execute(&mut *conn).await?;
                row
            }
        };
        Ok(row.is_some())
    }
}

impl Client for DoorClient {
    async fn op(&mut self) -> Answer {
        match self.transaction().await {
            Ok(true) => Answer::Ok,
            Ok(false) => Answer::Wrong("no row".to_string()),
            Err(e) => {
                // Whatever state the connection is in, it is not reused.
                self.conn = None;
                Answer::Failed(format!("{e:#}"))
            }
        }
    }

    fn reset(&mut self) {
        self.conn = None;
    }
}

/// Transactions PostgreSQL has counted, by database.
#[derive(Debug, Clone, Default)]
pub struct Counts(BTreeMap<String, i64>);

impl Counts {
    pub fn total(&self) -> i64 {
        self.0.values().sum()
    }

    /// The transactions counted since `earlier`, by database, busiest first (databases with
    /// none left out).
    pub fn since(&self, earlier: &Counts) -> Vec<(String, i64)> {
        let mut delta: Vec<(String, i64)> = self
            .0
            .iter()
            .map(|(db, n)| (db.clone(), n - earlier.0.get(db).copied().unwrap_or(0)))
            .filter(|(_, n)| *n != 0)
            .collect();
        delta.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        delta
    }
}

/// Transactions PostgreSQL has counted, in every database.
pub struct TransactionCounter {
    conn: PgConnection,
}

impl TransactionCounter {
    pub async fn connect(options: PgConnectOptions) -> anyhow::Result<Self> {
        let conn = options
            .disable_statement_logging()
            .connect()
            .await
            .context("failed to connect to read pg_stat_database")?;
        Ok(Self { conn })
    }

    /// `xact_commit + xact_rollback` of every database in `pg_stat_database`, as flushed so
    /// far. Each read is one transaction of its own, counted in a later read.
    pub async fn read(&mut self) -> anyhow::Result<Counts> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT coalesce(datname, '(shared objects)'), (xact_commit + xact_rollback)::bigint
             FROM pg_stat_database",
        )
        .fetch_all(&mut self.conn)
        .await
        .context("failed to read pg_stat_database")?;
        Ok(Counts(rows.into_iter().collect()))
    }

    /// The server's version and durability settings.
    pub async fn server(&mut self) -> anyhow::Result<String> {
        let (version, fsync, sync_commit): (String, String, String) = sqlx::query_as(
            "SELECT current_setting('server_version'), current_setting('fsync'),
                    current_setting('synchronous_commit')",
        )
        .fetch_one(&mut self.conn)
        .await?;
        Ok(format!(
            "PostgreSQL {version} (fsync = {fsync}, synchronous_commit = {sync_commit})"
        ))
    }

    pub async fn close(self) {
        self.conn.close().await.ok();
    }
}
