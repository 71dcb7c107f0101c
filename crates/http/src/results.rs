//! A monitor's check results and incidents (`/api/v1/monitors/{id}/results` and `/incidents`,
//! read by any member through the tenant door), and heartbeat pings
//! (`/api/v1/heartbeat/{token}`, no authentication: the token leads to the organization and the
//! monitor).

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_monitoring::{self as monitoring, After, CheckResult, Incident, Ping, TimeRange};
use tenantry_orgs::Action;
use tenantry_tenancy::{TenancyError, TenantId};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{AppError, Problem};
use crate::extract::{ApiQuery, Items, TenantScope, admit};
use crate::openapi::{InTenant, Internal, NotFound, PROBLEM, RateLimited, TenantHeader};
use crate::paging::{decode_position, encode_position, parse_id};
use crate::state::AppState;
use crate::throttle::{self, Client};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(results))
        .routes(routes!(incidents))
        .routes(routes!(ping_get, ping_post))
}

/// A page of a monitor's results, optionally within a time range.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ResultsPage {
    /// How many items, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Only results of checks that ran at or after this time (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    since: Option<String>,
    /// Only results of checks that ran before this time (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    until: Option<String>,
}

/// A page of a monitor's incidents.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct IncidentsPage {
    /// How many items, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

fn page_limit(limit: Option<i64>) -> Result<i64, AppError> {
    let limit = limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(AppError::invalid("limit", "1 to 200"));
    }
    Ok(limit)
}

fn time(field: &str, text: Option<&str>) -> Result<Option<DateTime<Utc>>, AppError> {
    text.map(|t| {
        DateTime::parse_from_rfc3339(t)
            .map(|at| at.with_timezone(&Utc))
            .map_err(|_| AppError::invalid(field, "an RFC 3339 time, e.g. 2025-01-31T12:00:00Z"))
    })
    .transpose()
}

fn after(cursor: Option<&str>) -> Result<Option<After>, AppError> {
    cursor
        .map(|c| decode_position(c).map(|(at, id)| After { at, id }))
        .transpose()
}

/// `items` cut to `limit`, and the cursor of the next page when there is one (the lists fetch
/// one more than they show to know).
fn paged<T>(
    mut items: Vec<T>,
    limit: i64,
    position: impl Fn(&T) -> (DateTime<Utc>, Uuid),
) -> Items<T> {
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|item| {
            let (at, id) = position(item);
            encode_position(at, id)
        })
    } else {
        None
    };
    Items { items, next_cursor }
}

/// A monitor's check results, newest first
#[utoipa::path(
    get,
    path = "/api/v1/monitors/{id}/results",
    tag = "monitors",
    operation_id = "list_monitor_results",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The monitor's id"), TenantHeader, ResultsPage),
    responses(
        (status = 200, description = "A page of check results, newest first", body = Items<CheckResult>),
        InTenant,
        (status = 422, description = "`validation_failed`: `limit` out of range, `since` or `until` not an RFC 3339 time, or a `cursor` this server did not return", body = Problem, content_type = PROBLEM),
    )
)]
async fn results(
    scope: TenantScope,
    Path(id): Path<String>,
    ApiQuery(page): ApiQuery<ResultsPage>,
) -> Result<Json<Items<CheckResult>>, AppError> {
    scope.require(Action::Read)?;
    let id = parse_id(&id)?;
    let limit = page_limit(page.limit)?;
    let after = after(page.cursor.as_deref())?;
    let range = TimeRange {
        since: time("since", page.since.as_deref())?,
        until: time("until", page.until.as_deref())?,
    };
    let mut tx = scope.ctx.begin_read().await?;
    monitoring::get(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let items = monitoring::list_results(&mut tx, id, limit + 1, after, range).await?;
    tx.commit().await?;
    Ok(Json(paged(items, limit, |r| (r.checked_at, r.id))))
}

/// A monitor's incidents, newest first
#[utoipa::path(
    get,
    path = "/api/v1/monitors/{id}/incidents",
    tag = "monitors",
    operation_id = "list_monitor_incidents",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The monitor's id"), TenantHeader, IncidentsPage),
    responses(
        (status = 200, description = "A page of incidents, the most recently started first; an open one has `resolved_at: null`", body = Items<Incident>),
        InTenant,
        (status = 422, description = "`validation_failed`: `limit` out of range, or a `cursor` this server did not return", body = Problem, content_type = PROBLEM),
    )
)]
async fn incidents(
    scope: TenantScope,
    Path(id): Path<String>,
    ApiQuery(page): ApiQuery<IncidentsPage>,
) -> Result<Json<Items<Incident>>, AppError> {
    scope.require(Action::Read)?;
    let id = parse_id(&id)?;
    let limit = page_limit(page.limit)?;
    let after = after(page.cursor.as_deref())?;
    let mut tx = scope.ctx.begin_read().await?;
    monitoring::get(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let items = monitoring::list_incidents(&mut tx, id, limit + 1, after).await?;
    tx.commit().await?;
    Ok(Json(paged(items, limit, |i| (i.started_at, i.id))))
}

/// The answer to a ping.
#[derive(Serialize, ToSchema)]
struct Pong {
    /// Always `true`: the ping was recorded.
    ok: bool,
}

/// Ping a heartbeat monitor (GET)
///
/// No authentication: the token in the path is the capability to ping this one monitor. Counts
/// against the organization's rate limit. An unknown token, a deleted or disabled monitor, and
/// a suspended or deleted organization are the same `404`.
#[utoipa::path(
    get,
    path = "/api/v1/heartbeat/{token}",
    tag = "heartbeats",
    operation_id = "ping_heartbeat_get",
    params(("token" = String, Path, description = "The token of the monitor's `heartbeat_url`")),
    responses(
        (status = 200, description = "The ping was recorded", body = Pong),
        (status = 404, response = NotFound),
        (status = 429, response = RateLimited),
        (status = 500, response = Internal),
    )
)]
async fn ping_get(
    State(state): State<AppState>,
    client: Client,
    Path(token): Path<String>,
) -> Result<Json<Pong>, AppError> {
    throttled_ping(&state, &client, &token).await
}

