//! A tenant's life after provisioning: suspend, activate, soft delete, restore, and hard delete,
//! which removes its database and role or its schema, and every row carrying its id from the
//! control database, then its registry row. A hard delete cut off halfway is finished by running
//! it again, or at the next server start.

use anyhow::Context;
use sqlx::{Connection, PgConnection, Postgres, Transaction};

use crate::Tenancy;
use crate::error::TenancyError;
use crate::ids::{Isolation, Slug, TenantId, TenantStatus};
use crate::naming::quote_ident;
use crate::registry::{self, COLUMNS, TenantRecord};

/// A transaction on the tenant registry: a lifecycle change (`*_in`) and what must commit or roll
/// back with it, its audit entry. It dereferences to the owner connection it runs on, for that
/// entry's insert only. Dropping it without `commit` rolls back.
pub struct RegistryTx {
    tx: Transaction<'static, Postgres>,
    /// Flushed once the change commits (see [`crate::cache`]).
    caches: std::sync::Arc<crate::cache::Caches>,
}

impl std::fmt::Debug for RegistryTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryTx").finish_non_exhaustive()
    }
}

impl RegistryTx {
    /// Commits, then forgets this process's cached registry data.
    pub async fn commit(self) -> Result<(), TenancyError> {
        self.tx.commit().await?;
        self.caches.flush();
        Ok(())
    }
}

impl std::ops::Deref for RegistryTx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for RegistryTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}

impl Tenancy {
    /// Begins a registry transaction for the `*_in` lifecycle changes.
    pub async fn begin_registry(&self) -> Result<RegistryTx, TenancyError> {
        Ok(RegistryTx {
            tx: self.inner.owner.begin().await?,
            caches: self.inner.caches.clone(),
        })
    }

    /// A registry transaction of the runtime role, for what a member's request changes: the
    /// profile ([`Tenancy::update_profile_in`]: name, slug, settings), the only registry columns
    /// that role may update. Lifecycle, plan and placement changes need [`Tenancy::begin_registry`].
    pub async fn begin_profile_change(&self) -> Result<RegistryTx, TenancyError> {
        Ok(RegistryTx {
            tx: self.inner.runtime.begin().await?,
            caches: self.inner.caches.clone(),
        })
    }

