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

    fn key_match(&self, left: &str, right: &str) -> String {
        self.key
            .iter()
            .map(|k| {
                let k = quote_ident(k);
                format!("{left}.{k} = {right}.{k}")
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// The key of each row as the text of a JSON object, e.g. `{"id": 7, "tenant_id": "…"}`.
    fn key_json(&self, alias: &str) -> String {
        let pairs = self
            .key
            .iter()
            .map(|k| format!("{}, {alias}.{}", quote_literal(k), quote_ident(k)))
            .collect::<Vec<_>>()
            .join(", ");
        format!("jsonb_build_object({pairs})::text")
    }

    /// `FROM`-clause text joining the table (alias `t`) to the keys given as JSON object texts in
    /// parameter `$1`, through the primary key index.
    fn join_keys(&self) -> String {
        format!(
            "{table} t JOIN jsonb_populate_recordset(NULL::{table},
                 (SELECT jsonb_agg(k::jsonb) FROM unnest($1::text[]) AS k)) AS x ON {on}",
            table = self.quoted(),
            on = self.key_match("t", "x"),
        )
    }
}

/// Row count and checksum of one table's rows of one tenant: the MD5 of the rows' MD5s in key
/// order. Equal on two copies exactly when they hold the same rows.
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
    let edges: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT conrelid::int8, confrelid::int8 FROM pg_constraint
         WHERE contype = 'f' AND conrelid <> confrelid",
    )
    .fetch_all(&mut *conn)
    .await?;
    let ids: HashSet<i64> = tables.iter().map(|t| t.0).collect();
    // child → the parents it references, among the tenant tables.
    let mut parents: HashMap<i64, HashSet<i64>> = HashMap::new();
    for (child, parent) in edges {
        if ids.contains(&child) && ids.contains(&parent) {
            parents.entry(child).or_default().insert(parent);
        }
    }
    let mut ordered = Vec::with_capacity(tables.len());
    let mut done: HashSet<i64> = HashSet::new();
    while ordered.len() < tables.len() {
        let before = ordered.len();
        for (oid, name, key) in &tables {
            let ready = !done.contains(oid)
                && parents
                    .get(oid)
                    .is_none_or(|p| p.iter().all(|p| done.contains(p)));
            if ready {
                done.insert(*oid);
                ordered.push(TenantTable {
                    name: name.clone(),
                    key: key.clone(),
                });
            }
        }
        anyhow::ensure!(
            ordered.len() > before,
            "the foreign keys between the tenant tables form a cycle"
        );
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

/// Each row's key (JSON object text) and the MD5 of its JSON.
async fn row_digests(
    conn: &mut PgConnection,
    table: &TenantTable,
) -> anyhow::Result<HashMap<String, String>> {
    let rows: Vec<(String, String)> = sqlx::query_as(&format!(
        "SELECT {key}, md5(to_jsonb(t)::text) FROM {table} t",
        key = table.key_json("t"),
        table = table.quoted(),
    ))
    .fetch_all(&mut *conn)
    .await
    .with_context(|| format!("failed to read the rows of {}", table.name))?;
    Ok(rows.into_iter().collect())
}

/// What [`plan_sync`] found: the keys to copy (missing or different at the target) and the keys
/// to delete (only at the target).
#[derive(Debug, Default)]
pub(crate) struct SyncPlan {
    pub copy: Vec<String>,
    pub delete: Vec<String>,
}

/// Compares one table of the tenant at `source` and at `target`, row by row.
pub(crate) async fn plan_sync(
    source: &mut PgConnection,
    target: &mut PgConnection,
    table: &TenantTable,
) -> anyhow::Result<SyncPlan> {
    let from = row_digests(source, table).await?;
    let to = row_digests(target, table).await?;
    let mut plan = SyncPlan::default();
    for (key, digest) in &from {
        if to.get(key) != Some(digest) {
            plan.copy.push(key.clone());
        }
    }
    for key in to.keys() {
        if !from.contains_key(key) {
            plan.delete.push(key.clone());
        }
    }
    Ok(plan)
}

/// Keys per statement when copying or deleting rows.
const BATCH: usize = 2_000;

/// Copies the rows with `keys` from `source` to `target`, inserting or overwriting them.
pub(crate) async fn copy_rows(
    source: &mut PgConnection,
    target: &mut PgConnection,
    table: &TenantTable,
    keys: &[String],
) -> anyhow::Result<u64> {
    let mut copied = 0;
    for chunk in keys.chunks(BATCH) {
        let rows: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT to_jsonb(t)::text FROM {from}",
            from = table.join_keys(),
        ))
        .bind(chunk)
        .fetch_all(&mut *source)
        .await
        .with_context(|| format!("failed to read rows of {}", table.name))?;
        copied += upsert_json_rows(target, table, &rows).await?;
    }
    Ok(copied)
}

/// Inserts rows given as JSON objects (one per text), overwriting rows with the same key.
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

/// Deletes the rows with `keys` (JSON object texts as [`plan_sync`] gives them).
pub(crate) async fn delete_rows(
    conn: &mut PgConnection,
    table: &TenantTable,
    keys: &[String],
) -> anyhow::Result<u64> {
    let mut deleted = 0;
    for chunk in keys.chunks(BATCH) {
        deleted += sqlx::query(&format!(
            "DELETE FROM {table} d USING {from} WHERE {same}",
            table = table.quoted(),
            from = table.join_keys(),
            same = table.key_match("d", "t"),
        ))
        .bind(chunk)
        .execute(&mut *conn)
        .await
        .with_context(|| format!("failed to delete rows of {}", table.name))?
        .rows_affected();
    }
    Ok(deleted)
}

/// Makes the tenant's rows at `target` equal to those at `source`, every table (copies parents
/// first, deletes children first). Returns the rows written and deleted.
pub(crate) async fn sync_all(
    source: &mut PgConnection,
    target: &mut PgConnection,
    tables: &[TenantTable],
) -> anyhow::Result<(u64, u64)> {
    let mut plans = Vec::with_capacity(tables.len());
    for table in tables {
        plans.push(plan_sync(source, target, table).await?);
    }
    let mut copied = 0;
    for (table, plan) in tables.iter().zip(&plans) {
        copied += copy_rows(source, target, table, &plan.copy).await?;
    }
    let mut deleted = 0;
    for (table, plan) in tables.iter().zip(&plans).rev() {
        deleted += delete_rows(target, table, &plan.delete).await?;
    }
    Ok((copied, deleted))
}
