//! `/api/v1/organizations`: create, list and read the caller's organizations.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use tenantry_orgs::{OrgSummary, ProfileChange};
use tenantry_tenancy::Isolation;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{AppError, Problem};
use crate::extract::{ApiJson, AuthUser, Items};
use crate::openapi::{Forbidden, JsonBody, NotFound, PROBLEM, SignedIn, schemas};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, update, crate::members::delete_org))
        .routes(routes!(list_mine))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewOrg {
    /// 1 to 200 characters.
    #[schema(example = "Acme")]
    name: String,
    /// Lowercase letters, digits and hyphens; derived from the name when absent.
    #[serde(default)]
    #[schema(example = "acme")]
    slug: Option<String>,
}

/// The caller's organizations, with their role in each
#[utoipa::path(
    get,
    path = "/api/v1/organizations",
    tag = "organizations",
    operation_id = "list_organizations",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every organization the caller belongs to, in one page", body = Items<schemas::OrgSummary>),
        SignedIn,
    )
)]
async fn list(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> Result<Json<Items<OrgSummary>>, AppError> {
    let items = state.orgs.of_user(claims.sub).await?;
    Ok(Json(Items::all(items)))
}

/// The caller's organizations (the same list as `GET /api/v1/organizations`)
#[utoipa::path(
    get,
    path = "/api/v1/user/organizations",
    tag = "organizations",
    operation_id = "list_my_organizations",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every organization the caller belongs to, in one page", body = Items<schemas::OrgSummary>),
        SignedIn,
    )
)]
async fn list_mine(
    state: State<AppState>,
    caller: AuthUser,
) -> Result<Json<Items<OrgSummary>>, AppError> {
    list(state, caller).await
}

/// Create an organization; the caller becomes its owner
///
/// New organizations live in the shared tier; a platform admin chooses another.
#[utoipa::path(
    post,
    path = "/api/v1/organizations",
    tag = "organizations",
    operation_id = "create_organization",
    security(("bearer" = [])),
    request_body = NewOrg,
    responses(
        (status = 201, description = "The new organization; the caller's role is `owner`", body = schemas::OrgSummary),
        SignedIn,
        JsonBody,
        (status = 409, description = "`conflict`: the slug is taken", body = Problem, content_type = PROBLEM),
    )
)]
async fn create(
    State(state): State<AppState>,
    origin: crate::audit::Origin,
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
            &origin.by_user(claims.sub),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(org)))
}

/// An organization the caller belongs to
#[utoipa::path(
    get,
    path = "/api/v1/organizations/{id}",
    tag = "organizations",
    operation_id = "read_organization",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The organization's id or slug")),
    responses(
        (status = 200, description = "The organization, with the caller's role and what its plan allows", body = schemas::OrgDetails),
        SignedIn,
        (status = 404, response = NotFound),
    )
)]
async fn read(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
) -> Result<Json<tenantry_orgs::OrgDetails>, AppError> {
    let (record, role) = state.orgs.for_member(&id, claims.sub).await?;
    // A soft-deleted organization is gone for its members: only its export (owners) and its
    // restore (platform admins) reach it.
    if !matches!(
        record.status,
        tenantry_tenancy::TenantStatus::Active | tenantry_tenancy::TenantStatus::Suspended
    ) {
        return Err(AppError::NotFound);
    }
    crate::extract::admit(&state, record.id.as_uuid()).await?;
    Ok(Json(state.orgs.details(&record, role).await?))
}

/// Update an organization's profile (admin)
///
/// Absent fields stay as they are.
#[utoipa::path(
    put,
    path = "/api/v1/organizations/{id}",
    tag = "organizations",
    operation_id = "update_organization",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The organization's id or slug")),
    request_body = schemas::ProfileChange,
    responses(
        (status = 200, description = "The organization as updated", body = schemas::OrgSummary),
        SignedIn,
        JsonBody,
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, description = "`conflict`: the slug is taken", body = Problem, content_type = PROBLEM),
    )
)]
async fn update(
    State(state): State<AppState>,
    origin: crate::audit::Origin,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
    ApiJson(change): ApiJson<ProfileChange>,
) -> Result<Json<OrgSummary>, AppError> {
    let (record, role) = crate::members::membership(&state, claims.sub, &id).await?;
    Ok(Json(
        state
            .orgs
            .update(
                role,
                record.id.as_uuid(),
                &change,
                &origin.by_user(claims.sub),
            )
            .await?,
    ))
}
