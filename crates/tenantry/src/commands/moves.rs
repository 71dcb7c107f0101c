//! `tenantry tenant move SLUG --to TIER`: moves a tenant to another isolation tier while it stays
//! in use, reporting each step on stderr and the write pause at the end.

use std::time::Duration;

use anyhow::Context;
use tenantry_audit::{AuditContext, Change};
use tenantry_tenancy::{Isolation, MoveOptions, MoveProgress, Tenancy, TenancyError};

use crate::cli::{Output, Tier};

pub struct MoveArgs {
    pub slug: String,
    pub to: Option<Tier>,
    pub abort: bool,
    pub drain_seconds: u64,
    pub server: Option<String>,
    pub output: Output,
}

pub async fn run(tenancy: &Tenancy, args: MoveArgs) -> anyhow::Result<()> {
    if let Some(server) = &args.server {
        let record = tenancy.find(&args.slug).await?;
        anyhow::ensure!(
            *server == record.server,
            "this installation has one PostgreSQL server ({:?}); moves to another server are not supported: leave out --server",
            record.server
        );
    }
    if args.abort {
        return match tenancy.abort_move(&args.slug).await? {
            Some(to) => {
                println!(
                    "abandoned the move of {} to the {to} tier; it stays where it was",
                    args.slug
                );
                Ok(())
            }
            None => {
                println!("{} has no move in progress", args.slug);
                Ok(())
            }
        };
    }
    let Some(to) = args.to else {
        anyhow::bail!(
            "name the tier to move {} to with --to shared|schema|database",
            args.slug
        );
    };
    let to = Isolation::from(to);
    let options = MoveOptions {
        drain: Duration::from_secs(args.drain_seconds),
        ..MoveOptions::default()
    };
    let report = tenancy
        .move_tenant(&args.slug, to, &options, &report_progress)
        .await
        .map_err(|e| match e {
            TenancyError::Unexpected(e) => e.context(format!(
                "the move of {} stopped; run the same command again to resume it, or `tenantry tenant move {} --abort` to abandon it",
                args.slug, args.slug
            )),
            other => other.into(),
        })?;
    let record = tenancy.find(&args.slug).await?;
    let mut conn = tenancy.control_db().acquire().await?;
    tenantry_audit::record(
        &mut conn,
        Some(record.id.as_uuid()),
        &AuditContext::system(),
        &Change {
            action: tenantry_audit::AuditAction::OrganizationMoved,
            target_kind: "organization",
            target_id: Some(record.id.to_string()),
            before: Some(serde_json::json!({ "isolation": report.from })),
            after: Some(serde_json::json!({
                "isolation": report.to,
                "write_pause_ms": report.write_pause_ms,
            })),
        },
    )
    .await
    .context("the tenant moved, but its audit entry could not be written")?;
    if args.output.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "moved {} from the {} tier to the {} tier{}",
        report.slug,
        report.from,
        report.to,
        if report.resumed { " (resumed)" } else { "" }
    );
    for table in &report.tables {
        println!(
            "  {:<20} {:>10} rows  md5 {}",
            table.table, table.rows, table.checksum
        );
    }
    println!(
        "writes paused for {:.1} ms ({} rows copied before the switch, {} at it)",
        report.write_pause_ms, report.rows_copied, report.rows_at_switch
    );
    Ok(())
}

fn report_progress(progress: MoveProgress) {
    match progress {
        MoveProgress::Resuming { phase } => eprintln!("resuming an interrupted move ({phase})"),
        MoveProgress::Preparing { to } => eprintln!("preparing the {to} tier"),
        MoveProgress::Copied { table, rows } => eprintln!("copied {table}: {rows} rows"),
        MoveProgress::CaughtUp { rows } => {
            eprintln!("caught up with {rows} rows changed during the copy")
        }
        MoveProgress::Switched { write_pause } => eprintln!(
            "switched; writes paused for {:.1} ms",
            write_pause.as_secs_f64() * 1000.0
        ),
        MoveProgress::Draining { seconds } => {
            eprintln!("keeping the old copy {seconds:.0} s for reads in flight")
        }
        MoveProgress::Cleaned => eprintln!("removed the old copy"),
    }
}
