//! What platform admins do to tenants: create one in any tier and invite its first owner,
//! suspend, activate, restore, delete (soft, or a purge confirmed by the slug), and move to
//! another tier in the background. One use case each for the admin API and the console's
//! "Admin" pages; every change is recorded in the platform's audit trail and the tenant's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tenantry_audit::AuditContext;
use tenantry_identity::{Email, User};
use tenantry_orgs::{Invitation, Role};
use tenantry_tenancy::{
    Isolation, MoveOptions, MoveProgress, NewTenant, Slug, TenancyError, TenantRecord, TenantStatus,
};

use crate::error::AppError;
use crate::state::AppState;

/// The tenant `id` names (by id; a slug is accepted too), deleted ones included.
pub(crate) async fn tenant(state: &AppState, id: &str) -> Result<TenantRecord, AppError> {
    match state.tenancy.find(id).await {
        Ok(record) => Ok(record),
        Err(TenancyError::NotFound(_)) => Err(AppError::NotFound),
        Err(e) => Err(e.into()),
    }
}

/// A tenant to create, and the address of its first owner.
#[derive(Debug)]
pub(crate) struct NewTenantSpec<'a> {
    pub name: &'a str,
    pub slug: &'a str,
    pub admin_email: &'a str,
    /// `free` when absent.
    pub plan: Option<&'a str>,
    pub isolation: Isolation,
    /// The server of a database-tier tenant; the least-loaded one when absent.
    pub server: Option<&'a str>,
}

/// Provisions the tenant in its tier, then invites its first owner by email; if the invitation
/// cannot be made, the tenant is removed again (no tenant nobody can join).
pub(crate) async fn create(
    state: &AppState,
    audit: &AuditContext,
    admin: &User,
    spec: &NewTenantSpec<'_>,
) -> Result<(TenantRecord, Invitation), AppError> {
    let slug = Slug::parse(spec.slug).map_err(|e| AppError::invalid("slug", e.to_string()))?;
    let email = Email::parse(spec.admin_email).map_err(|e| AppError::invalid("admin_email", e))?;
    let name = spec.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(AppError::invalid("name", "1 to 200 characters"));
    }
    if let Some(plan) = spec.plan
        && !state.orgs.plans().await?.iter().any(|p| p.name == plan)
    {
        return Err(AppError::invalid("plan", format!("{plan:?} is not a plan")));
    }
    let record = state
        .tenancy
        .create_tenant(&NewTenant {
            name: name.to_string(),
            slug,
            isolation: spec.isolation,
            plan: spec.plan.map(str::to_owned),
            server: spec.server.map(str::to_owned),
        })
        .await?;
    let invited = state
        .orgs
        .invite(
            Role::Owner,
            record.id.as_uuid(),
            &admin.name,
            &email,
            Role::Owner,
            audit,
        )
        .await;
    let invitation = match invited {
        Ok(invitation) => invitation,
        Err(e) => {
            if let Err(undo) = state.tenancy.hard_delete(&record.slug, &record.slug).await {
                tracing::error!(slug = %record.slug, error = %undo, "failed to remove a tenant whose admin could not be invited");
            }
            return Err(e.into());
        }
    };
    tracing::info!(slug = %record.slug, isolation = %record.isolation, "tenant created by a platform admin");
    // Provisioning is made of steps, not one transaction: the creation is recorded once the
    // tenant is active (and its owner invited).
    let change = tenant_change(
        tenantry_audit::AuditAction::TenantCreated,
        &record,
        None,
        Some(record.status),
    );
    state.orgs.record_after(None, audit, &change).await;
    state
        .orgs
        .record_after(Some(record.id.as_uuid()), audit, &change)
        .await;
    Ok((record, invitation))
}

/// A status change a platform admin makes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Transition {
    Activate,
    Suspend,
    Restore,
}

