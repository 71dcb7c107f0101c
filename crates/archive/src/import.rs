//! [`import`]: an archive restored into a new tenant. Checked whole first; then the tenant is
//! created, its tables are filled and compared with the manifest in one transaction, the
//! control side is restored in another, both audit chains rebuilt under the new id, and
//! `organization.imported` appended. Any failure after the tenant exists hard-deletes it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use futures::TryStreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use tenantry_audit::{AuditContext, Chain, Change};
use tenantry_tenancy::{
    Isolation, NewTenant, Operator, SHARED_SCHEMA, Slug, Tenancy, TenancyError, TenantRecord,
    TenantTable, TenantTx, quote_ident, upsert_json_rows,
};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::manifest::{TENANT_AUDIT_TABLE, tenant_path, tenant_table_of};
use crate::reader::{Lines, for_each_file};
use crate::rechain::{ContentDigest, Rechain};
use crate::validate::{Checked, ServerTable, check};
use crate::writer::Event;
use crate::{ArchiveError, Progress, control};

/// Rows per write.
const BATCH: usize = 1_000;

/// Where and how to restore an archive.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The new tenant's slug (free on this server).
    pub slug: String,
    pub isolation: Isolation,
    /// The new tenant's name; the archived one when absent.
    pub name: Option<String>,
}

/// What an import restored, and what it could not.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub tenant: TenantRecord,
    pub source_tenant_id: Uuid,
    pub source_slug: String,
    pub manifest_sha256: String,
    /// Rows restored per tenant table, in order.
    pub tables: Vec<(String, u64)>,
    /// Entries of the organization's control-side audit chain restored (before
    /// `organization.imported`).
    pub audit_entries: u64,
    /// Members restored: users of this server with the archived email.
    pub members_restored: Vec<String>,
    /// Members skipped: no user of this server has their email.
    pub members_skipped: Vec<String>,
    /// Invitations and API keys in the archive, not restored: their secrets are not in it.
    pub invitations_not_restored: u64,
    pub api_keys_not_restored: u64,
    pub plan_overrides_restored: bool,
    pub api_usage_periods: u64,
}

