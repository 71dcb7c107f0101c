//! Ordered SQL migrations applied to one schema at a time, recorded with checksums in that
//! schema's `schema_migrations` table: the control schema and the application's schemas in the
//! control database. Each migration runs in its own transaction, so an interrupted run resumes
//! where it stopped. Tenant schemas are built from several such sets
//! ([`crate::TenantSchema`]).

use std::borrow::Cow;

use anyhow::Context;
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection};

use crate::naming::quote_ident;

#[derive(Debug, Clone)]
pub struct Migration {
    pub version: i32,
    pub name: Cow<'static, str>,
    pub sql: Cow<'static, str>,
}

impl Migration {
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }
}

/// An ordered list of migrations, numbered 1, 2, 3...
#[derive(Debug, Clone)]
pub struct MigrationSet {
    items: Vec<Migration>,
}

macro_rules! builtin {
    ($($version:literal => $file:literal),+ $(,)?) => {
        vec![$(Migration {
            version: $version,
            name: Cow::Borrowed($file),
            sql: Cow::Borrowed(include_str!(concat!("../migrations/", $file))),
        }),+]
    };
}

impl MigrationSet {
    /// A set of an application's own: `(name, sql)` pairs, numbered 1, 2, 3... in the order
    /// given. Append new ones; never reorder or edit those that ran.
    pub fn from_files(files: &[(&'static str, &'static str)]) -> Self {
        Self {
            items: files
                .iter()
                .zip(1..)
                .map(|((name, sql), version)| Migration {
                    version,
                    name: Cow::Borrowed(*name),
                    sql: Cow::Borrowed(*sql),
                })
                .collect(),
        }
    }

    /// The control database's migrations.
    pub fn control() -> Self {
        Self {
            items: builtin![
                1 => "control/0001_registry.sql",
                2 => "control/0002_moves.sql",
                3 => "control/0003_invalidation.sql",
                4 => "control/0004_slug_quarantine.sql",
                5 => "control/0005_tenant_migration_sets.sql",
                6 => "control/0006_servers.sql",
            ],
        }
    }

    /// This set with one more migration at the end (numbered next).
    pub fn with(mut self, name: &str, sql: &str) -> Self {
        let version = self.latest() + 1;
        self.items.push(Migration {
            version,
            name: Cow::Owned(name.to_string()),
            sql: Cow::Owned(sql.to_string()),
        });
        self
    }

    /// The first `n` migrations of this set.
    pub fn truncated(mut self, n: usize) -> Self {
        self.items.truncate(n);
        self
    }

    pub fn latest(&self) -> i32 {
        self.items.last().map_or(0, |m| m.version)
    }

    pub fn items(&self) -> &[Migration] {
        &self.items
    }

    pub fn pending_after(&self, version: i32) -> impl Iterator<Item = &Migration> {
        self.items.iter().filter(move |m| m.version > version)
    }

    /// Applies what `schema` lacks, each migration in its own transaction holding a lock keyed
    /// on the schema, so concurrent runs apply each migration once. Returns the version reached.
    pub async fn apply(&self, conn: &mut PgConnection, schema: &str) -> anyhow::Result<i32> {
        let quoted = quote_ident(schema);
        let mut tx = conn.begin().await?;
        lock_schema(&mut tx, schema).await?;
        crate::sql::exec(
            &mut tx,
            &format!(
                "CREATE SCHEMA IF NOT EXISTS {quoted};
             CREATE TABLE IF NOT EXISTS {quoted}.schema_migrations (
                 version integer PRIMARY KEY,
                 name text NOT NULL,
                 checksum text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );"
            ),
        )
        .await
        .with_context(|| format!("failed to prepare schema {schema}"))?;
        tx.commit().await?;
        let mut reached = applied_version(conn, schema).await?;
        // A plain loop: an iterator adapter held across the awaits would make the future !Send.
        for migration in &self.items {
            if migration.version <= reached {
                continue;
            }
            apply_one(conn, schema, migration, Ledger::Single).await?;
            reached = migration.version;
        }
        Ok(reached)
    }

    /// Versions in `schema` whose recorded checksum differs from this set's (edited migrations),
    /// and versions recorded there that this set does not know.
    pub async fn drift(
        &self,
        conn: &mut PgConnection,
        schema: &str,
    ) -> anyhow::Result<Vec<String>> {
        let rows: Vec<(i32, String)> = sqlx::query_as(&format!(
            "SELECT version, checksum FROM {}.schema_migrations ORDER BY version",
            quote_ident(schema)
        ))
        .fetch_all(&mut *conn)
        .await
        .with_context(|| format!("failed to read the migrations of schema {schema}"))?;
        let mut drift = Vec::new();
        for (version, checksum) in rows {
            match self.items.iter().find(|m| m.version == version) {
                Some(m) if m.checksum() == checksum => {}
                Some(m) => drift.push(format!("migration {} was changed after it ran", m.name)),
                None => drift.push(format!("unknown migration {version} is applied")),
            }
        }
        Ok(drift)
    }
}

