//! `tenantry tenant ...`: create, list, show and change the lifecycle of tenants.

use anyhow::Context;
use serde_json::{Map, Value};
use tenantry_mail::Outbox;
use tenantry_orgs::{EntitlementChange, LIMIT_KEYS, Orgs, OrgsError};
use tenantry_tenancy::{
    NewTenant, Operator, SchemaVersions, Slug, Tenancy, TenancyError, TenantRecord,
};

use crate::cli::{Output, TenantCommand};
use crate::settings::Settings;

pub async fn run(
    tenancy: &Tenancy,
    settings: &Settings,
    command: TenantCommand,
) -> anyhow::Result<()> {
    match command {
        command @ (TenantCommand::Export { .. } | TenantCommand::Import { .. }) => {
            super::archive::run(tenancy, command).await
        }
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
        TenantCommand::SetFeature {
            slug,
            key,
            value,
            output,
        } => {
            let mut features = Map::new();
            features.insert(key, Value::Bool(value == "on"));
            let change = EntitlementChange {
                features: Some(features),
                ..EntitlementChange::default()
            };
            change_plan(tenancy, settings, &slug, &change, output).await
        }
        TenantCommand::Create {
            name,
            slug,
            isolation,
            plan,
            server,
            output,
        } => {
            let slug = Slug::parse(&slug)?;
            let new = NewTenant {
                name,
                slug,
                isolation: isolation.into(),
                plan,
                server,
            };
            let record = tenancy.create_tenant(&new).await.map_err(explain)?;
            print_one(&record, output)
        }
        TenantCommand::List { output } => {
            let records = tenancy.list().await?;
            if output.json {
                println!("{}", serde_json::to_string_pretty(&records)?);
            } else {
                print_table(&records, &tenancy.schema().latest());
            }
            Ok(())
        }
        TenantCommand::Show { slug, output } => {
            print_one(&tenancy.find(&slug).await.map_err(explain)?, output)
        }
        TenantCommand::Suspend { slug, output } => {
            let record = change_status(tenancy, settings, &slug, Status::Suspend).await?;
            print_one(&record, output)
        }
        TenantCommand::Activate { slug, output } => {
            let record = change_status(tenancy, settings, &slug, Status::Activate).await?;
            print_one(&record, output)
        }
        TenantCommand::Restore { slug, output } => {
            let record = change_status(tenancy, settings, &slug, Status::Restore).await?;
            print_one(&record, output)
        }
        TenantCommand::Delete {
            slug,
            hard: false,
            output,
            ..
        } => {
            let record = change_status(tenancy, settings, &slug, Status::Delete).await?;
            print_one(&record, output)
        }
        TenantCommand::Delete {
            slug,
            hard: true,
            confirm,
            output,
        } => {
            let confirm = confirm.context("a hard delete needs --confirm SLUG")?;
            let id = tenancy.find(&slug).await.map_err(explain)?.id.as_uuid();
            tenancy
                .hard_delete(&slug, &confirm)
                .await
                .map_err(explain)?;
            forget_rate_limits(settings, &slug, id).await;
            if output.json {
                println!("{}", serde_json::json!({ "slug": slug, "deleted": "hard" }));
            } else {
                println!("tenant {slug} and everything it owned are deleted");
            }
            Ok(())
        }
    }
}

/// With `redis_url` set, removes the hard-deleted tenant's rate-limit keys from Redis (every key
/// under `tenantry:<id>:`). A Redis that does not answer is a warning, not a failure: the
/// tenant is deleted, and its keys expire on their own within a minute.
async fn forget_rate_limits(settings: &Settings, slug: &str, id: uuid::Uuid) {
    let Some(url) = &settings.redis_url else {
        return;
    };
    if let Err(error) = tenantry_ratelimit::Limiter::forget_tenant_at(url.expose(), id).await {
        tracing::warn!(%slug, %error, "could not remove the tenant's rate-limit keys from Redis; they expire within a minute");
    }
}

