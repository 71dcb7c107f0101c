//! `tenantry tenant export` and `tenantry tenant import`: an archive of everything a tenant owns,
//! written to a file, and restored into a new tenant of any tier. Progress goes to stderr, one
//! line per file; the summary to stdout (JSON with `--json`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use tenantry_archive::{ArchiveError, ImportOptions, ImportReport, Progress};
use tenantry_tenancy::{Tenancy, TenantRecord};

use crate::cli::{Output, TenantCommand};

pub async fn run(tenancy: &Tenancy, command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::Export { slug, out, output } => export(tenancy, &slug, &out, output).await,
        TenantCommand::Import {
            file,
            slug,
            isolation,
            name,
            output,
        } => {
            let options = ImportOptions {
                slug,
                isolation: isolation.into(),
                name,
            };
            import(tenancy, &file, &options, output).await
        }
        other => anyhow::bail!("not an archive command: {other:?}"),
    }
}

/// Progress lines on stderr, with the time since the start.
struct Lines {
    started: Instant,
}

impl Lines {
    fn new() -> Self {
        Self {
            started: Instant::now(),
        }
    }

    fn elapsed(&self) -> String {
        format!("{:>6.1}s", self.started.elapsed().as_secs_f64())
    }
}

impl Progress for Lines {
    fn file_done(&self, path: &str, rows: u64) {
        eprintln!("{}  {path}: {rows} rows", self.elapsed());
    }

    fn step(&self, text: &str) {
        eprintln!("{}  {text}", self.elapsed());
    }

    fn tenant_created(&self, record: &TenantRecord) {
        eprintln!(
            "{}  created tenant {} ({}), removed again should the import fail",
            self.elapsed(),
            record.slug,
            record.id
        );
    }
}

async fn export(tenancy: &Tenancy, slug: &str, out: &Path, output: Output) -> anyhow::Result<()> {
    let record = tenancy
        .find(slug)
        .await
        .map_err(|e| anyhow::anyhow!("{e}: `tenantry tenant list` shows the tenants"))?;
    if out.exists() {
        anyhow::bail!(
            "{} exists: choose another --out, or remove it first",
            out.display()
        );
    }
    // Written beside the target and renamed once complete, so a failed export leaves no file
    // that looks like an archive.
    let partial = partial_path(out);
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("failed to create {}", partial.display()))?;
    let progress = Lines::new();
    progress.step(&format!(
        "exporting {} ({} tier, {})",
        record.slug, record.isolation, record.status
    ));
    let exported = match tenantry_archive::export(tenancy, &record, file, &progress).await {
        Ok(exported) => exported,
        Err(e) => {
            std::fs::remove_file(&partial).ok();
            return Err(explain(e, None));
        }
    };
    let finished = exported
        .out
        .sync_all()
        .and_then(|()| std::fs::rename(&partial, out));
    if let Err(e) = finished {
        std::fs::remove_file(&partial).ok();
        return Err(anyhow::anyhow!("failed to write {}: {e}", out.display()));
    }
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    let rows: u64 = exported.manifest.files.iter().map(|f| f.rows).sum();
    if output.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "slug": record.slug,
                "file": out,
                "bytes": bytes,
                "rows": rows,
                "manifest_sha256": exported.manifest_sha256,
                "manifest": exported.manifest,
            }))?
        );
    } else {
        println!(
            "exported {} to {}: {} files, {rows} rows, {} bytes",
            record.slug,
            out.display(),
            exported.manifest.files.len() + 1,
            bytes
        );
        println!("manifest SHA-256 {}", exported.manifest_sha256);
    }
    Ok(())
}

fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    out.with_file_name(name)
}

async fn import(
    tenancy: &Tenancy,
    file: &Path,
    options: &ImportOptions,
    output: Output,
) -> anyhow::Result<()> {
    if !file.is_file() {
        anyhow::bail!("{} is not a file", file.display());
    }
    let progress = Lines::new();
    let report = tenantry_archive::import(tenancy, file, options, &progress)
        .await
        .map_err(|e| explain(e, Some(&options.slug)))?;
    if output.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(file, &report));
    }
    Ok(())
}

/// What was restored and what was not, and what to do about the latter.
fn render(file: &Path, report: &ImportReport) -> String {
    let tenant = &report.tenant;
    let mut out = format!(
        "imported {} into tenant {} ({} tier, id {})\n",
        file.display(),
        tenant.slug,
        tenant.isolation,
        tenant.id
    );
    out.push_str(&format!(
        "  from tenant {} ({}), manifest SHA-256 {}\n",
        report.source_slug, report.source_tenant_id, report.manifest_sha256
    ));
    let tables: Vec<String> = report
        .tables
        .iter()
        .map(|(name, rows)| format!("{name} {rows}"))
        .collect();
    out.push_str(&format!("  tenant rows: {}\n", tables.join(", ")));
    out.push_str(&format!(
        "  plan {}{}; {} months of API usage\n",
        tenant.plan,
        if report.plan_overrides_restored {
            " with its overrides"
        } else {
            ""
        },
        report.api_usage_periods
    ));
    out.push_str(&format!(
        "  audit trail: {} organization entries rebuilt under the new id, then organization.imported\n",
        report.audit_entries
    ));
    out.push_str(&format!(
        "  members restored: {}\n",
        list_or_none(&report.members_restored)
    ));
    if !report.members_skipped.is_empty() {
        out.push_str(&format!(
            "  members skipped, no account with their email here: {} (invite them again)\n",
            report.members_skipped.join(", ")
        ));
    }
    if report.api_keys_not_restored > 0 || report.invitations_not_restored > 0 {
        out.push_str(&format!(
            "  not restored (archives hold no secrets): {} API key(s), create new ones; {} \
             invitation(s), invite again\n",
            report.api_keys_not_restored, report.invitations_not_restored
        ));
    }
    out
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

/// Adds what to do next.
fn explain(e: ArchiveError, slug: Option<&str>) -> anyhow::Error {
    let hint = match &e {
        ArchiveError::NotFound(_) => "`tenantry tenant list` shows the tenants".to_string(),
        ArchiveError::SlugTaken(_) => "choose another --slug".to_string(),
        ArchiveError::InvalidArchive(_) => {
            "nothing was created; export the tenant again (`tenantry tenant export`)".to_string()
        }
        ArchiveError::Mismatch(_) => {
            "nothing was kept; run the import again, and report it if it persists".to_string()
        }
        ArchiveError::NotExportable(_) | ArchiveError::Invalid(_) => String::new(),
        ArchiveError::Unexpected(_) => match slug {
            Some(slug) => format!(
                "nothing was kept, unless the process was killed: then remove the half-imported \
                 tenant with `tenantry tenant delete {slug} --hard --confirm {slug}` and import \
                 again"
            ),
            None => "run the same command again".to_string(),
        },
    };
    if hint.is_empty() {
        anyhow::Error::new(e)
    } else {
        anyhow::anyhow!("{e:#}: {hint}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_export_sits_beside_its_target() {
        assert_eq!(
            partial_path(Path::new("/tmp/acme.tar.gz")),
            Path::new("/tmp/acme.tar.gz.partial")
        );
    }
}
