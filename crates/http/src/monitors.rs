//! `/api/v1/monitors`: the monitors of the organization in context, through the tenant door.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tenantry_monitoring::{self as monitoring, Cursor, Monitor, MonitorInput};
use tenantry_orgs::Action;
use uuid::Uuid;

use crate::error::AppError;
use crate::extract::{ApiJson, Items, TenantScope};
use crate::server::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/monitors", get(list).post(create))
        .route(
            "/api/v1/monitors/{id}",
            get(read).put(replace).delete(remove),
        )
        .route("/api/v1/monitors/{id}/results", get(results))
}

#[derive(Deserialize)]
struct Page {
    limit: Option<i64>,
    cursor: Option<String>,
}

fn encode_cursor(m: &Monitor) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{}", m.created_at.to_rfc3339(), m.id))
}

fn decode_cursor(text: &str) -> Result<Cursor, AppError> {
    let bad = || AppError::invalid("cursor", "not a cursor this server returned");
    let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (at, id) = raw.split_once('|').ok_or_else(bad)?;
    Ok(Cursor {
        created_at: DateTime::parse_from_rfc3339(at)
            .map_err(|_| bad())?
            .with_timezone(&Utc),
        id: id.parse().map_err(|_| bad())?,
    })
}

fn parse_id(id: &str) -> Result<Uuid, AppError> {
    // Not an id at all: no such resource, the same answer as an unknown id.
    id.parse().map_err(|_| AppError::NotFound)
}

fn check(input: &MonitorInput) -> Result<(), AppError> {
    input
        .validate()
        .map_err(|e| AppError::invalid(e.field, e.detail))
}

async fn list(
    scope: TenantScope,
    Query(page): Query<Page>,
) -> Result<Json<Items<Monitor>>, AppError> {
    scope.require(Action::Read)?;
    let limit = page.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(AppError::invalid("limit", "1 to 200"));
    }
    let cursor = page.cursor.as_deref().map(decode_cursor).transpose()?;
    let mut tx = scope.ctx.begin().await?;
    let mut items = monitoring::list(&mut tx, limit + 1, cursor).await?;
    tx.commit().await?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(encode_cursor)
    } else {
        None
    };
    Ok(Json(Items { items, next_cursor }))
}

async fn create(
    scope: TenantScope,
    ApiJson(input): ApiJson<MonitorInput>,
) -> Result<(StatusCode, Json<Monitor>), AppError> {
    scope.require(Action::ManageMonitoring)?;
    check(&input)?;
    let mut tx = scope.ctx.begin().await?;
    let monitor = monitoring::create(&mut tx, &input).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(monitor)))
}

async fn read(scope: TenantScope, Path(id): Path<String>) -> Result<Json<Monitor>, AppError> {
    scope.require(Action::Read)?;
    let id = parse_id(&id)?;
    let mut tx = scope.ctx.begin().await?;
    let monitor = monitoring::get(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(Json(monitor))
}

async fn replace(
    scope: TenantScope,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<MonitorInput>,
) -> Result<Json<Monitor>, AppError> {
    let id = parse_id(&id)?;
    scope.require(Action::ManageMonitoring)?;
    check(&input)?;
    let mut tx = scope.ctx.begin().await?;
    let monitor = monitoring::update(&mut tx, id, &input)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(Json(monitor))
}

async fn remove(scope: TenantScope, Path(id): Path<String>) -> Result<StatusCode, AppError> {
    let id = parse_id(&id)?;
    scope.require(Action::ManageMonitoring)?;
    let mut tx = scope.ctx.begin().await?;
    let deleted = monitoring::delete(&mut tx, id).await?;
    tx.commit().await?;
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::NotFound)
    }
}

/// Check results arrive with the monitoring engine; until then, an empty list for a monitor that
/// exists.
async fn results(
    scope: TenantScope,
    Path(id): Path<String>,
) -> Result<Json<Items<serde_json::Value>>, AppError> {
    scope.require(Action::Read)?;
    let id = parse_id(&id)?;
    let mut tx = scope.ctx.begin().await?;
    monitoring::get(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(Json(Items::all(Vec::new())))
}
