//! A tenant's rows, table by table, as JSON: the catalog of tenant tables, checksums that compare
//! a tenant's copy in one place with its copy in another, and the reads and writes that move rows
//! between them. Moves ([`Tenancy::move_tenant`]) and archives (export, import) are built on it.
//!
//! Every function takes an owner connection already scoped to one tenant (search_path on its
//! schema, `app.tenant_id` on its id, as [`Tenancy::owner_conn_for`] opens them), so row-level
//! security keeps each read and write to that tenant. A row's JSON is `to_jsonb(row)`: keys
//! sorted, timestamps in UTC to the microsecond (the connection's TimeZone is UTC), bytea as hex,
//! so the same row gives the same text in every tier and database.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use sqlx::PgConnection;

use crate::engine::Tenancy;
use crate::error::TenancyError;
use crate::naming::{SHARED_SCHEMA, quote_ident, quote_literal};

/// A table of the tenant schema: its name and primary-key columns (`tenant_id` first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantTable {
    pub name: String,
    pub key: Vec<String>,
}

impl TenantTable {
    /// The quoted table name, resolved through the connection's search_path.
    pub fn quoted(&self) -> String {
        quote_ident(&self.name)
    }

    /// `t.k1, t.k2...`: the key columns of alias `t`, for ORDER BY and comparisons.
    pub fn key_list(&self, alias: &str) -> String {
        self.key
            .iter()
            .map(|k| format!("{alias}.{}", quote_ident(k)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Row count and checksum of one table's rows of one tenant ([`table_checksum`]: the MD5 of the
/// rows' MD5s in key order; a move's fingerprint: the sum of 64-bit row hashes). Equal on two
/// copies of a tenant when they hold the same rows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableChecksum {
    pub table: String,
    pub rows: i64,
    pub checksum: String,
}

impl Tenancy {
    /// The tables of the tenant schema (every table with a `tenant_id`, bookkeeping aside), each
    /// after every table it references. Read from the shared schema, always at the latest
    /// version.
    pub async fn tenant_tables(&self) -> Result<Vec<TenantTable>, TenancyError> {
        let mut conn = self.inner.owner.acquire().await?;
        Ok(tenant_tables_in(&mut conn, SHARED_SCHEMA).await?)
    }
}

/// The tenant tables of `schema`, parents before children.
pub(crate) async fn tenant_tables_in(
    conn: &mut PgConnection,
    schema: &str,
) -> anyhow::Result<Vec<TenantTable>> {
    let tables: Vec<(i64, String, Vec<String>)> = sqlx::query_as(
        "SELECT c.oid::int8, c.relname::text,
                array_agg(a.attname::text ORDER BY k.ord)
         FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_constraint p ON p.conrelid = c.oid AND p.contype = 'p'
         CROSS JOIN LATERAL unnest(p.conkey) WITH ORDINALITY AS k(attnum, ord)
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
           AND EXISTS (SELECT 1 FROM pg_attribute t WHERE t.attrelid = c.oid
                       AND t.attname = 'tenant_id' AND NOT t.attisdropped)
         GROUP BY c.oid, c.relname
         ORDER BY c.relname",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await
    .context("failed to list the tenant tables")?;
    let tables = tables
        .into_iter()
        .map(|(oid, name, key)| (oid, TenantTable { name, key }))
        .collect();
    parents_first(conn, tables).await
}

/// `tables` (by oid) ordered so that each comes after every one of them it references through a
/// foreign key, as read from the catalog on `conn`.
pub(crate) async fn parents_first<T>(
    conn: &mut PgConnection,
    tables: Vec<(i64, T)>,
) -> anyhow::Result<Vec<T>> {
    let edges: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT conrelid::int8, confrelid::int8 FROM pg_constraint
         WHERE contype = 'f' AND conrelid <> confrelid",
    )
    .fetch_all(&mut *conn)
    .await?;
    let ids: HashSet<i64> = tables.iter().map(|t| t.0).collect();
    // child → the parents it references, among `tables`.
    let mut parents: HashMap<i64, HashSet<i64>> = HashMap::new();
    for (child, parent) in edges {
        if ids.contains(&child) && ids.contains(&parent) {
            parents.entry(child).or_default().insert(parent);
        }
    }
    let mut pending = tables;
    let mut ordered = Vec::with_capacity(pending.len());
    let mut done: HashSet<i64> = HashSet::new();
    while !pending.is_empty() {
        let (ready, waiting): (Vec<_>, Vec<_>) = pending.into_iter().partition(|(oid, _)| {
            parents
                .get(oid)
                .is_none_or(|p| p.iter().all(|p| done.contains(p)))
        });
        anyhow::ensure!(
            !ready.is_empty(),
            "the foreign keys between the tables form a cycle"
        );
        for (oid, item) in ready {
            done.insert(oid);
            ordered.push(item);
        }
        pending = waiting;
    }
    Ok(ordered)
}

/// The table's row count and checksum for the connection's tenant.
pub async fn table_checksum(
    conn: &mut PgConnection,
    table: &TenantTable,
) -> Result<TableChecksum, TenancyError> {
    let (rows, checksum): (i64, String) = sqlx::query_as(&format!(
        "SELECT count(*), md5(coalesce(string_agg(md5(to_jsonb(t)::text), '' ORDER BY {keys}), ''))
         FROM {table} t",
        keys = table.key_list("t"),
        table = table.quoted(),
    ))
    .fetch_one(&mut *conn)
    .await
    .with_context(|| format!("failed to checksum {}", table.name))?;
    Ok(TableChecksum {
        table: table.name.clone(),
        rows,
        checksum,
    })
}

/// Inserts rows given as JSON objects (one per text), overwriting rows with the same key. The
/// write gate's `retired_at` is never written: it belongs to the placement, not to the row.
pub async fn upsert_json_rows(
    conn: &mut PgConnection,
    table: &TenantTable,
    rows: &[String],
) -> anyhow::Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT a.attname::text FROM pg_attribute a
         WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
           AND a.attgenerated = ''
         ORDER BY a.attnum",
    )
    .bind(table.quoted())
    .fetch_all(&mut *conn)
    .await?;
    anyhow::ensure!(
        !columns.is_empty(),
        "no table {} in the tenant's schema",
        table.name
    );
    // The write gate's column is the placement's own: a copy never carries it.
    let columns: Vec<String> = columns.into_iter().filter(|c| c != GATE_COLUMN).collect();
    let non_key: Vec<&String> = columns.iter().filter(|c| !table.key.contains(c)).collect();
    let list = columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let conflict = if non_key.is_empty() {
        "DO NOTHING".to_string()
    } else {
        format!(
            "DO UPDATE SET {}",
            non_key
                .iter()
                .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(c)))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let result = sqlx::query(&format!(
        "INSERT INTO {table} ({list})
         SELECT {list} FROM jsonb_populate_recordset(NULL::{table},
             (SELECT jsonb_agg(r::jsonb) FROM unnest($1::text[]) AS r))
         ON CONFLICT ({keys}) {conflict}",
        table = table.quoted(),
        keys = table
            .key
            .iter()
            .map(|k| quote_ident(k))
            .collect::<Vec<_>>()
            .join(", "),
    ))
    .bind(rows)
    .execute(&mut *conn)
    .await
    .with_context(|| format!("failed to write rows of {}", table.name))?;
    Ok(result.rows_affected())
}

/// Rows per statement when copying.
const BATCH: usize = 2_000;

/// The column of `tenant_settings` that retires a copy of a tenant (see the door).
pub(crate) const GATE_COLUMN: &str = "retired_at";

/// A fast fingerprint of the table's rows for the connection's tenant: the row count and the sum
/// of a 64-bit hash of each row's text, the write gate's column left out. Equal on two copies of
/// the same tenant holding the same rows; cheaper than [`table_checksum`], for comparisons made
/// while the tenant's writes wait.
pub(crate) async fn fingerprint(
    conn: &mut PgConnection,
    table: &TenantTable,
) -> anyhow::Result<TableChecksum> {
    let gated: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_attribute
                        WHERE attrelid = to_regclass($1) AND attname = $2 AND NOT attisdropped)",
    )
    .bind(table.quoted())
    .bind(GATE_COLUMN)
    .fetch_one(&mut *conn)
    .await?;
    let row = if gated {
        format!("(to_jsonb(t) - {})::text", quote_literal(GATE_COLUMN))
    } else {
        "t::text".to_string()
    };
    let (rows, sum): (i64, String) = sqlx::query_as(&format!(
        "SELECT count(*), coalesce(sum(hashtextextended({row}, 0)::numeric), 0)::text
         FROM {table} t",
        table = table.quoted(),
    ))
    .fetch_one(&mut *conn)
    .await
    .with_context(|| format!("failed to fingerprint {}", table.name))?;
    Ok(TableChecksum {
        table: table.name.clone(),
        rows,
        checksum: sum,
    })
}