/// A lifecycle change made from the command line.
#[derive(Clone, Copy)]
enum Status {
    Suspend,
    Activate,
    Restore,
    Delete,
}

/// Changes a tenant's status, recording it (as the system) in the platform's audit trail and the
/// tenant's, in the change's own transaction; a deletion also emails the owners the purge date
/// and the export link, in that transaction.
async fn change_status(
    tenancy: &Tenancy,
    settings: &Settings,
    slug: &str,
    status: Status,
) -> anyhow::Result<TenantRecord> {
    let before = tenancy.find(slug).await.map_err(explain)?;
    let summary = |r: &TenantRecord| {
        serde_json::json!({
            "slug": r.slug, "isolation": r.isolation, "plan": r.plan, "status": r.status,
        })
    };
    let change =
        |action: tenantry_audit::AuditAction, record: &TenantRecord| tenantry_audit::Change {
            action,
            target_kind: "tenant",
            target_id: Some(record.id.to_string()),
            before: Some(summary(&before)),
            after: Some(summary(record)),
        };
    let system = tenantry_audit::AuditContext::system();
    if let Status::Delete = status {
        let outbox = Outbox::open(tenancy, &Operator::new(tenancy)).await?;
        let orgs = Orgs::new(tenancy.clone(), outbox, &settings.public_url)
            .with_deleted_retention_days(settings.deleted_retention_days);
        return orgs
            .soft_delete(slug, &system, true, None, |deleted| {
                change(tenantry_audit::AuditAction::TenantDeleted, deleted)
            })
            .await
            .map_err(|e| match e {
                tenantry_orgs::OrgsError::Conflict(state) => anyhow::anyhow!(
                    "{}: `tenantry tenant show SLUG` shows its status",
                    state.trim_end_matches('.')
                ),
                e => e.into(),
            });
    }
    let mut tx = tenancy.begin_registry().await?;
    use tenantry_audit::AuditAction;
    let (record, action) = match status {
        Status::Suspend => (
            tenancy.suspend_in(&mut tx, slug).await,
            AuditAction::TenantSuspended,
        ),
        Status::Activate => (
            tenancy.activate_in(&mut tx, slug).await,
            AuditAction::TenantActivated,
        ),
        Status::Restore => (
            tenancy.restore_in(&mut tx, slug).await,
            AuditAction::TenantRestored,
        ),
        Status::Delete => unreachable!("handled above"),
    };
    let record = record.map_err(explain)?;
    let change = change(action, &record);
    tenantry_audit::record(&mut tx, None, &system, &change).await?;
    tenantry_audit::record(&mut tx, Some(record.id.as_uuid()), &system, &change).await?;
    tx.commit().await?;
    Ok(record)
}

/// Changes a tenant's plan or limit overrides, and prints the effective plan and limits.
async fn change_plan(
    tenancy: &Tenancy,
    settings: &Settings,
    slug: &str,
    change: &EntitlementChange,
    output: Output,
) -> anyhow::Result<()> {
    let outbox = Outbox::open(tenancy, &Operator::new(tenancy)).await?;
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
        TenancyError::Unavailable { .. } => {
            Some("`tenantry server list` shows which servers answer")
        }
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
        ("schema versions", record.schema_versions.to_string()),
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

fn print_table(records: &[TenantRecord], latest: &SchemaVersions) {
    let width = records
        .iter()
        .map(|r| r.slug.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<width$}  {:<8}  {:<12}  {:<10}  {:<10}  CREATED",
        "SLUG", "TIER", "STATUS", "PLAN", "SCHEMA"
    );
    for r in records {
        let schema = match r.schema_versions.pending(latest) {
            0 => "current".to_string(),
            n => format!("{n} behind"),
        };
        println!(
            "{:<width$}  {:<8}  {:<12}  {:<10}  {:<10}  {}",
            r.slug,
            r.isolation.as_str(),
            r.status.as_str(),
            r.plan,
            schema,
            r.created_at.format("%Y-%m-%d %H:%M")
        );
    }
    if records.is_empty() {
        println!("(no tenants: create one with `tenantry tenant create`)");
    }
}
