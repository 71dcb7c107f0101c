//! `/api/v1/status-pages`: the status pages of the organization in context, through the tenant
//! door (viewers read, members and up change them); and `/status/{org_slug}/{page_slug}`, a
//! public page as anyone sees it, without authentication, as HTML or JSON ([`page`] renders it).

mod limit;
mod page;

pub use limit::PublicLimiter;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use tenantry_monitoring::{
    self as monitoring, After, PageSlug, PublicPage, StatusPage, StatusPageError, StatusPageInput,
};
use tenantry_orgs::Action;
use tenantry_tenancy::{Slug, TenancyError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::cases::channels as case;
use crate::cases::monitors::Acting;
use crate::error::{AppError, Problem};
use crate::extract::{ApiJson, ApiQuery, Items, TenantScope};
use crate::openapi::{InTenant, Internal, JsonBody, PROBLEM, RateLimited, TenantHeader};
use crate::paging::{Page, parse_id};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, replace, remove))
        .routes(routes!(public))
}

impl From<StatusPageError> for AppError {
    fn from(e: StatusPageError) -> Self {
        match e {
            StatusPageError::Invalid(invalid) => AppError::invalid(invalid.field, invalid.detail),
            StatusPageError::SlugTaken => {
                AppError::Conflict("Another status page of this organization has this slug.".into())
            }
            StatusPageError::Unexpected(e) => AppError::Unexpected(e),
        }
    }
}

/// The input, checked as far as it can be without the database.
pub(crate) fn parse(input: &StatusPageInput) -> Result<monitoring::PageSpec, AppError> {
    input
        .parse()
        .map_err(|e| AppError::invalid(e.field, e.detail))
}

/// The status pages of the organization in context, oldest first
#[utoipa::path(
    get,
    path = "/api/v1/status-pages",
    tag = "status-pages",
    operation_id = "list_status_pages",
    security(("bearer" = [])),
    params(TenantHeader, Page),
    responses(
        (status = 200, description = "A page of status pages", body = Items<StatusPage>),
        InTenant,
        (status = 422, description = "`validation_failed`: `limit` out of range, or a `cursor` this server did not return", body = Problem, content_type = PROBLEM),
    )
)]
async fn list(
    scope: TenantScope,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Items<StatusPage>>, AppError> {
    scope.require(Action::Read)?;
    let limit = page.limit()?;
    let cursor = page.position()?.map(|(at, id)| After { at, id });
    let mut tx = scope.ctx.begin_read().await?;
    let items = monitoring::list_pages(&mut tx, limit + 1, cursor).await?;
    tx.commit().await?;
    Ok(Json(Items::paged(items, limit, |p| (p.created_at, p.id))))
}

/// Create a status page (member)
#[utoipa::path(
    post,
    path = "/api/v1/status-pages",
    tag = "status-pages",
    operation_id = "create_status_page",
    security(("bearer" = [])),
    params(TenantHeader),
    request_body = StatusPageInput,
    responses(
        (status = 201, description = "The new status page", body = StatusPage),
        JsonBody,
        InTenant,
        (status = 409, description = "`conflict`: another status page of the organization has this slug", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`validation_failed`: `slug`, `title`, or `monitor_ids` (an id that is not a monitor of this organization, or listed twice)", body = Problem, content_type = PROBLEM),
    )
)]
async fn create(
    State(state): State<AppState>,
    origin: crate::audit::Origin,
    scope: TenantScope,
    ApiJson(input): ApiJson<StatusPageInput>,
) -> Result<(StatusCode, Json<StatusPage>), AppError> {
    let acting = Acting::new(&scope.ctx, scope.role, origin.by(&scope.actor));
    let page = case::create_page(&state, &acting, &input).await?;
    Ok((StatusCode::CREATED, Json(page)))
}

/// A status page
#[utoipa::path(
    get,
    path = "/api/v1/status-pages/{id}",
    tag = "status-pages",
    operation_id = "read_status_page",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The status page's id"), TenantHeader),
    responses(
        (status = 200, description = "The status page", body = StatusPage),
        InTenant,
    )
)]
async fn read(scope: TenantScope, Path(id): Path<String>) -> Result<Json<StatusPage>, AppError> {
    scope.require(Action::Read)?;
    let id = parse_id(&id)?;
    let mut tx = scope.ctx.begin_read().await?;
    let page = monitoring::get_page(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(Json(page))
}

/// Replace a status page (member)
///
/// Absent optional fields take their defaults: no `monitor_ids` empties the page, no `public`
/// makes it private.
#[utoipa::path(
    put,
    path = "/api/v1/status-pages/{id}",
    tag = "status-pages",
    operation_id = "replace_status_page",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The status page's id"), TenantHeader),
    request_body = StatusPageInput,
    responses(
        (status = 200, description = "The status page as replaced", body = StatusPage),
        JsonBody,
        InTenant,
        (status = 409, description = "`conflict`: another status page of the organization has this slug", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`validation_failed`: `slug`, `title`, or `monitor_ids` (an id that is not a monitor of this organization, or listed twice)", body = Problem, content_type = PROBLEM),
    )
)]
async fn replace(
    origin: crate::audit::Origin,
    scope: TenantScope,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<StatusPageInput>,
) -> Result<Json<StatusPage>, AppError> {
    let id = parse_id(&id)?;
    let acting = Acting::new(&scope.ctx, scope.role, origin.by(&scope.actor));
    Ok(Json(case::replace_page(&acting, id, &input).await?))
}

