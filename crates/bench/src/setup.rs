//! The PostgreSQL the benchmark runs on and the engines it opens there.
//!
//! By default a throwaway managed cluster is started in a short temporary folder under `/tmp`
//! (with `fsync` on, as in production) and its owner role is created by
//! [`tenantry_tenancy::managed_owner`], exactly as the server does. With
//! `TENANTRY_BENCH_DATABASE_URL` set to a superuser URL, that server is used instead and the owner
//! role is created the way the test kit does it, without taking the superuser's login away. Every
//! benchmark opens its own control database, named `bench_<run>_<what>`, so runs never share state.

use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, anyhow};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tempfile::TempDir;
use tenantry_pg::{ClusterOptions, ManagedCluster};
use tenantry_tenancy::{
    EngineConfig, Isolation, Naming, PoolConfig, Tenancy, TenantSchema, managed_owner, quote_ident,
};

pub const URL_VAR: &str = "TENANTRY_BENCH_DATABASE_URL";
/// Set to anything to run every benchmark on a tenth of its size (for trying the program out).
pub const QUICK_VAR: &str = "TENANTRY_BENCH_QUICK";
/// Set to letters (`de`, `e`) to run only those benchmarks.
pub const ONLY_VAR: &str = "TENANTRY_BENCH_ONLY";
pub const PREFIX: &str = "bench";

/// Where PostgreSQL comes from.
pub enum Server {
    Managed {
        cluster: ManagedCluster,
        dir: TempDir,
    },
    External {
        url: String,
    },
}

impl Server {
    /// Uses `TENANTRY_BENCH_DATABASE_URL` when set, else starts a throwaway managed cluster.
    pub fn start() -> anyhow::Result<Self> {
        if let Ok(url) = std::env::var(URL_VAR) {
            println!("PostgreSQL: the server at {URL_VAR}");
            return Ok(Self::External { url });
        }
        // A short path: PostgreSQL's socket path must fit in 107 bytes.
        let dir = tempfile::Builder::new()
            .prefix("tenantry-bench-")
            .tempdir_in("/tmp")
            .context("failed to create a folder for the benchmark cluster")?;
        println!(
            "PostgreSQL: a throwaway managed cluster in {} (fsync on)",
            dir.path().display()
        );
        let cluster = ManagedCluster::acquire(
            dir.path(),
            &ClusterOptions {
                ephemeral: false,
                max_connections: 300,
                ..ClusterOptions::default()
            },
        )
        .context("failed to start the benchmark cluster")?;
        Ok(Self::Managed { cluster, dir })
    }

    fn superuser_url(&self) -> String {
        match self {
            Self::Managed { cluster, .. } => cluster.superuser_url("postgres"),
            Self::External { url } => url.clone(),
        }
    }

    /// Stops a managed cluster and removes its folder. Should stopping fail, the folder is kept
    /// (PostgreSQL may still run in it) and named in the error.
    pub fn release(self) -> anyhow::Result<()> {
        match self {
            Self::External { .. } => Ok(()),
            Self::Managed { cluster, dir } => match cluster.release() {
                Ok(_) => dir
                    .close()
                    .context("failed to remove the benchmark cluster"),
                Err(e) => {
                    let kept = dir.keep();
                    Err(anyhow!(e).context(format!(
                        "failed to stop the benchmark cluster; its files are kept in {}",
                        kept.display()
                    )))
                }
            },
        }
    }
}

/// Whether benchmark `letter` (`a` to `k`) runs: all of them unless `TENANTRY_BENCH_ONLY` names
/// some.
pub fn only() -> impl Fn(char) -> bool {
    let only = std::env::var(ONLY_VAR)
        .ok()
        .filter(|o| !o.trim().is_empty());
    if let Some(only) = &only {
        println!("  {ONLY_VAR}: only ({only})");
    }
    move |letter| only.as_ref().is_none_or(|o| o.contains(letter))
}

/// Whether `TENANTRY_BENCH_QUICK` is set.
pub fn quick() -> bool {
    std::env::var_os(QUICK_VAR).is_some()
}

/// How big each benchmark is.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub provision_per_tier: usize,
    pub noop_fleet: usize,
    pub migrate_fleet: usize,
    pub door_ops: usize,
    /// Rate-limit checks against Redis (50 times as many in process).
    pub limiter_ops: usize,
    pub quick: bool,
}

impl Sizes {
    fn from_env() -> Self {
        let quick = quick();
        let scale = |n: usize| if quick { (n / 10).max(2) } else { n };
        Self {
            provision_per_tier: scale(20),
            noop_fleet: scale(1_000),
            migrate_fleet: scale(500),
            door_ops: scale(5_000),
            limiter_ops: scale(20_000),
            quick,
        }
    }
}

