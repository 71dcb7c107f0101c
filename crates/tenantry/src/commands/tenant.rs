//! `tenantry tenant ...`: create, list, show and change the lifecycle of tenants.

use anyhow::Context;
use serde_json::{Map, Value};
use tenantry_mail::Outbox;
use tenantry_orgs::{EntitlementChange, LIMIT_KEYS, Orgs, OrgsError};
use tenantry_tenancy::{NewTenant, Slug, Tenancy, TenancyError, TenantRecord};

use crate::cli::{Output, TenantCommand};
use crate::settings::Settings;

pub async fn run(
    tenancy: &Tenancy,
    settings: &Settings,
    command: TenantCommand,
) -> anyhow::Result<()> {
    match command {
        TenantCommand::Move {
            slug,
            to,
            abort,
            drain,
            server,
            output,
        } => {
            let args = super::moves::MoveArgs {
                slug,
                to,
                abort,
                drain_seconds: drain,
                server,
                output,
            };
            super::moves::run(tenancy, args).await
        }
        TenantCommand::SetPlan { slug, plan, output } => {
            let change = EntitlementChange {
                plan: Some(plan),
                ..EntitlementChange::default()
            };
            change_plan(tenancy, settings, &slug, &change, output).await
        }
        TenantCommand::SetLimit {
            slug,
            key,
            value,
            output,
        } => {
            let value = match value.as_str() {
                "unlimited" | "null" => Value::Null,
                number => Value::from(number.parse::<i64>().map_err(|_| {
                    anyhow::anyhow!("{number:?} is not a whole number: give one, or `unlimited`")
                })?),
            };
            let mut limits = Map::new();
            limits.insert(key, value);
            let change = EntitlementChange {
                limits: Some(limits),
                ..EntitlementChange::default()
            };
            change_plan(tenancy, settings, &slug, &change, output).await
        }
        TenantCommand::Create {
            name,
            slug,
            isolation,
            plan,
            output,
        } => {
            let slug = Slug::parse(&slug)?;
            let new = NewTenant {
                name,
                slug,
                isolation: isolation.into(),
                plan,
            };
            let record = tenancy.create_tenant(&new).await.map_err(explain)?;
            print_one(&record, output)
        }
        TenantCommand::List { output } => {
            let records = tenancy.list().await?;
            if output.json {
                println!("{}", serde_json::to_string_pretty(&records)?);
            } else {
                print_table(&records);
            }
            Ok(())
        }
        TenantCommand::Show { slug, output } => {
            print_one(&tenancy.find(&slug).await.map_err(explain)?, output)
        }
        TenantCommand::Suspend { slug, output } => {
            print_one(&tenancy.suspend(&slug).await.map_err(explain)?, output)
        }
        TenantCommand::Activate { slug, output } => {
            print_one(&tenancy.activate(&slug).await.map_err(explain)?, output)
        }
        TenantCommand::Restore { slug, output } => {
            print_one(&tenancy.restore(&slug).await.map_err(explain)?, output)
        }
        TenantCommand::Delete {
            slug,
            hard: false,
            output,
            ..
        } => print_one(&tenancy.soft_delete(&slug).await.map_err(explain)?, output),
        TenantCommand::Delete {
            slug,
            hard: true,
            confirm,
            output,
        } => {
            let confirm = confirm.context("a hard delete needs --confirm SLUG")?;
            tenancy
                .hard_delete(&slug, &confirm)
                .await
                .map_err(explain)?;
            if output.json {
                println!("{}", serde_json::json!({ "slug": slug, "deleted": "hard" }));
            } else {
                println!("tenant {slug} and everything it owned are deleted");
            }
            Ok(())
        }
    }
}

