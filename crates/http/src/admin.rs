//! Platform administration: every tenant, whatever its members say. Only platform admins reach
//! these routes; to anyone else (signed in or not) they do not exist: 404.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_identity::User;
use tenantry_orgs::{EntitlementChange, Entitlements, Invitation};
use tenantry_tenancy::{Isolation, ProvisionStep, SchemaVersions, TenantRecord, TenantStatus};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::cases::tenants::{self as case, Transition};
use crate::error::{AppError, Problem};
use crate::extract::{ApiJson, ApiQuery, AuthUser, Items};
use crate::members::{Confirm, DeleteQuery};
use crate::openapi::{AdminOnly, JsonBody, PROBLEM, schemas};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, update, remove))
        .routes(routes!(activate))
        .routes(routes!(suspend))
        .routes(routes!(restore))
        .routes(routes!(move_tenant))
        .routes(routes!(servers))
}

/// A PostgreSQL server database-tier tenants are placed on, as this server instance sees it.
#[derive(Serialize, ToSchema)]
struct AdminServer {
    #[schema(example = "default")]
    name: String,
    /// Where it is: its URL without the password.
    address: String,
    /// The connection budget of one instance's tenant pools there.
    max_connections: u32,
    /// Takes no new tenants.
    draining: bool,
    /// Tenants placed there (deleted ones aside), by tier.
    #[schema(value_type = std::collections::BTreeMap<String, i64>)]
    tenants: std::collections::BTreeMap<String, i64>,
    /// Connections this instance's tenant pools hold there (`null` when unreachable).
    connections_in_use: Option<i64>,
    /// False while the server refuses this instance's connections.
    reachable: bool,
    error: Option<String>,
    created_at: DateTime<Utc>,
}

/// Every PostgreSQL server tenants are placed on (platform admin)
#[utoipa::path(
    get,
    path = "/api/v1/admin/servers",
    tag = "admin",
    operation_id = "admin_list_servers",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every server, `default` first, in one page", body = Items<AdminServer>),
        AdminOnly,
    )
)]
async fn servers(
    State(state): State<AppState>,
    _: PlatformAdmin,
) -> Result<Json<Items<AdminServer>>, AppError> {
    let servers = state.tenancy.servers_seen().await?;
    Ok(Json(Items::all(
        servers
            .into_iter()
            .map(|s| AdminServer {
                name: s.name,
                address: s.address,
                max_connections: s.max_connections,
                draining: s.draining,
                tenants: s.tenants,
                connections_in_use: s.connections_in_use,
                reachable: s.reachable,
                error: s.error,
                created_at: s.created_at,
            })
            .collect(),
    )))
}

/// Where to move a tenant.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MoveRequest {
    /// The tier to move to; `database` when only `server` is given.
    #[schema(value_type = Option<schemas::Isolation>)]
    to: Option<Isolation>,
    /// The server of the database tier (`GET /api/v1/admin/servers`); the least-loaded one
    /// when absent.
    server: Option<String>,
}

/// Move a tenant to another tier or server while it is used (platform admin)
///
/// Starts the engine's verified, resumable move in the background and answers at once; the
/// tenant's `isolation` and `placement` change when it switches, and the move is recorded in
/// its audit trail.
#[utoipa::path(
    post,
    path = "/api/v1/admin/tenants/{id}/move",
    tag = "admin",
    operation_id = "admin_move_tenant",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant's id or slug")),
    request_body = MoveRequest,
    responses(
        (status = 202, description = "The move started; the tenant as it is now", body = AdminTenant),
        AdminOnly,
        JsonBody,
        (status = 409, description = "`conflict`: the tenant is not active or suspended, or a move of it is in progress", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`validation_failed`: `to` or `server` is missing, unknown, or where the tenant is already", body = Problem, content_type = PROBLEM),
    )
)]
async fn move_tenant(
    State(state): State<AppState>,
    origin: crate::audit::Origin,
    PlatformAdmin(admin): PlatformAdmin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MoveRequest>,
) -> Result<(StatusCode, Json<AdminTenant>), AppError> {
    let to = match (body.to, &body.server) {
        (Some(to), _) => to,
        (None, Some(_)) => Isolation::Database,
        (None, None) => return Err(AppError::invalid("to", "name a tier, a server, or both")),
    };
    case::start_move(&state, origin.by_user(admin.id), &id, to, body.server).await?;
    let record = case::tenant(&state, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(view(&state, record).await?)))
}

/// A platform admin, checked against the users table on every request (not trusted from the
/// token). Anyone else is answered 404.
struct PlatformAdmin(User);

