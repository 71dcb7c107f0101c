//! An organization's usage against its limits.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tenantry_orgs::{Action, Used};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::AppError;
use crate::extract::{AuthUser, require};
use crate::members::membership;
use crate::openapi::{Forbidden, NotFound, SignedIn};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(usage))
}

/// Something used, and its limit (`null`: unlimited).
#[derive(Serialize, ToSchema)]
struct Count {
    used: i64,
    limit: Option<i64>,
}

impl From<Used> for Count {
    fn from(u: Used) -> Self {
        Count {
            used: u.used,
            limit: u.limit,
        }
    }
}

#[derive(Serialize, ToSchema)]
struct Counts {
    /// Members plus pending invitations, against `max_users`.
    users: Count,
    /// Against `max_monitors`.
    monitors: Count,
    /// Against `max_agents`.
    agents: Count,
    /// API keys not revoked, against `max_api_keys`.
    api_keys: Count,
    /// API requests in the organization this period (calendar month, UTC); `limit` is the rate
    /// limit, `api_requests_per_minute`.
    api_requests: Count,
    /// The organization's data on disk, in bytes: its database (database tier), its schema's
    /// tables and indexes (schema tier), or its rows (shared tier).
    storage_bytes: i64,
}

/// What an organization uses against its plan's limits.
#[derive(Serialize, ToSchema)]
struct Usage {
    plan: String,
    /// The start of the current period (the calendar month, UTC).
    period_start: DateTime<Utc>,
    usage: Counts,
}

/// An organization's usage against its limits (members)
#[utoipa::path(
    get,
    path = "/api/v1/organizations/{id}/usage",
    tag = "organizations",
    operation_id = "read_usage",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The organization's id or slug")),
    responses(
        (status = 200, description = "Counts against limits", body = Usage),
        SignedIn,
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
async fn usage(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Usage>, AppError> {
    let (record, role) = membership(&state, claims.sub, &id).await?;
    require(role, Action::Read)?;
    let report = crate::cases::usage::report(&state, &record).await?;
    Ok(Json(Usage {
        plan: report.plan,
        period_start: report.period_start,
        usage: Counts {
            users: report.users.into(),
            monitors: report.monitors.into(),
            agents: report.agents.into(),
            api_keys: report.api_keys.into(),
            api_requests: report.api_requests.into(),
            storage_bytes: report.storage_bytes,
        },
    }))
}
