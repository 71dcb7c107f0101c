//! Moving a tenant between tiers while it is in use.
//!
//! 1. **Prepare** the new placement (role, database or schema, tables at the latest version).
//! 2. **Copy** every row, then copy again what changed meanwhile; the tenant is read and written
//!    at its old placement all along.
//! 3. **Switch**: take the tenant's write gate exclusively at the old placement (writers wait;
//!    readers do not), copy the last changes, compare row counts and checksums of every table,
//!    retire the old copy and point the registry at the new one. Writers waiting at the gate
//!    then find the old copy retired and follow the registry (see [`crate::TenantCtx::begin`]).
//!    The write pause is the time the gate is held.
//! 4. **Clean up** after a drain period (readers that looked the tenant up before the switch may
//!    still be reading the old copy): the old schema, database and role, or the old rows of the
//!    shared tables, are removed.
//!
//! Progress is recorded in `control.tenant_moves`; a move cut off anywhere is resumed by moving
//! the tenant to the same tier again, or abandoned with [`Tenancy::abort_move`] before its switch.
//! Copies are row syncs (keys and row digests compared, differences copied), so running one again
//! never duplicates a row.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use sqlx::{Connection, PgConnection};

use crate::engine::Tenancy;
use crate::error::TenancyError;
use crate::ids::{Isolation, MovePhase, ProvisionStep, TenantId, TenantStatus};
use crate::registry::{self, TenantRecord};
use crate::rows::{self, TableChecksum, TenantTable};
use crate::schema::SchemaVersions;
use crate::servers::DEFAULT_SERVER;

/// A read of the old copy that sees every table at one moment.
const SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// How a move is run.
#[derive(Debug, Clone)]
pub struct MoveOptions {
    /// How long the old copy is kept after the switch for readers that looked the tenant up
    /// before it.
    pub drain: Duration,
    /// How long the switch waits for the tenant's writers in progress to finish.
    pub gate_timeout: Duration,
}

impl Default for MoveOptions {
    fn default() -> Self {
        Self {
            drain: Duration::from_secs(10),
            gate_timeout: Duration::from_secs(10),
        }
    }
}

/// What a move reports as it goes.
#[derive(Debug, Clone)]
pub enum MoveProgress {
    /// A move of this tenant to this tier was cut off; it goes on from where it was.
    Resuming {
        phase: MovePhase,
    },
    Preparing {
        to: Isolation,
    },
    Copied {
        table: String,
        rows: u64,
    },
    CaughtUp {
        rows: u64,
    },
    Switched {
        write_pause: Duration,
    },
    Draining {
        seconds: f64,
    },
    Cleaned,
}

/// The outcome of a move.
#[derive(Debug, Clone, Serialize)]
pub struct MoveReport {
    pub slug: String,
    pub from: Isolation,
    pub to: Isolation,
    /// The servers of the old and the new placement.
    pub from_server: String,
    pub to_server: String,
    /// Rows written by the bulk copy and the catch-up before the switch.
    pub rows_copied: u64,
    /// Rows written while writes were paused.
    pub rows_at_switch: u64,
    /// How long the tenant's writes were paused, in milliseconds.
    pub write_pause_ms: f64,
    /// Every table's row count and checksum, equal at both placements at the switch.
    pub tables: Vec<TableChecksum>,
    pub resumed: bool,
}

/// A move in progress, as `control.tenant_moves` records it.
#[derive(Debug, Clone, sqlx::FromRow)]
struct MoveRow {
    #[sqlx(try_from = "String")]
    from_isolation: Isolation,
    from_server: String,
    from_database: String,
    from_schema: String,
    #[sqlx(try_from = "String")]
    to_isolation: Isolation,
    to_server: String,
    to_database: String,
    to_schema: String,
    #[sqlx(try_from = "String")]
    phase: MovePhase,
    write_pause_ms: Option<f64>,
}

impl MoveRow {
    fn placement(
        record: &TenantRecord,
        isolation: Isolation,
        server: &str,
        database: &str,
        schema: &str,
    ) -> TenantRecord {
        TenantRecord {
            isolation,
            server: server.to_string(),
            database_name: database.to_string(),
            schema_name: schema.to_string(),
            ..record.clone()
        }
    }

    fn source(&self, record: &TenantRecord) -> TenantRecord {
        Self::placement(
            record,
            self.from_isolation,
            &self.from_server,
            &self.from_database,
            &self.from_schema,
        )
    }