/// Delete a status page (member)
#[utoipa::path(
    delete,
    path = "/api/v1/status-pages/{id}",
    tag = "status-pages",
    operation_id = "delete_status_page",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The status page's id"), TenantHeader),
    responses(
        (status = 204, description = "Deleted; its public address answers 404 from now on"),
        InTenant,
    )
)]
async fn remove(
    origin: crate::audit::Origin,
    scope: TenantScope,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let id = parse_id(&id)?;
    let acting = Acting::new(&scope.ctx, scope.role, origin.by(&scope.actor));
    case::remove_page(&acting, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A public status page
///
/// No authentication. HTML for browsers (self-contained: no script, and nothing loaded from
/// anywhere); JSON with `Accept: application/json`. An unknown, suspended or deleted
/// organization, an unknown page and a page that is not public are the same `404`. Counts
/// against the organization's rate limit. Answers may be cached for 30 seconds.
#[utoipa::path(
    get,
    path = "/status/{org_slug}/{page_slug}",
    tag = "status-pages",
    operation_id = "public_status_page",
    params(
        ("org_slug" = String, Path, description = "The organization's slug"),
        ("page_slug" = String, Path, description = "The status page's slug"),
    ),
    responses(
        (status = 200, description = "The page: its title, and each of its monitors (in the page's order) with its status and the share of passed checks in the last 24 hours",
            content(
                (PublicPage = "application/json"),
                (String = "text/html"),
            ),
            headers(
                ("Cache-Control" = String, description = "`public, max-age=30`"),
                ("ETag" = String, description = "The page's content tag; send it back as `If-None-Match` for a `304`"),
                ("Vary" = String, description = "`Accept`"),
                ("Content-Security-Policy" = String, description = "`default-src 'none'; style-src 'unsafe-inline'` (HTML)"),
            ),
        ),
        (status = 304, description = "Not modified: the `If-None-Match` tag is the page's current one"),
        (status = 404, description = "`not_found`: no public page at this address (problem JSON with `Accept: application/json`, else an HTML page)",
            content(
                (Problem = "application/problem+json"),
                (String = "text/html"),
            ),
        ),
        (status = 429, response = RateLimited),
        (status = 500, response = Internal),
    )
)]
async fn public(
    State(state): State<AppState>,
    Path((org_slug, page_slug)): Path<(String, String)>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let json = page::wants_json(&headers);
    // Anonymous traffic has a budget of its own, per client address and in all; it never
    // spends the organization's (nor counts in its usage), and it is taken before anything is
    // looked up, so an unknown organization and an unknown page answer alike.
    if let Err(retry_after) = state
        .public_pages
        .admit(peer.map(|axum::Extension(axum::extract::ConnectInfo(addr))| addr.ip()))
    {
        return page::with_page_headers(
            AppError::RateLimited {
                retry_after,
                limit: limit::PER_CLIENT_PER_MINUTE as u32,
                reset: retry_after,
                api_key: false,
            }
            .into_response(),
        );
    }
    match public_page(&state, &org_slug, &page_slug).await {
        Ok(shown) => page::found(json, &shown, Utc::now(), &headers),
        Err(AppError::NotFound) if !json => page::not_found(),
        Err(e) => page::with_page_headers(e.into_response()),
    }
}

/// Organization slug → an active organization → its public page.
async fn public_page(
    state: &AppState,
    org_slug: &str,
    page_slug: &str,
) -> Result<PublicPage, AppError> {
    // By slug only: the registry would take an organization's id too.
    if Slug::parse(org_slug).is_err() || PageSlug::parse(page_slug).is_err() {
        return Err(AppError::NotFound);
    }
    let ctx = match state.tenancy.resolve(org_slug).await {
        Ok(ctx) => ctx,
        // Suspended and deleted too: a public page reveals nothing of the organization's state.
        Err(TenancyError::NotFound(_) | TenancyError::NotActive { .. }) => {
            return Err(AppError::NotFound);
        }
        Err(e) => return Err(e.into()),
    };
    // The pages of a plan without them are kept, but shown to nobody.
    if !state
        .orgs
        .feature(
            ctx.tenant_id().as_uuid(),
            tenantry_orgs::Feature::StatusPages,
        )
        .await?
    {
        return Err(AppError::NotFound);
    }
    let mut tx = ctx.begin_read().await?;
    let shown = monitoring::public_page(&mut tx, page_slug, Utc::now()).await?;
    tx.commit().await?;
    shown.ok_or(AppError::NotFound)
}
