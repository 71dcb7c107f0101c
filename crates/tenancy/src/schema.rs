//! The tenant schema: the tables every tier holds for a tenant, built from ordered migration
//! sets. The engine's own set ([`BASE_SET`]: `tenant_settings` and the write gate of moves) comes
//! first; each part of an application registers its tables as a set of its own
//! ([`TenantSet`]), applied in the order given.
//!
//! Each schema records what ran in its `tenant_migrations` table, per set, and the registry
//! records each tenant's versions per set ([`SchemaVersions`]). Releases before sets had one
//! numbered tenant set recorded in `schema_migrations`; a set says which of those versions its
//! migrations were ([`TenantSet::adopting`]), and the first run on such a schema records them as
//! applied, so an installation upgrades without manual steps.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection};

use crate::migrations::{
    Ledger, MigrationSet, applied_version, apply_one, has_table, lock_schema, record,
};
use crate::naming::{is_plain_identifier, quote_ident};

/// The name of the engine's own set, always applied first.
pub const BASE_SET: &str = "tenancy";

/// The base set's version from which a schema has the write gate of moves.
const WRITE_GATE_VERSION: i32 = 2;

/// One component's tenant tables: a named, ordered migration set.
#[derive(Debug, Clone)]
pub struct TenantSet {
    name: &'static str,
    migrations: MigrationSet,
    /// For migration `i + 1`, the version it had in the single tenant set of earlier releases.
    adopts: Vec<i32>,
}

impl TenantSet {
    pub fn new(name: &'static str, migrations: MigrationSet) -> Self {
        Self {
            name,
            migrations,
            adopts: Vec::new(),
        }
    }

    /// Says which version of the single tenant set of releases before sets each migration of
    /// this one was, in order (ascending): a schema those releases migrated to version `v` has
    /// every migration of this set whose adopted version is at most `v`.
    pub fn adopting(mut self, versions: &[i32]) -> Self {
        assert!(
            versions.len() <= self.migrations.items().len()
                && versions.windows(2).all(|w| w[0] < w[1]),
            "set {}: adopted versions must be ascending, one per migration at most",
            self.name
        );
        self.adopts = versions.to_vec();
        self
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn migrations(&self) -> &MigrationSet {
        &self.migrations
    }

    /// This set's version in a schema that releases before sets left at `legacy`.
    fn legacy_version(&self, legacy: i32) -> i32 {
        self.adopts.iter().take_while(|&&v| v <= legacy).count() as i32
    }
}

/// The engine's own tenant tables.
fn base_set() -> TenantSet {
    TenantSet::new(
        BASE_SET,
        MigrationSet::from_files(&[
            (
                "tenancy/0001_settings.sql",
                include_str!("../migrations/tenant/0001_settings.sql"),
            ),
            (
                "tenancy/0002_write_gate.sql",
                include_str!("../migrations/tenant/0002_write_gate.sql"),
            ),
        ]),
    )
    .adopting(&[1, 4])
}

/// Every set of the tenant schema, the engine's first.
#[derive(Debug, Clone)]
pub struct TenantSchema {
    sets: Vec<TenantSet>,
}

impl Default for TenantSchema {
    /// The engine's own set alone.
    fn default() -> Self {
        Self::new([])
    }
}

impl TenantSchema {
    /// The engine's set followed by the application's, in the order given.
    ///
    /// # Panics
    ///
    /// When two sets share a name, or a name is not a plain identifier.
    pub fn new(app: impl IntoIterator<Item = TenantSet>) -> Self {
        let mut sets = vec![base_set()];
        for set in app {
            assert!(
                is_plain_identifier(set.name) && sets.iter().all(|s| s.name != set.name),
                "{:?} cannot name a tenant migration set",
                set.name
            );
            sets.push(set);
        }
        Self { sets }
    }

    pub fn sets(&self) -> &[TenantSet] {
        &self.sets
    }

    pub fn set(&self, name: &str) -> Option<&TenantSet> {
        self.sets.iter().find(|s| s.name == name)
    }

    /// Every set's latest version.
    pub fn latest(&self) -> SchemaVersions {
        SchemaVersions(
            self.sets
                .iter()
                .map(|s| (s.name.to_string(), s.migrations.latest()))
                .collect(),
        )
    }

    /// The versions of a schema that releases before sets left at `legacy`.
    pub fn legacy_versions(&self, legacy: i32) -> SchemaVersions {
        SchemaVersions(
            self.sets
                .iter()
                .map(|s| (s.name.to_string(), s.legacy_version(legacy)))
                .collect(),
        )
    }