    fn target(&self, record: &TenantRecord) -> TenantRecord {
        Self::placement(
            record,
            self.to_isolation,
            &self.to_server,
            &self.to_database,
            &self.to_schema,
        )
    }
}

impl Tenancy {
    /// Moves the tenant named by `key` to the `to` tier, or resumes its interrupted move there.
    /// A move into the database tier goes to the least-loaded server that is not draining.
    pub async fn move_tenant(
        &self,
        key: &str,
        to: Isolation,
        options: &MoveOptions,
        progress: &(dyn Fn(MoveProgress) + Send + Sync),
    ) -> Result<MoveReport, TenancyError> {
        self.move_tenant_to(key, to, None, options, progress).await
    }

    /// Moves the tenant named by `key` to the `to` tier, on `server` for the database tier
    /// (`None`: the least-loaded server that is not draining), or resumes its interrupted move.
    /// A database-tier tenant moves to another server with `to` = database and that server named.
    #[tracing::instrument(skip_all, fields(tenant = key, to = %to, server))]
    pub async fn move_tenant_to(
        &self,
        key: &str,
        to: Isolation,
        server: Option<&str>,
        options: &MoveOptions,
        progress: &(dyn Fn(MoveProgress) + Send + Sync),
    ) -> Result<MoveReport, TenancyError> {
        if to != Isolation::Database && server.is_some_and(|s| s != DEFAULT_SERVER) {
            return Err(TenancyError::Invalid(format!(
                "{to}-tier tenants live on the control database's server: name a server for the database tier only"
            )));
        }
        let found = self.find(key).await?;
        let lock = self.lock_tenant(found.id).await?;
        let record = registry::get(&self.inner.owner, found.id).await?;
        if !matches!(
            record.status,
            TenantStatus::Active | TenantStatus::Suspended
        ) || record.purging
        {
            return Err(TenancyError::InvalidState {
                slug: record.slug,
                status: record.status,
                action: "move",
            });
        }
        let (row, resumed) = match self.move_row(record.id).await? {
            Some(row)
                if row.to_isolation != to
                    || (to == Isolation::Database
                        && server.is_some_and(|s| s != row.to_server)) =>
            {
                return Err(TenancyError::Invalid(format!(
                    "a move of {} to the {} tier on server {} was interrupted: finish it with --to {} --server {}, or abandon it with --abort",
                    record.slug, row.to_isolation, row.to_server, row.to_isolation, row.to_server
                )));
            }
            Some(row) => {
                progress(MoveProgress::Resuming { phase: row.phase });
                (row, true)
            }
            None => {
                let to_server = match to {
                    Isolation::Database if record.isolation == Isolation::Database => {
                        match server {
                            Some(named) if named != record.server => {
                                self.place(Some(named)).await?
                            }
                            _ => {
                                return Err(TenancyError::Invalid(format!(
                                    "{} is already in the database tier on server {}: name another server to move it there",
                                    record.slug, record.server
                                )));
                            }
                        }
                    }
                    Isolation::Database => self.place(server).await?,
                    _ if record.isolation == to => {
                        return Err(TenancyError::Invalid(format!(
                            "{} is already in the {to} tier",
                            record.slug
                        )));
                    }
                    _ => DEFAULT_SERVER.to_string(),
                };
                let latest = self.inner.schema.latest();
                if !record.schema_versions.covers(&latest) {
                    return Err(TenancyError::Invalid(format!(
                        "{} is at schema versions {} of {latest}: run `tenantry migrate` first",
                        record.slug, record.schema_versions
                    )));
                }
                (self.start_move(&record, to, &to_server).await?, false)
            }
        };
        let mut report = MoveReport {
            slug: record.slug.clone(),
            from: row.from_isolation,
            to: row.to_isolation,
            from_server: row.from_server.clone(),
            to_server: row.to_server.clone(),
            rows_copied: 0,
            rows_at_switch: 0,
            write_pause_ms: row.write_pause_ms.unwrap_or(0.0),
            tables: Vec::new(),
            resumed,
        };
        let source = row.source(&record);
        let target = row.target(&record);
        let tables = self.tenant_tables().await?;
        if row.phase == MovePhase::Copying {
            progress(MoveProgress::Preparing { to });
            let version = self.prepare_target(&target).await?;
            let mut from = self.owner_conn_for(&source).await?;
            let mut into = self.owner_conn_for(&target).await?;
            // Each pass reads one snapshot, so a child row is never copied without the parent
            // row it refers to (written meanwhile, after that parent table's turn).
            let mut snapshot = from.begin_with(SNAPSHOT).await?;
            let since = rows::change_horizon(&mut snapshot).await?;
            for table in &tables {
                let copied = rows::copy_table(&mut snapshot, &mut into, table).await?;
                report.rows_copied += copied;
                progress(MoveProgress::Copied {
                    table: table.name.clone(),
                    rows: copied,
                });
            }
            snapshot.commit().await?;
            // What changed during the bulk copy, so that little is left for the switch.
            let mut snapshot = from.begin_with(SNAPSHOT).await?;
            let horizon = rows::change_horizon(&mut snapshot).await?;
            let (copied, deleted) =
                rows::catch_up(&mut snapshot, &mut into, &tables, &since).await?;
            snapshot.commit().await?;
            report.rows_copied += copied;
            progress(MoveProgress::CaughtUp {
                rows: copied + deleted,
            });
            let (changed, checksums, pause) = self
                .switch(
                    &record, &source, &target, version, &tables, &horizon, options, from, into,
                )
                .await?;
            report.rows_at_switch = changed;
            report.tables = checksums;
            report.write_pause_ms = pause.as_secs_f64() * 1000.0;
            progress(MoveProgress::Switched { write_pause: pause });
            if !options.drain.is_zero() {
                progress(MoveProgress::Draining {
                    seconds: options.drain.as_secs_f64(),
                });
                tokio::time::sleep(options.drain).await;
            }
        } else {
            let mut conn = self.owner_conn_for(&target).await?;
            set_retired(&mut conn, record.id, false).await?;
            for table in &tables {
                report
                    .tables
                    .push(rows::table_checksum(&mut conn, table).await?);
            }
            conn.close().await.ok();
        }
        self.remove_placement(&source, &tables).await?;
        sqlx::query("DELETE FROM control.tenant_moves WHERE id = $1")
            .bind(record.id.as_uuid())
            .execute(&self.inner.owner)
            .await?;
        lock.commit().await?;
        progress(MoveProgress::Cleaned);
        tracing::info!(slug = %record.slug, from = %report.from, to = %report.to,
            write_pause_ms = report.write_pause_ms, "tenant moved");
        Ok(report)
    }

