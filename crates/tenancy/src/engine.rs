//! [`Tenancy`], the engine's handle: opened once per process, cheap to clone. It owns the pools,
//! resolves tenants into [`TenantCtx`]s, and carries the provisioning, lifecycle and fleet
//! operations implemented in their own modules.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use sqlx::ConnectOptions;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Postgres};
use tokio::sync::Semaphore;

use crate::bootstrap;
use crate::cache::{Cache, Caches};
use crate::config::{EngineConfig, PoolConfig};
use crate::door::TenantCtx;
use crate::error::TenancyError;
use crate::handles::ControlDb;
use crate::ids::{Isolation, TenantId, TenantStatus};
use crate::migrations::MigrationSet;
use crate::naming::{CONTROL_SCHEMA, Naming, SHARED_SCHEMA, is_plain_identifier};
use crate::pools::{self, ConnectionState, PoolStats, TenantPools};
use crate::registry::{self, TenantRecord};
use crate::schema::{SchemaVersions, TenantSchema};
use crate::secrets::RoleKey;
use crate::servers::{DEFAULT_SERVER, Server, Servers};

/// An owner connection to a tenant's storage: from the control pool, or opened to the tenant's
/// own database (close it with [`StorageConn::close`]).
pub(crate) enum StorageConn {
    Pooled(PoolConnection<Postgres>),
    Direct(PgConnection),
}

impl StorageConn {
    pub async fn close(self) {
        if let StorageConn::Direct(conn) = self {
            conn.close().await.ok();
        }
    }
}

impl std::ops::Deref for StorageConn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        match self {
            StorageConn::Pooled(conn) => conn,
            StorageConn::Direct(conn) => conn,
        }
    }
}

impl std::ops::DerefMut for StorageConn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self {
            StorageConn::Pooled(conn) => conn,
            StorageConn::Direct(conn) => conn,
        }
    }
}

/// Fills the per-set versions of registry rows written by releases before tenant migration sets,
/// from their single version.
async fn adopt_single_set_versions(
    conn: &mut PgConnection,
    schema: &TenantSchema,
) -> anyhow::Result<()> {
    for (table, single, versions) in [
        ("tenants", "schema_version", "schema_versions"),
        ("schema_scopes", "version", "versions"),
    ] {
        let legacy: Vec<i32> = sqlx::query_scalar(&format!(
            "SELECT DISTINCT {single} FROM control.{table} WHERE {versions} IS NULL"
        ))
        .fetch_all(&mut *conn)
        .await?;
        for version in legacy {
            sqlx::query(&format!(
                "UPDATE control.{table} SET {versions} = $2 WHERE {versions} IS NULL AND {single} = $1"
            ))
            .bind(version)
            .bind(sqlx::types::Json(schema.legacy_versions(version)))
            .execute(&mut *conn)
            .await
            .with_context(|| format!("failed to record the versions of control.{table} per set"))?;
        }
    }
    Ok(())
}

/// An application's own tables in the control database (users, sessions...): a schema of their
/// own, migrated when the engine opens, read and written by the runtime role.
#[derive(Debug, Clone)]
pub struct ControlSchema {
    pub name: &'static str,
    pub migrations: MigrationSet,
}

#[derive(Clone)]
pub struct Tenancy {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Tenancy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenancy")
            .field("prefix", &self.inner.naming.prefix())
            .field("control_database", &self.inner.control_database)
            .finish()
    }
}

pub(crate) struct Inner {
    pub naming: Naming,
    pub control_database: String,
    /// Owner-role options pointing at the control database.
    pub owner_options: PgConnectOptions,
    pub owner_role: String,
    pub owner: PgPool,
    pub runtime: PgPool,
    /// The runtime pool, as handed out ([`Tenancy::control_db`]).
    pub control: ControlDb,
    pub tenant_pools: TenantPools,
    pub key: RoleKey,
    pub schema: TenantSchema,
    /// Tenant locks held at once: one fewer than the owner connections.
    pub lock_slots: Arc<Semaphore>,
    /// The runtime role's connections for door transactions of shared- and schema-tier tenants
    /// ([`PoolConfig::runtime_tx_max`]), apart from `runtime`, which serves everything else.
    pub door: PgPool,
    /// The process's caches of authorization data, and their invalidation.
    pub caches: Arc<Caches>,
    /// Registry records by id and by slug (both keys hold the same record).
    pub records: Arc<Cache<String, Option<TenantRecord>>>,
    /// Runtime-role options on the control database (the invalidation listener).
    pub runtime_options: PgConnectOptions,
    /// Owner-role connections handed out: pooled ones acquired, and connections of their own.
    pub owner_uses: Arc<AtomicU64>,
    /// The servers database-tier tenants live on, as reached so far.
    pub servers: Servers,
    pub pool_config: PoolConfig,
}

