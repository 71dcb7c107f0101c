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
    let to = match (args.to, &args.server) {
        (Some(to), _) => Isolation::from(to),
        (None, Some(_)) => Isolation::Database,
        (None, None) => anyhow::bail!(
            "name the tier to move {} to with --to shared|schema|database, or a server with --server NAME",
            args.slug
        ),
    };
    let options = MoveOptions {
        drain: Duration::from_secs(args.drain_seconds),
        ..MoveOptions::default()
    };
    let report = tenancy
        .move_tenant_to(
            &args.slug,
            to,
            args.server.as_deref(),
            &options,
            &report_progress,
        )
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
            before: Some(
                serde_json::json!({ "isolation": report.from, "server": report.from_server }),
            ),
            after: Some(serde_json::json!({
                "isolation": report.to,
                "server": report.to_server,
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
    let place = |tier: Isolation, server: &str| match tier {
        Isolation::Database => format!("the database tier on server {server}"),
        tier => format!("the {tier} tier"),
    };
    println!(
        "moved {} from {} to {}{}",
        report.slug,
        place(report.from, &report.from_server),
        place(report.to, &report.to_server),
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