    /// Active → suspended: the door refuses the tenant until it is activated.
    pub async fn suspend(&self, key: &str) -> Result<TenantRecord, TenancyError> {
        let mut tx = self.begin_registry().await?;
        let record = self.suspend_in(&mut tx, key).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// [`Tenancy::suspend`] in the caller's registry transaction.
    pub async fn suspend_in(
        &self,
        tx: &mut RegistryTx,
        key: &str,
    ) -> Result<TenantRecord, TenancyError> {
        self.transition(
            tx,
            key,
            &[TenantStatus::Active],
            TenantStatus::Suspended,
            "suspend",
        )
        .await
    }

    /// Suspended → active.
    pub async fn activate(&self, key: &str) -> Result<TenantRecord, TenancyError> {
        let mut tx = self.begin_registry().await?;
        let record = self.activate_in(&mut tx, key).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// [`Tenancy::activate`] in the caller's registry transaction.
    pub async fn activate_in(
        &self,
        tx: &mut RegistryTx,
        key: &str,
    ) -> Result<TenantRecord, TenancyError> {
        self.transition(
            tx,
            key,
            &[TenantStatus::Suspended],
            TenantStatus::Active,
            "activate",
        )
        .await
    }

    /// Active or suspended → deleted, keeping every row so it can be restored.
    pub async fn soft_delete(&self, key: &str) -> Result<TenantRecord, TenancyError> {
        let mut tx = self.begin_registry().await?;
        let record = self.soft_delete_in(&mut tx, key).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// [`Tenancy::soft_delete`] in the caller's registry transaction.
    pub async fn soft_delete_in(
        &self,
        tx: &mut RegistryTx,
        key: &str,
    ) -> Result<TenantRecord, TenancyError> {
        self.transition(
            tx,
            key,
            &[TenantStatus::Active, TenantStatus::Suspended],
            TenantStatus::Deleted,
            "delete",
        )
        .await
    }

    /// Renames the tenant and merges `settings` into its settings (key by key), unless it is
    /// deleted or being purged.
    pub async fn update_profile(
        &self,
        key: &str,
        name: Option<&str>,
        slug: Option<&Slug>,
        settings: Option<&serde_json::Value>,
    ) -> Result<TenantRecord, TenancyError> {
        let mut tx = self.begin_registry().await?;
        let record = self
            .update_profile_in(&mut tx, key, name, slug, settings)
            .await?;
        tx.commit().await?;
        Ok(record)
    }

    /// [`Tenancy::update_profile`] in the caller's registry transaction.
    pub async fn update_profile_in(
        &self,
        tx: &mut RegistryTx,
        key: &str,
        name: Option<&str>,
        slug: Option<&Slug>,
        settings: Option<&serde_json::Value>,
    ) -> Result<TenantRecord, TenancyError> {
        // Read on the caller's connection: a lookup the cache missed would otherwise wait for a
        // second connection of the runtime pool while this one is held.
        let record = registry::find(&mut *tx.tx, key)
            .await?
            .ok_or_else(|| TenancyError::NotFound(key.to_string()))?;
        // A savepoint: a refused update (a taken slug) leaves the caller's transaction usable.
        let mut savepoint = tx.tx.begin().await?;
        let updated = sqlx::query_as::<_, TenantRecord>(&format!(
            "UPDATE control.tenants SET name = coalesce($2, name), slug = coalesce($3, slug),
                 settings = settings || coalesce($4, '{{}}'::jsonb), updated_at = now()
             WHERE id = $1 AND status IN ('active', 'suspended') AND NOT purging
             RETURNING {COLUMNS}"
        ))
        .bind(record.id.as_uuid())
        .bind(name.map(str::trim))
        .bind(slug.map(Slug::as_str))
        .bind(settings)
        .fetch_optional(&mut *savepoint)
        .await;
        match updated {
            Ok(Some(updated)) => {
                savepoint.commit().await?;
                Ok(updated)
            }
            Ok(None) => Err(TenancyError::InvalidState {
                slug: record.slug,
                status: record.status,
                action: "update",
            }),
            Err(e) if crate::error::sqlstate(&e).as_deref() == Some("23505") => Err(
                TenancyError::SlugTaken(slug.map(|s| s.to_string()).unwrap_or_default()),
            ),
            Err(e) if crate::error::sqlstate(&e).as_deref() == Some("23514") => Err(
                TenancyError::Invalid("the name must have 1 to 200 characters".to_string()),
            ),
            Err(e) => Err(e.into()),
        }
    }

    /// Puts the tenant on another plan (a lowercase word; the caller checks it names a plan).
    pub async fn set_plan(&self, key: &str, plan: &str) -> Result<TenantRecord, TenancyError> {
        let mut tx = self.begin_registry().await?;
        let record = self.set_plan_in(&mut tx, key, plan).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// [`Tenancy::set_plan`] in the caller's registry transaction.
    pub async fn set_plan_in(
        &self,
        tx: &mut RegistryTx,
        key: &str,
        plan: &str,
    ) -> Result<TenantRecord, TenancyError> {
        let record = self.find(key).await?;
        let mut savepoint = tx.tx.begin().await?;
        let updated = sqlx::query_as::<_, TenantRecord>(&format!(
            "UPDATE control.tenants SET plan = $2, updated_at = now()
             WHERE id = $1 AND status <> 'deleted' AND NOT purging
             RETURNING {COLUMNS}"
        ))
        .bind(record.id.as_uuid())
        .bind(plan)
        .fetch_optional(&mut *savepoint)
        .await;
        match updated {
            Ok(Some(updated)) => {
                savepoint.commit().await?;
                Ok(updated)
            }
            Ok(None) => Err(TenancyError::InvalidState {
                slug: record.slug,
                status: record.status,
                action: "change the plan of",
            }),
            Err(e) if crate::error::sqlstate(&e).as_deref() == Some("23514") => Err(
                TenancyError::Invalid(format!("{plan:?} is not a plan name")),
            ),
            Err(e) => Err(e.into()),
        }
    }

    /// Deleted → the status it had before the deletion.
    pub async fn restore(&self, key: &str) -> Result<TenantRecord, TenancyError> {
        let mut tx = self.begin_registry().await?;
        let record = self.restore_in(&mut tx, key).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// [`Tenancy::restore`] in the caller's registry transaction.
    pub async fn restore_in(
        &self,
        tx: &mut RegistryTx,
        key: &str,
    ) -> Result<TenantRecord, TenancyError> {
        let record = self.find(key).await?;
        let restored = sqlx::query_as::<_, TenantRecord>(&format!(
            "UPDATE control.tenants SET status = coalesce(status_before_delete, 'active'),
                 status_before_delete = NULL, deleted_at = NULL, updated_at = now()
             WHERE id = $1 AND status = 'deleted' AND NOT purging
             RETURNING {COLUMNS}"
        ))
        .bind(record.id.as_uuid())
        .fetch_optional(&mut **tx)
        .await?;
        match restored {
            Some(restored) => Ok(restored),
            None => Err(TenancyError::InvalidState {
                slug: record.slug,
                status: record.status,
                action: "restore",
            }),
        }
    }

    /// Removes the tenant and everything it owns. `confirm` must repeat its slug.
    #[tracing::instrument(skip_all, fields(tenant = key))]
    pub async fn hard_delete(&self, key: &str, confirm: &str) -> Result<(), TenancyError> {
        let record = self.find(key).await?;
        if confirm != record.slug {
            return Err(TenancyError::ConfirmationMismatch {
                slug: record.slug,
                given: confirm.to_string(),
            });
        }
        let lock = self.lock_tenant(record.id).await?;
        sqlx::query(
            "UPDATE control.tenants SET purging = true, status = 'deleted',
                 deleted_at = coalesce(deleted_at, now()), updated_at = now()
             WHERE id = $1",
        )
        .bind(record.id.as_uuid())
        .execute(&self.inner.owner)
        .await?;
        self.purge(&record).await?;
        lock.commit().await?;
        tracing::info!(slug = %record.slug, "tenant hard-deleted");
        Ok(())
    }

    /// Removes a tenant nobody has used yet (an import that failed midway) as
    /// [`Tenancy::hard_delete`] does, but leaves its slug free at once instead of reserved for
    /// 30 days.
    pub async fn discard(&self, slug: &str) -> Result<(), TenancyError> {
        self.hard_delete(slug, slug).await?;
        sqlx::query("DELETE FROM control.released_slugs WHERE slug = $1 AND org_id IS NULL")
            .bind(slug)
            .execute(&self.inner.owner)
            .await?;
        Ok(())
    }

    /// Hard-deletes every tenant soft-deleted longer than `retention` ago, one at a time. Each is
    /// claimed with `FOR UPDATE SKIP LOCKED` and marked `purging` before its storage is dropped,
    /// so any number of server instances running this at once purge each tenant once (and an
    /// instance dying mid-purge leaves it to [`Tenancy::resume_purges`]). Returns the slugs
    /// purged.
    pub async fn purge_expired(
        &self,
        retention: std::time::Duration,
    ) -> Result<Vec<String>, TenancyError> {
        let mut purged = Vec::new();
        loop {
            let mut claim = self.inner.owner.begin().await?;
            let due: Option<uuid::Uuid> = sqlx::query_scalar(
                "SELECT id FROM control.tenants
                 WHERE status = 'deleted' AND NOT purging
                   AND deleted_at < now() - make_interval(secs => $1)
                 ORDER BY deleted_at LIMIT 1 FOR UPDATE SKIP LOCKED",
            )
            .bind(retention.as_secs_f64())
            .fetch_optional(&mut *claim)
            .await?;
            let Some(id) = due else {
                claim.commit().await?;
                return Ok(purged);
            };
            sqlx::query(
                "UPDATE control.tenants SET purging = true, updated_at = now() WHERE id = $1",
            )
            .bind(id)
            .execute(&mut *claim)
            .await?;
            claim.commit().await?;
            let record = registry::get(&self.inner.owner, crate::ids::TenantId::from(id)).await?;
            let lock = self.lock_tenant(record.id).await?;
            self.purge(&record).await?;
            lock.commit().await?;
            tracing::info!(slug = %record.slug, "tenant hard-deleted at the end of its retention");
            purged.push(record.slug);
        }
    }

    /// Finishes hard deletes that were cut off. Returns the slugs finished, and those that
    /// failed again with their errors (retried at the next start).
    pub async fn resume_purges(
        &self,
    ) -> Result<(Vec<String>, Vec<(String, String)>), TenancyError> {
        let mut finished = Vec::new();
        let mut failed = Vec::new();
        for record in registry::list(&self.inner.owner).await? {
            if record.purging {
                tracing::info!(slug = %record.slug, "finishing an interrupted hard delete");
                let result = async {
                    let lock = self.lock_tenant(record.id).await?;
                    self.purge(&record).await?;
                    lock.commit().await
                }
                .await;
                match result {
                    Ok(()) => finished.push(record.slug),
                    Err(e) => failed.push((record.slug, e.to_string())),
                }
            }
        }
        Ok((finished, failed))
    }

    async fn transition(
        &self,
        tx: &mut RegistryTx,
        key: &str,
        from: &[TenantStatus],
        to: TenantStatus,
        action: &'static str,
    ) -> Result<TenantRecord, TenancyError> {
        let record = self.find(key).await?;
        match registry::transition(tx, record.id, from, to).await? {
            Some(updated) => {
                if to != TenantStatus::Active
                    && let Some(pool) = self.inner.tenant_pools.remove(record.id)
                {
                    pool.close().await;
                }
                tracing::info!(slug = %updated.slug, from = %record.status, to = %to, "tenant status changed");
                Ok(updated)
            }
            None => Err(TenancyError::InvalidState {
                slug: record.slug,
                status: record.status,
                action,
            }),
        }
    }

    /// Drops the database and role (database tier, its pool closed first) or the schema (schema
    /// tier) that `placement` names; nothing for the shared tier, whose rows are the caller's to
    /// delete.
    pub(crate) async fn drop_storage(&self, placement: &TenantRecord) -> Result<(), TenancyError> {
        match placement.isolation {
            Isolation::Database => {
                if let Some(pool) = self.inner.tenant_pools.remove(placement.id) {
                    pool.close().await;
                }
                let mut conn = self.inner.server_admin(&placement.server).await?;
                crate::sql::exec(
                    &mut conn,
                    &format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        quote_ident(&placement.database_name)
                    ),
                )
                .await
                .context("failed to drop the tenant database")?;
                crate::sql::exec(
                    &mut conn,
                    &format!(
                        "DROP ROLE IF EXISTS {}",
                        quote_ident(&self.naming().tenant_role(placement.id))
                    ),
                )
                .await
                .context("failed to drop the tenant role")?;
                conn.close().await;
            }
            Isolation::Schema => {
                let mut tx = self.inner.owner.begin().await?;
                crate::sql::exec(
                    &mut tx,
                    &format!(
                        "SET LOCAL lock_timeout = '30s'; DROP SCHEMA IF EXISTS {} CASCADE",
                        quote_ident(&placement.schema_name)
                    ),
                )
                .await
                .context("failed to drop the tenant schema")?;
                tx.commit().await?;
            }
            Isolation::Shared => {}
        }
        Ok(())
    }

    async fn purge(&self, record: &TenantRecord) -> Result<(), TenancyError> {
        self.remove_move_leftovers(record).await?;
        self.drop_storage(record).await?;
        self.purge_rows(record.id).await
    }

    /// Deletes every row with the tenant's id from the control database (shared schema and
    /// control tables alike, children before parents), then its registry row, in one transaction.
    async fn purge_rows(&self, id: TenantId) -> Result<(), TenancyError> {
        let mut conn = self.inner.owner.acquire().await?;
        let tables = tables_with_tenant_id(&mut conn).await?;
        let mut tx = conn.begin().await?;
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        for (schema, table) in &tables {
            sqlx::query(&format!(
                "DELETE FROM {}.{} WHERE tenant_id = $1",
                quote_ident(schema),
                quote_ident(table)
            ))
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await
            .with_context(|| format!("failed to delete the tenant's rows from {schema}.{table}"))?;
        }
        sqlx::query("DELETE FROM control.tenants WHERE id = $1")
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Tables of the control database with a `tenant_id` column, outside the per-tenant schemas,
/// ordered so that a table comes before every table it references.
async fn tables_with_tenant_id(
    conn: &mut sqlx::PgConnection,
) -> anyhow::Result<Vec<(String, String)>> {
    let tables: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT c.oid::int8, n.nspname::text, c.relname::text
         FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname !~ '^t_[0-9a-f]{32}$'
         ORDER BY 2, 3",
    )
    .fetch_all(&mut *conn)
    .await
    .context("failed to list the tables with tenant_id")?;
    let tables = tables
        .into_iter()
        .map(|(oid, schema, table)| (oid, (schema, table)))
        .collect();
    let mut ordered = crate::rows::parents_first(conn, tables).await?;
    ordered.reverse();
    Ok(ordered)
}
