//! The one door to tenant data. A [`TenantCtx`] can only be obtained from
//! [`crate::Tenancy::resolve`], which checks that the tenant exists and is active; a [`TenantTx`]
//! can only be opened from a `TenantCtx`. Opening one begins a transaction and sets
//! `app.tenant_id` and `search_path` with `SET LOCAL`, in the same round trip as `BEGIN`,
//! so a pooled connection never carries one tenant's context into another's work.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::engine::Inner;
use crate::error::TenancyError;
use crate::ids::{Isolation, TenantId};
use crate::naming::{is_plain_identifier, quote_ident};
use crate::registry::TenantRecord;

/// A verified, active tenant. Cheap to clone; holds no connection.
#[derive(Clone)]
pub struct TenantCtx {
    id: TenantId,
    slug: String,
    isolation: Isolation,
    database: String,
    schema: String,
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
        Ok(Self {
            id: record.id,
            slug: record.slug.clone(),
            isolation: record.isolation,
            database: record.database_name.clone(),
            schema: record.schema_name.clone(),
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

    /// The schema holding the tenant's rows.
    pub fn schema_name(&self) -> &str {
        &self.schema
    }

    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// Begins a transaction scoped to this tenant.
    pub async fn begin(&self) -> Result<TenantTx, TenancyError> {
        // Utility statements, not a SELECT: nothing to plan, one round trip with BEGIN. The
        // values are a UUID and a checked identifier, so they can be written into the text.
        let statement = format!(
            "BEGIN; SET LOCAL app.tenant_id = '{}'; SET LOCAL search_path = {}",
            self.id.as_uuid(),
            quote_ident(&self.schema)
        );
        // A database-tier pool may be closed by an eviction between lookup and acquire; the
        // second lookup opens a fresh one.
        let mut attempts = 0;
        let tx = loop {
            attempts += 1;
            match self.pool().begin_with(statement.clone()).await {
                Ok(tx) => break tx,
                Err(sqlx::Error::PoolClosed) if attempts < 3 => continue,
                Err(e) => return Err(e.into()),
            }
        };
        Ok(TenantTx {
            tx,
            tenant: self.id,
        })
    }

    fn pool(&self) -> PgPool {
        match self.isolation {
            Isolation::Shared | Isolation::Schema => self.engine.runtime.clone(),
            Isolation::Database => self.engine.tenant_pool(self.id, &self.database),
        }
    }
}

/// A transaction in which the database sees exactly one tenant. Dereferences to the connection,
/// so queries run as `query.fetch_all(&mut *tx)`. Dropping it without `commit` rolls back.
pub struct TenantTx {
    tx: Transaction<'static, Postgres>,
    tenant: TenantId,
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

    pub async fn commit(self) -> Result<(), TenancyError> {
        Ok(self.tx.commit().await?)
    }

    pub async fn rollback(self) -> Result<(), TenancyError> {
        Ok(self.tx.rollback().await?)
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
