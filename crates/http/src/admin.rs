//! Platform administration: every tenant, whatever its members say. Only platform admins reach
//! these routes; to anyone else (signed in or not) they do not exist: 404.

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_identity::{Email, User};
use tenantry_orgs::{EntitlementChange, Entitlements, Invitation, Role};
use tenantry_tenancy::{
    Isolation, NewTenant, ProvisionStep, Slug, TenancyError, TenantRecord, TenantStatus,
};
use uuid::Uuid;

use crate::error::AppError;
use crate::extract::{ApiJson, AuthUser, Items};
use crate::members::{Confirm, DeleteQuery};
use crate::server::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/tenants", get(list).post(create))
        .route(
            "/api/v1/admin/tenants/{id}",
            get(read).put(update).delete(remove),
        )
        .route("/api/v1/admin/tenants/{id}/activate", post(activate))
        .route("/api/v1/admin/tenants/{id}/suspend", post(suspend))
        .route("/api/v1/admin/tenants/{id}/restore", post(restore))
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

/// A tenant as platform admins see it.
#[derive(Serialize)]
struct AdminTenant {
    id: Uuid,
    slug: String,
    name: String,
    status: TenantStatus,
    isolation: Isolation,
    placement: Placement,
    provisioning: Provisioning,
    schema_version: i32,
    #[serde(flatten)]
    entitlements: Entitlements,
    usage: AdminUsage,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
struct Placement {
    server: String,
    database: String,
    schema: String,
}

#[derive(Serialize)]
struct Provisioning {
    /// The last step completed; `activated` when done.
    step: ProvisionStep,
    last_error: Option<String>,
    /// A hard delete is under way.
    purging: bool,
}

#[derive(Serialize)]
struct AdminUsage {
    members: i64,
    pending_invitations: i64,
    api_keys: i64,
}

/// A tenant just created, and the invitation sent to its first admin.
#[derive(Serialize)]
struct Created {
    #[serde(flatten)]
    tenant: AdminTenant,
    invitation: Invitation,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAdminTenant {
    name: String,
    slug: String,
    admin_email: String,
    plan: Option<String>,
    isolation: Option<Isolation>,
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
    .fetch_one(state.tenancy.runtime_pool())
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
        schema_version: record.schema_version,
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

/// The tenant `id` names (by id; a slug is accepted too), deleted ones included.
async fn tenant(state: &AppState, id: &str) -> Result<TenantRecord, AppError> {
    match state.tenancy.find(id).await {
        Ok(record) => Ok(record),
        Err(TenancyError::NotFound(_)) => Err(AppError::NotFound),
        Err(e) => Err(e.into()),
    }
}

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

/// Provisions a tenant in the chosen tier and invites its first admin (as owner) by email.
async fn create(
    State(state): State<AppState>,
    PlatformAdmin(admin): PlatformAdmin,
    ApiJson(body): ApiJson<NewAdminTenant>,
) -> Result<(StatusCode, Json<Created>), AppError> {
    let slug = Slug::parse(&body.slug).map_err(|e| AppError::invalid("slug", e.to_string()))?;
    let email = Email::parse(&body.admin_email).map_err(|e| AppError::invalid("admin_email", e))?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(AppError::invalid("name", "1 to 200 characters"));
    }
    if let Some(plan) = &body.plan
        && !state.orgs.plans().await?.iter().any(|p| &p.name == plan)
    {
        return Err(AppError::invalid("plan", format!("{plan:?} is not a plan")));
    }
    let record = state
        .tenancy
        .create_tenant(&NewTenant {
            name: name.to_string(),
            slug,
            isolation: body.isolation.unwrap_or(Isolation::Shared),
            plan: body.plan.clone(),
        })
        .await?;
    let invited = state
        .orgs
        .invite(
            Role::Owner,
            record.id.as_uuid(),
            Some(admin.id),
            &admin.name,
            &email,
            Role::Owner,
        )
        .await;
    let invitation = match invited {
        Ok(invitation) => invitation,
        Err(e) => {
            // No tenant nobody can ever join: undo it.
            if let Err(undo) = state.tenancy.hard_delete(&record.slug, &record.slug).await {
                tracing::error!(slug = %record.slug, error = %undo, "failed to remove a tenant whose admin could not be invited");
            }
            return Err(e.into());
        }
    };
    tracing::info!(slug = %record.slug, isolation = %record.isolation, "tenant created by a platform admin");
    let tenant = view(&state, record).await?;
    Ok((StatusCode::CREATED, Json(Created { tenant, invitation })))
}

async fn read(
    State(state): State<AppState>,
    _: PlatformAdmin,
    Path(id): Path<String>,
) -> Result<Json<AdminTenant>, AppError> {
    let record = tenant(&state, &id).await?;
    Ok(Json(view(&state, record).await?))
}

/// `{plan, limits, features}`: a new plan, and overrides merged key by key.
async fn update(
    State(state): State<AppState>,
    _: PlatformAdmin,
    Path(id): Path<String>,
    ApiJson(change): ApiJson<EntitlementChange>,
) -> Result<Json<AdminTenant>, AppError> {
    let record = tenant(&state, &id).await?;
    if record.status == TenantStatus::Deleted {
        return Err(AppError::Conflict(
            "The tenant is deleted: restore it first.".to_string(),
        ));
    }
    let (record, _) = state
        .orgs
        .change_entitlements(record.id.as_uuid(), &change)
        .await?;
    Ok(Json(view(&state, record).await?))
}

async fn activate(
    State(state): State<AppState>,
    _: PlatformAdmin,
    Path(id): Path<String>,
) -> Result<Json<AdminTenant>, AppError> {
    let record = tenant(&state, &id).await?;
    let record = state.tenancy.activate(&record.id.to_string()).await?;
    Ok(Json(view(&state, record).await?))
}

async fn suspend(
    State(state): State<AppState>,
    _: PlatformAdmin,
    Path(id): Path<String>,
) -> Result<Json<AdminTenant>, AppError> {
    let record = tenant(&state, &id).await?;
    let record = state.tenancy.suspend(&record.id.to_string()).await?;
    Ok(Json(view(&state, record).await?))
}

async fn restore(
    State(state): State<AppState>,
    _: PlatformAdmin,
    Path(id): Path<String>,
) -> Result<Json<AdminTenant>, AppError> {
    let record = tenant(&state, &id).await?;
    let record = state.tenancy.restore(&record.id.to_string()).await?;
    Ok(Json(view(&state, record).await?))
}

/// Soft delete; `?hard=true` with `{confirm: "<slug>"}` purges the tenant's storage.
async fn remove(
    State(state): State<AppState>,
    _: PlatformAdmin,
    Path(id): Path<String>,
    Query(query): Query<DeleteQuery>,
    body: Bytes,
) -> Result<StatusCode, AppError> {
    let record = tenant(&state, &id).await?;
    if query.hard {
        let confirm: Confirm = if body.iter().all(u8::is_ascii_whitespace) {
            Confirm::default()
        } else {
            serde_json::from_slice(&body).map_err(|e| AppError::BadRequest(e.to_string()))?
        };
        state
            .tenancy
            .hard_delete(&record.id.to_string(), &confirm.confirm.unwrap_or_default())
            .await?;
    } else {
        state.tenancy.soft_delete(&record.id.to_string()).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
