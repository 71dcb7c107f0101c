//! Creating, replacing and deleting a monitor: the checks (role, input, the plan's
//! `min_check_interval_s` and `max_monitors`, the SSRF guard), the heartbeat token, the audit
//! entry and the schedule, in the order that leaves no half-made state. A heartbeat monitor's
//! token is issued (in the control database) before the monitor commits and forgotten after it
//! is deleted; its URL is returned once, by the call that issued it.

use tenantry_audit::AuditContext;
use tenantry_monitoring::{self as monitoring, Monitor, MonitorInput, MonitorKind, scheduler};
use tenantry_orgs::{Action, Limit, Role};
use tenantry_tenancy::{TenantCtx, TenantTx};
use uuid::Uuid;

use crate::error::AppError;
use crate::state::AppState;
use tenantry_monitoring::checks::Targets;
use tenantry_orgs::Feature;

/// Who acts on an organization's monitors: its door, the caller's role, and what the audit
/// trail records of them.
#[derive(Debug)]
pub(crate) struct Acting<'a> {
    pub ctx: &'a TenantCtx,
    pub role: Role,
    pub audit: AuditContext,
}

impl<'a> Acting<'a> {
    pub fn new(ctx: &'a TenantCtx, role: Role, audit: AuditContext) -> Self {
        Acting { ctx, role, audit }
    }

    fn org_id(&self) -> Uuid {
        self.ctx.tenant_id().as_uuid()
    }
}

/// A monitor as saved, with its heartbeat URL when this call issued its token.
#[derive(Debug)]
pub(crate) struct Issued {
    pub monitor: Monitor,
    /// `<public_url>/api/v1/heartbeat/<token>`: shown once, the server keeps only a hash.
    pub heartbeat_url: Option<String>,
}

impl Issued {
    fn new(state: &AppState, monitor: Monitor, token: Option<monitoring::HeartbeatToken>) -> Self {
        let base = state.identity.keys().issuer();
        Issued {
            heartbeat_url: token.map(|t| t.url(base)),
            monitor,
        }
    }
}

/// Creates a monitor (members and up).
pub(crate) async fn create(
    state: &AppState,
    acting: &Acting<'_>,
    input: &MonitorInput,
) -> Result<Issued, AppError> {
    crate::extract::require(acting.role, Action::ManageMonitoring)?;
    let kind = check(state, acting, input).await?;
    let org_id = acting.org_id();
    let limit = state.orgs.limit(org_id, Limit::MaxMonitors).await?;
    let id = Uuid::now_v7();
    // The token first, in the control database: should the monitor not commit, what is left is a
    // token naming no monitor (removed below when possible), never a monitor without a token.
    let token = if kind == MonitorKind::Heartbeat {
        Some(monitoring::issue_heartbeat(state.tenancy.control_db(), org_id, id).await?)
    } else {
        None
    };
    let created = async {
        let mut tx = acting.ctx.begin().await?;
        // Counted under the tenant's monitor lock: parallel creates cannot overshoot the limit.
        let used = monitoring::lock_and_count(&mut tx).await?;
        tenantry_orgs::Orgs::ensure_room(Limit::MaxMonitors, limit, used, 1)?;
        hold_agent(&mut tx, input).await?;
        let monitor = monitoring::create_with_id(&mut tx, id, input).await?;
        let change = monitor_change(
            tenantry_audit::AuditAction::MonitorCreated,
            monitor.id,
            None,
            Some(&monitor),
        );
        tenantry_audit::record_in_tenant(&mut tx, &acting.audit, &change).await?;
        // Scheduled in the monitor's transaction when the tenant lives in the control database,
        // else just before its commit: a crash in between leaves a row naming no monitor, which
        // the scheduler drops, never a monitor that is not checked.
        let mut control = tx.control(state.tenancy.control_db()).await?;
        scheduler::plan(&mut *control, org_id, &monitor, monitor.agent_id).await?;
        drop(control);
        tx.commit().await?;
        Ok::<_, AppError>(monitor)
    }
    .await;
    match created {
        Ok(monitor) => Ok(Issued::new(state, monitor, token)),
        Err(e) => {
            if token.is_some() {
                forget_token(state, org_id, id).await;
            }
            Err(e)
        }
    }
}

/// Replaces monitor `id` (members and up); absent optional fields take their defaults. A
/// monitor that became a heartbeat monitor (or lost its token) gets one; one that stopped being
/// one loses it.
pub(crate) async fn replace(
    state: &AppState,
    acting: &Acting<'_>,
    id: Uuid,
    input: &MonitorInput,
) -> Result<Issued, AppError> {
    crate::extract::require(acting.role, Action::ManageMonitoring)?;
    check(state, acting, input).await?;
    let mut tx = acting.ctx.begin().await?;
    hold_agent(&mut tx, input).await?;
    let before = monitoring::get(&mut tx, id).await?;
    let monitor = monitoring::update(&mut tx, id, input)
        .await?
        .ok_or(AppError::NotFound)?;
    let change = monitor_change(
        tenantry_audit::AuditAction::MonitorUpdated,
        id,
        before.as_ref(),
        Some(&monitor),
    );
    tenantry_audit::record_in_tenant(&mut tx, &acting.audit, &change).await?;
    let org_id = acting.org_id();
    let pool = state.tenancy.control_db();
    let mut control = tx.control(pool).await?;
    scheduler::plan(&mut *control, org_id, &monitor, monitor.agent_id).await?;
    drop(control);
    tx.commit().await?;
    let was_heartbeat = before.is_some_and(|b| b.kind == MonitorKind::Heartbeat);
    let token = if monitor.kind == MonitorKind::Heartbeat {
        if monitoring::has_heartbeat_token(pool, org_id, id).await? {
            None
        } else {
            Some(monitoring::issue_heartbeat(pool, org_id, id).await?)
        }
    } else {
        if was_heartbeat {
            forget_token(state, org_id, id).await;
        }
        None
    };
    Ok(Issued::new(state, monitor, token))
}

