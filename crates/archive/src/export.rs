//! [`export`]: reads the organization's rows page by page from two snapshots (its tenant storage,
//! and the control database) and hands them to the archive writer on a blocking thread, which
//! streams the `.tar.gz` into any `Write`.

use std::io::Write;

use anyhow::Context;
use futures::TryStreamExt;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tenantry_tenancy::{Operator, ProvisionStep, Tenancy, TenantRecord, TenantStatus, TenantTable};
use tokio::sync::mpsc;

use crate::manifest::{FORMAT, FORMAT_VERSION, Manifest, Source, TableInfo, tenant_path};
use crate::writer::{Event, write_archive};
use crate::{ArchiveError, Progress, control};

/// Lines per message to the writer.
const BATCH: usize = 1_000;

/// A finished export: the manifest as written, the SHA-256 of `manifest.json`, and the output
/// it was written to.
#[derive(Debug)]
pub struct Exported<W> {
    pub manifest: Manifest,
    pub manifest_sha256: String,
    pub out: W,
}

/// Writes the archive of the tenant `record` into `out` (a file, a pipe, a [`ChannelWriter`]),
/// whatever the tenant's status but provisioning or being purged. `out` is written from a
/// blocking thread; an error leaves it incomplete.
///
/// [`ChannelWriter`]: crate::ChannelWriter
#[tracing::instrument(skip_all, fields(tenant_id = %record.id))]
pub async fn export<W: Write + Send + 'static>(
    tenancy: &Tenancy,
    record: &TenantRecord,
    out: W,
    progress: &dyn Progress,
) -> Result<Exported<W>, ArchiveError> {
    if record.purging
        || record.provision_step < ProvisionStep::TablesCreated
        || matches!(
            record.status,
            TenantStatus::Provisioning | TenantStatus::Failed
        )
    {
        return Err(ArchiveError::NotExportable(format!(
            "tenant {} is {}{}: there is nothing to export yet, or any more",
            record.slug,
            record.status,
            if record.purging {
                " and being purged"
            } else {
                ""
            }
        )));
    }
    let tables = tenancy.tenant_tables().await?;
    let operator = Operator::new(tenancy);
    let mut storage = operator.tenant_storage(record).await?;
    let control = operator
        .connect_options()
        .connect()
        .await
        .context("failed to connect to the control database");
    let mut control = match control {
        Ok(conn) => conn,
        Err(e) => {
            storage.close().await.ok();
            return Err(e.into());
        }
    };
    let (sender, events) = mpsc::channel(16);
    let mtime = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    let writer = tokio::task::spawn_blocking(move || write_archive(events, out, mtime));
    let produced = produce(
        &sender,
        &mut storage,
        &mut control,
        record,
        &tables,
        progress,
    )
    .await;
    drop(sender);
    storage.close().await.ok();
    control.close().await.ok();
    let written = writer
        .await
        .map_err(|e| anyhow::anyhow!("the archive writer failed: {e}"))?;
    match (produced, written) {
        (Ok(()), Ok(written)) => Ok(Exported {
            manifest: written.manifest,
            manifest_sha256: written.manifest_sha256,
            out: written.out,
        }),
        // The writer stopped first (the output failed): its error is the cause.
        (Err(Produce::WriterGone), Err(e)) => Err(ArchiveError::Unexpected(
            e.context("failed to write the archive"),
        )),
        (Err(Produce::WriterGone), Ok(_)) => {
            Err(anyhow::anyhow!("the archive writer stopped").into())
        }
        (Err(Produce::Failed(e)), _) => Err(e),
        (Ok(()), Err(e)) => Err(ArchiveError::Unexpected(
            e.context("failed to write the archive"),
        )),
    }
}

enum Produce {
    WriterGone,
    Failed(ArchiveError),
}

macro_rules! produce_from {
    ($($error:ty),+) => {$(
        impl From<$error> for Produce {
            fn from(e: $error) -> Self {
                Produce::Failed(e.into())
            }
        }
    )+};
}
produce_from!(ArchiveError, sqlx::Error, anyhow::Error);

