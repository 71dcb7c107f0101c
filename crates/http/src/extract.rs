//! Extractors: JSON bodies whose rejections are problem JSON, the authenticated caller, the
//! tenant context, and the organization a request acts in ([`RequestTenant`]), counted against
//! its rate limit ([`admit`]).

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{FromRequest, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use tenantry_identity::AccessClaims;
use tenantry_orgs::{Action, KEY_PREFIX as API_KEY_PREFIX, Role};
use tenantry_ratelimit::Decision;
use tenantry_tenancy::TenantCtx;
use uuid::Uuid;

use crate::error::{AppError, RATE_LIMIT_KEY};
use crate::server::AppState;

/// `axum::Json`, with every rejection answered as problem JSON.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct ApiJson<T>(pub T);

/// `axum::extract::Query`, with a rejection answered as problem JSON (`400 bad_request`).
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct ApiQuery<T>(pub T);

/// The caller, from a valid access token of an open session. API keys are refused here: they
/// act on their organization's resources only.
#[derive(Debug, Clone)]
pub struct AuthUser(pub AccessClaims);

fn bearer(parts: &Parts) -> Result<&str, AppError> {
    parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(AppError::unauthorized)
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let token = bearer(parts)?;
        if token.starts_with(API_KEY_PREFIX) {
            return Err(AppError::Unauthorized {
                code: "unauthorized",
                detail: "API keys act on their organization's resources only; this needs a user's access token.",
            });
        }
        let claims = state.identity.authenticate(token).await?;
        tracing::Span::current().record("user_id", tracing::field::display(claims.sub));
        Ok(AuthUser(claims))
    }
}

/// The signed-in user when the request carries an `Authorization` header (which must then be a
/// valid access token), `None` when it carries none.
#[derive(Debug, Clone)]
pub struct OptionalUser(pub Option<AccessClaims>);

impl FromRequestParts<AppState> for OptionalUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        if !parts.headers.contains_key(AUTHORIZATION) {
            return Ok(OptionalUser(None));
        }
        let AuthUser(claims) = AuthUser::from_request_parts(parts, state).await?;
        Ok(OptionalUser(Some(claims)))
    }
}

/// Who acts in an organization: a signed-in user, or one of its API keys.
#[derive(Debug, Clone)]
pub enum Actor {
    User(AccessClaims),
    ApiKey { key_id: Uuid },
}

/// The caller inside an organization. With an API key, the key's organization (a header naming
/// another is refused); else the `X-Tenant` header (id or slug), else the token's `org_id`.
/// Membership is checked on every request; an organization that does not exist and one the
/// caller does not belong to are the same 404.
#[derive(Debug, Clone)]
pub struct TenantScope {
    pub actor: Actor,
    pub role: Role,
    pub ctx: TenantCtx,
}

impl TenantScope {
    /// Refuses with 403 unless the caller's role allows `action`.
    pub fn require(&self, action: Action) -> Result<(), AppError> {
        require(self.role, action)
    }
}

impl FromRequestParts<AppState> for TenantScope {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let header = parts
            .headers
            .get("x-tenant")
            .map(|v| v.to_str().map(str::trim).map(str::to_owned))
            .transpose()
            .map_err(|_| AppError::NotFound)?
            .filter(|k| !k.is_empty());
        let token = bearer(parts)?;
        let (actor, record, role) = if token.starts_with(API_KEY_PREFIX) {
            let key = state
                .orgs
                .authenticate_key(token)
                .await?
                .ok_or(AppError::Unauthorized {
                    code: "invalid_token",
                    detail: "The API key is invalid or revoked.",
                })?;
            let record = state.tenancy.find(&key.org_id.to_string()).await?;
            if let Some(named) = &header
                && named != &record.slug
                && named != &record.id.to_string()
            {
                return Err(AppError::NotFound);
            }
            (Actor::ApiKey { key_id: key.key_id }, record, key.role)
        } else {
            let AuthUser(claims) = AuthUser::from_request_parts(parts, state).await?;
            let key = header
                .or_else(|| claims.org_id.map(|id| id.to_string()))
                .ok_or(AppError::TenantRequired)?;
            let (record, role) = state.orgs.for_member(&key, claims.sub).await?;
            (Actor::User(claims), record, role)
        };
        // Counted before the tenant's storage is reached, so a refused request costs no more.
        admit(state, record.id.as_uuid()).await?;
        let ctx = state.tenancy.resolve_id(record.id).await?;
        Ok(TenantScope { actor, role, ctx })
    }
}