impl FromRequestParts<AppState> for PlatformAdmin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let Ok(AuthUser(claims)) = AuthUser::from_request_parts(parts, state).await else {
            return Err(AppError::NotFound);
        };
        match state.identity.user(claims.sub).await? {
            Some(user) if user.platform_admin => Ok(PlatformAdmin(user)),
            _ => Err(AppError::NotFound),
        }
    }
}

/// A tenant as platform admins see it: its registry row, its entitlements and its usage.
#[derive(Serialize, ToSchema)]
struct AdminTenant {
    id: Uuid,
    slug: String,
    name: String,
    #[schema(value_type = schemas::TenantStatus)]
    status: TenantStatus,
    #[schema(value_type = schemas::Isolation)]
    isolation: Isolation,
    placement: Placement,
    provisioning: Provisioning,
    /// The tenant schema's version in each migration set its storage is migrated to.
    #[schema(value_type = std::collections::BTreeMap<String, i32>)]
    schema_versions: SchemaVersions,
    #[serde(flatten)]
    #[schema(value_type = schemas::Entitlements)]
    entitlements: Entitlements,
    usage: AdminUsage,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// When it was deleted; `null` unless `status` is `deleted`.
    deleted_at: Option<DateTime<Utc>>,
}

/// Where the tenant's rows live.
#[derive(Serialize, ToSchema)]
struct Placement {
    /// The PostgreSQL server.
    server: String,
    /// The database: the shared one, or the tenant's own.
    database: String,
    /// The schema: the shared one, or the tenant's own.
    schema: String,
}

/// How far the tenant's provisioning got.
#[derive(Serialize, ToSchema)]
struct Provisioning {
    /// The last step completed; `activated` when done.
    #[schema(value_type = schemas::ProvisionStep)]
    step: ProvisionStep,
    /// Why the last provisioning step failed, if it did.
    last_error: Option<String>,
    /// A hard delete is under way.
    purging: bool,
}

/// What the tenant uses.
#[derive(Serialize, ToSchema)]
struct AdminUsage {
    /// Its members.
    members: i64,
    /// Its open, unexpired invitations.
    pending_invitations: i64,
    /// Its live API keys.
    api_keys: i64,
}

/// A tenant just created, and the invitation sent to its first admin.
#[derive(Serialize, ToSchema)]
#[schema(as = CreatedTenant)]
struct Created {
    #[serde(flatten)]
    tenant: AdminTenant,
    /// The invitation of the first admin, as `owner`; its token is in the email only.
    #[schema(value_type = schemas::Invitation)]
    invitation: Invitation,
}

/// A tenant to create, and the address of its first admin.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewAdminTenant {
    /// 1 to 200 characters.
    #[schema(example = "Acme")]
    name: String,
    /// Lowercase letters, digits and hyphens; unique.
    #[schema(example = "acme")]
    slug: String,
    /// Invited by email as the tenant's `owner`.
    #[schema(example = "boss@acme.example")]
    admin_email: String,
    /// A plan's name (`free`, `pro`, `enterprise`); `free` when absent.
    #[schema(example = "pro")]
    plan: Option<String>,
    /// The tier; `shared` when absent.
    #[schema(value_type = Option<schemas::Isolation>)]
    isolation: Option<Isolation>,
    /// The PostgreSQL server of a `database`-tier tenant (`GET /api/v1/admin/servers`); the
    /// least-loaded one that is not draining when absent.
    #[schema(example = "eu2")]
    server: Option<String>,
}

async fn view(state: &AppState, record: TenantRecord) -> Result<AdminTenant, AppError> {
    let entitlements = state.orgs.entitlements(&record).await?;
    let (members, pending_invitations, api_keys): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM orgs.memberships WHERE org_id = $1),
                (SELECT count(*) FROM orgs.invitations
                  WHERE org_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL
                    AND expires_at > now()),
                (SELECT count(*) FROM orgs.api_keys WHERE org_id = $1 AND revoked_at IS NULL)",
    )
    .bind(record.id.as_uuid())
    .fetch_one(state.tenancy.control_db())
    .await?;
    Ok(AdminTenant {
        id: record.id.as_uuid(),
        slug: record.slug,
        name: record.name,
        status: record.status,
        isolation: record.isolation,
        placement: Placement {
            server: record.server,
            database: record.database_name,
            schema: record.schema_name,
        },
        provisioning: Provisioning {
            step: record.provision_step,
            last_error: record.last_error,
            purging: record.purging,
        },
        schema_versions: record.schema_versions.clone(),
        entitlements,
        usage: AdminUsage {
            members,
            pending_invitations,
            api_keys,
        },
        created_at: record.created_at,
        updated_at: record.updated_at,
        deleted_at: record.deleted_at,
    })
}