impl Inner {
    /// The pool of a database-tier tenant on `server`, connected as that tenant's own role.
    pub fn tenant_pool(&self, id: TenantId, server: &Server, database: &str) -> PgPool {
        self.tenant_pools
            .get(id, server, || self.tenant_options(id, server, database))
    }

    pub fn tenant_options(
        &self,
        id: TenantId,
        server: &Server,
        database: &str,
    ) -> PgConnectOptions {
        let role = self.naming.tenant_role(id);
        server
            .owner
            .clone()
            .username(&role)
            .password(&self.key.password_for(&role))
            .database(database)
    }

    /// An owner-role connection on `server` for DDL (databases and roles): pooled on the
    /// control database's server, a connection of its own elsewhere.
    pub async fn server_admin(&self, server: &str) -> Result<StorageConn, TenancyError> {
        if server == DEFAULT_SERVER {
            return Ok(StorageConn::Pooled(self.owner.acquire().await?));
        }
        let server = self.server(server).await?;
        self.owner_uses.fetch_add(1, Ordering::Relaxed);
        Ok(StorageConn::Direct(
            server.owner.connect().await.with_context(|| {
                format!(
                    "failed to connect to server {} as its owner role",
                    server.name
                )
            })?,
        ))
    }

    /// Owner-role options on the database holding a tenant's rows: its own database on its
    /// server (database tier), else the control database.
    pub async fn owner_options_at(
        &self,
        isolation: Isolation,
        server: &str,
        database: &str,
    ) -> Result<PgConnectOptions, TenancyError> {
        Ok(match isolation {
            Isolation::Database => self.server(server).await?.owner.clone().database(database),
            Isolation::Shared | Isolation::Schema => self.owner_options.clone(),
        })
    }
}

impl Tenancy {
    /// Opens the engine with its own tenant tables alone.
    pub async fn open(config: EngineConfig) -> anyhow::Result<Self> {
        Self::open_with(config, TenantSchema::default()).await
    }

    /// Opens the engine with `schema` as the tenant schema: creates the control database,
    /// migrates it, creates the runtime role, and creates the shared schema if it is new.
    pub async fn open_with(config: EngineConfig, schema: TenantSchema) -> anyhow::Result<Self> {
        Self::open_full(config, schema, &[]).await
    }

    /// Opens the engine with `schema` as the tenant schema and the application's own control
    /// schemas.
    pub async fn open_full(
        config: EngineConfig,
        schema: TenantSchema,
        app_schemas: &[ControlSchema],
    ) -> anyhow::Result<Self> {
        let naming = Naming::new(&config.prefix)?;
        // Role passwords travel in DDL text; no statement of the owner is ever logged.
        let mut config = config;
        config.owner = config.owner.disable_statement_logging();
        anyhow::ensure!(
            config.pools.owner_max >= 2,
            "the owner pool needs at least 2 connections (pool_owner_max)"
        );
        bootstrap::ensure_control_database(&config.owner, &config.control_database).await?;
        let owner_options = config.owner.clone().database(&config.control_database);
        let owner_uses = Arc::new(AtomicU64::new(0));
        let (connected, reused) = (owner_uses.clone(), owner_uses.clone());
        let owner = PgPoolOptions::new()
            .after_connect(move |_, _| {
                connected.fetch_add(1, Ordering::Relaxed);
                Box::pin(async { Ok(()) })
            })
            .before_acquire(move |_, _| {
                reused.fetch_add(1, Ordering::Relaxed);
                Box::pin(async { Ok(true) })
            })
            .max_connections(config.pools.owner_max)
            .acquire_timeout(config.pools.acquire_timeout)
            .idle_timeout(Some(Duration::from_secs(60)))
            .connect_with(owner_options.clone())
            .await
            .context("failed to connect to the control database as the owner role")?;
        let mut conn = owner.acquire().await?;
        let (key, owner_role) =
            bootstrap::prepare_control(&mut conn, &naming, &config.control_database).await?;
        adopt_single_set_versions(&mut conn, &schema).await?;
        for schema in app_schemas {
            anyhow::ensure!(
                is_plain_identifier(schema.name)
                    && ![CONTROL_SCHEMA, SHARED_SCHEMA].contains(&schema.name)
                    && !schema.name.starts_with("t_"),
                "{:?} cannot be an application schema",
                schema.name
            );
            schema
                .migrations
                .apply(&mut conn, schema.name)
                .await
                .with_context(|| format!("failed to migrate the {} schema", schema.name))?;
            bootstrap::grant_tenant_tables(&mut conn, schema.name, &naming.runtime_role()).await?;
        }
        drop(conn);
        let runtime_role = naming.runtime_role();
        let runtime_options = owner_options
            .clone()
            .username(&runtime_role)
            .password(&key.password_for(&runtime_role));
        let runtime_pool = |max: u32| {
            PgPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(config.pools.acquire_timeout)
                .idle_timeout(Some(Duration::from_secs(300)))
        };
        let runtime = runtime_pool(config.pools.runtime_max)
            .connect_with(runtime_options.clone())
            .await
            .context("failed to connect to the control database as the runtime role")?;
        // Apart, so that a door transaction's work on the side (a lookup the caches miss, a
        // row of the control schemas) never waits for a connection that door transactions
        // hold, and so that few backends, kept busy, serve the doors.
        let door = runtime_pool(config.pools.runtime_tx_max.max(1))
            .connect_lazy_with(runtime_options.clone());
        let caches = Caches::new();
        let records = Cache::new(&caches, |_, record: &Option<TenantRecord>, topic, id| {
            topic == "tenant" && record.as_ref().is_some_and(|r| r.id.to_string() == id)
        });
        let engine = Self {
            inner: Arc::new(Inner {
                naming,
                control_database: config.control_database.clone(),
                owner_options,
                owner_role,
                owner,
                control: ControlDb::new(runtime.clone()),
                runtime,
                tenant_pools: TenantPools::new(config.pools.clone()),
                key,
                schema,
                lock_slots: Arc::new(Semaphore::new(config.pools.owner_max as usize - 1)),
                door,
                caches,
                records,
                runtime_options,
                owner_uses,
                servers: Servers::with_default(Server::new(
                    DEFAULT_SERVER,
                    config.owner.clone(),
                    config.pools.tenant_connection_budget,
                )),
                pool_config: config.pools.clone(),
            }),
        };
        if engine.scope_versions(SHARED_SCHEMA).await? == SchemaVersions::default() {
            engine.migrate_shared().await?;
        }
        Ok(engine)
    }