    /// Abandons the interrupted move of the tenant named by `key`, if it has not switched yet:
    /// the new placement is removed and the tenant stays where it is.
    pub async fn abort_move(&self, key: &str) -> Result<Option<Isolation>, TenancyError> {
        let found = self.find(key).await?;
        let lock = self.lock_tenant(found.id).await?;
        let record = registry::get(&self.inner.owner, found.id).await?;
        let Some(row) = self.move_row(record.id).await? else {
            return Ok(None);
        };
        if row.phase != MovePhase::Copying {
            return Err(TenancyError::Invalid(format!(
                "the move of {} to the {} tier has switched already: finish it with --to {}, then move it back",
                record.slug, row.to_isolation, row.to_isolation
            )));
        }
        let source = row.source(&record);
        let target = row.target(&record);
        // A move cut off between retiring the old copy and recording the switch leaves the old
        // copy retired: it is the live one again.
        let mut conn = self.owner_conn_for(&source).await?;
        set_retired(&mut conn, record.id, false).await?;
        conn.close().await.ok();
        let tables = self.tenant_tables().await?;
        self.remove_placement(&target, &tables).await?;
        sqlx::query("DELETE FROM control.tenant_moves WHERE id = $1")
            .bind(record.id.as_uuid())
            .execute(&self.inner.owner)
            .await?;
        lock.commit().await?;
        tracing::info!(slug = %record.slug, to = %row.to_isolation, "tenant move abandoned");
        Ok(Some(row.to_isolation))
    }

    /// Removes the copy of a half-moved tenant that the registry does not name (called by hard
    /// delete, which drops the placement the registry names).
    pub(crate) async fn remove_move_leftovers(
        &self,
        record: &TenantRecord,
    ) -> Result<(), TenancyError> {
        let Some(row) = self.move_row(record.id).await? else {
            return Ok(());
        };
        let other = if row.phase == MovePhase::Copying {
            row.target(record)
        } else {
            row.source(record)
        };
        let tables = self.tenant_tables().await?;
        self.remove_placement(&other, &tables).await
    }

