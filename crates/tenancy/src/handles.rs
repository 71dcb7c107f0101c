//! The narrow handles through which code outside the engine reaches PostgreSQL, since the
//! engine's pools are its own:
//!
//! - [`ControlDb`]: the runtime role on the control database, for the application's own
//!   control schemas (users, memberships, the outbox, the schedule...). That role owns no table,
//!   bypasses no row-level security and, with no tenant set, sees no tenant's rows: tenant data
//!   is reached only through the door ([`crate::TenantCtx`]).
//! - [`Operator`]: the owner role, for operator work — CLI commands, archives, audit
//!   verification — that the CLI and jobs construct explicitly ([`Operator::new`]); never for
//!   serving a request (`cargo xtask door-lint` holds the request path to that).

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use sqlx::Either;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{Describe, Execute, Executor, PgConnection, PgPool, Postgres, Transaction};

use crate::door::{TenantCtx, TenantTx};
use crate::engine::Tenancy;
use crate::error::TenancyError;
use crate::registry::TenantRecord;

/// The runtime role's connections to the control database. Cheap to clone; `&ControlDb` is an
/// executor (`query.fetch_one(&control)`), each statement on a pooled connection.
#[derive(Clone)]
pub struct ControlDb(PgPool);

impl std::fmt::Debug for ControlDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlDb").finish_non_exhaustive()
    }
}

impl ControlDb {
    pub(crate) fn new(pool: PgPool) -> Self {
        Self(pool)
    }

    /// A pool of the caller's own that reaches the control database as the runtime role (a
    /// tool or a test working next to a server); the engine's own pools are never handed out.
    pub fn from_pool(pool: PgPool) -> Self {
        Self(pool)
    }

    /// A transaction of the runtime role on the control database.
    pub async fn begin(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.0.begin().await
    }

    /// A transaction begun with `statement` (`BEGIN ISOLATION LEVEL …`, or with transaction-scoped
    /// settings of its own such as `synchronous_commit`).
    pub async fn begin_with(
        &self,
        statement: impl Into<std::borrow::Cow<'static, str>>,
    ) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.0.begin_with(statement).await
    }

    /// A connection of the runtime role, for several statements in a row.
    pub async fn acquire(&self) -> Result<PoolConnection<Postgres>, sqlx::Error> {
        self.0.acquire().await
    }

    /// A `LISTEN` connection of the runtime role, on a connection of its own (not one of the
    /// pool's, which it would hold as long as it lives).
    pub async fn listener(&self) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
        crate::cache::own_listener(&self.0.connect_options()).await
    }
}

// Each statement on a pooled connection, exactly as `&PgPool` runs it.
impl<'p> Executor<'p> for &'_ ControlDb {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Postgres>,
    {
        (&self.0).fetch_many(query)
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Postgres>,
    {
        (&self.0).fetch_optional(query)
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement<'q>, sqlx::Error>> {
        (&self.0).prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> BoxFuture<'e, Result<Describe<Postgres>, sqlx::Error>> {
        (&self.0).describe(sql)
    }
}

/// The owner role, for operator work (see the module docs).
#[derive(Clone)]
pub struct Operator {
    tenancy: Tenancy,
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operator").finish_non_exhaustive()
    }
}

impl Operator {
    /// Operator access through `tenancy`: for the CLI, archives and jobs, never a request.
    pub fn new(tenancy: &Tenancy) -> Self {
        Self {
            tenancy: tenancy.clone(),
        }
    }

    /// The owner role's pool on the control database.
    pub fn control(&self) -> &PgPool {
        &self.tenancy.inner.owner
    }

    /// Owner-role connection options on the control database.
    pub fn connect_options(&self) -> &PgConnectOptions {
        &self.tenancy.inner.owner_options
    }

    /// Runtime-role connection options on the control database (a tool's own pool, such as
    /// the benchmark's).
    pub fn runtime_options(&self) -> &PgConnectOptions {
        &self.tenancy.inner.runtime_options
    }

    /// A transaction that restores rows into the tenant (an archive import): the owner role,
    /// through the door all the same — `ctx` is resolved (the tenant is active), the write gate
    /// is passed, and the tenant and its schema are set for this transaction only.
    pub async fn begin_restore(&self, ctx: &TenantCtx) -> Result<TenantTx, TenancyError> {
        ctx.begin_as_owner().await
    }

    /// A connection of the owner role to the database holding the tenant's rows, with
    /// `search_path` set to the tenant's schema and `app.tenant_id` to the tenant for the whole
    /// session, so it sees exactly that tenant's rows (row-level security is forced on the owner
    /// too), and TimeZone UTC so rows read as JSON compare across copies. A connection of its
    /// own, never pooled. Close it when done.
    pub async fn tenant_storage(
        &self,
        record: &TenantRecord,
    ) -> Result<PgConnection, TenancyError> {
        self.tenancy.owner_conn_for(record).await
    }
}