/// Changes tenant `id`'s status, recorded in both trails in the change's own transaction.
pub(crate) async fn change_status(
    state: &AppState,
    audit: &AuditContext,
    id: &str,
    transition: Transition,
) -> Result<TenantRecord, AppError> {
    let record = tenant(state, id).await?;
    let key = record.id.to_string();
    let mut tx = state.tenancy.begin_registry().await?;
    let (changed, action) = match transition {
        Transition::Activate => (
            state.tenancy.activate_in(&mut tx, &key).await?,
            tenantry_audit::AuditAction::TenantActivated,
        ),
        Transition::Suspend => (
            state.tenancy.suspend_in(&mut tx, &key).await?,
            tenantry_audit::AuditAction::TenantSuspended,
        ),
        Transition::Restore => (
            state.tenancy.restore_in(&mut tx, &key).await?,
            tenantry_audit::AuditAction::TenantRestored,
        ),
    };
    let change = tenant_change(action, &changed, Some(record.status), Some(changed.status));
    tenantry_audit::record(&mut tx, None, audit, &change).await?;
    tenantry_audit::record(&mut tx, Some(changed.id.as_uuid()), audit, &change).await?;
    tx.commit().await?;
    Ok(changed)
}

/// Deletes tenant `id`: soft (restorable; the owners are emailed), or with `hard = Some(confirm)`
/// a purge, where `confirm` must repeat the slug.
pub(crate) async fn delete(
    state: &AppState,
    audit: &AuditContext,
    admin: &User,
    id: &str,
    hard: Option<&str>,
) -> Result<(), AppError> {
    let record = tenant(state, id).await?;
    match hard {
        Some(confirm) => {
            let change = tenant_change(
                tenantry_audit::AuditAction::TenantPurged,
                &record,
                Some(record.status),
                None,
            );
            purge(state, audit, &record, confirm, &change).await?;
        }
        None => {
            let before = Some(record.status);
            state
                .orgs
                .soft_delete(
                    &record.id.to_string(),
                    audit,
                    true,
                    Some(admin.id),
                    |deleted| {
                        tenant_change(
                            tenantry_audit::AuditAction::TenantDeleted,
                            deleted,
                            before,
                            Some(deleted.status),
                        )
                    },
                )
                .await?;
        }
    }
    Ok(())
}

/// Purges `record` (`confirm` must repeat its slug): its storage and every row it owns, and
/// what the rate limiter keeps of it. The organization's own trail goes with it: the
/// platform's records `change`.
pub(crate) async fn purge(
    state: &AppState,
    audit: &AuditContext,
    record: &TenantRecord,
    confirm: &str,
    change: &tenantry_audit::Change,
) -> Result<(), AppError> {
    state
        .tenancy
        .hard_delete(&record.id.to_string(), confirm)
        .await?;
    crate::extract::forget_tenant(state, record.id.as_uuid()).await;
    state.orgs.record_after(None, audit, change).await;
    Ok(())
}

pub(crate) fn tenant_change(
    action: tenantry_audit::AuditAction,
    record: &TenantRecord,
    before: Option<TenantStatus>,
    after: Option<TenantStatus>,
) -> tenantry_audit::Change {
    let summary = |status: TenantStatus| {
        serde_json::json!({
            "slug": record.slug,
            "isolation": record.isolation,
            "plan": record.plan,
            "status": status,
        })
    };
    tenantry_audit::Change {
        action,
        target_kind: "tenant",
        target_id: Some(record.id.to_string()),
        before: before.map(summary),
        after: after.map(summary),
    }
}

/// The moves started from this instance, by tenant slug: each one's progress so far, as lines,
/// and whether it ended.
#[derive(Debug, Clone, Default)]
pub struct Moves(Arc<Mutex<HashMap<String, MoveState>>>);

/// What a move started here has reported.
#[derive(Debug, Clone, Default)]
pub(crate) struct MoveState {
    pub lines: Vec<String>,
    pub finished: bool,
}

impl Moves {
    fn note(&self, slug: &str, line: String, finished: bool) {
        let mut moves = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let state = moves.entry(slug.to_owned()).or_default();
        state.lines.push(line);
        state.finished |= finished;
    }

