//! `manifest.json`, the last file of an archive: the format and its version, where the archive
//! comes from, the tenant tables with their columns, and every other file with its row count and
//! SHA-256. What a file's path may be, and the names of the control-side files.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_tenancy::SchemaVersions;
use uuid::Uuid;

/// The `format` of every Tenantry archive.
pub const FORMAT: &str = "tenantry-archive";
/// The version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The manifest's path: the last entry of the archive.
pub const MANIFEST: &str = "manifest.json";
/// Folder of the tenant tables' files (`tenant/<table>.jsonl`).
pub const TENANT_DIR: &str = "tenant/";

/// The tenant-side audit table: hash-chained over the tenant id, so rebuilt on import.
pub const TENANT_AUDIT_TABLE: &str = "audit_log";

/// The control-side files, in the order they are written, after the tenant tables.
pub const ORGANIZATION: &str = "organization.json";
pub const PLAN_OVERRIDES: &str = "plan_overrides.json";
pub const MEMBERS: &str = "members.jsonl";
pub const INVITATIONS: &str = "invitations.jsonl";
pub const API_KEYS: &str = "api_keys.jsonl";
pub const API_USAGE: &str = "api_usage.jsonl";
pub const AUDIT: &str = "audit.jsonl";
pub const CONTROL_FILES: [&str; 7] = [
    ORGANIZATION,
    PLAN_OVERRIDES,
    MEMBERS,
    INVITATIONS,
    API_KEYS,
    API_USAGE,
    AUDIT,
];

/// What an archive holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    pub format_version: u32,
    pub exported_at: DateTime<Utc>,
    pub source: Source,
    /// The tenant tables, parents before children, in the order their files come.
    pub tenant_tables: Vec<TableInfo>,
    /// Every file but the manifest, in archive order.
    pub files: Vec<FileInfo>,
}

/// The organization the archive was taken from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub tenant_id: Uuid,
    pub slug: String,
    pub name: String,
    pub plan: String,
    pub isolation: String,
    /// The tenant schema's versions (one per migration set) when exported.
    #[serde(default)]
    pub schema_versions: SchemaVersions,
    /// The single tenant-schema version of archives written before migration sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<i32>,
}

impl Source {
    /// The tenant schema's versions when exported, for messages.
    pub fn schema_label(&self) -> String {
        match self.schema_version {
            Some(version) if self.schema_versions == SchemaVersions::default() => {
                format!("version {version}")
            }
            _ => format!("versions {}", self.schema_versions),
        }
    }
}

/// A tenant table: its name, primary key and columns, `tenant_id` left out (rows are written
/// without it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableInfo {
    pub name: String,
    pub key: Vec<String>,
    pub columns: Vec<String>,
}

/// One file: its path, its rows (lines of a `.jsonl`; 1 for a `.json`) and the SHA-256 of its
/// bytes, hex.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileInfo {
    pub path: String,
    pub rows: u64,
    pub sha256: String,
}

impl Manifest {
    pub fn file(&self, path: &str) -> Option<&FileInfo> {
        self.files.iter().find(|f| f.path == path)
    }
}

/// The path of a tenant table's file.
pub fn tenant_path(table: &str) -> String {
    format!("{TENANT_DIR}{table}.jsonl")
}

/// The table named by a tenant file's path.
pub fn tenant_table_of(path: &str) -> Option<&str> {
    path.strip_prefix(TENANT_DIR)?.strip_suffix(".jsonl")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_paths_round_trip() {
        assert_eq!(tenant_path("monitors"), "tenant/monitors.jsonl");
        assert_eq!(tenant_table_of("tenant/monitors.jsonl"), Some("monitors"));
        assert_eq!(tenant_table_of("members.jsonl"), None);
        assert_eq!(tenant_table_of("tenant/monitors.json"), None);
    }
}