/// Every tenant, whatever its status (platform admin)
#[utoipa::path(
    get,
    path = "/api/v1/admin/tenants",
    tag = "admin",
    operation_id = "admin_list_tenants",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every tenant, deleted ones included, in one page", body = Items<AdminTenant>),
        AdminOnly,
    )
)]
async fn list(
    State(state): State<AppState>,
    _: PlatformAdmin,
) -> Result<Json<Items<AdminTenant>>, AppError> {
    let mut items = Vec::new();
    for record in state.tenancy.list().await? {
        items.push(view(&state, record).await?);
    }
    Ok(Json(Items::all(items)))
}

/// Create a tenant in any tier and invite its first admin (platform admin)
///
/// Provisions the tenant in the chosen tier, then invites `admin_email` as its `owner` by email;
/// if the invitation cannot be made, the tenant is removed again.
#[utoipa::path(
    post,
    path = "/api/v1/admin/tenants",
    tag = "admin",
    operation_id = "admin_create_tenant",
    security(("bearer" = [])),
    request_body = NewAdminTenant,
    responses(
        (status = 201, description = "The tenant, active, and the invitation sent to its first admin", body = Created),
        AdminOnly,
        JsonBody,
        (status = 409, description = "`conflict`: the slug is taken", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`validation_failed`: `name`, `slug`, `admin_email`, `plan` (not a plan) or `isolation` (not a tier) is wrong, or a tenant with this slug is being provisioned in another tier (`body`)", body = Problem, content_type = PROBLEM),
    )
)]
async fn create(
    State(state): State<AppState>,
    origin: crate::audit::Origin,
    PlatformAdmin(admin): PlatformAdmin,
    ApiJson(body): ApiJson<NewAdminTenant>,
) -> Result<(StatusCode, Json<Created>), AppError> {
    let (record, invitation) = case::create(
        &state,
        &origin.by_user(admin.id),
        &admin,
        &case::NewTenantSpec {
            name: &body.name,
            slug: &body.slug,
            admin_email: &body.admin_email,
            plan: body.plan.as_deref(),
            isolation: body.isolation.unwrap_or(Isolation::Shared),
            server: body.server.as_deref(),
        },
    )
    .await?;
    let tenant = view(&state, record).await?;
    Ok((StatusCode::CREATED, Json(Created { tenant, invitation })))
}

/// A tenant, deleted ones included (platform admin)
#[utoipa::path(
    get,
    path = "/api/v1/admin/tenants/{id}",
    tag = "admin",
    operation_id = "admin_read_tenant",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant's id or slug")),
    responses(
        (status = 200, description = "The tenant", body = AdminTenant),
        AdminOnly,
    )
)]
async fn read(
    State(state): State<AppState>,
    _: PlatformAdmin,
    Path(id): Path<String>,
) -> Result<Json<AdminTenant>, AppError> {
    let record = case::tenant(&state, &id).await?;
    Ok(Json(view(&state, record).await?))
}

/// Change a tenant's plan and its own limits and features (platform admin)
///
/// `{plan, limits, features}`: a new plan, and overrides merged key by key into the tenant's
/// existing ones (a limit of `null` is unlimited); absent parts stay as they are.
#[utoipa::path(
    put,
    path = "/api/v1/admin/tenants/{id}",
    tag = "admin",
    operation_id = "admin_update_tenant",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant's id or slug")),
    request_body = schemas::EntitlementChange,
    responses(
        (status = 200, description = "The tenant with its new entitlements", body = AdminTenant),
        AdminOnly,
        JsonBody,
        (status = 409, description = "`conflict`: the tenant is deleted (restore it first)", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`validation_failed`: `plan` is not a plan, `limits` names an unknown limit or a value that is not a whole number ≥ 0 or `null`, or `features` has a name that is not snake_case or a value that is not a boolean", body = Problem, content_type = PROBLEM),
    )
)]
async fn update(
    State(state): State<AppState>,
    origin: crate::audit::Origin,
    PlatformAdmin(admin): PlatformAdmin,
    Path(id): Path<String>,
    ApiJson(change): ApiJson<EntitlementChange>,
) -> Result<Json<AdminTenant>, AppError> {
    let record = case::tenant(&state, &id).await?;
    if record.status == TenantStatus::Deleted {
        return Err(AppError::Conflict(
            "The tenant is deleted: restore it first.".to_string(),
        ));
    }
    let (record, _) = state
        .orgs
        .change_entitlements(record.id.as_uuid(), &change, &origin.by_user(admin.id))
        .await?;
    Ok(Json(view(&state, record).await?))
}

