//! Provisioning: a new tenant's storage is made in recorded steps (registry row → role →
//! database or schema → tables → seed rows → active). Every step is idempotent, so a run cut off
//! anywhere is finished by running it again; runs on one tenant are serialised by an advisory
//! lock.

use anyhow::Context;
use sqlx::{Connection, PgConnection, Postgres, Transaction};
use tokio::sync::OwnedSemaphorePermit;

use crate::Tenancy;
use crate::bootstrap::ensure_login_role;
use crate::error::TenancyError;
use crate::ids::{Isolation, ProvisionStep, Slug, TenantId, TenantStatus};
use crate::naming::{DATABASE_TIER_SCHEMA, SHARED_SCHEMA, quote_ident};
use crate::registry::{self, NewRecord, TenantRecord};
use crate::servers::DEFAULT_SERVER;

/// A lock on one tenant's provisioning and deletion, released when committed or dropped.
pub(crate) struct TenantLock {
    tx: Transaction<'static, Postgres>,
    _slot: OwnedSemaphorePermit,
    /// Flushed when the work under the lock (which changes the registry) is done.
    caches: std::sync::Arc<crate::cache::Caches>,
}

impl TenantLock {
    pub async fn commit(self) -> Result<(), TenancyError> {
        self.tx.commit().await?;
        self.caches.flush();
        Ok(())
    }
}

/// What `create_tenant` needs to know.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub name: String,
    pub slug: Slug,
    pub isolation: Isolation,
    pub plan: Option<String>,
    /// The server of a database-tier tenant; `None` places it on the least-loaded server that is
    /// not draining. Other tiers live on the control database's server.
    pub server: Option<String>,
}

impl Tenancy {
    /// Registers and provisions a tenant. Called again with the slug of a tenant whose
    /// provisioning was interrupted, it resumes that provisioning.
    pub async fn create_tenant(&self, new: &NewTenant) -> Result<TenantRecord, TenancyError> {
        let record = self.register(new).await?;
        self.provision(record.id).await
    }

    /// The first provisioning step: the registry row, or the existing row of a tenant with this
    /// slug whose provisioning did not finish.
    pub async fn register(&self, new: &NewTenant) -> Result<TenantRecord, TenancyError> {
        let id = TenantId::new();
        let server = match (new.isolation, new.server.as_deref()) {
            (Isolation::Database, named) => self.place(named).await?,
            (_, None | Some(DEFAULT_SERVER)) => DEFAULT_SERVER.to_string(),
            (tier, Some(_)) => {
                return Err(TenancyError::Invalid(format!(
                    "{tier}-tier tenants live on the control database's server: name a server for the database tier only"
                )));
            }
        };
        let (database, schema) = self.placement(id, new.isolation);
        let inserted = registry::insert(
            &self.inner.owner,
            &NewRecord {
                id,
                slug: new.slug.as_str(),
                name: new.name.trim(),
                plan: new.plan.as_deref().unwrap_or("free"),
                isolation: new.isolation,
                server: &server,
                database_name: &database,
                schema_name: &schema,
            },
        )
        .await?;
        let record = match inserted {
            Some(record) => record,
            None => {
                // On the pool of the insert: a caller may hold a runtime connection (a user's
                // organization is created inside their transaction).
                let existing = registry::find(&self.inner.owner, new.slug.as_str())
                    .await?
                    .ok_or_else(|| TenancyError::NotFound(new.slug.to_string()))?;
                if !matches!(
                    existing.status,
                    TenantStatus::Provisioning | TenantStatus::Failed
                ) {
                    return Err(TenancyError::SlugTaken(new.slug.to_string()));
                }
                if existing.isolation != new.isolation {
                    return Err(TenancyError::Invalid(format!(
                        "tenant {} is being provisioned in the {} tier: resume it with that tier, or hard-delete it first",
                        existing.slug, existing.isolation
                    )));
                }
                tracing::info!(slug = %existing.slug, step = %existing.provision_step, "resuming provisioning");
                existing
            }
        };
        Ok(record)
    }