    async fn move_row(&self, id: TenantId) -> Result<Option<MoveRow>, TenancyError> {
        Ok(sqlx::query_as(
            "SELECT from_isolation, from_server, from_database, from_schema, to_isolation,
                    to_server, to_database, to_schema, phase, write_pause_ms
             FROM control.tenant_moves WHERE id = $1",
        )
        .bind(id.as_uuid())
        .fetch_optional(&self.inner.owner)
        .await?)
    }

    async fn start_move(
        &self,
        record: &TenantRecord,
        to: Isolation,
        to_server: &str,
    ) -> Result<MoveRow, TenancyError> {
        let (database, schema) = self.placement(record.id, to);
        sqlx::query(
            "INSERT INTO control.tenant_moves (id, from_isolation, from_database, from_schema,
                 to_isolation, to_database, to_schema, phase, from_server, to_server)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'copying', $8, $9)",
        )
        .bind(record.id.as_uuid())
        .bind(record.isolation.as_str())
        .bind(&record.database_name)
        .bind(&record.schema_name)
        .bind(to.as_str())
        .bind(&database)
        .bind(&schema)
        .bind(&record.server)
        .bind(to_server)
        .execute(&self.inner.owner)
        .await?;
        self.move_row(record.id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the move of {} was not recorded", record.slug).into())
    }

    /// Makes the new placement's storage, at the latest schema versions, and returns them.
    async fn prepare_target(&self, target: &TenantRecord) -> Result<SchemaVersions, TenancyError> {
        for step in [
            ProvisionStep::RoleCreated,
            ProvisionStep::StorageCreated,
            ProvisionStep::TablesCreated,
        ] {
            self.perform(target, step).await?;
        }
        // The new copy is not live until the switch: a writer holding a context that names this
        // placement (from before an earlier move away from it) is turned back by the gate.
        let mut conn = self.owner_conn_for(target).await?;
        sqlx::query(
            "INSERT INTO tenant_settings (tenant_id, retired_at) VALUES ($1, now())
             ON CONFLICT (tenant_id) DO UPDATE SET retired_at = now()",
        )
        .bind(target.id.as_uuid())
        .execute(&mut conn)
        .await
        .context("failed to mark the new copy as not live yet")?;
        conn.close().await.ok();
        Ok(self.storage_versions(target).await?)
    }

    /// The switch: see the module documentation. Returns the rows written at the switch, the
    /// checksums both copies share, and the write pause.
    #[allow(clippy::too_many_arguments)]
    async fn switch(
        &self,
        record: &TenantRecord,
        source: &TenantRecord,
        target: &TenantRecord,
        version: SchemaVersions,
        tables: &[TenantTable],
        horizon: &str,
        options: &MoveOptions,
        mut from: PgConnection,
        mut into: PgConnection,
    ) -> Result<(u64, Vec<TableChecksum>, Duration), TenancyError> {
        let id = record.id.as_uuid();
        let mut gate = from.begin().await?;
        sqlx::query(&format!(
            "SET LOCAL lock_timeout = '{}ms'",
            options.gate_timeout.as_millis()
        ))
        .execute(&mut *gate)
        .await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('tenantry.move'), hashtext($1))")
            .bind(id.to_string())
            .execute(&mut *gate)
            .await
            .context("the tenant's writers did not finish in time; try the move again")?;
        let paused = Instant::now();
        // Resumed after the old copy was retired: under the gate it is the live copy again until
        // this transaction commits.
        set_retired(&mut gate, record.id, false).await?;
        // The last changes: rows written since the catch-up's horizon, then a comparison of
        // every table; only a table that differs (a row deleted since) has its keys compared.
        let mut target_tx = into.begin().await?;
        let mut changed = 0;
        for table in tables {
            changed += rows::copy_changed(&mut gate, &mut target_tx, table, horizon).await?;
        }
        target_tx.commit().await?;
        let mut checksums = Vec::with_capacity(tables.len());
        for table in tables.iter().rev() {
            let (mut old, mut new) = compare(&mut gate, &mut into, table).await?;
            if old != new {
                changed += rows::delete_missing(&mut gate, &mut into, table).await?;
                (old, new) = compare(&mut gate, &mut into, table).await?;
            }
            if old != new {
                return Err(anyhow::anyhow!(
                    "{} differs after the copy ({} rows, fingerprint {} at the old placement; {} rows, fingerprint {} at the new): nothing was switched; run the move again",
                    table.name, old.rows, old.checksum, new.rows, new.checksum
                )
                .into());
            }
            checksums.push(new);
        }
        checksums.reverse();
        set_retired(&mut gate, record.id, true).await?;
        let switch_registry = "UPDATE control.tenants SET isolation = $2, database_name = $3,
                 schema_name = $4, schema_versions = $5, server = $6, updated_at = now()
             WHERE id = $1";
        let record_phase =
            "UPDATE control.tenant_moves SET phase = 'switched', write_pause_ms = $2,
                 updated_at = now() WHERE id = $1";
        let same_database = source.isolation != Isolation::Database;
        if same_database {
            // The old copy lives in the control database: retiring it and switching the registry
            // commit together.
            sqlx::query(switch_registry)
                .bind(id)
                .bind(target.isolation.as_str())
                .bind(&target.database_name)
                .bind(&target.schema_name)
                .bind(sqlx::types::Json(&version))
                .bind(&target.server)
                .execute(&mut *gate)
                .await?;
            let pause = paused.elapsed();
            sqlx::query(record_phase)
                .bind(id)
                .bind(pause.as_secs_f64() * 1000.0)
                .execute(&mut *gate)
                .await?;
            gate.commit().await?;
            // Writers now find the registry naming the new copy, and wait at its gate for this.
            set_retired(&mut into, record.id, false).await?;
            from.close().await.ok();
            into.close().await.ok();
            return Ok((changed, checksums, pause));
        }
        // The old copy is a database of its own: retire it, then switch the registry. Writers
        // that wake in between wait for the registry (the door retries a retired copy); a move
        // cut off in between is resumed from the start of the switch.
        gate.commit().await?;
        let mut tx = self.inner.owner.begin().await?;
        sqlx::query(switch_registry)
            .bind(id)
            .bind(target.isolation.as_str())
            .bind(&target.database_name)
            .bind(&target.schema_name)
            .bind(sqlx::types::Json(&version))
            .bind(&target.server)
            .execute(&mut *tx)
            .await?;
        let pause = paused.elapsed();
        sqlx::query(record_phase)
            .bind(id)
            .bind(pause.as_secs_f64() * 1000.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        set_retired(&mut into, record.id, false).await?;
        from.close().await.ok();
        into.close().await.ok();
        Ok((changed, checksums, pause))
    }

    /// Removes a copy of the tenant that the registry no longer (or not yet) names.
    async fn remove_placement(
        &self,
        placement: &TenantRecord,
        tables: &[TenantTable],
    ) -> Result<(), TenancyError> {
        let current = registry::get(&self.inner.owner, placement.id).await?;
        if current.isolation == placement.isolation
            && current.server == placement.server
            && current.database_name == placement.database_name
            && current.schema_name == placement.schema_name
        {
            return Err(anyhow::anyhow!(
                "refusing to remove the placement the registry names for {}",
                current.slug
            )
            .into());
        }
        match placement.isolation {
            Isolation::Database | Isolation::Schema => self.drop_storage(placement).await?,
            Isolation::Shared => {
                let mut conn = self.owner_conn_for(placement).await?;
                let mut tx = conn.begin().await?;
                for table in tables.iter().rev() {
                    sqlx::query(&format!(
                        "DELETE FROM {} WHERE tenant_id = $1",
                        table.quoted()
                    ))
                    .bind(placement.id.as_uuid())
                    .execute(&mut *tx)
                    .await
                    .with_context(|| {
                        format!("failed to delete the tenant's old rows of {}", table.name)
                    })?;
                }
                tx.commit().await?;
                conn.close().await.ok();
            }
        }
        Ok(())
    }
}

/// Retires the copy of the tenant the connection reaches (its writers are turned away by the
/// gate), or makes it the live one.
async fn set_retired(
    conn: &mut PgConnection,
    tenant: TenantId,
    retired: bool,
) -> Result<(), TenancyError> {
    sqlx::query(
        "UPDATE tenant_settings SET retired_at = CASE WHEN $2 THEN now() END WHERE tenant_id = $1",
    )
    .bind(tenant.as_uuid())
    .bind(retired)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The table's fingerprint at the old and the new placement, computed at once.
async fn compare(
    old: &mut PgConnection,
    new: &mut PgConnection,
    table: &TenantTable,
) -> Result<(TableChecksum, TableChecksum), TenancyError> {
    let (old, new) = tokio::join!(rows::fingerprint(old, table), rows::fingerprint(new, table));
    Ok((old?, new?))
}