/// Activate a suspended tenant (platform admin)
///
/// Its members and API keys work again.
#[utoipa::path(
    post,
    path = "/api/v1/admin/tenants/{id}/activate",
    tag = "admin",
    operation_id = "admin_activate_tenant",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant's id or slug")),
    responses(
        (status = 200, description = "The tenant, `active`", body = AdminTenant),
        AdminOnly,
        (status = 409, description = "`conflict`: the tenant is not suspended", body = Problem, content_type = PROBLEM),
    )
)]
async fn activate(
    State(state): State<AppState>,
    origin: crate::audit::Origin,
    PlatformAdmin(admin): PlatformAdmin,
    Path(id): Path<String>,
) -> Result<Json<AdminTenant>, AppError> {
    change_status(&state, &origin, &admin, &id, Transition::Activate).await
}

/// Suspend an active tenant (platform admin)
///
/// Its members still see it, but its resources answer `403 tenant_suspended` until it is activated.
#[utoipa::path(
    post,
    path = "/api/v1/admin/tenants/{id}/suspend",
    tag = "admin",
    operation_id = "admin_suspend_tenant",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant's id or slug")),
    responses(
        (status = 200, description = "The tenant, `suspended`", body = AdminTenant),
        AdminOnly,
        (status = 409, description = "`conflict`: the tenant is not active", body = Problem, content_type = PROBLEM),
    )
)]
async fn suspend(
    State(state): State<AppState>,
    origin: crate::audit::Origin,
    PlatformAdmin(admin): PlatformAdmin,
    Path(id): Path<String>,
) -> Result<Json<AdminTenant>, AppError> {
    change_status(&state, &origin, &admin, &id, Transition::Suspend).await
}

/// Restore a soft-deleted tenant (platform admin)
///
/// It returns to the status it had before the deletion (active or suspended), with all its data.
#[utoipa::path(
    post,
    path = "/api/v1/admin/tenants/{id}/restore",
    tag = "admin",
    operation_id = "admin_restore_tenant",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant's id or slug")),
    responses(
        (status = 200, description = "The tenant, restored", body = AdminTenant),
        AdminOnly,
        (status = 409, description = "`conflict`: the tenant is not deleted, or is being purged", body = Problem, content_type = PROBLEM),
    )
)]
async fn restore(
    State(state): State<AppState>,
    origin: crate::audit::Origin,
    PlatformAdmin(admin): PlatformAdmin,
    Path(id): Path<String>,
) -> Result<Json<AdminTenant>, AppError> {
    change_status(&state, &origin, &admin, &id, Transition::Restore).await
}

/// Delete a tenant (platform admin)
///
/// A soft delete (restorable; the tenant must be active or suspended), or with `?hard=true` and
/// `{"confirm": "<slug>"}` a purge of its storage and every row it owns, in any status.
#[utoipa::path(
    delete,
    path = "/api/v1/admin/tenants/{id}",
    tag = "admin",
    operation_id = "admin_delete_tenant",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant's id or slug"), DeleteQuery),
    request_body(content = Option<Confirm>, description = "Only with `?hard=true`"),
    responses(
        (status = 204, description = "Deleted"),
        AdminOnly,
        (status = 400, description = "`bad_request`: the query or the body cannot be read", body = Problem, content_type = PROBLEM),
        (status = 409, description = "`conflict`: a soft delete of a tenant that is not active or suspended", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`validation_failed` on `confirm`: it must repeat the tenant's slug", body = Problem, content_type = PROBLEM),
    )
)]
async fn remove(
    State(state): State<AppState>,
    origin: crate::audit::Origin,
    PlatformAdmin(admin): PlatformAdmin,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<DeleteQuery>,
    body: Bytes,
) -> Result<StatusCode, AppError> {
    let hard = if query.hard {
        let confirm: Confirm = if body.iter().all(u8::is_ascii_whitespace) {
            Confirm::default()
        } else {
            serde_json::from_slice(&body).map_err(|e| AppError::BadRequest(e.to_string()))?
        };
        Some(confirm.confirm.unwrap_or_default())
    } else {
        None
    };
    case::delete(
        &state,
        &origin.by_user(admin.id),
        &admin,
        &id,
        hard.as_deref(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn change_status(
    state: &AppState,
    origin: &crate::audit::Origin,
    admin: &User,
    id: &str,
    transition: Transition,
) -> Result<Json<AdminTenant>, AppError> {
    let changed = case::change_status(state, &origin.by_user(admin.id), id, transition).await?;
    Ok(Json(view(state, changed).await?))
}