/// Deletes monitor `id` (members and up): the row and its audit entry commit together; the
/// schedule and the heartbeat token follow.
pub(crate) async fn remove(
    state: &AppState,
    acting: &Acting<'_>,
    id: Uuid,
) -> Result<(), AppError> {
    crate::extract::require(acting.role, Action::ManageMonitoring)?;
    let mut tx = acting.ctx.begin().await?;
    let before = monitoring::get(&mut tx, id).await?;
    let deleted = monitoring::delete(&mut tx, id).await?;
    if deleted {
        let change = monitor_change(
            tenantry_audit::AuditAction::MonitorDeleted,
            id,
            before.as_ref(),
            None,
        );
        tenantry_audit::record_in_tenant(&mut tx, &acting.audit, &change).await?;
    }
    tx.commit().await?;
    if !deleted {
        return Err(AppError::NotFound);
    }
    let org_id = acting.org_id();
    if let Err(e) = scheduler::unplan(state.tenancy.control_db(), org_id, id).await {
        // The scheduler drops the row itself when it next finds no monitor.
        tracing::warn!(monitor = %id, error = %e, "failed to unschedule a deleted monitor");
    }
    if before.is_some_and(|m| m.kind == MonitorKind::Heartbeat) {
        forget_token(state, org_id, id).await;
    }
    Ok(())
}

/// The input that saves `monitor` as it is, checked (`enabled`) or not.
pub(crate) fn input_of(monitor: &Monitor, enabled: bool) -> MonitorInput {
    MonitorInput {
        name: monitor.name.clone(),
        kind: monitor.kind.to_string(),
        target: monitor.target.clone(),
        interval_seconds: Some(monitor.interval_seconds),
        timeout_seconds: Some(monitor.timeout_seconds),
        keyword: monitor.keyword.clone(),
        enabled: Some(enabled),
        confirmations: Some(monitor.confirmations),
        agent_id: monitor.agent_id,
    }
}

/// Forgets monitor `id`'s heartbeat token after the monitor is gone (or no longer a heartbeat
/// monitor). A failure leaves a token naming no heartbeat monitor, which pings answer 404: it is
/// logged, not an error.
async fn forget_token(state: &AppState, org_id: Uuid, id: Uuid) {
    if let Err(error) = monitoring::forget_heartbeat(state.tenancy.control_db(), org_id, id).await {
        tracing::warn!(%error, monitor_id = %id, "failed to remove a heartbeat token; pings with it find no monitor");
    }
}

/// The agent a monitor names (`agent_id`) must be one of this organization's; it is held until
/// the transaction ends, so that it cannot be deleted meanwhile.
async fn hold_agent(tx: &mut TenantTx, input: &MonitorInput) -> Result<(), AppError> {
    match input.agent_id {
        Some(agent) if !monitoring::hold_agent(tx, agent).await? => Err(AppError::invalid(
            "agent_id",
            "no agent of this organization has this id",
        )),
        _ => Ok(()),
    }
}

/// Validates a monitor, its interval against the plan's `min_check_interval_s` included, and
/// its target against the SSRF guard.
async fn check(
    state: &AppState,
    acting: &Acting<'_>,
    input: &MonitorInput,
) -> Result<MonitorKind, AppError> {
    let kind = input
        .validate()
        .map_err(|e| AppError::invalid(e.field, e.detail))?;
    let org_id = acting.org_id();
    // An agent checks from its own network: the server's guard is not its business.
    if input.agent_id.is_none()
        && let Some(target) = input.target.as_deref()
    {
        refuse_guarded_target(state, org_id, "target", target).await?;
    }
    let least = state.orgs.limit(org_id, Limit::MinCheckIntervalS).await?;
    let interval = i64::from(
        input
            .interval_seconds
            .unwrap_or(monitoring::DEFAULT_INTERVAL_SECONDS),
    );
    match least {
        Some(least) if interval < least => Err(AppError::invalid(
            "interval_seconds",
            format!("at least {least} seconds on this organization's plan (min_check_interval_s)"),
        )),
        _ => Ok(kind),
    }
}

/// A monitor change as the audit trail records it.
fn monitor_change(
    action: tenantry_audit::AuditAction,
    id: Uuid,
    before: Option<&Monitor>,
    after: Option<&Monitor>,
) -> tenantry_audit::Change {
    let summary = |m: &Monitor| serde_json::to_value(m).unwrap_or_default();
    tenantry_audit::Change {
        action,
        target_kind: "monitor",
        target_id: Some(id.to_string()),
        before: before.map(summary),
        after: after.map(summary),
    }
}

/// `422` naming `field` when the SSRF guard refuses `target` by its literal address: the
/// server's guard is on and the organization is not allowed private targets (the
/// `private_targets` feature). Names are judged when a connection is made.
pub(crate) async fn refuse_guarded_target(
    state: &AppState,
    org_id: Uuid,
    field: &'static str,
    target: &str,
) -> Result<(), AppError> {
    let targets = if state.orgs.feature(org_id, Feature::PrivateTargets).await? {
        Targets::Any
    } else {
        Targets::Public
    };
    match state.checker.refuses_literal(target, targets) {
        Some(why) => Err(AppError::invalid(field, why)),
        None => Ok(()),
    }
}
