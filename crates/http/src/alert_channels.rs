//! `/api/v1/alert-channels`: the alert channels of the organization in context, through the
//! tenant door — webhooks and email addresses that incidents are announced to. A webhook's
//! signing secret is shown in full once, in the response that set it; elsewhere as a hint.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use tenantry_monitoring::After;
use tenantry_monitoring::alerts::{self, AlertChannel, AlertChannelInput};
use tenantry_orgs::Action;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::cases::channels as case;
use crate::cases::monitors::Acting;
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

/// The alert channels of the organization in context, oldest first
#[utoipa::path(
    get,
    path = "/api/v1/alert-channels",
    tag = "alert-channels",
    operation_id = "list_alert_channels",
    security(("bearer" = [])),
    params(TenantHeader, Page),
    responses(
        (status = 200, description = "A page of alert channels; webhook secrets as hints, and webhook URLs cut to scheme, host and port for viewers and members", body = Items<AlertChannel>),
        InTenant,
        (status = 422, description = "`validation_failed`: `limit` out of range, or a `cursor` this server did not return", body = Problem, content_type = PROBLEM),
    )
)]
async fn list(
    scope: TenantScope,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Items<AlertChannel>>, AppError> {
    scope.require(Action::Read)?;
    let limit = page.limit()?;
    let cursor = page.position()?.map(|(at, id)| After { at, id });
    let mut tx = scope.ctx.begin_read().await?;
    let items = alerts::list_channels(&mut tx, limit + 1, cursor).await?;
    tx.commit().await?;
    let items = items.into_iter().map(|c| shown_to(&scope, c)).collect();
    Ok(Json(Items::paged(items, limit, |c| (c.created_at, c.id))))
}

/// Create an alert channel (member)
///
/// A webhook created without a `secret` gets a generated one. The response is the only one
/// showing the secret in full.
#[utoipa::path(
    post,
    path = "/api/v1/alert-channels",
    tag = "alert-channels",
    operation_id = "create_alert_channel",
    security(("bearer" = [])),
    params(TenantHeader),
    request_body = AlertChannelInput,
    responses(
        (status = 201, description = "The new channel, a webhook with its `secret` in full, shown this once", body = AlertChannel),
        JsonBody,
        InTenant,
        (status = 422, description = "`validation_failed` naming the `field`: `url` required for webhooks, `email` for email channels, fields of the other kind must be absent, and `monitor_ids` must be monitors of this organization", body = Problem, content_type = PROBLEM),
    )
)]
async fn create(
    State(state): State<AppState>,
    origin: crate::audit::Origin,
    scope: TenantScope,
    ApiJson(input): ApiJson<AlertChannelInput>,
) -> Result<(StatusCode, Json<AlertChannel>), AppError> {
    let acting = Acting::new(&scope.ctx, scope.role, origin.by(&scope.actor));
    let saved = case::create_channel(&state, &acting, &input).await?;
    Ok((StatusCode::CREATED, Json(saved.shown())))
}

/// An alert channel
#[utoipa::path(
    get,
    path = "/api/v1/alert-channels/{id}",
    tag = "alert-channels",
    operation_id = "read_alert_channel",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The channel's id"), TenantHeader),
    responses(
        (status = 200, description = "The channel; a webhook's secret as a hint, and its URL cut to scheme, host and port for viewers and members", body = AlertChannel),
        InTenant,
    )
)]
async fn read(scope: TenantScope, Path(id): Path<String>) -> Result<Json<AlertChannel>, AppError> {
    scope.require(Action::Read)?;
    let id = parse_id(&id)?;
    let mut tx = scope.ctx.begin_read().await?;
    let channel = alerts::get_channel(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(Json(shown_to(&scope, channel)))
}

/// Webhook URLs in full to admins and owners; to viewers and members only their scheme, host
/// and port, like the secret's hint (the path of a webhook URL is often a credential).
fn shown_to(scope: &TenantScope, channel: AlertChannel) -> AlertChannel {
    if scope.role.may(Action::Administer) {
        channel
    } else {
        channel.with_url_masked()
    }
}

/// Replace an alert channel (member)
///
/// Absent optional fields take their defaults (`monitor_ids`: all monitors), except `secret`:
/// a webhook without one keeps its current secret (a channel becoming a webhook gets a generated
/// one). The response shows the secret in full when it set a new one.
#[utoipa::path(
    put,
    path = "/api/v1/alert-channels/{id}",
    tag = "alert-channels",
    operation_id = "replace_alert_channel",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The channel's id"), TenantHeader),
    request_body = AlertChannelInput,
    responses(
        (status = 200, description = "The channel as replaced; its `secret` in full if this update set a new one, else as a hint", body = AlertChannel),
        JsonBody,
        InTenant,
        (status = 422, description = "`validation_failed` naming the `field`, as when creating", body = Problem, content_type = PROBLEM),
    )
)]
async fn replace(
    State(state): State<AppState>,
    origin: crate::audit::Origin,
    scope: TenantScope,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<AlertChannelInput>,
) -> Result<Json<AlertChannel>, AppError> {
    let id = parse_id(&id)?;
    let acting = Acting::new(&scope.ctx, scope.role, origin.by(&scope.actor));
    let saved = case::replace_channel(&state, &acting, id, &input).await?;
    Ok(Json(saved.shown()))
}

/// Delete an alert channel (member)
///
/// Its deliveries not made yet are dropped.
#[utoipa::path(
    delete,
    path = "/api/v1/alert-channels/{id}",
    tag = "alert-channels",
    operation_id = "delete_alert_channel",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The channel's id"), TenantHeader),
    responses(
        (status = 204, description = "Deleted"),
        InTenant,
    )
)]
async fn remove(
    origin: crate::audit::Origin,
    scope: TenantScope,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let id = parse_id(&id)?;
    let acting = Acting::new(&scope.ctx, scope.role, origin.by(&scope.actor));
    case::remove_channel(&acting, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