/// Ping a heartbeat monitor (POST)
///
/// The same as `GET`; a body, if any, is ignored.
#[utoipa::path(
    post,
    path = "/api/v1/heartbeat/{token}",
    tag = "heartbeats",
    operation_id = "ping_heartbeat_post",
    params(("token" = String, Path, description = "The token of the monitor's `heartbeat_url`")),
    responses(
        (status = 200, description = "The ping was recorded", body = Pong),
        (status = 404, response = NotFound),
        (status = 429, response = RateLimited),
        (status = 500, response = Internal),
    )
)]
async fn ping_post(
    State(state): State<AppState>,
    client: Client,
    Path(token): Path<String>,
) -> Result<Json<Pong>, AppError> {
    throttled_ping(&state, &client, &token).await
}

/// A ping, with unknown tokens counted against the client's address: guessing tokens is
/// refused with `429 too_many_attempts` after a few misses.
async fn throttled_ping(
    state: &AppState,
    client: &Client,
    token: &str,
) -> Result<Json<Pong>, AppError> {
    let throttle = &state.throttles.heartbeat_client;
    throttle::admit(&[(throttle, &client.0)])?;
    let pinged = ping(state, token).await;
    if matches!(pinged, Err(AppError::NotFound)) {
        throttle.count(&client.0);
    }
    pinged
}

/// Token → organization (which must be active) → rate limit → the monitor's ping.
async fn ping(state: &AppState, token: &str) -> Result<Json<Pong>, AppError> {
    let target = monitoring::find_heartbeat(state.tenancy.control_db(), token)
        .await?
        .ok_or(AppError::NotFound)?;
    let ctx = match state
        .tenancy
        .resolve_id(TenantId::from(target.org_id))
        .await
    {
        Ok(ctx) => ctx,
        // Suspended too: a ping reveals nothing of the organization's state.
        Err(TenancyError::NotFound(_) | TenancyError::NotActive { .. }) => {
            return Err(AppError::NotFound);
        }
        Err(e) => return Err(e.into()),
    };
    admit(state, target.org_id).await?;
    let mut tx = ctx.begin().await?;
    let pinged = monitoring::record_ping(&mut tx, target.monitor_id, Utc::now()).await?;
    if pinged.needs_delivery() {
        // Before the commit: the alert deliveries it enqueued are never left unknown.
        let mut control = tx.control(state.tenancy.control_db()).await?;
        monitoring::alerts::note_pending_in(&mut control, target.org_id).await?;
    }
    tx.commit().await?;
    match pinged {
        Ping::NoMonitor => Err(AppError::NotFound),
        Ping::Noted | Ping::Recovered(_) => Ok(Json(Pong { ok: true })),
    }
}