    /// The progress of tenant `slug`'s move started here, if there was one.
    pub(crate) fn of(&self, slug: &str) -> Option<MoveState> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(slug)
            .cloned()
    }

    /// Starts a move of `slug`, unless one started here is running.
    fn start(&self, slug: &str) -> bool {
        let mut moves = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if moves.get(slug).is_some_and(|m| !m.finished) {
            return false;
        }
        moves.insert(slug.to_owned(), MoveState::default());
        true
    }
}

fn describe(progress: &MoveProgress) -> String {
    match progress {
        MoveProgress::Resuming { phase } => {
            format!("resuming an interrupted move from its {phase} phase")
        }
        MoveProgress::Preparing { to } => format!("preparing the {to} tier"),
        MoveProgress::Copied { table, rows } => format!("copied {rows} rows of {table}"),
        MoveProgress::CaughtUp { rows } => format!("caught up with {rows} rows written meanwhile"),
        MoveProgress::Switched { write_pause } => {
            format!(
                "switched; writes paused for {:.0} ms",
                write_pause.as_secs_f64() * 1000.0
            )
        }
        MoveProgress::Draining { seconds } => {
            format!("draining readers of the old copy for {seconds:.0} s")
        }
        MoveProgress::Cleaned => "removed the old copy".to_owned(),
    }
}

/// Starts moving tenant `id` to tier `to` (on `server`, for the database tier) in the
/// background (the engine's verified, resumable move); its progress is kept in `state.moves`,
/// and the move is recorded in the tenant's trail when it is done.
pub(crate) async fn start_move(
    state: &AppState,
    audit: AuditContext,
    id: &str,
    to: Isolation,
    server: Option<String>,
) -> Result<(), AppError> {
    let record = tenant(state, id).await?;
    if !matches!(
        record.status,
        TenantStatus::Active | TenantStatus::Suspended
    ) {
        return Err(AppError::Conflict(format!(
            "The tenant is {}: only active and suspended tenants move.",
            record.status
        )));
    }
    if record.isolation == to && server.as_ref().is_none_or(|s| *s == record.server) {
        return Err(AppError::invalid(
            "to",
            format!("the tenant is in the {to} tier already"),
        ));
    }
    if let Some(name) = &server {
        if to != Isolation::Database {
            return Err(AppError::invalid(
                "server",
                "only database-tier tenants live on a server of their choice",
            ));
        }
        // Refused now rather than by the move in the background: unknown or draining.
        if let Err(e) = state.tenancy.place(Some(name)).await {
            return Err(match e {
                TenancyError::Invalid(detail) => AppError::invalid("server", detail),
                e => e.into(),
            });
        }
    }
    let slug = record.slug.clone();
    if !state.moves.start(&slug) {
        return Err(AppError::Conflict(
            "A move of this tenant is in progress.".to_owned(),
        ));
    }
    let state = state.clone();
    tokio::spawn(async move {
        let moves = state.moves.clone();
        let report = {
            let moves = moves.clone();
            let slug = slug.clone();
            state
                .tenancy
                .move_tenant_to(
                    &slug.clone(),
                    to,
                    server.as_deref(),
                    &MoveOptions::default(),
                    &move |p| moves.note(&slug, describe(&p), false),
                )
                .await
        };
        match report {
            Ok(report) => {
                let change = tenantry_audit::Change {
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
                };
                state
                    .orgs
                    .record_after(Some(record.id.as_uuid()), &audit, &change)
                    .await;
                moves.note(&slug, format!("moved to the {} tier", report.to), true);
            }
            Err(e) => {
                tracing::error!(slug = %slug, error = %e, "a move started from the console stopped");
                moves.note(
                    &slug,
                    format!("stopped: {e}. Start the move again to resume it, or run `tenantry tenant move {slug} --abort`."),
                    true,
                );
            }
        }
    });
    Ok(())
}
