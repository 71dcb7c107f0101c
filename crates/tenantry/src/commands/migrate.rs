//! `tenantry migrate`: the fleet migration with progress, and `--status`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use tenantry_tenancy::{MigrateProgress, SchemaVersions, Tenancy};

pub async fn run(tenancy: &Tenancy, jobs: usize, json: bool) -> anyhow::Result<()> {
    let progress = Progress::new(!json && std::io::stderr().is_terminal());
    let report = tenancy.migrate_fleet(jobs, &progress).await?;
    progress.finish();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if report.noop {
        println!(
            "nothing to migrate: the shared schema and every tenant are at versions {}",
            report.latest
        );
    } else {
        println!(
            "shared schema: versions {} → {}; tenants migrated: {}; failed: {}",
            report.shared_from,
            report.shared_to,
            report.migrated.len(),
            report.failed.len()
        );
        for (slug, error) in &report.failed {
            println!("  {slug}: {error}");
        }
    }
    anyhow::ensure!(
        report.failed.is_empty(),
        "{} tenants failed to migrate: fix the cause and run `tenantry migrate` again to resume",
        report.failed.len()
    );
    Ok(())
}

pub async fn status(tenancy: &Tenancy, jobs: usize, json: bool) -> anyhow::Result<()> {
    let status = tenancy.migration_status(jobs).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    let sets: Vec<&str> = tenancy.schema().sets().iter().map(|s| s.name()).collect();
    println!("latest tenant-schema versions: {}", status.latest);
    println!(
        "shared schema: registry {}; actual {}{}",
        status.shared.registry_versions,
        status.shared.actual_versions,
        drift_text(&status.shared.drift)
    );
    if status.tenants.is_empty() {
        return Ok(());
    }
    // One column per migration set: the version the tenant's storage has of it.
    let width = status
        .tenants
        .iter()
        .map(|t| t.slug.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut header = format!("{:<width$}  {:<8}  {:<12}", "SLUG", "TIER", "STATUS");
    for set in &sets {
        header.push_str(&format!(
            "  {:>w$}",
            set.to_uppercase(),
            w = set.len().max(3)
        ));
    }
    println!("{header}  PENDING");
    for t in &status.tenants {
        let mut line = format!(
            "{:<width$}  {:<8}  {:<12}",
            t.slug,
            t.isolation.as_str(),
            t.status.as_str()
        );
        for set in &sets {
            let version = t
                .actual_versions
                .as_ref()
                .map_or("-".to_string(), |v| v.get(set).to_string());
            line.push_str(&format!("  {version:>w$}", w = set.len().max(3)));
        }
        println!("{line}  {:>7}{}", t.pending, drift_text(&t.drift));
    }
    Ok(())
}

fn drift_text(drift: &[String]) -> String {
    if drift.is_empty() {
        String::new()
    } else {
        format!("  DRIFT: {}", drift.join("; "))
    }
}

/// A progress bar on a terminal; plain lines on stderr otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    total: AtomicUsize,
    done: AtomicUsize,
}

impl Progress {
    fn new(terminal: bool) -> Self {
        Self {
            bar: terminal.then(ProgressBar::hidden),
            total: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl MigrateProgress for Progress {
    fn started(&self, tenants: usize) {
        self.total.store(tenants, Ordering::Relaxed);
        match &self.bar {
            Some(bar) => {
                bar.set_length(tenants as u64);
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                if let Ok(style) =
                    ProgressStyle::with_template("{bar:40} {pos}/{len} tenants  {msg}")
                {
                    bar.set_style(style);
                }
            }
            None => eprintln!("migrating {tenants} tenants"),
        }
    }

    fn finished(&self, slug: &str, result: &Result<SchemaVersions, String>) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let total = self.total.load(Ordering::Relaxed);
        match (&self.bar, result) {
            (Some(bar), Ok(_)) => {
                bar.set_message(slug.to_string());
                bar.inc(1);
            }
            (Some(bar), Err(e)) => {
                bar.println(format!("{slug}: {e}"));
                bar.inc(1);
            }
            (None, Ok(versions)) => eprintln!("[{done}/{total}] {slug}: versions {versions}"),
            (None, Err(e)) => eprintln!("[{done}/{total}] {slug}: FAILED: {e}"),
        }
    }
}
