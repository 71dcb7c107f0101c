//! Fleet migrations: the tenant schema's pending migrations applied to the shared schema once and
//! to every schema- and database-tier tenant, several at a time, each tenant's versions (one per
//! migration set) recorded in the registry. Whether anything is pending is decided from the
//! registry alone.

use futures::StreamExt;
use serde::Serialize;
use sqlx::Connection;

use crate::Tenancy;
use crate::bootstrap::{grant_tenant_tables, pin_to_tenant};
use crate::error::TenancyError;
use crate::ids::{Isolation, ProvisionStep, TenantStatus};
use crate::naming::SHARED_SCHEMA;
use crate::registry::{self, TenantRecord};
use crate::schema::SchemaVersions;

/// Told about a fleet migration's progress (a progress bar, log lines).
pub trait MigrateProgress: Send + Sync {
    fn started(&self, _tenants: usize) {}
    fn finished(&self, _slug: &str, _result: &Result<SchemaVersions, String>) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy)]
pub struct Quiet;
impl MigrateProgress for Quiet {}

#[derive(Debug, Clone, Serialize)]
pub struct MigrateReport {
    pub latest: SchemaVersions,
    /// Nothing was pending; no tenant was connected to.
    pub noop: bool,
    pub shared_from: SchemaVersions,
    pub shared_to: SchemaVersions,
    pub migrated: Vec<String>,
    pub failed: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FleetStatus {
    pub latest: SchemaVersions,
    pub shared: ScopeStatus,
    pub tenants: Vec<TenantSchemaStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScopeStatus {
    pub registry_versions: SchemaVersions,
    pub actual_versions: SchemaVersions,
    pub drift: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TenantSchemaStatus {
    pub slug: String,
    pub isolation: Isolation,
    pub status: TenantStatus,
    pub registry_versions: SchemaVersions,
    /// What the tenant's own storage records; absent when it has no tables yet.
    pub actual_versions: Option<SchemaVersions>,
    /// Migrations of the latest versions the tenant's storage lacks, over every set.
    pub pending: i32,
    /// Differences between the registry, the storage and the migration set.
    pub drift: Vec<String>,
}

impl Tenancy {
    /// Applies every pending tenant-schema migration, `jobs` tenants at a time. Tenants that fail
    /// are reported and left at the version they reached; running again resumes them.
    pub async fn migrate_fleet(
        &self,
        jobs: usize,
        progress: &dyn MigrateProgress,
    ) -> Result<MigrateReport, TenancyError> {
        let latest = self.inner.schema.latest();
        let shared_from = self.scope_versions(SHARED_SCHEMA).await?;
        // Decided from the registry alone: no tenant is connected to when nothing is pending.
        let behind = registry::behind(&self.inner.owner, &latest).await?;
        if shared_from.covers(&latest) && behind.is_empty() {
            return Ok(MigrateReport {
                latest,
                noop: true,
                shared_to: shared_from.clone(),
                shared_from,
                migrated: Vec::new(),
                failed: Vec::new(),
            });
        }
        let shared_to = if shared_from.covers(&latest) {
            shared_from.clone()
        } else {
            self.migrate_shared().await?
        };
        progress.started(behind.len());
        let results: Vec<(String, Result<SchemaVersions, String>)> = futures::stream::iter(behind)
            .map(|record| async move {
                let result = self
                    .migrate_tenant(&record)
                    .await
                    .map_err(|e| format!("{e:#}"));
                progress.finished(&record.slug, &result);
                (record.slug, result)
            })
            .buffer_unordered(self.fleet_jobs(jobs))
            .collect()
            .await;
        let mut report = MigrateReport {
            latest,
            noop: false,
            shared_from,
            shared_to,
            migrated: Vec::new(),
            failed: Vec::new(),
        };
        for (slug, result) in results {
            match result {
                Ok(_) => report.migrated.push(slug),
                Err(e) => report.failed.push((slug, e)),
            }
        }
        report.migrated.sort();
        report.failed.sort();
        Ok(report)
    }

    /// Brings one schema- or database-tier tenant to the latest version and records it.
    /// Holds the tenant's lock meanwhile, so a concurrent hard delete is never undone by
    /// recreating its schema; a tenant deleted since the run began is left alone.
    async fn migrate_tenant(&self, record: &TenantRecord) -> anyhow::Result<SchemaVersions> {
        let lock = self.lock_tenant(record.id).await?;
        let record = match registry::find(&self.inner.owner, &record.id.to_string()).await? {
            Some(current) if !current.purging => current,
            _ => {
                lock.commit().await?;
                tracing::info!(slug = %record.slug, "deleted while the migration ran; skipped");
                return Ok(record.schema_versions.clone());
            }
        };
        let version = self.migrate_storage(&record).await?;
        sqlx::query(
            "UPDATE control.tenants SET schema_versions = $2, updated_at = now() WHERE id = $1",
        )
        .bind(record.id.as_uuid())
        .bind(sqlx::types::Json(&version))
        .execute(&self.inner.owner)
        .await?;
        lock.commit().await?;
        Ok(version)
    }

    /// `jobs`, bounded so that every job finds an owner connection without waiting for one.
    fn fleet_jobs(&self, jobs: usize) -> usize {
        let owner = self.inner.owner.options().get_max_connections() as usize;
        jobs.clamp(1, owner.saturating_sub(1).max(1))
    }

    /// Applies the pending migrations to the tenant's schema and grants the tenant's runtime
    /// role its tables. For the shared tier, that is the shared schema.
    pub(crate) async fn migrate_storage(
        &self,
        record: &TenantRecord,
    ) -> anyhow::Result<SchemaVersions> {
        if record.isolation == Isolation::Shared {
            return self.migrate_shared().await;
        }
        let role = self.runtime_role_of(record);
        let mut conn = self.storage_connection(record).await?;
        let version = self
            .inner
            .schema
            .apply(&mut conn, &record.schema_name)
            .await?;
        grant_tenant_tables(&mut conn, &record.schema_name, &role).await?;
        pin_to_tenant(&mut conn, &record.schema_name, record.id).await?;
        conn.close().await;
        Ok(version)
    }

    /// Brings the shared schema to the latest version and records it for the scope and for every
    /// shared-tier tenant.
    pub(crate) async fn migrate_shared(&self) -> anyhow::Result<SchemaVersions> {
        // The scope's versions are recorded only after the migrations and grants are done, so at
        // the latest versions there is nothing to do (and no GRANT to contend on with concurrent
        // provisioning).
        let recorded = self.scope_versions(SHARED_SCHEMA).await?;
        if recorded.covers(&self.inner.schema.latest()) {
            return Ok(recorded);
        }
        let mut conn = self.inner.owner.acquire().await?;
        let version = self.inner.schema.apply(&mut conn, SHARED_SCHEMA).await?;
        grant_tenant_tables(&mut conn, SHARED_SCHEMA, &self.naming().runtime_role()).await?;
        let mut tx = conn.begin().await?;
        sqlx::query(
            "INSERT INTO control.schema_scopes (scope, versions) VALUES ($1, $2)
             ON CONFLICT (scope) DO UPDATE SET versions = $2, updated_at = now()",
        )
        .bind(SHARED_SCHEMA)
        .bind(sqlx::types::Json(&version))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE control.tenants SET schema_versions = $1
             WHERE isolation = 'shared' AND schema_versions IS DISTINCT FROM $1",
        )
        .bind(sqlx::types::Json(&version))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(version)
    }

    /// The versions a tenant's storage really has: its scope's for the shared tier.
    pub(crate) async fn storage_versions(
        &self,
        record: &TenantRecord,
    ) -> anyhow::Result<SchemaVersions> {
        Ok(match record.isolation {
            Isolation::Shared => self.scope_versions(SHARED_SCHEMA).await?,
            Isolation::Schema | Isolation::Database => {
                let mut conn = self.storage_connection(record).await?;
                let versions = self
                    .inner
                    .schema
                    .applied(&mut conn, &record.schema_name)
                    .await;
                conn.close().await;
                versions?.unwrap_or_default()
            }
        })
    }

    /// The versions the registry records for a scope (`shared`), none when never migrated.
    pub(crate) async fn scope_versions(&self, scope: &str) -> Result<SchemaVersions, TenancyError> {
        let versions: Option<sqlx::types::Json<SchemaVersions>> = sqlx::query_scalar(
            "SELECT coalesce(versions, '{}') FROM control.schema_scopes WHERE scope = $1",
        )
        .bind(scope)
        .fetch_optional(&self.inner.owner)
        .await?;
        Ok(versions.map(|v| v.0).unwrap_or_default())
    }

    /// Compares, for the shared schema and every tenant, the registry's version, the version its
    /// storage records, and the migration set, `jobs` tenants at a time.
    pub async fn migration_status(&self, jobs: usize) -> Result<FleetStatus, TenancyError> {
        let latest = self.inner.schema.latest();
        let shared = {
            let mut conn = self.inner.owner.acquire().await?;
            let actual = self
                .inner
                .schema
                .applied(&mut conn, SHARED_SCHEMA)
                .await?
                .unwrap_or_default();
            let mut drift = self.inner.schema.drift(&mut conn, SHARED_SCHEMA).await?;
            let registry_versions = self.scope_versions(SHARED_SCHEMA).await?;
            if registry_versions != actual {
                drift.push(format!(
                    "the registry says versions {registry_versions}, the schema has {actual}"
                ));
            }
            ScopeStatus {
                registry_versions,
                actual_versions: actual,
                drift,
            }
        };
        let records = registry::list(&self.inner.owner).await?;
        let shared_actual = &shared.actual_versions;
        let latest_ref = &latest;
        let tenants = futures::stream::iter(records)
            .map(|record| async move {
                let has_tables =
                    record.provision_step >= ProvisionStep::TablesCreated && !record.purging;
                let (actual, mut drift) = if !has_tables {
                    (None, Vec::new())
                } else {
                    match self.inspect(&record, shared_actual).await {
                        Ok((v, d)) => (Some(v), d),
                        Err(e) => (None, vec![format!("could not be inspected: {e:#}")]),
                    }
                };
                if let Some(actual) = &actual
                    && *actual != record.schema_versions
                    && record.status != TenantStatus::Provisioning
                {
                    drift.push(format!(
                        "the registry says versions {}, the storage has {actual}",
                        record.schema_versions
                    ));
                }
                TenantSchemaStatus {
                    pending: actual
                        .as_ref()
                        .unwrap_or(&record.schema_versions)
                        .pending(latest_ref),
                    slug: record.slug,
                    isolation: record.isolation,
                    status: record.status,
                    registry_versions: record.schema_versions,
                    actual_versions: actual,
                    drift,
                }
            })
            .buffered(self.fleet_jobs(jobs))
            .collect()
            .await;
        Ok(FleetStatus {
            latest,
            shared,
            tenants,
        })
    }

    async fn inspect(
        &self,
        record: &TenantRecord,
        shared_actual: &SchemaVersions,
    ) -> anyhow::Result<(SchemaVersions, Vec<String>)> {
        if record.isolation == Isolation::Shared {
            return Ok((shared_actual.clone(), Vec::new()));
        }
        let mut conn = self.storage_connection(record).await?;
        let version = self
            .inner
            .schema
            .applied(&mut conn, &record.schema_name)
            .await?
            .unwrap_or_default();
        let drift = self
            .inner
            .schema
            .drift(&mut conn, &record.schema_name)
            .await?;
        conn.close().await;
        Ok((version, drift))
    }
}