/// The oldest transaction the connection's database may still see committing: every row changed
/// by a transaction that commits from now on carries an `xmin` at least this recent.
pub(crate) async fn change_horizon(conn: &mut PgConnection) -> anyhow::Result<String> {
    Ok(sqlx::query_scalar(
        "SELECT (pg_snapshot_xmin(pg_current_snapshot())::text::numeric % 4294967296)::text",
    )
    .fetch_one(&mut *conn)
    .await?)
}

/// Copies every row of the table from `source` to `target` (overwriting rows with the same key),
/// streaming pages of [`BATCH`] rows. Returns the rows written.
pub(crate) async fn copy_table(
    source: &mut PgConnection,
    target: &mut PgConnection,
    table: &TenantTable,
) -> anyhow::Result<u64> {
    use futures::TryStreamExt;
    let mut copied = 0;
    let query = format!(
        "SELECT to_jsonb(t)::text FROM {table} t",
        table = table.quoted()
    );
    let mut stream = sqlx::query_scalar::<_, String>(&query).fetch(&mut *source);
    let mut page = Vec::with_capacity(BATCH);
    while let Some(row) = stream
        .try_next()
        .await
        .with_context(|| format!("failed to read the rows of {}", table.name))?
    {
        page.push(row);
        if page.len() == BATCH {
            copied += upsert_json_rows(target, table, &page).await?;
            page.clear();
        }
    }
    drop(stream);
    copied += upsert_json_rows(target, table, &page).await?;
    Ok(copied)
}

