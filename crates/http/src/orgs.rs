//! `/api/v1/organizations`: create, list and read the caller's organizations.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use tenantry_orgs::{OrgSummary, Orgs, ProfileChange};
use tenantry_tenancy::Isolation;

use crate::error::AppError;
use crate::extract::{ApiJson, AuthUser, Items};
use crate::server::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/organizations", get(list).post(create))
        .route(
            "/api/v1/organizations/{id}",
            get(read).put(update).delete(crate::members::delete_org),
        )
        .route("/api/v1/user/organizations", get(list))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrg {
    name: String,
    #[serde(default)]
    slug: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> Result<Json<Items<OrgSummary>>, AppError> {
    let items = state.orgs.of_user(claims.sub).await?;
    Ok(Json(Items::all(items)))
}

/// New organizations live in the shared tier; a platform admin chooses another.
async fn create(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    ApiJson(body): ApiJson<NewOrg>,
) -> Result<(StatusCode, Json<OrgSummary>), AppError> {
    let org = state
        .orgs
        .create(
            claims.sub,
            &body.name,
            body.slug.as_deref(),
            Isolation::Shared,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(org)))
}

async fn read(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
) -> Result<Json<OrgSummary>, AppError> {
    let (record, role) = state.orgs.for_member(&id, claims.sub).await?;
    Ok(Json(Orgs::summary(&record, role)))
}

async fn update(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
    ApiJson(change): ApiJson<ProfileChange>,
) -> Result<Json<OrgSummary>, AppError> {
    let (record, role) = crate::members::membership(&state, claims.sub, &id).await?;
    Ok(Json(
        state
            .orgs
            .update(role, record.id.as_uuid(), &change)
            .await?,
    ))
}
