//! Checking an archive whole before anything is created: its manifest (format and version), every
//! file against the manifest (present, SHA-256, rows), the tenant tables and their columns
//! against this server's, each row's shape, and both audit chains under the source's id. What
//! the import needs from the control-side files is kept (they are small); the tenant tables are
//! read again when restored.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tenantry_audit::Chain;

use crate::ArchiveError;
use crate::control::{MemberLine, PlanOverrides, Profile, UsageLine};
use crate::manifest::{
    API_KEYS, API_USAGE, AUDIT, CONTROL_FILES, FORMAT, FORMAT_VERSION, INVITATIONS, MANIFEST,
    MEMBERS, Manifest, ORGANIZATION, PLAN_OVERRIDES, TENANT_AUDIT_TABLE, tenant_table_of,
};
use crate::reader::{Lines, for_each_file};
use crate::rechain::SourceCheck;

/// The largest manifest or single-object file read.
const MAX_SMALL_FILE: usize = 16 * 1024 * 1024;

/// A tenant table of this server: its name and columns (`tenant_id` aside).
#[derive(Debug, Clone)]
pub(crate) struct ServerTable {
    pub name: String,
    pub columns: Vec<String>,
}

/// What a checked archive holds, besides its tenant tables.
#[derive(Debug)]
pub(crate) struct Checked {
    pub manifest: Manifest,
    pub manifest_sha256: String,
    pub profile: Profile,
    pub overrides: Option<PlanOverrides>,
    pub members: Vec<MemberLine>,
    pub usage: Vec<UsageLine>,
    /// The lines of `audit.jsonl`.
    pub audit: Vec<String>,
    pub invitations: u64,
    pub api_keys: u64,
}

fn invalid(text: impl Into<String>) -> ArchiveError {
    ArchiveError::InvalidArchive(text.into())
}

