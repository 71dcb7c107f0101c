//! The one door to tenant data. A [`TenantCtx`] can only be obtained from
//! [`crate::Tenancy::resolve`], which checks that the tenant exists and is active; a [`TenantTx`]
//! can only be opened from a `TenantCtx`. Opening one begins a transaction and sets
//! `app.tenant_id` and `search_path` with `SET LOCAL`, in the same round trip as `BEGIN`,
//! so a pooled connection never carries one tenant's context into another's work.
//!
//! A writing transaction ([`TenantCtx::begin`]) also passes the tenant's write gate in that round
//! trip: it waits while a move switches the tenant to its new placement, and if the copy it was
//! pointed at has been retired by a move, the door looks the tenant up again and opens the
//! transaction at its new placement. A reading one ([`TenantCtx::begin_read`]) never waits.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, Postgres, Transaction};

use crate::engine::Inner;
use crate::error::{TenancyError, sqlstate};
use crate::handles::ControlDb;
use crate::ids::{Isolation, TenantId};
use crate::naming::{is_plain_identifier, quote_ident};
use crate::registry::{self, TenantRecord};
use crate::schema::TenantSchema;

/// How long a writer waits for a move's switch to be recorded once the copy it reached is
/// retired, in attempts of [`GATE_RETRY`].
const GATE_ATTEMPTS: u32 = 250;
const GATE_RETRY: Duration = Duration::from_millis(20);

/// A verified, active tenant. Cheap to clone; holds no connection.
#[derive(Clone)]
pub struct TenantCtx {
    id: TenantId,
    slug: String,
    isolation: Isolation,
    /// The server holding the tenant's database (database tier).
    server: String,
    database: String,
    schema: String,
    /// Whether the tenant's storage has the write gate (its schema version has reached it).
    gated: bool,
    engine: Arc<Inner>,
}

impl std::fmt::Debug for TenantCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantCtx")
            .field("id", &self.id)
            .field("slug", &self.slug)
            .field("isolation", &self.isolation)
            .finish()
    }
}

impl TenantCtx {
    /// Only the engine builds contexts, from a registry row it has just checked.
    pub(crate) fn verified(
        record: &TenantRecord,
        engine: Arc<Inner>,
    ) -> Result<Self, TenancyError> {
        if !is_plain_identifier(&record.schema_name) {
            return Err(anyhow::anyhow!(
                "tenant {} has an invalid schema name in the registry",
                record.slug
            )
            .into());
        }
        let gated = TenantSchema::has_write_gate(&record.schema_versions);
        Ok(Self {
            id: record.id,
            slug: record.slug.clone(),
            isolation: record.isolation,
            server: record.server.clone(),
            database: record.database_name.clone(),
            schema: record.schema_name.clone(),
            gated,
            engine,
        })
    }

    pub fn tenant_id(&self) -> TenantId {
        self.id
    }

    pub fn slug(&self) -> &str {
        &self.slug
    }

    /// The database holding the tenant's rows.
    pub fn database_name(&self) -> &str {
        &self.database
    }

    /// The PostgreSQL server holding the tenant's rows (by name).
    pub fn server_name(&self) -> &str {
        &self.server
    }

    /// The schema holding the tenant's rows.
    pub fn schema_name(&self) -> &str {
        &self.schema
    }

    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// Begins a transaction scoped to this tenant, for work that writes. It passes the tenant's
    /// write gate: while a move switches the tenant to a new placement it waits, and when the
    /// placement this context names has been retired it opens the transaction at the new one.
    pub async fn begin(&self) -> Result<TenantTx, TenancyError> {
        let mut current: Option<TenantCtx> = None;
        let mut attempts = 0;
        loop {
            let ctx = current.as_ref().unwrap_or(self);
            let error = match ctx.open(Mode::Write).await {
                Ok(tx) => return Ok(tx),
                Err(e) => e,
            };
            attempts += 1;
            if attempts >= GATE_ATTEMPTS {
                return Err(match &error {
                    OpenError::Sql(e) if sqlstate(e).as_deref() == Some(RETIRED) => {
                        TenancyError::Moving(self.slug.clone())
                    }
                    _ => error.into(),
                });
            }
            // The placement may have changed under us: a move retired this copy, or removed it
            // (a schema or database that no longer exists).
            let record = registry::find(&self.engine.runtime, &self.id.to_string())
                .await?
                .ok_or_else(|| TenancyError::NotFound(self.slug.clone()))?;
            if record.isolation != ctx.isolation
                || record.server != ctx.server
                || record.database_name != ctx.database
                || record.schema_name != ctx.schema
            {
                if record.status != crate::ids::TenantStatus::Active || record.purging {
                    return Err(TenancyError::NotActive {
                        slug: record.slug,
                        status: record.status,
                    });
                }
                tracing::debug!(slug = %self.slug, to = %record.isolation, "tenant moved; following it");
                current = Some(TenantCtx::verified(&record, self.engine.clone())?);
                continue;
            }
            match &error {
                // Retired, and the switch not recorded yet: it is a moment away.
                OpenError::Sql(e) if sqlstate(e).as_deref() == Some(RETIRED) => {
                    tokio::time::sleep(GATE_RETRY).await
                }
                _ => return Err(error.into()),
            }
        }
    }