    pub fn naming(&self) -> &Naming {
        &self.inner.naming
    }

    /// The tenant schema: the engine's set and the application's.
    pub fn schema(&self) -> &TenantSchema {
        &self.inner.schema
    }

    /// The role migrations and provisioning run as.
    pub fn owner_role(&self) -> &str {
        &self.inner.owner_role
    }

    pub fn control_database(&self) -> &str {
        &self.inner.control_database
    }

    /// The runtime role on the control database, for the application's control schemas.
    pub fn control_db(&self) -> &ControlDb {
        &self.inner.control
    }

    /// The pool of the runtime role on the control database, for control-plane tables.
    pub(crate) fn runtime_pool(&self) -> &PgPool {
        &self.inner.runtime
    }

    /// The door: the tenant named by `key` (id or slug), if it exists and is active.
    pub async fn resolve(&self, key: &str) -> Result<TenantCtx, TenancyError> {
        let record = self.find(key).await?;
        self.verify(&record)
    }

    /// The door, by id.
    pub async fn resolve_id(&self, id: TenantId) -> Result<TenantCtx, TenancyError> {
        self.resolve(&id.to_string()).await
    }

    fn verify(&self, record: &TenantRecord) -> Result<TenantCtx, TenancyError> {
        if record.status != TenantStatus::Active || record.purging {
            return Err(TenancyError::NotActive {
                slug: record.slug.clone(),
                status: record.status,
            });
        }
        TenantCtx::verified(record, self.inner.clone())
    }

    /// The registry row of the tenant named by `key` (id or slug), whatever its status: read
    /// as the runtime role, from the cache while its invalidation listener is connected
    /// ([`crate::cache`]).
    pub async fn find(&self, key: &str) -> Result<TenantRecord, TenancyError> {
        let record = self
            .inner
            .records
            .get_or_load(
                &key.to_string(),
                |found| found.is_some(),
                registry::find(&self.inner.runtime, key),
            )
            .await?;
        record.ok_or_else(|| TenancyError::NotFound(key.to_string()))
    }

    /// The process's caches of authorization data: register caches of other crates with it,
    /// invalidate after a change ([`Caches::invalidate`]), and start its listener
    /// ([`Tenancy::start_cache_listener`]).
    pub fn caches(&self) -> &Arc<Caches> {
        &self.inner.caches
    }

    /// Waits until this process has received every invalidation committed before now (at most
    /// a second; see [`Caches::sync`]).
    pub async fn sync_caches(&self) {
        self.inner
            .caches
            .sync(&self.inner.runtime, Duration::from_secs(1))
            .await;
    }

    /// Starts listening for invalidations (once per engine); until it is connected, and
    /// whenever its connection is lost, the caches serve nothing.
    pub fn start_cache_listener(&self) {
        self.inner
            .caches
            .spawn_listener(self.inner.runtime_options.clone());
    }

    pub async fn list(&self) -> Result<Vec<TenantRecord>, TenancyError> {
        registry::list(&self.inner.runtime).await
    }

