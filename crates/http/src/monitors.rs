//! `/api/v1/monitors`: the monitors of the organization in context, through the tenant door. A
//! heartbeat monitor's token is issued (in the control database) before the monitor commits and
//! forgotten after it is deleted; its `heartbeat_url` is shown once, in the response that issued
//! it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use tenantry_monitoring::{self as monitoring, After, Monitor, MonitorInput};
use tenantry_orgs::Action;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::cases::monitors::{self as case, Acting};
use crate::error::{AppError, Problem};
use crate::extract::{ApiJson, ApiQuery, Items, TenantScope};
use crate::openapi::{InTenant, JsonBody, PROBLEM, TenantHeader};
use crate::paging::{Page, parse_id};
use crate::state::AppState;

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

impl From<case::Issued> for IssuedMonitor {
    fn from(issued: case::Issued) -> Self {
        Self {
            monitor: issued.monitor,
            heartbeat_url: issued.heartbeat_url,
        }
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
    let cursor = page.position()?.map(|(at, id)| After { at, id });
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
    let acting = Acting::new(&scope.ctx, scope.role, origin.by(&scope.actor));
    let issued = case::create(&state, &acting, &input).await?;
    Ok((StatusCode::CREATED, Json(IssuedMonitor::from(issued))))
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
    let acting = Acting::new(&scope.ctx, scope.role, origin.by(&scope.actor));
    let issued = case::replace(&state, &acting, id, &input).await?;
    Ok(Json(IssuedMonitor::from(issued)))
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
    let acting = Acting::new(&scope.ctx, scope.role, origin.by(&scope.actor));
    case::remove(&state, &acting, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
