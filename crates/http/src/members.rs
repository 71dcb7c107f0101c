//! An organization's members, and the caller's own moves: switch, leave, default organization;
//! deleting the organization.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{patch, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use tenantry_identity::User;
use tenantry_orgs::{Action, ApiKey, Member, NewKey, Role};
use tenantry_tenancy::{TenantRecord, TenantStatus};
use uuid::Uuid;

use crate::auth::Tokens;
use crate::error::AppError;
use crate::extract::{ApiJson, AuthUser, Items, require};
use crate::server::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/organizations/{id}/members",
            axum::routing::get(list).post(add),
        )
        .route(
            "/api/v1/organizations/{id}/members/{user_id}",
            patch(change).delete(remove),
        )
        .route("/api/v1/organizations/{id}/leave", post(leave))
        .route("/api/v1/organizations/{id}/switch", post(switch))
        .route("/api/v1/user/default-organization", put(default_org))
        .route(
            "/api/v1/organizations/{id}/api-keys",
            axum::routing::get(list_keys).post(create_key),
        )
        .route(
            "/api/v1/organizations/{id}/api-keys/{kid}",
            axum::routing::delete(revoke_key),
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMember {
    user_id: Uuid,
    role: Role,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleChange {
    role: Role,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultOrg {
    org_id: Uuid,
}

/// The organization `id` (id or slug) if the caller is a member, with their role: a missing
/// organization and someone else's are the same 404; a suspended one is 403.
pub(crate) async fn membership(
    state: &AppState,
    user_id: Uuid,
    id: &str,
) -> Result<(TenantRecord, Role), AppError> {
    let (record, role) = state.orgs.for_member(id, user_id).await?;
    match record.status {
        TenantStatus::Active => Ok((record, role)),
        TenantStatus::Suspended => Err(AppError::suspended()),
        TenantStatus::Deleted | TenantStatus::Provisioning | TenantStatus::Failed => {
            Err(AppError::NotFound)
        }
    }
}

fn user_id(text: &str) -> Result<Uuid, AppError> {
    text.parse().map_err(|_| AppError::NotFound)
}

async fn list(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Items<Member>>, AppError> {
    let (record, _) = membership(&state, claims.sub, &id).await?;
    let items = state.orgs.members(record.id.as_uuid()).await?;
    Ok(Json(Items::all(items)))
}

async fn add(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewMember>,
) -> Result<(StatusCode, Json<Member>), AppError> {
    let (record, role) = membership(&state, claims.sub, &id).await?;
    let member = state
        .orgs
        .add_member(role, record.id.as_uuid(), body.user_id, body.role)
        .await?;
    Ok((StatusCode::CREATED, Json(member)))
}

async fn change(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path((id, member)): Path<(String, String)>,
    ApiJson(body): ApiJson<RoleChange>,
) -> Result<Json<Member>, AppError> {
    let (record, role) = membership(&state, claims.sub, &id).await?;
    let member = user_id(&member)?;
    Ok(Json(
        state
            .orgs
            .change_role(role, record.id.as_uuid(), member, body.role)
            .await?,
    ))
}

async fn remove(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path((id, member)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    let (record, role) = membership(&state, claims.sub, &id).await?;
    let member = user_id(&member)?;
    state
        .orgs
        .remove_member(role, record.id.as_uuid(), member)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn leave(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let (record, _) = state.orgs.for_member(&id, claims.sub).await?;
    state.orgs.leave(record.id.as_uuid(), claims.sub).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new token pair whose `org_id` is this organization.
async fn switch(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Tokens>, AppError> {
    let (record, role) = membership(&state, claims.sub, &id).await?;
    require(role, Action::Read)?;
    let tokens = state
        .identity
        .reissue(&claims, Some(record.id.as_uuid()))
        .await?;
    Ok(Json(tokens.into()))
}

async fn default_org(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    ApiJson(body): ApiJson<DefaultOrg>,
) -> Result<Json<User>, AppError> {
    let (record, _) = membership(&state, claims.sub, &body.org_id.to_string())
        .await
        .map_err(|e| match e {
            AppError::NotFound => AppError::invalid("org_id", "not an organization of yours"),
            other => other,
        })?;
    Ok(Json(
        state
            .identity
            .set_default_org(claims.sub, Some(record.id.as_uuid()))
            .await?,
    ))
}

#[derive(Deserialize)]
pub(crate) struct DeleteQuery {
    #[serde(default)]
    pub hard: bool,
}

#[derive(Deserialize, Default)]
pub(crate) struct Confirm {
    pub confirm: Option<String>,
}

/// Soft delete (restorable), or with `?hard=true` and `{confirm: "<slug>"}` a purge.
pub(crate) async fn delete_org(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
    Query(query): Query<DeleteQuery>,
    body: Bytes,
) -> Result<StatusCode, AppError> {
    let (record, role) = state.orgs.for_member(&id, claims.sub).await?;
    if record.status == TenantStatus::Deleted && !query.hard {
        return Err(AppError::NotFound);
    }
    require(role, Action::Own)?;
    if query.hard {
        let confirm: Confirm = if body.is_empty() {
            Confirm::default()
        } else {
            serde_json::from_slice(&body).map_err(|e| AppError::BadRequest(e.to_string()))?
        };
        let confirm = confirm.confirm.unwrap_or_default();
        state
            .tenancy
            .hard_delete(&record.id.to_string(), &confirm)
            .await?;
    } else {
        state.tenancy.soft_delete(&record.id.to_string()).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewApiKey {
    name: String,
    role: Role,
}

pub(crate) async fn list_keys(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Items<ApiKey>>, AppError> {
    let (record, role) = membership(&state, claims.sub, &id).await?;
    require(role, Action::Administer)?;
    Ok(Json(Items::all(
        state.orgs.keys(record.id.as_uuid()).await?,
    )))
}

/// A new key; its secret is in this response only.
pub(crate) async fn create_key(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewApiKey>,
) -> Result<(StatusCode, Json<NewKey>), AppError> {
    let (record, role) = membership(&state, claims.sub, &id).await?;
    let key = state
        .orgs
        .create_key(role, record.id.as_uuid(), claims.sub, &body.name, body.role)
        .await?;
    Ok((StatusCode::CREATED, Json(key)))
}

pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path((id, key)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    let (record, role) = membership(&state, claims.sub, &id).await?;
    let key: Uuid = key.parse().map_err(|_| AppError::NotFound)?;
    state
        .orgs
        .revoke_key(role, record.id.as_uuid(), key)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