    /// Runs every remaining provisioning step of the tenant.
    #[tracing::instrument(skip_all, fields(tenant_id = %id))]
    pub async fn provision(&self, id: TenantId) -> Result<TenantRecord, TenancyError> {
        let lock = self.lock_tenant(id).await?;
        while self.run_next_step(id).await?.is_some() {}
        lock.commit().await?;
        registry::get(&self.inner.owner, id).await
    }

    /// Runs and records the next provisioning step; `None` when provisioning is complete.
    /// A failure marks the tenant `failed` with the error, to be resumed later.
    pub async fn provision_next_step(
        &self,
        id: TenantId,
    ) -> Result<Option<ProvisionStep>, TenancyError> {
        let lock = self.lock_tenant(id).await?;
        let step = self.run_next_step(id).await?;
        lock.commit().await?;
        Ok(step)
    }

    /// Does the work of `step` for the tenant without recording it, as a process that crashed
    /// right after the work would have. Provisioning then runs the step again.
    #[doc(hidden)]
    pub async fn perform_step_unrecorded(
        &self,
        id: TenantId,
        step: ProvisionStep,
    ) -> Result<(), TenancyError> {
        let record = registry::get(&self.inner.owner, id).await?;
        Ok(self.perform(&record, step).await?)
    }

    /// Resumes every tenant whose provisioning was interrupted (status `provisioning` or
    /// `failed`). Returns the slugs that failed again, with their errors.
    pub async fn resume_provisioning(&self) -> Result<Vec<(String, String)>, TenancyError> {
        let mut failures = Vec::new();
        for record in registry::list(&self.inner.owner).await? {
            if matches!(
                record.status,
                TenantStatus::Provisioning | TenantStatus::Failed
            ) {
                tracing::info!(slug = %record.slug, step = %record.provision_step, "resuming provisioning");
                if let Err(e) = self.provision(record.id).await {
                    failures.push((record.slug, e.to_string()));
                }
            }
        }
        Ok(failures)
    }

    pub(crate) fn placement(&self, id: TenantId, isolation: Isolation) -> (String, String) {
        let naming = self.naming();
        match isolation {
            Isolation::Shared => (
                self.inner.control_database.clone(),
                SHARED_SCHEMA.to_string(),
            ),
            Isolation::Schema => (
                self.inner.control_database.clone(),
                naming.tenant_schema(id),
            ),
            Isolation::Database => (naming.tenant_database(id), DATABASE_TIER_SCHEMA.to_string()),
        }
    }