/// Copies the rows of the table changed at `source` since `since` (a [`change_horizon`] taken
/// before the previous copy began) to `target`. Returns the rows written.
pub(crate) async fn copy_changed(
    source: &mut PgConnection,
    target: &mut PgConnection,
    table: &TenantTable,
    since: &str,
) -> anyhow::Result<u64> {
    // age() compares transaction ids modulo wraparound; frozen rows are the oldest of all.
    let changed: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT to_jsonb(t)::text FROM {table} t WHERE age(t.xmin) <= age($1::text::xid)",
        table = table.quoted()
    ))
    .bind(since)
    .fetch_all(&mut *source)
    .await
    .with_context(|| format!("failed to read the changed rows of {}", table.name))?;
    let mut copied = 0;
    for page in changed.chunks(BATCH) {
        copied += upsert_json_rows(target, table, page).await?;
    }
    Ok(copied)
}

/// Deletes the rows of the table that `target` has and `source` has not. Returns how many.
pub(crate) async fn delete_missing(
    source: &mut PgConnection,
    target: &mut PgConnection,
    table: &TenantTable,
) -> anyhow::Result<u64> {
    let keys = format!(
        "SELECT ROW({})::text FROM {} t",
        table.key_list("t"),
        table.quoted()
    );
    let kept: HashSet<String> = sqlx::query_scalar(&keys)
        .fetch_all(&mut *source)
        .await?
        .into_iter()
        .collect();
    let gone: Vec<String> = sqlx::query_scalar::<_, String>(&keys)
        .fetch_all(&mut *target)
        .await?
        .into_iter()
        .filter(|k| !kept.contains(k))
        .collect();
    let mut deleted = 0;
    for page in gone.chunks(BATCH) {
        deleted += sqlx::query(&format!(
            "DELETE FROM {table} t WHERE ROW({keys})::text = ANY($1::text[])",
            table = table.quoted(),
            keys = table.key_list("t"),
        ))
        .bind(page)
        .execute(&mut *target)
        .await
        .with_context(|| format!("failed to delete rows of {}", table.name))?
        .rows_affected();
    }
    Ok(deleted)
}

/// Brings every table at `target` up to date with `source` after a copy begun at `since`: the
/// rows changed since are copied (parents first), the rows only the target has are deleted
/// (children first). Returns the rows written and deleted.
pub(crate) async fn catch_up(
    source: &mut PgConnection,
    target: &mut PgConnection,
    tables: &[TenantTable],
    since: &str,
) -> anyhow::Result<(u64, u64)> {
    let mut copied = 0;
    for table in tables {
        copied += copy_changed(source, target, table, since).await?;
    }
    let mut deleted = 0;
    for table in tables.iter().rev() {
        deleted += delete_missing(source, target, table).await?;
    }
    Ok((copied, deleted))
}
