//! `tenantry audit verify`: recomputes a tenant's two audit chains (or the platform's) and names
//! every altered or missing entry. Exits non-zero when there is one, so it can run from cron or
//! a monitoring check.

use tenantry_audit::Verification;
use tenantry_tenancy::{Tenancy, TenancyError};

use crate::cli::AuditCommand;

/// What to do about a chain that failed verification.
const ADVICE: &str = "The entries named above cannot be trusted, and neither can the organization's \
     trail around them. Compare them with a backup taken before the change and restore the audit \
     tables from it, then find out who had owner or superuser access to the database: the roles \
     the server runs as cannot alter or delete audit entries.";

pub async fn run(tenancy: &Tenancy, command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify {
            slug,
            platform,
            output,
        } => {
            let (name, report) = match slug {
                Some(slug) if !platform => {
                    let record = tenancy.find(&slug).await.map_err(explain)?;
                    let report = tenantry_audit::verify(tenancy, &record).await?;
                    (format!("the audit log of {}", record.slug), report)
                }
                _ => (
                    "the platform audit log".to_string(),
                    tenantry_audit::verify_platform(tenancy).await?,
                ),
            };
            if output.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", render(&name, platform, &report));
            }
            if report.is_intact() {
                Ok(())
            } else {
                anyhow::bail!(
                    "{name} failed verification ({} problem{})",
                    report.problems.len(),
                    if report.problems.len() == 1 { "" } else { "s" }
                )
            }
        }
    }
}

/// The report as text: the counts, then each problem and what to do.
fn render(name: &str, platform: bool, report: &Verification) -> String {
    let entries = |n: u64, kind: &str| match n {
        1 => format!("1 {kind}entry"),
        n => format!("{n} {kind}entries"),
    };
    let counts = if platform {
        entries(report.organization_entries, "")
    } else {
        format!(
            "{}, {}",
            entries(report.organization_entries, "organization "),
            entries(report.tenant_entries, "tenant ")
        )
    };
    if report.is_intact() {
        return format!("{name}: {counts}, every entry intact\n");
    }
    let mut out = format!("{name}: {counts}, PROBLEMS FOUND:\n");
    for problem in &report.problems {
        out.push_str(&format!("  - {problem}\n"));
    }
    out.push('\n');
    out.push_str(ADVICE);
    out.push('\n');
    out
}

fn explain(e: TenancyError) -> anyhow::Error {
    match e {
        TenancyError::NotFound(_) => {
            anyhow::anyhow!("{e}: `tenantry tenant list` shows the tenants")
        }
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_intact_log_is_one_line_and_problems_come_with_advice() {
        let clean = Verification {
            organization_entries: 3,
            tenant_entries: 2,
            problems: Vec::new(),
        };
        assert_eq!(
            render("the audit log of acme", false, &clean),
            "the audit log of acme: 3 organization entries, 2 tenant entries, every entry intact\n"
        );
        let one = Verification {
            tenant_entries: 1,
            ..clean.clone()
        };
        assert!(render("x", false, &one).starts_with("x: 3 organization entries, 1 tenant entry,"));
        let broken = Verification {
            problems: vec!["tenant chain: entry 2 was altered".into()],
            ..clean
        };
        let text = render("the platform audit log", true, &broken);
        assert!(
            text.starts_with(
                "the platform audit log: 3 entries, PROBLEMS FOUND:\n  - tenant chain: entry 2 \
                 was altered\n\n"
            ),
            "{text}"
        );
        assert!(text.contains("restore the audit tables"), "{text}");
    }
}