/// Reads the archive twice (the manifest comes last): once for the manifest, once for the rest.
pub(crate) fn check(archive: &Path, server: &[ServerTable]) -> Result<Checked, ArchiveError> {
    let (manifest, manifest_sha256) = read_manifest(archive)?;
    check_manifest(&manifest, server)?;
    let mut seen: Vec<String> = Vec::new();
    let (mut organization, mut plan_overrides): (Option<String>, Option<String>) = (None, None);
    let mut members = Vec::new();
    let mut usage = Vec::new();
    let mut audit = Vec::new();
    let source = manifest.source.tenant_id;
    let mut failure: Option<ArchiveError> = None;
    for_each_file(archive, |path, content| {
        if path == MANIFEST {
            return Ok(true);
        }
        if seen.iter().any(|p| p == path) {
            failure = Some(invalid(format!("{path} appears twice")));
            return Ok(false);
        }
        seen.push(path.to_string());
        let Some(expected) = manifest.file(path) else {
            failure = Some(invalid(format!(
                "{path} is not listed in the manifest (an unknown file)"
            )));
            return Ok(false);
        };
        let mut lines = Lines::new(content);
        let mut problem: Option<String> = None;
        if let Some(table) = tenant_table_of(path) {
            let Some(info) = manifest.tenant_tables.iter().find(|t| t.name == table) else {
                failure = Some(invalid(format!(
                    "{path} belongs to no table of the manifest"
                )));
                return Ok(false);
            };
            let columns: BTreeSet<&str> = info.columns.iter().map(String::as_str).collect();
            let mut chain =
                (table == TENANT_AUDIT_TABLE).then(|| SourceCheck::new(Chain::Tenant(source)));
            let mut row = 0u64;
            while let Some(line) = lines.next_line()? {
                row += 1;
                if problem.is_some() {
                    continue;
                }
                problem = row_shape(line, &columns)
                    .err()
                    .or_else(|| chain.as_mut().and_then(|c| c.push(line).err()))
                    .map(|p| format!("{path}, row {row}: {p}"));
            }
            if problem.is_none()
                && let Some(chain) = chain
            {
                let found = chain.finish();
                if !found.is_empty() {
                    problem = Some(format!(
                        "its tenant audit chain does not verify ({}); an archive whose audit \
                         trail was altered is not imported",
                        found.join("; ")
                    ));
                }
            }
        } else {
            match path {
                ORGANIZATION | PLAN_OVERRIDES => {
                    let mut text = String::new();
                    while let Some(line) = lines.next_line()? {
                        if text.len() + line.len() > MAX_SMALL_FILE {
                            problem = Some(format!("{path} is too large"));
                            break;
                        }
                        text.push_str(line);
                    }
                    if path == ORGANIZATION {
                        organization = Some(text);
                    } else {
                        plan_overrides = Some(text);
                    }
                }
                MEMBERS => collect(&mut lines, &mut members, &mut problem, path)?,
                API_USAGE => collect(&mut lines, &mut usage, &mut problem, path)?,
                AUDIT => {
                    let mut chain = SourceCheck::new(Chain::Organization(source));
                    while let Some(line) = lines.next_line()? {
                        if problem.is_none()
                            && let Err(p) = chain.push(line)
                        {
                            problem = Some(format!("{path}: {p}"));
                        }
                        audit.push(line.to_string());
                    }
                    let found = chain.finish();
                    if problem.is_none() && !found.is_empty() {
                        problem = Some(format!(
                            "its organization audit chain does not verify ({}); an archive \
                             whose audit trail was altered is not imported",
                            found.join("; ")
                        ));
                    }
                }
                INVITATIONS | API_KEYS => lines.drain()?,
                other => {
                    failure = Some(invalid(format!(
                        "{other} is not a file of a Tenantry archive"
                    )));
                    return Ok(false);
                }
            }
        }
        lines.drain()?;
        let (rows, sha256, unterminated) = lines.finish();
        if sha256 != expected.sha256 {
            failure = Some(invalid(format!(
                "{path} does not match its SHA-256 in the manifest: the archive is damaged or \
                 was altered"
            )));
            return Ok(false);
        }
        if rows != expected.rows || unterminated {
            failure = Some(invalid(format!(
                "{path} has {rows} rows, the manifest says {}",
                expected.rows
            )));
            return Ok(false);
        }
        if let Some(problem) = problem {
            failure = Some(invalid(problem));
            return Ok(false);
        }
        Ok(true)
    })
    .map_err(|e| invalid(format!("{e:#}")))?;
    if let Some(failure) = failure {
        return Err(failure);
    }
    for file in &manifest.files {
        if !seen.contains(&file.path) {
            return Err(invalid(format!("{} is missing", file.path)));
        }
    }
    for path in CONTROL_FILES {
        if !seen.iter().any(|p| p == path) {
            return Err(invalid(format!("{path} is missing")));
        }
    }
    let profile: Profile = serde_json::from_str(organization.as_deref().unwrap_or(""))
        .map_err(|e| invalid(format!("{ORGANIZATION} is malformed: {e}")))?;
    let overrides: Option<PlanOverrides> =
        serde_json::from_str(plan_overrides.as_deref().unwrap_or(""))
            .map_err(|e| invalid(format!("{PLAN_OVERRIDES} is malformed: {e}")))?;
    let rows_of = |path: &str| manifest.file(path).map_or(0, |f| f.rows);
    Ok(Checked {
        invitations: rows_of(INVITATIONS),
        api_keys: rows_of(API_KEYS),
        manifest,
        manifest_sha256,
        profile,
        overrides,
        members,
        usage,
        audit,
    })
}

/// Parses every line of a small JSON Lines file.
fn collect<T: serde::de::DeserializeOwned>(
    lines: &mut Lines<'_>,
    into: &mut Vec<T>,
    problem: &mut Option<String>,
    path: &str,
) -> anyhow::Result<()> {
    while let Some(line) = lines.next_line()? {
        match serde_json::from_str(line) {
            Ok(item) => into.push(item),
            Err(e) if problem.is_none() => *problem = Some(format!("{path} is malformed: {e}")),
            Err(_) => {}
        }
    }
    Ok(())
}

