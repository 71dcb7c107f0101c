//! An organization's members, and the caller's own moves: switch, leave, default organization;
//! deleting the organization.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use tenantry_identity::User;
use tenantry_orgs::{Action, ApiKey, KeySpec, Member, NewKey, Role};
use tenantry_tenancy::{TenantRecord, TenantStatus};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Tokens;
use crate::error::{AppError, Problem};
use crate::extract::{ApiJson, ApiQuery, AuthUser, Items, require};
use crate::openapi::{Forbidden, JsonBody, NotFound, PROBLEM, SignedIn, schemas};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, add))
        .routes(routes!(change, remove))
        .routes(routes!(leave))
        .routes(routes!(switch))
        .routes(routes!(default_org))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewMember {
    /// An existing user.
    user_id: Uuid,
    role: Role,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RoleChange {
    role: Role,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DefaultOrg {
    /// An organization the caller belongs to.
    org_id: Uuid,
}

/// The organization `id` (id or slug) if the caller is a member, with their role: a missing
/// organization and someone else's are the same 404; a suspended one is 403. The request then
/// counts against the organization's rate limit (`429 rate_limited` past it).
pub(crate) async fn membership(
    state: &AppState,
    user_id: Uuid,
    id: &str,
) -> Result<(TenantRecord, Role), AppError> {
    let (record, role) = state.orgs.for_member(id, user_id).await?;
    match record.status {
        TenantStatus::Active => {
            crate::extract::admit(state, record.id.as_uuid()).await?;
            Ok((record, role))
        }
        TenantStatus::Suspended => Err(AppError::suspended()),
        TenantStatus::Deleted | TenantStatus::Provisioning | TenantStatus::Failed => {
            Err(AppError::NotFound)
        }
    }
}

fn user_id(text: &str) -> Result<Uuid, AppError> {
    text.parse().map_err(|_| AppError::NotFound)
}

/// An organization's members (members)
#[utoipa::path(
    get,
    path = "/api/v1/organizations/{id}/members",
    tag = "members",
    operation_id = "list_members",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The organization's id or slug")),
    responses(
        (status = 200, description = "Every member, in one page", body = Items<schemas::Member>),
        SignedIn,
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
async fn list(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Items<Member>>, AppError> {
    let (record, _) = membership(&state, claims.sub, &id).await?;
    let items = state.orgs.members(record.id.as_uuid()).await?;
    Ok(Json(Items::all(items)))
}

/// Add an existing user as a member (admin)
#[utoipa::path(
    post,
    path = "/api/v1/organizations/{id}/members",
    tag = "members",
    operation_id = "add_member",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The organization's id or slug")),
    request_body = NewMember,
    responses(
        (status = 201, description = "The new member", body = schemas::Member),
        SignedIn,
        JsonBody,
        (status = 403, description = "`forbidden`: not an admin, or granting `owner` without being one; `tenant_suspended`", body = Problem, content_type = PROBLEM),
        (status = 404, response = NotFound),
        (status = 409, description = "`conflict`: already a member", body = Problem, content_type = PROBLEM),
    )
)]
async fn add(
    State(state): State<AppState>,
    origin: crate::audit::Origin,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewMember>,
) -> Result<(StatusCode, Json<Member>), AppError> {
    let (record, role) = membership(&state, claims.sub, &id).await?;
    let member = state
        .orgs
        .add_member(
            role,
            record.id.as_uuid(),
            body.user_id,
            body.role,
            &origin.by_user(claims.sub),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(member)))
}

/// Change a member's role (admin)
///
/// Only an owner grants or removes `owner`; the last owner cannot be demoted.
#[utoipa::path(
    patch,
    path = "/api/v1/organizations/{id}/members/{user_id}",
    tag = "members",
    operation_id = "change_member_role",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The organization's id or slug"),
        ("user_id" = Uuid, Path, description = "The member's user id"),
    ),
    request_body = RoleChange,
    responses(
        (status = 200, description = "The member with the new role", body = schemas::Member),
        SignedIn,
        JsonBody,
        (status = 403, description = "`forbidden`: not an admin, or granting or removing `owner` without being one; `tenant_suspended`", body = Problem, content_type = PROBLEM),
        (status = 404, response = NotFound),
        (status = 409, description = "`conflict`: this would leave the organization without an owner", body = Problem, content_type = PROBLEM),
    )
)]
async fn change(
    State(state): State<AppState>,
    origin: crate::audit::Origin,
    AuthUser(claims): AuthUser,
    Path((id, member)): Path<(String, String)>,
    ApiJson(body): ApiJson<RoleChange>,
) -> Result<Json<Member>, AppError> {
    let (record, role) = membership(&state, claims.sub, &id).await?;
    let member = user_id(&member)?;
    Ok(Json(
        state
            .orgs
            .change_role(
                role,
                record.id.as_uuid(),
                member,
                body.role,
                &origin.by_user(claims.sub),
            )
            .await?,
    ))
}