/// The owner role's connection options and the run's naming.
pub struct Bench {
    owner: PgConnectOptions,
    run: String,
    external: bool,
    pub sizes: Sizes,
}

impl Bench {
    /// Creates (or finds) the owner role through the superuser.
    pub async fn connect(server: &Server) -> anyhow::Result<Self> {
        let superuser = PgConnectOptions::from_str(&server.superuser_url())
            .with_context(|| format!("{URL_VAR} is not a PostgreSQL URL"))?
            .database("postgres")
            .disable_statement_logging();
        let naming = Naming::new(PREFIX)?;
        let external = matches!(server, Server::External { .. });
        let owner = if external {
            external_owner(&superuser, &naming).await?
        } else {
            managed_owner(&superuser, &naming).await?
        };
        let run = uuid::Uuid::new_v4().simple().to_string()[..6].to_string();
        Ok(Self {
            owner: owner.database("postgres"),
            run,
            external,
            sizes: Sizes::from_env(),
        })
    }

    /// The engine configuration of the control database for the benchmark `what`.
    pub fn config(&self, what: &str) -> EngineConfig {
        EngineConfig {
            owner: self.owner.clone(),
            control_database: format!("{PREFIX}_{}_{what}", self.run),
            prefix: PREFIX.to_string(),
            pools: PoolConfig::default(),
        }
    }

    /// Opens an engine on a control database of its own.
    pub async fn open(&self, what: &str, schema: TenantSchema) -> anyhow::Result<Tenancy> {
        Tenancy::open_with(self.config(what), schema)
            .await
            .with_context(|| format!("failed to open the engine for {what}"))
    }

    /// Closes an engine. On a server that is not throwaway, also removes its database-tier
    /// tenants and its control database.
    pub async fn discard(&self, engine: Tenancy) -> anyhow::Result<()> {
        if !self.external {
            engine.close().await;
            return Ok(());
        }
        for record in engine.list().await? {
            if record.isolation == Isolation::Database {
                engine.hard_delete(&record.slug, &record.slug).await?;
            }
        }
        engine.close().await;
        let control = engine.control_database().to_string();
        drop(engine);
        let mut conn = self.owner.connect().await?;
        sqlx::raw_sql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&control)
        ))
        .execute(&mut conn)
        .await
        .with_context(|| format!("failed to drop the control database {control}"))?;
        conn.close().await.ok();
        Ok(())
    }

    /// Prints the server's version and durability settings, as the owner sees them.
    pub async fn print_server(&self) -> anyhow::Result<()> {
        let mut conn = self
            .owner
            .connect()
            .await
            .context("failed to connect as the owner role")?;
        let (version, fsync, sync_commit): (String, String, String) = sqlx::query_as(
            "SELECT current_setting('server_version'), current_setting('fsync'),
                    current_setting('synchronous_commit')",
        )
        .fetch_one(&mut conn)
        .await?;
        conn.close().await.ok();
        println!(
            "  server:          PostgreSQL {version} (fsync = {fsync}, synchronous_commit = {sync_commit})"
        );
        if self.sizes.quick {
            println!("  QUICK MODE ({QUICK_VAR}): every benchmark at a tenth of its size");
        }
        Ok(())
    }
}

/// As the test kit does: a login role with CREATEDB and CREATEROLE that may connect to
/// `postgres`. The superuser keeps its login, since the server is not ours.
async fn external_owner(
    superuser: &PgConnectOptions,
    naming: &Naming,
) -> anyhow::Result<PgConnectOptions> {
    let mut conn = superuser
        .connect()
        .await
        .with_context(|| format!("failed to connect with {URL_VAR}"))?;
    let role = naming.owner_role();
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(&role)
            .fetch_one(&mut conn)
            .await?;
    let quoted = quote_ident(&role);
    if !exists {
        sqlx::raw_sql(&format!("CREATE ROLE {quoted} LOGIN CREATEDB CREATEROLE"))
            .execute(&mut conn)
            .await
            .context("failed to create the owner role")?;
    }
    sqlx::raw_sql(&format!(
        "GRANT pg_signal_backend TO {quoted}; GRANT CONNECT ON DATABASE postgres TO {quoted};"
    ))
    .execute(&mut conn)
    .await
    .context("failed to grant the owner role its privileges")?;
    conn.close().await.ok();
    Ok(superuser.clone().username(&role))
}

/// How long to wait for a Ctrl-C to be honoured before the cluster is stopped anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
