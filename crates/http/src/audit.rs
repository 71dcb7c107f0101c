//! What the audit trail learns from a request: where it came from (peer address, user agent,
//! request id), and who acted.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;
use tenantry_audit::{Actor, AuditContext};
use uuid::Uuid;

use crate::extract;
use crate::state::AppState;

/// The request's id, as the request middleware settled it (the client's `X-Request-Id`, or one
/// made up).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Where a request came from.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    ip: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
}

impl FromRequestParts<AppState> for Origin {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Infallible> {
        Ok(Origin {
            ip: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(peer)| peer.ip().to_string()),
            user_agent: parts
                .headers
                .get(USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            request_id: parts.extensions.get::<RequestId>().map(|r| r.0.clone()),
        })
    }
}

impl Origin {
    /// The context of a change made by `actor`.
    pub fn context(&self, actor: Actor) -> AuditContext {
        AuditContext {
            actor,
            ip: self.ip.clone(),
            user_agent: self.user_agent.clone(),
            request_id: self.request_id.clone(),
        }
    }

    /// The context of a change made by the signed-in user `user_id`.
    pub fn by_user(&self, user_id: Uuid) -> AuditContext {
        self.context(Actor::user(user_id))
    }

    /// The context of a change made by whoever acts in a tenant scope (a user or an API key).
    pub fn by(&self, actor: &extract::Actor) -> AuditContext {
        self.context(match actor {
            extract::Actor::User(claims) => Actor::user(claims.sub),
            extract::Actor::ApiKey { key_id } => Actor::api_key(*key_id),
        })
    }
}

/// The audit-trail routes.
pub fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(audit_logs))
}

/// Filters and a page of an audit trail.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// Only changes by this user or API key (its id).
    actor: Option<Uuid>,
    /// Only this action (`member.added`), or a family of them ending in a dot (`member.`).
    action: Option<String>,
    /// Only changes at or after this time (RFC 3339).
    since: Option<chrono::DateTime<chrono::Utc>>,
    /// How many entries, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct AuditPage {
    /// Newest first.
    items: Vec<tenantry_audit::Entry>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// An organization's audit trail (admin)
///
/// Every change to the organization, its members, invitations, API keys, plan and monitoring
/// resources: who (user or API key), what, the target before and after, from where, when.
/// Entries are hash-chained and cannot be altered by the server; `tenantry audit verify SLUG`
/// checks the chains.
#[utoipa::path(
    get,
    path = "/api/v1/organizations/{id}/audit-logs",
    tag = "organizations",
    operation_id = "list_audit_logs",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The organization's id or slug"), AuditQuery),
    responses(
        (status = 200, description = "A page of the trail, newest first", body = AuditPage),
        crate::openapi::SignedIn,
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::ValidationFailed),
    )
)]
async fn audit_logs(
    axum::extract::State(state): axum::extract::State<AppState>,
    crate::extract::AuthUser(claims): crate::extract::AuthUser,
    axum::extract::Path(id): axum::extract::Path<String>,
    crate::extract::ApiQuery(query): crate::extract::ApiQuery<AuditQuery>,
) -> Result<axum::Json<AuditPage>, crate::error::AppError> {
    use crate::error::AppError;
    let (record, role) = crate::members::membership(&state, claims.sub, &id).await?;
    crate::extract::require(role, tenantry_orgs::Action::Administer)?;
    // The trail is recorded whatever the plan; reading it is the plan's feature.
    state
        .orgs
        .require_feature(record.id.as_uuid(), tenantry_orgs::Feature::AuditLog)
        .await?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(AppError::invalid("limit", "1 to 200"));
    }
    let action = query
        .action
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: String| AppError::invalid("action", e))?;
    let filter = tenantry_audit::Filter {
        actor: query.actor,
        action,
        since: query.since,
        limit,
        cursor: query.cursor,
    };
    let ctx = state.tenancy.resolve_id(record.id).await?;
    match tenantry_audit::list(&state.tenancy, &ctx, &filter).await {
        Ok((items, next_cursor)) => Ok(axum::Json(AuditPage { items, next_cursor })),
        Err(e) if e.downcast_ref::<tenantry_audit::InvalidCursor>().is_some() => Err(
            AppError::invalid("cursor", "not a cursor this server returned"),
        ),
        Err(e) => Err(AppError::Unexpected(e)),
    }
}