/// Restores the archive at `archive` into a new tenant. Nothing is created unless the archive
/// checks out; a failure after the tenant was created removes it again.
#[tracing::instrument(skip_all, fields(slug = %options.slug))]
pub async fn import(
    tenancy: &Tenancy,
    archive: &Path,
    options: &ImportOptions,
    progress: &dyn Progress,
) -> Result<ImportReport, ArchiveError> {
    let slug = Slug::parse(&options.slug).map_err(|e| ArchiveError::Invalid(e.to_string()))?;
    match tenancy.find(slug.as_str()).await {
        Ok(_) => return Err(ArchiveError::SlugTaken(slug.to_string())),
        Err(TenancyError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let tables = tenancy.tenant_tables().await?;
    let server = server_tables(tenancy, &tables).await?;
    progress.step("checking the archive");
    let path = archive.to_path_buf();
    let checked = tokio::task::spawn_blocking(move || check(&path, &server))
        .await
        .map_err(|e| anyhow::anyhow!("the archive check failed: {e}"))??;
    let name = options
        .name
        .clone()
        .unwrap_or_else(|| checked.profile.name.clone());
    if name.trim().is_empty() || name.trim().chars().count() > 200 {
        return Err(ArchiveError::Invalid(
            "the name must have 1 to 200 characters".to_string(),
        ));
    }
    {
        let mut conn = Operator::new(tenancy).control().acquire().await?;
        if !control::plan_exists(&mut conn, &checked.profile.plan).await? {
            return Err(ArchiveError::InvalidArchive(format!(
                "its plan {:?} does not exist on this server",
                checked.profile.plan
            )));
        }
    }
    progress.step(&format!(
        "creating tenant {slug} in the {} tier",
        options.isolation
    ));
    let record = tenancy
        .create_tenant(&NewTenant {
            name: name.trim().to_string(),
            slug,
            isolation: options.isolation,
            plan: Some(checked.profile.plan.clone()),
            server: None,
        })
        .await?;
    progress.tenant_created(&record);
    match restore(tenancy, archive, &record, &tables, &checked, progress).await {
        Ok(report) => Ok(report),
        Err(e) => {
            tracing::warn!(slug = %record.slug, error = %e, "import failed; removing the new tenant");
            if let Err(undo) = tenancy.discard(&record.slug).await {
                tracing::error!(slug = %record.slug, error = %undo, "failed to remove the half-imported tenant");
                return Err(ArchiveError::Unexpected(anyhow::anyhow!(
                    "{e}; and removing the half-imported tenant failed ({undo}): remove it with \
                     `tenantry tenant delete {0} --hard --confirm {0}`",
                    record.slug
                )));
            }
            Err(e)
        }
    }
}

/// This server's tenant tables with their columns, from the shared schema (always at the latest
/// version, like a new tenant's storage).
async fn server_tables(
    tenancy: &Tenancy,
    tables: &[TenantTable],
) -> Result<Vec<ServerTable>, ArchiveError> {
    let mut conn = Operator::new(tenancy).control().acquire().await?;
    let mut server = Vec::with_capacity(tables.len());
    for table in tables {
        let columns: Vec<String> = sqlx::query_scalar(
            "SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
               AND a.attname <> 'tenant_id'
             ORDER BY a.attnum",
        )
        .bind(format!("{}.{}", quote_ident(SHARED_SCHEMA), table.quoted()))
        .fetch_all(&mut *conn)
        .await?;
        server.push(ServerTable {
            name: table.name.clone(),
            columns,
        });
    }
    Ok(server)
}

async fn restore(
    tenancy: &Tenancy,
    archive: &Path,
    record: &TenantRecord,
    tables: &[TenantTable],
    checked: &Checked,
    progress: &dyn Progress,
) -> Result<ImportReport, ArchiveError> {
    let org_id = record.id.as_uuid();
    if checked
        .profile
        .settings
        .as_object()
        .is_some_and(|s| !s.is_empty())
    {
        tenancy
            .update_profile(
                &org_id.to_string(),
                None,
                None,
                Some(&checked.profile.settings),
            )
            .await?;
    }

    // Through the door: the new tenant must be active, and the write gate is passed.
    let ctx = tenancy.resolve_id(record.id).await?;
    let storage = Operator::new(tenancy).begin_restore(&ctx).await?;
    let restored =
        restore_tenant_tables(storage, archive, record, tables, checked, progress).await?;

    progress.step("restoring members, plan overrides, usage and the organization's audit trail");
    let mut tx = Operator::new(tenancy).control().begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(Chain::Organization(org_id).lock_key())
        .execute(&mut *tx)
        .await?;
    if let Some(overrides) = &checked.overrides {
        control::restore_overrides(&mut tx, org_id, overrides).await?;
    }
    let (members_restored, members_skipped) =
        control::restore_members(&mut tx, org_id, &checked.members).await?;
    control::restore_usage(&mut tx, org_id, &checked.usage).await?;
    let mut rechain = Rechain::new(Chain::Organization(org_id), true);
    let mut entries = Vec::with_capacity(checked.audit.len());
    for line in &checked.audit {
        entries.push(
            rechain
                .next(line, "org_id", org_id)
                .context("failed to rebuild the organization's audit chain")?,
        );
    }
    control::restore_audit(&mut tx, org_id, &entries, rechain.head()).await?;
    tx.commit().await?;

    let change = Change {
        action: tenantry_audit::AuditAction::OrganizationImported,
        target_kind: "organization",
        target_id: Some(org_id.to_string()),
        before: None,
        after: Some(serde_json::json!({
            "source_tenant_id": checked.manifest.source.tenant_id,
            "source_slug": checked.manifest.source.slug,
            "manifest_sha256": checked.manifest_sha256,
            "exported_at": checked.manifest.exported_at,
            "isolation": record.isolation,
        })),
    };
    let mut tx = tenancy.control_db().begin().await?;
    tenantry_audit::record(&mut tx, Some(org_id), &AuditContext::system(), &change).await?;
    tx.commit().await?;

    let record = tenancy.find(&org_id.to_string()).await?;
    let verification = tenantry_audit::verify(tenancy, &record).await?;
    if !verification.is_intact() {
        return Err(ArchiveError::Mismatch(format!(
            "the rebuilt audit chains do not verify: {}",
            verification.problems.join("; ")
        )));
    }
    Ok(ImportReport {
        source_tenant_id: checked.manifest.source.tenant_id,
        source_slug: checked.manifest.source.slug.clone(),
        manifest_sha256: checked.manifest_sha256.clone(),
        tables: restored,
        audit_entries: entries.len() as u64,
        members_restored,
        members_skipped,
        invitations_not_restored: checked.invitations,
        api_keys_not_restored: checked.api_keys,
        plan_overrides_restored: checked.overrides.is_some(),
        api_usage_periods: checked.usage.len() as u64,
        tenant: record,
    })
}

/// Fills the new tenant's tables from the archive and compares them with it, in one
/// transaction that commits only when every table matches.
async fn restore_tenant_tables(
    mut tx: TenantTx,
    archive: &Path,
    record: &TenantRecord,
    tables: &[TenantTable],
    checked: &Checked,
    progress: &dyn Progress,
) -> Result<Vec<(String, u64)>, ArchiveError> {
    let tenant = record.id.as_uuid();
    // A new tenant holds only its seeded settings row; the archive's rows replace it.
    for table in tables.iter().rev() {
        sqlx::query(&format!("DELETE FROM {}", table.quoted()))
            .execute(&mut *tx)
            .await
            .with_context(|| format!("failed to empty {}", table.name))?;
    }
    let (sender, mut events) = mpsc::channel::<Event>(8);
    let path: PathBuf = archive.to_path_buf();
    let expected: HashMap<String, String> = checked
        .manifest
        .files
        .iter()
        .map(|f| (f.path.clone(), f.sha256.clone()))
        .collect();
    let reader = tokio::task::spawn_blocking(move || read_tenant_files(&path, expected, sender));
    let mut restored = Vec::new();
    let mut audit_digest: Option<(u64, String)> = None;
    let mut current: Option<(&TenantTable, u64, Option<Rechain>, ContentDigest)> = None;
    let result: Result<(), ArchiveError> = async {
        while let Some(event) = events.recv().await {
            match event {
                Event::Begin(path) => {
                    let name = tenant_table_of(&path).unwrap_or_default();
                    let table = tables
                        .iter()
                        .find(|t| t.name == name)
                        .ok_or_else(|| anyhow::anyhow!("table {name} vanished from this server"))?;
                    let rechain = (name == TENANT_AUDIT_TABLE)
                        .then(|| Rechain::new(Chain::Tenant(tenant), false));
                    current = Some((table, 0, rechain, ContentDigest::default()));
                }
                Event::Lines(lines) => {
                    let Some((table, rows, rechain, digest)) = current.as_mut() else {
                        return Err(anyhow::anyhow!("rows outside a table").into());
                    };
                    let mut batch = Vec::with_capacity(lines.len());
                    for line in &lines {
                        match rechain {
                            Some(rechain) => {
                                digest.push(line)?;
                                batch.push(rechain.next(line, "tenant_id", tenant)?);
                            }
                            None => batch.push(with_tenant_id(line, tenant)),
                        }
                    }
                    upsert_json_rows(&mut tx, table, &batch).await?;
                    *rows += lines.len() as u64;
                }
                Event::End => {
                    let Some((table, rows, rechain, digest)) = current.take() else {
                        return Err(anyhow::anyhow!("a table ended that never began").into());
                    };
                    if rechain.is_some() {
                        audit_digest = Some(digest.finish());
                    }
                    progress.file_done(&tenant_path(&table.name), rows);
                    restored.push((table.name.clone(), rows));
                }
                Event::Finish(_) => break,
            }
        }
        Ok(())
    }
    .await;
    drop(events);
    let read = reader
        .await
        .map_err(|e| anyhow::anyhow!("the archive reader failed: {e}"))?;
    result?;
    read.map_err(|e| ArchiveError::InvalidArchive(format!("{e:#}")))?;

    progress.step("comparing every table with the archive");
    for info in &checked.manifest.tenant_tables {
        let table = tables
            .iter()
            .find(|t| t.name == info.name)
            .ok_or_else(|| anyhow::anyhow!("table {} vanished from this server", info.name))?;
        let path = tenant_path(&info.name);
        let expected = checked
            .manifest
            .file(&path)
            .ok_or_else(|| anyhow::anyhow!("{path} is not in the manifest"))?;
        let chain = info.name == TENANT_AUDIT_TABLE;
        let (rows, digest) = table_digest(&mut tx, table, chain).await?;
        let wanted = if chain {
            audit_digest
                .clone()
                .ok_or_else(|| anyhow::anyhow!("{path} was not restored"))?
        } else {
            (expected.rows, expected.sha256.clone())
        };
        if rows != expected.rows {
            return Err(ArchiveError::Mismatch(format!(
                "{}: {rows} rows restored, the archive has {}",
                info.name, expected.rows
            )));
        }
        if digest != wanted.1 {
            return Err(ArchiveError::Mismatch(format!(
                "{}: the restored rows differ from the archive's",
                info.name
            )));
        }
    }
    tx.commit().await?;
    Ok(restored)
}

/// The rows of a table as the export writes them: their count and the SHA-256 of the file's
/// bytes (or, for the audit chain, of their content without the hashes).
async fn table_digest(
    conn: &mut PgConnection,
    table: &TenantTable,
    chain: bool,
) -> Result<(u64, String), ArchiveError> {
    let sql = format!(
        "SELECT (to_jsonb(t) - 'tenant_id')::text FROM {table} t ORDER BY {keys}",
        table = table.quoted(),
        keys = table.key_list("t"),
    );
    let mut lines = sqlx::query_scalar::<_, String>(&sql).fetch(&mut *conn);
    let mut sha = Sha256::new();
    let mut content = ContentDigest::default();
    let mut rows = 0u64;
    while let Some(line) = lines.try_next().await? {
        if chain {
            content.push(&line)?;
        } else {
            sha.update(line.as_bytes());
            sha.update(b"\n");
        }
        rows += 1;
    }
    Ok(if chain {
        content.finish()
    } else {
        (rows, hex::encode(sha.finalize()))
    })
}

/// A row without `tenant_id`, as the archive holds it, with the new tenant's id added.
fn with_tenant_id(line: &str, tenant: Uuid) -> String {
    let rest = line.trim_start().strip_prefix('{').unwrap_or(line);
    let separator = if rest.trim_start().starts_with('}') {
        ""
    } else {
        ","
    };
    format!("{{\"tenant_id\":\"{tenant}\"{separator}{rest}")
}

/// Sends the lines of every tenant table's file, in archive order, checking each against its
/// SHA-256 in the manifest again (the file could have changed since it was checked).
fn read_tenant_files(
    archive: &Path,
    expected: HashMap<String, String>,
    sender: mpsc::Sender<Event>,
) -> anyhow::Result<()> {
    let gone = || anyhow::anyhow!("the import stopped");
    for_each_file(archive, |path, content| {
        if tenant_table_of(path).is_none() {
            return Ok(true);
        }
        sender
            .blocking_send(Event::Begin(path.to_string()))
            .map_err(|_| gone())?;
        let mut lines = Lines::new(content);
        let mut batch = Vec::with_capacity(BATCH);
        while let Some(line) = lines.next_line()? {
            batch.push(line.to_string());
            if batch.len() == BATCH {
                sender
                    .blocking_send(Event::Lines(std::mem::take(&mut batch)))
                    .map_err(|_| gone())?;
            }
        }
        if !batch.is_empty() {
            sender
                .blocking_send(Event::Lines(batch))
                .map_err(|_| gone())?;
        }
        let (_, sha256, _) = lines.finish();
        anyhow::ensure!(
            expected.get(path) == Some(&sha256),
            "{path} changed since it was checked"
        );
        sender.blocking_send(Event::End).map_err(|_| gone())?;
        Ok(true)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenant_id_joins_each_row() {
        let id = Uuid::from_u128(1);
        let row: serde_json::Value =
            serde_json::from_str(&with_tenant_id(r#"{"id": 7, "name": "a"}"#, id)).unwrap();
        assert_eq!(row["tenant_id"], id.to_string());
        assert_eq!(row["id"], 7);
        let empty: serde_json::Value = serde_json::from_str(&with_tenant_id("{}", id)).unwrap();
        assert_eq!(empty, serde_json::json!({"tenant_id": id.to_string()}));
    }
}