    pub async fn tenant_counts(&self) -> Result<Vec<(Isolation, TenantStatus, i64)>, TenancyError> {
        registry::counts(&self.inner.runtime).await
    }

    /// How many owner-role connections this engine has handed out since it opened (pooled
    /// acquisitions and connections of their own): the owner role is for migrations,
    /// provisioning, lifecycle, moves, archives and the CLI, never for serving a request, and
    /// tests hold the request path to that with this count.
    pub fn owner_role_uses(&self) -> u64 {
        self.inner.owner_uses.load(Ordering::Relaxed)
    }

    /// Whether the control database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1")
            .execute(&self.inner.runtime)
            .await
            .is_ok()
    }

    pub fn pool_stats(&self) -> PoolStats {
        self.inner
            .tenant_pools
            .stats(&[&self.inner.runtime, &self.inner.door], &self.inner.owner)
    }

    /// Every idle connection of every pool of this engine (runtime, owner, each cached
    /// database-tier pool), taken at once and inspected: whether it is inside a transaction
    /// block, and its session-level `app.tenant_id`, `search_path` and read-only default. For
    /// diagnostics and the tests of pool hygiene; connections in use are not waited for.
    pub async fn inspect_idle_connections(&self) -> Result<Vec<ConnectionState>, TenancyError> {
        let mut states = pools::inspect_idle("runtime", &self.inner.runtime).await?;
        states.extend(pools::inspect_idle("door", &self.inner.door).await?);
        states.extend(pools::inspect_idle("owner", &self.inner.owner).await?);
        for (id, pool) in self.inner.tenant_pools.cached() {
            states.extend(pools::inspect_idle(&format!("tenant:{id}"), &pool).await?);
        }
        Ok(states)
    }

    /// Closes idle database-tier pools every `every`, until the engine is dropped.
    pub fn spawn_pool_reaper(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let closed = inner.tenant_pools.reap_idle();
                if closed > 0 {
                    tracing::debug!(closed, "closed idle tenant pools");
                }
            }
        })
    }

    /// An owner-role connection to the database holding the tenant's schema.
    pub(crate) async fn storage_connection(
        &self,
        record: &TenantRecord,
    ) -> anyhow::Result<StorageConn> {
        Ok(match record.isolation {
            Isolation::Database => {
                self.inner.owner_uses.fetch_add(1, Ordering::Relaxed);
                let server = self.inner.server(&record.server).await?;
                StorageConn::Direct(
                    bootstrap::owner_connection(&server.owner, &record.database_name).await?,
                )
            }
            Isolation::Shared | Isolation::Schema => {
                StorageConn::Pooled(self.inner.owner.acquire().await?)
            }
        })
    }

    /// A connection of the owner role to the database holding the tenant's rows, with
    /// `search_path` set to the tenant's schema and `app.tenant_id` to the tenant for the whole
    /// session, so it sees exactly that tenant's rows (row-level security is forced on the owner
    /// too), with TimeZone UTC so rows read as JSON ([`crate::TenantTable`]) compare across
    /// copies. A connection of its own, never pooled: for the CLI and jobs (verification,
    /// moves, archives), not request handling. Close it when done.
    pub(crate) async fn owner_conn_for(
        &self,
        record: &TenantRecord,
    ) -> Result<PgConnection, TenancyError> {
        if !is_plain_identifier(&record.schema_name) {
            return Err(anyhow::anyhow!(
                "tenant {} has an invalid schema name in the registry",
                record.slug
            )
            .into());
        }
        self.inner.owner_uses.fetch_add(1, Ordering::Relaxed);
        let options = self
            .inner
            .owner_options_at(record.isolation, &record.server, &record.database_name)
            .await?;
        let mut conn = options.connect().await.with_context(|| {
            format!(
                "failed to connect to the storage of {} as the owner role",
                record.slug
            )
        })?;
        sqlx::query(
            "SELECT set_config('search_path', $1, false), set_config('app.tenant_id', $2, false),
                    set_config('TimeZone', 'UTC', false)",
        )
        .bind(crate::naming::quote_ident(&record.schema_name))
        .bind(record.id.to_string())
        .execute(&mut conn)
        .await?;
        Ok(conn)
    }

    /// The role the tenant's transactions run as.
    pub(crate) fn runtime_role_of(&self, record: &TenantRecord) -> String {
        match record.isolation {
            Isolation::Database => self.inner.naming.tenant_role(record.id),
            Isolation::Shared | Isolation::Schema => self.inner.naming.runtime_role(),
        }
    }

    /// Stops the invalidation listener, then closes every pool.
    pub async fn close(&self) {
        self.inner.caches.stop_listening();
        self.inner.runtime.close().await;
        self.inner.door.close().await;
        self.inner.owner.close().await;
    }
}