/// The organization a request acts in, once known, and its rate-limit decision: one slot per
/// request, made by the request middleware (`server::observe`), which reads it after the
/// response (the `RateLimit-*` headers). Filled in by [`admit`]. Reachable as a request extension
/// and, from code without the request, as [`RequestTenant::current`].
#[derive(Debug, Clone, Default)]
pub struct RequestTenant(Arc<Mutex<Option<TenantUse>>>);

/// What [`RequestTenant`] holds once the organization is known.
#[derive(Debug, Clone, Copy)]
pub struct TenantUse {
    pub tenant_id: Uuid,
    /// The rate-limit decision; `None` when the organization has no `api_requests_per_minute`.
    pub rate: Option<Decision>,
}

tokio::task_local! {
    static REQUEST_TENANT: RequestTenant;
}

impl RequestTenant {
    /// The organization the request acts in, once known.
    pub fn tenant_id(&self) -> Option<Uuid> {
        self.get().map(|u| u.tenant_id)
    }

    /// The rate-limit decision made for the request, if one was.
    pub fn rate(&self) -> Option<Decision> {
        self.get().and_then(|u| u.rate)
    }

    pub fn get(&self) -> Option<TenantUse> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, used: TenantUse) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(used);
    }

    /// The slot of the request being handled (`None` outside a request).
    pub fn current() -> Option<RequestTenant> {
        REQUEST_TENANT.try_with(RequestTenant::clone).ok()
    }

    /// Runs `handling` (the rest of the request) with this slot as the current one.
    pub(crate) async fn scope<F: Future>(self, handling: F) -> F::Output {
        REQUEST_TENANT.scope(self, handling).await
    }
}

/// Counts the request against organization `tenant_id`'s `api_requests_per_minute` (once per
/// request: acting in the same organization again is free) and records it in the request's
/// [`RequestTenant`]; past the budget, `429 rate_limited`. Called as soon as the caller's
/// membership is established, by [`TenantScope`] and the organization routes' membership check.
pub(crate) async fn admit(state: &AppState, tenant_id: Uuid) -> Result<(), AppError> {
    tracing::Span::current().record("tenant_id", tracing::field::display(tenant_id));
    let slot = RequestTenant::current();
    if let Some(slot) = &slot
        && slot.tenant_id() == Some(tenant_id)
    {
        return Ok(());
    }
    let budget = state
        .limiter
        .budget(tenant_id, || state.orgs.limit(tenant_id, RATE_LIMIT_KEY))
        .await?;
    let rate = match budget {
        Some(per_minute) => Some(state.limiter.check(tenant_id, per_minute).await),
        None => None,
    };
    if let Some(slot) = &slot {
        slot.set(TenantUse { tenant_id, rate });
    }
    match rate {
        Some(decision) if !decision.allowed => Err(AppError::RateLimited {
            retry_after: decision.retry_after_seconds(),
            limit: decision.limit,
            reset: decision.reset_seconds(),
        }),
        _ => Ok(()),
    }
}

/// Refuses with 403 unless `role` allows `action`.
pub fn require(role: Role, action: Action) -> Result<(), AppError> {
    Ok(role.require(action)?)
}

/// A page of a list: `{items, next_cursor}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Items<T> {
    pub items: Vec<T>,
    /// Pass as `?cursor=` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Items<T> {
    /// Everything, in one page.
    pub fn all(items: Vec<T>) -> Self {
        Items {
            items,
            next_cursor: None,
        }
    }
}