/// A tenant row must be a JSON object with exactly the table's columns.
fn row_shape(line: &str, columns: &BTreeSet<&str>) -> Result<(), String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(row) = value else {
        return Err("not a JSON object".to_string());
    };
    let keys: BTreeSet<&str> = row.keys().map(String::as_str).collect();
    if &keys != columns {
        let extra: Vec<&&str> = keys.difference(columns).collect();
        let missing: Vec<&&str> = columns.difference(&keys).collect();
        return Err(format!(
            "its columns differ from the manifest's (unexpected: {extra:?}, missing: {missing:?})"
        ));
    }
    Ok(())
}

/// The manifest, from the archive's last entry, and the SHA-256 of its bytes.
fn read_manifest(archive: &Path) -> Result<(Manifest, String), ArchiveError> {
    let mut found: Option<Vec<u8>> = None;
    for_each_file(archive, |path, content| {
        if path == MANIFEST {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(
                &mut std::io::Read::take(content, MAX_SMALL_FILE as u64 + 1),
                &mut bytes,
            )?;
            anyhow::ensure!(bytes.len() <= MAX_SMALL_FILE, "{MANIFEST} is too large");
            found = Some(bytes);
        }
        Ok(true)
    })
    .map_err(|e| invalid(format!("{e:#}")))?;
    let bytes = found.ok_or_else(|| {
        invalid(format!(
            "it has no {MANIFEST}: it is not a Tenantry archive, or it was cut short"
        ))
    })?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let head: Value = serde_json::from_slice(&bytes)
        .map_err(|e| invalid(format!("{MANIFEST} is not JSON: {e}")))?;
    if head.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(invalid(
            "it is not a Tenantry archive (no `format: tenantry-archive`)",
        ));
    }
    match head.get("format_version").and_then(Value::as_u64) {
        Some(v) if v == u64::from(FORMAT_VERSION) => {}
        Some(v) if v > u64::from(FORMAT_VERSION) => {
            return Err(invalid(format!(
                "it is in format version {v}, made by a newer Tenantry; this server reads \
                 version {FORMAT_VERSION}: upgrade this server first"
            )));
        }
        other => {
            return Err(invalid(format!(
                "its format version is {other:?}; this server reads version {FORMAT_VERSION}"
            )));
        }
    }
    let manifest: Manifest = serde_json::from_value(head)
        .map_err(|e| invalid(format!("{MANIFEST} is malformed: {e}")))?;
    Ok((manifest, sha256))
}

/// The manifest's tables against this server's: known, same columns, in an order that puts
/// parents first here too.
fn check_manifest(manifest: &Manifest, server: &[ServerTable]) -> Result<(), ArchiveError> {
    let mut names = HashSet::new();
    let mut last_position = None;
    for table in &manifest.tenant_tables {
        if !names.insert(table.name.as_str()) {
            return Err(invalid(format!("table {} is listed twice", table.name)));
        }
        let Some(position) = server.iter().position(|s| s.name == table.name) else {
            return Err(invalid(format!(
                "table {} is unknown to this server (the archive's tenant schema is at {}, newer \
                 than this server's): upgrade this server first",
                table.name,
                manifest.source.schema_label()
            )));
        };
        let ours: BTreeSet<&str> = server[position]
            .columns
            .iter()
            .map(String::as_str)
            .collect();
        let theirs: BTreeSet<&str> = table.columns.iter().map(String::as_str).collect();
        if ours != theirs {
            let only_archive: Vec<&&str> = theirs.difference(&ours).collect();
            let only_server: Vec<&&str> = ours.difference(&theirs).collect();
            return Err(invalid(format!(
                "table {} has other columns here (only in the archive: {only_archive:?}; only on \
                 this server: {only_server:?}): the archive's tenant schema is at {}; import it \
                 into a server at that version",
                table.name,
                manifest.source.schema_label()
            )));
        }
        if last_position.is_some_and(|last| position < last) {
            return Err(invalid(format!(
                "table {} comes before a table it depends on here",
                table.name
            )));
        }
        last_position = Some(position);
        if manifest
            .file(&crate::manifest::tenant_path(&table.name))
            .is_none()
        {
            return Err(invalid(format!("table {} has no file", table.name)));
        }
    }
    Ok(())
}