    /// Begins a read-only transaction scoped to this tenant. It does not pass the write gate, so
    /// reads go on while a move switches the tenant (from the old copy, frozen and complete).
    pub async fn begin_read(&self) -> Result<TenantTx, TenancyError> {
        Ok(self.open(Mode::Read).await?)
    }

    async fn open(&self, mode: Mode) -> Result<TenantTx, OpenError> {
        // Utility statements and one function call, in the same round trip as BEGIN. The values
        // are a UUID and a checked identifier, so they can be written into the text.
        let settings = format!(
            "SET LOCAL app.tenant_id = '{id}'; SET LOCAL search_path = {schema}",
            id = self.id.as_uuid(),
            schema = quote_ident(&self.schema)
        );
        let statement = match mode {
            Mode::Read => format!("BEGIN READ ONLY; {settings}"),
            // The gate can fail. Statements before a BEGIN run in an implicit transaction block
            // that the BEGIN turns into the transaction; if the gate fails first, the block is
            // rolled back and the pooled connection is left outside any transaction.
            Mode::Write if self.gated => format!(
                "{settings}; SELECT tenant_write_gate('{id}'); BEGIN",
                id = self.id.as_uuid()
            ),
            Mode::Write => format!("BEGIN; {settings}"),
        };
        // A database-tier pool may be closed by an eviction between lookup and acquire; the
        // second lookup opens a fresh one.
        let mut attempts = 0;
        let tx = loop {
            attempts += 1;
            let result = match self.isolation {
                Isolation::Shared | Isolation::Schema => {
                    self.engine.door.begin_with(statement.clone()).await
                }
                Isolation::Database => {
                    let server = self.engine.server(&self.server).await?;
                    if server.is_down() {
                        return Err(self.unavailable());
                    }
                    let pool = self.engine.tenant_pool(self.id, &server, &self.database);
                    // A new connection is bounded on its own, so a server that does not answer
                    // fails its tenants' requests in a moment, not at the acquire timeout. The
                    // bound is on the connection alone: a writer may then wait at the gate.
                    let connects = pool.num_idle() == 0
                        && pool.size() < self.engine.pool_config.per_tenant_max;
                    let acquired = if connects {
                        match tokio::time::timeout(CONNECT_WAIT, pool.acquire()).await {
                            Ok(acquired) => acquired,
                            Err(_) => Err(sqlx::Error::PoolTimedOut),
                        }
                    } else {
                        pool.acquire().await
                    };
                    match acquired {
                        Ok(conn) => Transaction::begin(conn, Some(statement.clone().into())).await,
                        // Only a new connection tells whether the server is there.
                        Err(e) if connects && crate::error::unreachable(&e) => {
                            server.mark_down();
                            tracing::warn!(server = %server.name, slug = %self.slug, error = %e, "tenant's server cannot be reached");
                            return Err(self.unavailable());
                        }
                        // Every connection of the tenant's pool stayed busy past the acquire
                        // timeout: the tenant is saturated, the server is not down.
                        Err(sqlx::Error::PoolTimedOut) => return Err(self.unavailable()),
                        Err(e) => Err(e),
                    }
                }
            };
            match result {
                Ok(tx) => break tx,
                Err(sqlx::Error::PoolClosed) if attempts < 3 => continue,
                // A pooled connection the server has ended (a restart, a database dropped by a
                // move), idle for less than the second after which the pool asks it before
                // handing it out: it is gone from the pool, and the next attempt takes another
                // or connects anew, finding out whether the server is there. (Each of the
                // pool's idle connections may be one.)
                Err(e) if attempts <= self.pool_max() + 1 && crate::error::connection_lost(&e) => {
                    continue;
                }
                Err(e)
                    if self.isolation == Isolation::Database
                        && crate::error::connection_lost(&e) =>
                {
                    return Err(self.unavailable());
                }
                Err(e) => return Err(e.into()),
            }
        };
        Ok(TenantTx {
            tx,
            tenant: self.id,
            in_control: self.isolation != Isolation::Database,
        })
    }

