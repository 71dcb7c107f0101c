//! `/api/v1/monitors`: the monitors of the organization in context, through the tenant door. A
//! heartbeat monitor's token is issued (in the control database) before the monitor commits and
//! forgotten after it is deleted; its `heartbeat_url` is shown once, in the response that issued
//! it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use tenantry_monitoring::scheduler;
use tenantry_monitoring::{self as monitoring, Cursor, Monitor, MonitorInput};
use tenantry_orgs::Action;
use tenantry_tenancy::TenantTx;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{AppError, Problem};
use crate::extract::{ApiJson, ApiQuery, Items, TenantScope};
use crate::openapi::{InTenant, JsonBody, PROBLEM, TenantHeader};
use crate::paging::{Page, parse_id};
use crate::server::AppState;
use tenantry_monitoring::checks::Targets;
use tenantry_orgs::{Feature, Limit};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, replace, remove))
}

/// A monitor as the response that issued its heartbeat token shows it.
#[derive(Serialize, ToSchema)]
struct IssuedMonitor {
    #[serde(flatten)]
    monitor: Monitor,
    /// Heartbeat monitors: the URL to ping (`GET` or `POST`, no authentication),
    /// `<public_url>/api/v1/heartbeat/<token>`. Shown in this response only: the server keeps
    /// only the token's hash. Absent for other kinds, and when no token was issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    heartbeat_url: Option<String>,
}

impl IssuedMonitor {
    fn new(state: &AppState, monitor: Monitor, token: Option<monitoring::HeartbeatToken>) -> Self {
        let base = state.identity.keys().issuer();
        Self {
            heartbeat_url: token.map(|t| t.url(base)),
            monitor,
        }
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

const HEARTBEAT: &str = "heartbeat";

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

/// Validates a monitor, its interval against the plan's `min_check_interval_s` included, and
/// its target against the SSRF guard.
async fn check(
    state: &AppState,
    scope: &TenantScope,
    input: &MonitorInput,
) -> Result<(), AppError> {
    input
        .validate()
        .map_err(|e| AppError::invalid(e.field, e.detail))?;
    let org_id = scope.ctx.tenant_id().as_uuid();
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
        _ => Ok(()),
    }
}

/// The monitors of the organization in context, oldest first
#[utoipa::path(
    get,
    path = "/api/v1/monitors",
    tag = "monitors",
    operation_id = "list_monitors",
    security(("bearer" = [])),
    params(TenantHeader, Page),
    responses(
        (status = 200, description = "A page of monitors", body = Items<Monitor>),
        InTenant,
        (status = 422, description = "`validation_failed`: `limit` out of range, or a `cursor` this server did not return", body = Problem, content_type = PROBLEM),
    )
)]
async fn list(
    scope: TenantScope,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Items<Monitor>>, AppError> {
    scope.require(Action::Read)?;
    let limit = page.limit()?;
    let cursor = page
        .position()?
        .map(|(created_at, id)| Cursor { created_at, id });
    let mut tx = scope.ctx.begin_read().await?;
    let items = monitoring::list(&mut tx, limit + 1, cursor).await?;
    tx.commit().await?;
    Ok(Json(Items::paged(items, limit, |m| (m.created_at, m.id))))
}

/// Create a monitor (member)
#[utoipa::path(
    post,
    path = "/api/v1/monitors",
    tag = "monitors",
    operation_id = "create_monitor",
    security(("bearer" = [])),
    params(TenantHeader),
    request_body = MonitorInput,
    responses(
        (status = 201, description = "The new monitor, `pending` until checked; a heartbeat monitor with its `heartbeat_url`, shown this once", body = IssuedMonitor),
        JsonBody,
        InTenant,
        (status = 403, description = "`forbidden`: the role may not create monitors; `tenant_suspended`; or `limit_exceeded` with `limit: max_monitors`", body = Problem, content_type = PROBLEM),
    )
)]
async fn create(
    State(state): State<AppState>,
    origin: crate::audit::Origin,
    scope: TenantScope,
    ApiJson(input): ApiJson<MonitorInput>,
) -> Result<(StatusCode, Json<IssuedMonitor>), AppError> {
    scope.require(Action::ManageMonitoring)?;
    check(&state, &scope, &input).await?;
    let org_id = scope.ctx.tenant_id().as_uuid();
    let limit = state.orgs.limit(org_id, Limit::MaxMonitors).await?;
    let id = Uuid::now_v7();
    // The token first, in the control database: should the monitor not commit, what is left is a
    // token naming no monitor (removed below when possible), never a monitor without a token.
    let token = if input.kind == HEARTBEAT {
        Some(monitoring::issue_heartbeat(state.tenancy.control_db(), org_id, id).await?)
    } else {
        None
    };
    let created = async {
        let mut tx = scope.ctx.begin().await?;
        // Counted under the tenant's monitor lock: parallel creates cannot overshoot the limit.
        let used = monitoring::lock_and_count(&mut tx).await?;
        tenantry_orgs::Orgs::ensure_room(Limit::MaxMonitors, limit, used, 1)?;
        hold_agent(&mut tx, &input).await?;
        let monitor = monitoring::create_with_id(&mut tx, id, &input).await?;
        let change = monitor_change("monitor.created", monitor.id, None, Some(&monitor));
        tenantry_audit::record_in_tenant(&mut tx, &origin.by(&scope.actor), &change).await?;
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
        Ok(monitor) => Ok((
            StatusCode::CREATED,
            Json(IssuedMonitor::new(&state, monitor, token)),
        )),
        Err(e) => {
            if token.is_some() {
                forget_token(&state, org_id, id).await;
            }
            Err(e)
        }
    }
}