/// Changes a tenant's plan or limit overrides, and prints the effective plan and limits.
async fn change_plan(
    tenancy: &Tenancy,
    settings: &Settings,
    slug: &str,
    change: &EntitlementChange,
    output: Output,
) -> anyhow::Result<()> {
    let outbox = Outbox::open(tenancy.runtime_pool().clone()).await?;
    let orgs = Orgs::new(tenancy.clone(), outbox, &settings.public_url);
    let record = tenancy.find(slug).await.map_err(explain)?;
    let (record, entitlements) = orgs
        .change_entitlements(
            record.id.as_uuid(),
            change,
            &tenantry_audit::AuditContext::system(),
        )
        .await
        .map_err(|e| match e {
            OrgsError::Invalid { detail, .. } => anyhow::anyhow!(detail),
            other => other.into(),
        })?;
    if output.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "slug": record.slug,
                "entitlements": entitlements,
            }))?
        );
        return Ok(());
    }
    println!("{:<24} {}", "plan", entitlements.plan);
    for key in LIMIT_KEYS {
        let value = entitlements
            .limits
            .get(key)
            .and_then(Value::as_i64)
            .map_or_else(|| "unlimited".to_string(), |v| v.to_string());
        let overridden = if entitlements.overrides.limits.contains_key(key) {
            "  (override)"
        } else {
            ""
        };
        println!("{key:<24} {value}{overridden}");
    }
    Ok(())
}

/// Adds what to do next to the engine's errors.
fn explain(e: TenancyError) -> anyhow::Error {
    let hint = match &e {
        TenancyError::NotFound(_) => Some("`tenantry tenant list` shows the tenants"),
        TenancyError::SlugTaken(_) => Some("choose another slug"),
        TenancyError::InvalidState { .. } => Some("`tenantry tenant show SLUG` shows its status"),
        TenancyError::ConfirmationMismatch { .. } => {
            Some("repeat the tenant's slug after --confirm")
        }
        TenancyError::Unexpected(_) => {
            Some("if this was interrupted, run the same command again to resume")
        }
        TenancyError::Moving(_) => Some("try again in a moment"),
        TenancyError::NotActive { .. } | TenancyError::Invalid(_) => None,
    };
    match hint {
        Some(hint) => anyhow::anyhow!("{e}: {hint}"),
        None => e.into(),
    }
}

fn print_one(record: &TenantRecord, output: Output) -> anyhow::Result<()> {
    if output.json {
        println!("{}", serde_json::to_string_pretty(record)?);
        return Ok(());
    }
    let rows = [
        ("id", record.id.to_string()),
        ("slug", record.slug.clone()),
        ("name", record.name.clone()),
        ("plan", record.plan.clone()),
        ("isolation", record.isolation.to_string()),
        (
            "placement",
            format!(
                "server {}, database {}, schema {}",
                record.server, record.database_name, record.schema_name
            ),
        ),
        ("status", record.status.to_string()),
        ("provisioning step", record.provision_step.to_string()),
        ("schema version", record.schema_version.to_string()),
        ("created", record.created_at.to_rfc3339()),
        ("updated", record.updated_at.to_rfc3339()),
    ];
    for (label, value) in rows {
        println!("{label:<18} {value}");
    }
    if let Some(deleted) = record.deleted_at {
        println!("{:<18} {}", "deleted", deleted.to_rfc3339());
    }
    if let Some(error) = &record.last_error {
        println!("{:<18} {}", "last error", error);
    }
    Ok(())
}

fn print_table(records: &[TenantRecord]) {
    let width = records
        .iter()
        .map(|r| r.slug.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<width$}  {:<8}  {:<12}  {:<10}  {:>7}  CREATED",
        "SLUG", "TIER", "STATUS", "PLAN", "VERSION"
    );
    for r in records {
        println!(
            "{:<width$}  {:<8}  {:<12}  {:<10}  {:>7}  {}",
            r.slug,
            r.isolation.as_str(),
            r.status.as_str(),
            r.plan,
            r.schema_version,
            r.created_at.format("%Y-%m-%d %H:%M")
        );
    }
    if records.is_empty() {
        println!("(no tenants: create one with `tenantry tenant create`)");
    }
}