    /// A writing transaction of the owner role at this tenant's placement, through the same
    /// door: the context was resolved (the tenant is active), the write gate is passed, the
    /// tenant and its schema are set for the transaction only, and TimeZone is UTC so rows read
    /// as JSON compare across copies. On a connection of its own, closed when the transaction
    /// ends. For [`crate::Operator::begin_restore`].
    pub(crate) async fn begin_as_owner(&self) -> Result<TenantTx, TenancyError> {
        let options = self
            .engine
            .owner_options_at(self.isolation, &self.server, &self.database)
            .await?;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .connect_lazy_with(options);
        self.engine
            .owner_uses
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let statement = format!(
            "SET LOCAL app.tenant_id = '{id}'; SET LOCAL search_path = {schema}; \
             SET LOCAL TimeZone = 'UTC'; SELECT tenant_write_gate('{id}'); BEGIN",
            id = self.id.as_uuid(),
            schema = quote_ident(&self.schema)
        );
        // The pool's one connection goes when the transaction has ended and this last handle
        // of the pool with it.
        let tx = pool.begin_with(statement).await?;
        Ok(TenantTx {
            tx,
            tenant: self.id,
            in_control: self.isolation != Isolation::Database,
        })
    }

    /// The most connections of the pool this tenant's transactions take.
    fn pool_max(&self) -> u32 {
        match self.isolation {
            Isolation::Shared | Isolation::Schema => self.engine.pool_config.runtime_tx_max,
            Isolation::Database => self.engine.pool_config.per_tenant_max,
        }
    }

    fn unavailable(&self) -> OpenError {
        OpenError::Engine(TenancyError::Unavailable {
            slug: self.slug.clone(),
            server: self.server.clone(),
        })
    }
}

/// How long opening a transaction waits for a new connection to a database-tier tenant's
/// server before the tenant is reported unavailable.
const CONNECT_WAIT: Duration = Duration::from_secs(3);

/// Why a transaction did not open: the database said no, or the engine did (an unknown or
/// unreachable server).
enum OpenError {
    Sql(sqlx::Error),
    Engine(TenancyError),
}

impl From<sqlx::Error> for OpenError {
    fn from(e: sqlx::Error) -> Self {
        Self::Sql(e)
    }
}

impl From<TenancyError> for OpenError {
    fn from(e: TenancyError) -> Self {
        Self::Engine(e)
    }
}

impl From<OpenError> for TenancyError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Sql(e) => e.into(),
            OpenError::Engine(e) => e,
        }
    }
}

/// The SQLSTATE `tenant_write_gate` raises on a retired copy of a tenant.
const RETIRED: &str = "TM001";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Read,
    Write,
}

/// A transaction in which the database sees exactly one tenant. Dereferences to the connection,
/// so queries run as `query.fetch_all(&mut *tx)`. Dropping it without `commit` rolls back.
pub struct TenantTx {
    tx: Transaction<'static, Postgres>,
    tenant: TenantId,
    /// The tenant's storage is in the control database (shared and schema tiers).
    in_control: bool,
}

impl std::fmt::Debug for TenantTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantTx")
            .field("tenant", &self.tenant)
            .finish()
    }
}

impl TenantTx {
    pub fn tenant_id(&self) -> TenantId {
        self.tenant
    }

    /// Whether this transaction runs in the control database (a shared- or schema-tier
    /// tenant), so a control-table write that belongs with it can be made in it, atomically.
    pub fn in_control_database(&self) -> bool {
        self.in_control
    }

    /// The control database, for a write that belongs with this transaction (a schedule row, an
    /// alert wakeup): this transaction itself when the tenant lives there, so the write commits
    /// or rolls back with it; else a connection of `control` (the runtime pool). Either way no
    /// second connection is taken from the pool this transaction holds one of, so parallel
    /// transactions waiting on each other's locks cannot exhaust it.
    pub async fn control<'a>(
        &'a mut self,
        control: &ControlDb,
    ) -> Result<ControlConn<'a>, sqlx::Error> {
        if self.in_control {
            Ok(ControlConn::Same(self))
        } else {
            Ok(ControlConn::Own(control.acquire().await?))
        }
    }

    pub async fn commit(self) -> Result<(), TenancyError> {
        Ok(self.tx.commit().await?)
    }

    pub async fn rollback(self) -> Result<(), TenancyError> {
        Ok(self.tx.rollback().await?)
    }
}

/// A connection to the control database beside a [`TenantTx`] ([`TenantTx::control`]).
pub enum ControlConn<'a> {
    /// The tenant transaction itself (shared and schema tiers).
    Same(&'a mut TenantTx),
    /// A runtime-pool connection (database tier), autocommitting each statement.
    Own(PoolConnection<Postgres>),
}

impl Deref for ControlConn<'_> {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        match self {
            ControlConn::Same(tx) => tx,
            ControlConn::Own(conn) => conn,
        }
    }
}

impl DerefMut for ControlConn<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self {
            ControlConn::Same(tx) => tx,
            ControlConn::Own(conn) => conn,
        }
    }
}

impl Deref for TenantTx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl DerefMut for TenantTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}