/// A monitor
#[utoipa::path(
    get,
    path = "/api/v1/monitors/{id}",
    tag = "monitors",
    operation_id = "read_monitor",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The monitor's id"), TenantHeader),
    responses(
        (status = 200, description = "The monitor", body = Monitor),
        InTenant,
    )
)]
async fn read(scope: TenantScope, Path(id): Path<String>) -> Result<Json<Monitor>, AppError> {
    scope.require(Action::Read)?;
    let id = parse_id(&id)?;
    let mut tx = scope.ctx.begin_read().await?;
    let monitor = monitoring::get(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(Json(monitor))
}

/// Replace a monitor (member)
///
/// Absent optional fields take their defaults.
#[utoipa::path(
    put,
    path = "/api/v1/monitors/{id}",
    tag = "monitors",
    operation_id = "replace_monitor",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The monitor's id"), TenantHeader),
    request_body = MonitorInput,
    responses(
        (status = 200, description = "The monitor as replaced; a monitor that became a heartbeat monitor with its new `heartbeat_url`, shown this once", body = IssuedMonitor),
        JsonBody,
        InTenant,
    )
)]
async fn replace(
    State(state): State<AppState>,
    origin: crate::audit::Origin,
    scope: TenantScope,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<MonitorInput>,
) -> Result<Json<IssuedMonitor>, AppError> {
    let id = parse_id(&id)?;
    scope.require(Action::ManageMonitoring)?;
    check(&state, &scope, &input).await?;
    let mut tx = scope.ctx.begin().await?;
    hold_agent(&mut tx, &input).await?;
    let before = monitoring::get(&mut tx, id).await?;
    let monitor = monitoring::update(&mut tx, id, &input)
        .await?
        .ok_or(AppError::NotFound)?;
    let change = monitor_change("monitor.updated", id, before.as_ref(), Some(&monitor));
    tenantry_audit::record_in_tenant(&mut tx, &origin.by(&scope.actor), &change).await?;
    let org_id = scope.ctx.tenant_id().as_uuid();
    let pool = state.tenancy.control_db();
    let mut control = tx.control(pool).await?;
    scheduler::plan(&mut *control, org_id, &monitor, monitor.agent_id).await?;
    drop(control);
    tx.commit().await?;
    // A monitor that became a heartbeat monitor (or lost its token) gets one; one that stopped
    // being one loses it.
    let was_heartbeat = before.is_some_and(|b| b.kind == HEARTBEAT);
    let token = if monitor.kind == HEARTBEAT {
        if monitoring::has_heartbeat_token(pool, org_id, id).await? {
            None
        } else {
            Some(monitoring::issue_heartbeat(pool, org_id, id).await?)
        }
    } else {
        if was_heartbeat {
            forget_token(&state, org_id, id).await;
        }
        None
    };
    Ok(Json(IssuedMonitor::new(&state, monitor, token)))
}

/// Delete a monitor (member)
#[utoipa::path(
    delete,
    path = "/api/v1/monitors/{id}",
    tag = "monitors",
    operation_id = "delete_monitor",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The monitor's id"), TenantHeader),
    responses(
        (status = 204, description = "Deleted"),
        InTenant,
    )
)]
async fn remove(
    State(state): State<AppState>,
    origin: crate::audit::Origin,
    scope: TenantScope,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let id = parse_id(&id)?;
    scope.require(Action::ManageMonitoring)?;
    let mut tx = scope.ctx.begin().await?;
    let before = monitoring::get(&mut tx, id).await?;
    let deleted = monitoring::delete(&mut tx, id).await?;
    if deleted {
        let change = monitor_change("monitor.deleted", id, before.as_ref(), None);
        tenantry_audit::record_in_tenant(&mut tx, &origin.by(&scope.actor), &change).await?;
    }
    tx.commit().await?;
    if !deleted {
        return Err(AppError::NotFound);
    }
    let org_id = scope.ctx.tenant_id().as_uuid();
    if let Err(e) = scheduler::unplan(state.tenancy.control_db(), org_id, id).await {
        // The scheduler drops the row itself when it next finds no monitor.
        tracing::warn!(monitor = %id, error = %e, "failed to unschedule a deleted monitor");
    }
    if before.is_some_and(|m| m.kind == HEARTBEAT) {
        forget_token(&state, scope.ctx.tenant_id().as_uuid(), id).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A monitor change as the audit trail records it.
fn monitor_change(
    action: &'static str,
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