async fn send(sender: &mpsc::Sender<Event>, event: Event) -> Result<(), Produce> {
    sender.send(event).await.map_err(|_| Produce::WriterGone)
}

async fn produce(
    sender: &mpsc::Sender<Event>,
    storage: &mut PgConnection,
    control: &mut PgConnection,
    record: &TenantRecord,
    tables: &[TenantTable],
    progress: &dyn Progress,
) -> Result<(), Produce> {
    // Two snapshots, taken one right after the other.
    sqlx::query("SET TimeZone = 'UTC'")
        .execute(&mut *control)
        .await?;
    let mut storage = storage.begin().await?;
    let mut control = control.begin().await?;
    for conn in [&mut *storage, &mut *control] {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *conn)
            .await?;
        sqlx::query("SELECT 1").execute(&mut *conn).await?;
    }
    let org_id = record.id.as_uuid();
    let mut infos = Vec::with_capacity(tables.len());
    for table in tables {
        let columns = columns_of(&mut storage, table).await?;
        let path = tenant_path(&table.name);
        let sql = format!(
            "SELECT (to_jsonb(t) - 'tenant_id')::text FROM {table} t ORDER BY {keys}",
            table = table.quoted(),
            keys = table.key_list("t"),
        );
        let rows = stream_file(sender, &mut storage, &path, &sql, None).await?;
        progress.file_done(&path, rows);
        infos.push(TableInfo {
            name: table.name.clone(),
            key: table
                .key
                .iter()
                .filter(|k| *k != "tenant_id")
                .cloned()
                .collect(),
            columns,
        });
    }
    for (path, sql) in control::EXPORTS {
        let rows = stream_file(sender, &mut control, path, sql, Some(org_id)).await?;
        progress.file_done(path, rows);
    }
    let schema_versions = record.schema_versions.clone();
    storage.commit().await?;
    control.commit().await?;
    let manifest = Manifest {
        format: FORMAT.to_string(),
        format_version: FORMAT_VERSION,
        exported_at: chrono::Utc::now(),
        source: Source {
            tenant_id: org_id,
            slug: record.slug.clone(),
            name: record.name.clone(),
            plan: record.plan.clone(),
            isolation: record.isolation.to_string(),
            schema_versions,
            schema_version: None,
        },
        tenant_tables: infos,
        files: Vec::new(),
    };
    send(sender, Event::Finish(Box::new(manifest))).await
}

/// The table's columns in the tenant's storage, `tenant_id` aside, in their order.
async fn columns_of(
    conn: &mut PgConnection,
    table: &TenantTable,
) -> Result<Vec<String>, ArchiveError> {
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT a.attname::text FROM pg_attribute a
         WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
           AND a.attname <> 'tenant_id'
         ORDER BY a.attnum",
    )
    .bind(table.quoted())
    .fetch_all(&mut *conn)
    .await?;
    if columns.is_empty() {
        return Err(ArchiveError::NotExportable(format!(
            "the tenant's storage has no table {}: its schema is behind, run `tenantry migrate` first",
            table.name
        )));
    }
    Ok(columns)
}

/// Sends one file, its lines read with `sql` (`$1` = `org_id` when given); returns its rows.
async fn stream_file(
    sender: &mpsc::Sender<Event>,
    conn: &mut PgConnection,
    path: &str,
    sql: &str,
    org_id: Option<uuid::Uuid>,
) -> Result<u64, Produce> {
    send(sender, Event::Begin(path.to_string())).await?;
    let mut query = sqlx::query_scalar::<_, String>(sql);
    if let Some(id) = org_id {
        query = query.bind(id);
    }
    let mut lines = query.fetch(&mut *conn);
    let mut batch = Vec::with_capacity(BATCH);
    let mut rows = 0u64;
    while let Some(line) = lines
        .try_next()
        .await
        .with_context(|| format!("failed to read the rows of {path}"))?
    {
        batch.push(line);
        rows += 1;
        if batch.len() == BATCH {
            send(sender, Event::Lines(std::mem::take(&mut batch))).await?;
        }
    }
    drop(lines);
    if !batch.is_empty() {
        send(sender, Event::Lines(batch)).await?;
    }
    send(sender, Event::End).await?;
    Ok(rows)
}