/// Remove a member (admin)
///
/// The removed user's tokens lose this organization at once.
#[utoipa::path(
    delete,
    path = "/api/v1/organizations/{id}/members/{user_id}",
    tag = "members",
    operation_id = "remove_member",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The organization's id or slug"),
        ("user_id" = Uuid, Path, description = "The member's user id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        SignedIn,
        (status = 403, description = "`forbidden`: not an admin, or removing an owner without being one; `tenant_suspended`", body = Problem, content_type = PROBLEM),
        (status = 404, response = NotFound),
        (status = 409, description = "`conflict`: the last owner cannot be removed", body = Problem, content_type = PROBLEM),
    )
)]
async fn remove(
    State(state): State<AppState>,
    origin: crate::audit::Origin,
    AuthUser(claims): AuthUser,
    Path((id, member)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    let (record, role) = membership(&state, claims.sub, &id).await?;
    let member = user_id(&member)?;
    state
        .orgs
        .remove_member(
            role,
            record.id.as_uuid(),
            member,
            &origin.by_user(claims.sub),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Leave an organization
#[utoipa::path(
    post,
    path = "/api/v1/organizations/{id}/leave",
    tag = "members",
    operation_id = "leave_organization",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The organization's id or slug")),
    responses(
        (status = 204, description = "Left"),
        SignedIn,
        (status = 404, response = NotFound),
        (status = 409, description = "`conflict`: the last owner cannot leave", body = Problem, content_type = PROBLEM),
    )
)]
async fn leave(
    State(state): State<AppState>,
    origin: crate::audit::Origin,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let (record, _) = state.orgs.for_member(&id, claims.sub).await?;
    if !matches!(
        record.status,
        TenantStatus::Active | TenantStatus::Suspended
    ) {
        return Err(AppError::NotFound);
    }
    crate::extract::admit(&state, record.id.as_uuid()).await?;
    state
        .orgs
        .leave(record.id.as_uuid(), claims.sub, &origin.by_user(claims.sub))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Switch organization: a new token pair whose `org_id` is this organization
#[utoipa::path(
    post,
    path = "/api/v1/organizations/{id}/switch",
    tag = "members",
    operation_id = "switch_organization",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The organization's id or slug")),
    responses(
        (status = 200, description = "A token pair for this organization", body = Tokens),
        SignedIn,
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
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

/// Set the organization logins start in
#[utoipa::path(
    put,
    path = "/api/v1/user/default-organization",
    tag = "members",
    operation_id = "set_default_organization",
    security(("bearer" = [])),
    request_body = DefaultOrg,
    responses(
        (status = 200, description = "The caller, with the new `default_org_id`", body = User),
        SignedIn,
        JsonBody,
        (status = 403, response = Forbidden),
        (status = 422, description = "`validation_failed`: `org_id` is not an organization of the caller's", body = Problem, content_type = PROBLEM),
    )
)]
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeleteQuery {
    /// Purge everything instead of a soft delete; the body must then confirm the slug.
    #[serde(default)]
    pub hard: bool,
}

/// With `?hard=true`: the organization's slug, repeated.
#[derive(Deserialize, Default, ToSchema)]
pub(crate) struct Confirm {
    #[schema(example = "acme")]
    pub confirm: Option<String>,
}

/// Delete an organization (owner)
///
/// A soft delete (restorable until the end of the retention window; every owner is emailed the
/// purge date and the link to download the organization's data), or with `?hard=true` and
/// `{"confirm": "<slug>"}` a purge of all its data.
#[utoipa::path(
    delete,
    path = "/api/v1/organizations/{id}",
    tag = "organizations",
    operation_id = "delete_organization",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The organization's id or slug"), DeleteQuery),
    request_body(content = Option<Confirm>, description = "Only with `?hard=true`"),
    responses(
        (status = 204, description = "Deleted"),
        SignedIn,
        (status = 400, description = "`bad_request`: the query or the body cannot be read", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`forbidden`: not the owner", body = Problem, content_type = PROBLEM),
        (status = 404, response = NotFound),
        (status = 409, description = "`conflict`: the organization cannot be deleted in its current state", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`validation_failed` on `confirm`: it must repeat the organization's slug", body = Problem, content_type = PROBLEM),
    )
)]
pub(crate) async fn delete_org(
    State(state): State<AppState>,
    origin: crate::audit::Origin,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<DeleteQuery>,
    body: Bytes,
) -> Result<StatusCode, AppError> {
    let (record, role) = state.orgs.for_member(&id, claims.sub).await?;
    crate::extract::admit(&state, record.id.as_uuid()).await?;
    let hard = if query.hard {
        let confirm: Confirm = if body.is_empty() {
            Confirm::default()
        } else {
            serde_json::from_slice(&body).map_err(|e| AppError::BadRequest(e.to_string()))?
        };
        Some(confirm.confirm.unwrap_or_default())
    } else {
        None
    };
    crate::cases::organizations::delete(
        &state,
        &origin.by_user(claims.sub),
        claims.sub,
        &record,
        role,
        hard.as_deref(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewApiKey {
    #[schema(example = "CI deploys")]
    name: String,
    /// What the key may do; at most the caller's own role.
    role: Role,
    /// The key's own rate limit, requests per minute (at least 1), on top of the organization's
    /// `api_requests_per_minute`: a request made with the key must pass both. Absent or `null`:
    /// only the organization's budget applies.
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 2147483647, example = 60)]
    requests_per_minute: Option<serde_json::Value>,
}

impl NewApiKey {
    /// The key's budget as a number; anything but a whole number (or null) is
    /// `422 validation_failed` on `requests_per_minute`, as is a number out of range (checked by
    /// the domain).
    fn requests_per_minute(&self) -> Result<Option<i64>, AppError> {
        match &self.requests_per_minute {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(value) => value.as_i64().map(Some).ok_or_else(|| {
                AppError::invalid(
                    "requests_per_minute",
                    "a whole number of requests per minute from 1, or null",
                )
            }),
        }
    }
}

/// An organization's API keys, without their secrets (admin)
#[utoipa::path(
    get,
    path = "/api/v1/organizations/{id}/api-keys",
    tag = "api-keys",
    operation_id = "list_api_keys",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The organization's id or slug")),
    responses(
        (status = 200, description = "Every live key, in one page", body = Items<schemas::ApiKey>),
        SignedIn,
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
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

/// Create an API key (admin); its secret is in this response only
///
/// A key acts in this organization only, with its role, which never outranks its maker's.
#[utoipa::path(
    post,
    path = "/api/v1/organizations/{id}/api-keys",
    tag = "api-keys",
    operation_id = "create_api_key",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The organization's id or slug")),
    request_body = NewApiKey,
    responses(
        (status = 201, description = "The key and its `tnt_…` secret", body = schemas::NewKey),
        SignedIn,
        JsonBody,
        (status = 403, description = "`forbidden`: not an admin, or a role above the caller's; `tenant_suspended`", body = Problem, content_type = PROBLEM),
        (status = 404, response = NotFound),
        (status = 422, description = "`validation_failed` on `name` or `requests_per_minute` (a whole number from 1)", body = Problem, content_type = PROBLEM),
    )
)]
pub(crate) async fn create_key(
    State(state): State<AppState>,
    origin: crate::audit::Origin,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewApiKey>,
) -> Result<(StatusCode, Json<NewKey>), AppError> {
    let (record, role) = membership(&state, claims.sub, &id).await?;
    let requests_per_minute = body.requests_per_minute()?;
    let key = state
        .orgs
        .create_key(
            role,
            record.id.as_uuid(),
            claims.sub,
            &KeySpec {
                name: &body.name,
                role: body.role,
                requests_per_minute,
            },
            &origin.by_user(claims.sub),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(key)))
}

/// Revoke an API key (admin); effective on the next request
#[utoipa::path(
    delete,
    path = "/api/v1/organizations/{id}/api-keys/{kid}",
    tag = "api-keys",
    operation_id = "revoke_api_key",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The organization's id or slug"),
        ("kid" = Uuid, Path, description = "The key's id"),
    ),
    responses(
        (status = 204, description = "Revoked"),
        SignedIn,
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    origin: crate::audit::Origin,
    AuthUser(claims): AuthUser,
    Path((id, key)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    let (record, role) = membership(&state, claims.sub, &id).await?;
    let key: Uuid = key.parse().map_err(|_| AppError::NotFound)?;
    state
        .orgs
        .revoke_key(role, record.id.as_uuid(), key, &origin.by_user(claims.sub))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