/// Where a schema records the migrations that ran: `schema_migrations` for one set, or
/// `tenant_migrations` keyed by the set's name (a tenant schema, [`crate::TenantSchema`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ledger<'a> {
    Single,
    Set(&'a str),
}

/// Applies `migration` to `schema` in a transaction of its own, holding the schema's lock, unless
/// a concurrent run recorded it meanwhile; records it in `ledger` in the same transaction.
pub(crate) async fn apply_one(
    conn: &mut PgConnection,
    schema: &str,
    migration: &Migration,
    ledger: Ledger<'_>,
) -> anyhow::Result<()> {
    let quoted = quote_ident(schema);
    let mut tx = conn.begin().await?;
    lock_schema(&mut tx, schema).await?;
    let sql = match ledger {
        Ledger::Single => {
            format!("SELECT version FROM {quoted}.schema_migrations WHERE version = $1")
        }
        Ledger::Set(_) => format!(
            "SELECT version FROM {quoted}.tenant_migrations WHERE version = $1 AND set_name = $2"
        ),
    };
    let mut query = sqlx::query_scalar::<_, i32>(&sql).bind(migration.version);
    if let Ledger::Set(set) = ledger {
        query = query.bind(set);
    }
    let done = query.fetch_optional(&mut *tx).await?;
    if done.is_none() {
        sqlx::query("SELECT set_config('search_path', $1, true)")
            .bind(&quoted)
            .execute(&mut *tx)
            .await?;
        crate::sql::exec(&mut tx, &migration.sql)
            .await
            .with_context(|| format!("migration {} failed in schema {schema}", migration.name))?;
        record(&mut tx, &quoted, migration, ledger).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Records `migration` as applied in the ledger of the schema named `quoted` (quoted already).
pub(crate) async fn record(
    conn: &mut PgConnection,
    quoted: &str,
    migration: &Migration,
    ledger: Ledger<'_>,
) -> anyhow::Result<()> {
    let sql = match ledger {
        Ledger::Single => format!(
            "INSERT INTO {quoted}.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)"
        ),
        Ledger::Set(_) => format!(
            "INSERT INTO {quoted}.tenant_migrations (version, name, checksum, set_name)
             VALUES ($1, $2, $3, $4)"
        ),
    };
    let mut query = sqlx::query(&sql)
        .bind(migration.version)
        .bind(migration.name.as_ref())
        .bind(migration.checksum());
    if let Ledger::Set(set) = ledger {
        query = query.bind(set);
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

/// Whether `schema` has the table `table`.
pub(crate) async fn has_table(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
) -> anyhow::Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = $2)",
    )
    .bind(schema)
    .bind(table)
    .fetch_one(&mut *conn)
    .await?)
}

/// The highest version recorded in `schema`'s `schema_migrations`, or 0 when nothing ran there.
pub async fn applied_version(conn: &mut PgConnection, schema: &str) -> anyhow::Result<i32> {
    if !has_table(conn, schema, "schema_migrations").await? {
        return Ok(0);
    }
    let version: Option<i32> = sqlx::query_scalar(&format!(
        "SELECT max(version) FROM {}.schema_migrations",
        quote_ident(schema)
    ))
    .fetch_one(&mut *conn)
    .await?;
    Ok(version.unwrap_or(0))
}

/// Serialises migration runs on one schema for the rest of the transaction.
pub(crate) async fn lock_schema(conn: &mut PgConnection, schema: &str) -> anyhow::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('tenantry.migrate'), hashtext($1))")
        .bind(schema)
        .execute(&mut *conn)
        .await
        .context("failed to lock the schema for migration")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_sets_are_numbered_from_one_without_gaps() {
        for (i, m) in MigrationSet::control().items().iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1, "{}", m.name);
        }
    }

    #[test]
    fn an_applications_files_are_numbered_in_order() {
        let set = MigrationSet::from_files(&[("a.sql", "SELECT 1"), ("b.sql", "SELECT 2")]);
        let numbered: Vec<(i32, &str)> = set
            .items()
            .iter()
            .map(|m| (m.version, m.name.as_ref()))
            .collect();
        assert_eq!(numbered, [(1, "a.sql"), (2, "b.sql")]);
    }

    #[test]
    fn an_extra_migration_is_numbered_next() {
        let set = MigrationSet::control().with("extra", "SELECT 1");
        assert_eq!(set.latest(), MigrationSet::control().latest() + 1);
        assert_eq!(set.truncated(1).latest(), 1);
    }
}