    /// Holds a lock on the tenant until the returned guard is committed or dropped. The lock
    /// holds an owner connection; fewer locks than owner connections may be held at once, so the
    /// work done under them always finds a connection.
    pub(crate) async fn lock_tenant(&self, id: TenantId) -> Result<TenantLock, TenancyError> {
        let slot = self
            .inner
            .lock_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| anyhow::anyhow!("the engine is closed: {e}"))?;
        let mut tx = self.inner.owner.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('tenantry.tenant'), hashtext($1))")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        Ok(TenantLock {
            tx,
            _slot: slot,
            caches: self.inner.caches.clone(),
        })
    }

    async fn run_next_step(&self, id: TenantId) -> Result<Option<ProvisionStep>, TenancyError> {
        let record = registry::get(&self.inner.owner, id).await?;
        match record.status {
            TenantStatus::Provisioning => {}
            TenantStatus::Failed => {
                sqlx::query("UPDATE control.tenants SET status = 'provisioning', updated_at = now() WHERE id = $1")
                    .bind(id.as_uuid())
                    .execute(&self.inner.owner)
                    .await?;
            }
            _ => return Ok(None),
        }
        let Some(step) = record.provision_step.next() else {
            return Ok(None);
        };
        if let Err(e) = self.perform(&record, step).await {
            let message = format!("{e:#}");
            tracing::warn!(slug = %record.slug, %step, error = %message, "provisioning step failed");
            registry::record_failure(&self.inner.owner, id, &message).await?;
            return Err(e.into());
        }
        if step != ProvisionStep::Activated {
            registry::record_step(&self.inner.owner, id, step).await?;
        }
        Ok(Some(step))
    }

    pub(crate) async fn perform(
        &self,
        record: &TenantRecord,
        step: ProvisionStep,
    ) -> anyhow::Result<()> {
        let naming = self.naming();
        match (step, record.isolation) {
            (ProvisionStep::Registered, _) => Ok(()),
            (ProvisionStep::RoleCreated, Isolation::Database) => {
                let role = naming.tenant_role(record.id);
                let mut conn = self.inner.server_admin(&record.server).await?;
                ensure_login_role(&mut conn, &role, &self.inner.key.password_for(&role)).await?;
                // Membership lets the owner end the role's sessions when the tenant is deleted.
                crate::sql::exec(
                    &mut conn,
                    &format!("GRANT {} TO CURRENT_USER", quote_ident(&role)),
                )
                .await
                .context("failed to grant the tenant role to the owner")?;
                conn.close().await;
                Ok(())
            }
            (ProvisionStep::StorageCreated, Isolation::Database) => {
                self.create_database(record).await
            }
            (ProvisionStep::StorageCreated, Isolation::Schema) => {
                let schema = quote_ident(&record.schema_name);
                let mut tx = self.inner.owner.begin().await?;
                crate::sql::exec(
                    &mut tx,
                    &format!(
                        "CREATE SCHEMA IF NOT EXISTS {schema};
                     REVOKE ALL ON SCHEMA {schema} FROM PUBLIC;"
                    ),
                )
                .await
                .context("failed to create the tenant schema")?;
                tx.commit().await?;
                Ok(())
            }
            (ProvisionStep::TablesCreated, _) => {
                self.migrate_storage(record).await?;
                Ok(())
            }
            (ProvisionStep::Seeded, _) => self.seed(record).await,
            (ProvisionStep::Activated, _) => self.activate_new(record).await,
            (ProvisionStep::RoleCreated | ProvisionStep::StorageCreated, Isolation::Shared)
            | (ProvisionStep::RoleCreated, Isolation::Schema) => Ok(()),
        }
    }

    async fn create_database(&self, record: &TenantRecord) -> anyhow::Result<()> {
        let mut conn = self.inner.server_admin(&record.server).await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&record.database_name)
                .fetch_one(&mut *conn)
                .await?;
        let database = quote_ident(&record.database_name);
        if !exists {
            crate::sql::exec(&mut conn, &format!("CREATE DATABASE {database}"))
                .await
                .context("failed to create the tenant database")?;
        }
        crate::sql::exec(
            &mut conn,
            &format!(
                "REVOKE ALL ON DATABASE {database} FROM PUBLIC;
             GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {role};",
                role = quote_ident(&self.naming().tenant_role(record.id))
            ),
        )
        .await
        .context("failed to restrict the tenant database to its role")?;
        conn.close().await;
        Ok(())
    }

    /// The tenant's settings row, written as the owner inside the tenant's context.
    async fn seed(&self, record: &TenantRecord) -> anyhow::Result<()> {
        let mut conn = self.storage_connection(record).await?;
        seed_settings(&mut conn, record)
            .await
            .context("failed to seed the tenant")?;
        conn.close().await;
        Ok(())
    }

    /// Marks the tenant active at the schema versions its storage really has.
    async fn activate_new(&self, record: &TenantRecord) -> anyhow::Result<()> {
        let versions = self.storage_versions(record).await?;
        sqlx::query(
            "UPDATE control.tenants SET status = 'active', provision_step = 'activated',
                 schema_versions = $2, last_error = NULL, updated_at = now()
             WHERE id = $1 AND status = 'provisioning'",
        )
        .bind(record.id.as_uuid())
        .bind(sqlx::types::Json(versions))
        .execute(&self.inner.owner)
        .await?;
        Ok(())
    }
}

async fn seed_settings(conn: &mut PgConnection, record: &TenantRecord) -> anyhow::Result<()> {
    let mut tx = conn.begin().await?;
    sqlx::query(
        "SELECT set_config('app.tenant_id', $1, true), set_config('search_path', $2, true)",
    )
    .bind(record.id.to_string())
    .bind(quote_ident(&record.schema_name))
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO tenant_settings (tenant_id) VALUES ($1) ON CONFLICT (tenant_id) DO NOTHING",
    )
    .bind(record.id.as_uuid())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