    /// Whether a schema at `versions` has the write gate of moves.
    pub(crate) fn has_write_gate(versions: &SchemaVersions) -> bool {
        versions.get(BASE_SET) >= WRITE_GATE_VERSION
    }

    /// This schema with one more migration at the end of `set` (numbered next).
    ///
    /// # Panics
    ///
    /// When there is no such set.
    pub fn with(mut self, set: &str, name: &str, sql: &str) -> Self {
        let target = self
            .sets
            .iter_mut()
            .find(|s| s.name == set)
            .unwrap_or_else(|| panic!("no tenant migration set {set}"));
        target.migrations = target.migrations.clone().with(name, sql);
        self
    }

    /// This schema with only the first `n` migrations of `set`.
    ///
    /// # Panics
    ///
    /// When there is no such set.
    pub fn truncated(mut self, set: &str, n: usize) -> Self {
        let target = self
            .sets
            .iter_mut()
            .find(|s| s.name == set)
            .unwrap_or_else(|| panic!("no tenant migration set {set}"));
        target.migrations = target.migrations.clone().truncated(n);
        self
    }

    /// Applies what `schema` lacks, set after set, each migration in its own transaction
    /// holding a lock keyed on the schema, so concurrent runs apply each migration once and an
    /// interrupted run resumes. Returns the versions reached.
    pub async fn apply(
        &self,
        conn: &mut PgConnection,
        schema: &str,
    ) -> anyhow::Result<SchemaVersions> {
        self.prepare(conn, schema)
            .await
            .with_context(|| format!("failed to prepare schema {schema}"))?;
        let mut reached = self.applied(conn, schema).await?.unwrap_or_default();
        for set in &self.sets {
            for migration in set.migrations.items() {
                if migration.version <= reached.get(set.name) {
                    continue;
                }
                apply_one(conn, schema, migration, Ledger::Set(set.name)).await?;
                reached.0.insert(set.name.to_string(), migration.version);
            }
        }
        Ok(reached)
    }

    /// Creates the schema and its `tenant_migrations` table; a schema of a release before sets
    /// has its `schema_migrations` replaced by what it means per set.
    async fn prepare(&self, conn: &mut PgConnection, schema: &str) -> anyhow::Result<()> {
        let quoted = quote_ident(schema);
        let mut tx = conn.begin().await?;
        lock_schema(&mut tx, schema).await?;
        if has_table(&mut tx, schema, "tenant_migrations").await? {
            return Ok(tx.commit().await?);
        }
        crate::sql::exec(
            &mut tx,
            &format!(
                "CREATE SCHEMA IF NOT EXISTS {quoted};
                 CREATE TABLE {quoted}.tenant_migrations (
                     set_name text NOT NULL,
                     version integer NOT NULL,
                     name text NOT NULL,
                     checksum text NOT NULL,
                     applied_at timestamptz NOT NULL DEFAULT now(),
                     PRIMARY KEY (set_name, version)
                 );"
            ),
        )
        .await?;
        if has_table(&mut tx, schema, "schema_migrations").await? {
            let legacy = applied_version(&mut tx, schema).await?;
            let versions = self.legacy_versions(legacy);
            for set in &self.sets {
                for migration in set.migrations.items() {
                    if migration.version <= versions.get(set.name) {
                        record(&mut tx, &quoted, migration, Ledger::Set(set.name)).await?;
                    }
                }
            }
            crate::sql::exec(&mut tx, &format!("DROP TABLE {quoted}.schema_migrations")).await?;
            tracing::info!(schema, legacy, %versions, "tenant migrations recorded per set");
        }
        tx.commit().await?;
        Ok(())
    }

    /// What `schema` records as applied, per set; `None` when it records nothing yet. A schema
    /// a release before sets left, not migrated since, has what its single version means.
    pub async fn applied(
        &self,
        conn: &mut PgConnection,
        schema: &str,
    ) -> anyhow::Result<Option<SchemaVersions>> {
        if !has_table(conn, schema, "tenant_migrations").await? {
            if !has_table(conn, schema, "schema_migrations").await? {
                return Ok(None);
            }
            let legacy = applied_version(conn, schema).await?;
            return Ok(Some(self.legacy_versions(legacy)));
        }
        let rows: Vec<(String, i32)> = sqlx::query_as(&format!(
            "SELECT set_name, max(version) FROM {}.tenant_migrations GROUP BY set_name",
            quote_ident(schema)
        ))
        .fetch_all(&mut *conn)
        .await
        .with_context(|| format!("failed to read the migrations of schema {schema}"))?;
        Ok(Some(SchemaVersions(rows.into_iter().collect())))
    }

    /// Migrations recorded in `schema` whose checksum differs from this schema's (edited after
    /// they ran), and recorded ones this schema does not know.
    pub async fn drift(
        &self,
        conn: &mut PgConnection,
        schema: &str,
    ) -> anyhow::Result<Vec<String>> {
        if !has_table(conn, schema, "tenant_migrations").await? {
            return Ok(Vec::new());
        }
        let rows: Vec<(String, i32, String)> = sqlx::query_as(&format!(
            "SELECT set_name, version, checksum FROM {}.tenant_migrations
             ORDER BY set_name, version",
            quote_ident(schema)
        ))
        .fetch_all(&mut *conn)
        .await
        .with_context(|| format!("failed to read the migrations of schema {schema}"))?;
        let mut drift = Vec::new();
        for (set_name, version, checksum) in rows {
            let known = self
                .set(&set_name)
                .and_then(|s| s.migrations.items().iter().find(|m| m.version == version));
            match known {
                Some(m) if m.checksum() == checksum => {}
                Some(m) => drift.push(format!("migration {} was changed after it ran", m.name)),
                None => drift.push(format!(
                    "unknown migration {version} of set {set_name} is applied"
                )),
            }
        }
        Ok(drift)
    }
}

/// A schema's version in each set (0 for a set it has nothing of).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SchemaVersions(BTreeMap<String, i32>);

impl SchemaVersions {
    pub fn get(&self, set: &str) -> i32 {
        self.0.get(set).copied().unwrap_or(0)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, i32)> {
        self.0.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// How many migrations of `latest` these versions lack.
    pub fn pending(&self, latest: &SchemaVersions) -> i32 {
        latest
            .iter()
            .map(|(set, v)| (v - self.get(set)).max(0))
            .sum()
    }

    /// Whether these versions have every migration of `latest`.
    pub fn covers(&self, latest: &SchemaVersions) -> bool {
        self.pending(latest) == 0
    }
}

impl FromIterator<(String, i32)> for SchemaVersions {
    fn from_iter<I: IntoIterator<Item = (String, i32)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl fmt::Display for SchemaVersions {
    /// `notes 2, tenancy 2`; `none` when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, (set, version)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{set} {version}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> TenantSchema {
        TenantSchema::new([TenantSet::new(
            "notes",
            MigrationSet::from_files(&[("a.sql", "SELECT 1"), ("b.sql", "SELECT 2")]),
        )
        .adopting(&[1, 3])])
    }

    #[test]
    fn the_engines_set_comes_first() {
        let names: Vec<&str> = app().sets().iter().map(TenantSet::name).collect();
        assert_eq!(names, [BASE_SET, "notes"]);
    }

    #[test]
    fn a_single_set_version_maps_onto_the_sets() {
        let schema = app();
        assert_eq!(schema.legacy_versions(0).pending(&schema.latest()), 4);
        let at_3 = schema.legacy_versions(3);
        assert_eq!((at_3.get(BASE_SET), at_3.get("notes")), (1, 2));
        assert!(!TenantSchema::has_write_gate(&at_3));
        let at_4 = schema.legacy_versions(4);
        assert!(at_4.covers(&schema.latest()));
        assert!(TenantSchema::has_write_gate(&at_4));
    }

    #[test]
    #[should_panic(expected = "cannot name a tenant migration set")]
    fn a_set_name_is_used_once() {
        TenantSchema::new([TenantSet::new(BASE_SET, MigrationSet::from_files(&[]))]);
    }

    #[test]
    fn versions_print_per_set() {
        let versions: SchemaVersions = [("b".to_string(), 2), ("a".to_string(), 1)]
            .into_iter()
            .collect();
        assert_eq!(versions.to_string(), "a 1, b 2");
        assert_eq!(SchemaVersions::default().to_string(), "none");
    }

    #[test]
    fn every_base_table_enables_and_forces_rls() {
        for m in base_set().migrations().items() {
            assert_eq!(
                crate::lint::tables_without_rls(&m.sql),
                Vec::<String>::new()
            );
        }
    }
}
