//! Extractors: JSON bodies whose rejections are problem JSON, the authenticated caller, the
//! tenant context, and the organization a request acts in ([`RequestTenant`]), counted against
//! its rate limit ([`admit`]) and, for an API key with a budget of its own, against the key's
//! ([`admit_key`]).

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{FromRequest, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use tenantry_identity::AccessClaims;
use tenantry_orgs::{Action, KEY_PREFIX as API_KEY_PREFIX, KeyIdentity, Role};
use tenantry_ratelimit::Decision;
use tenantry_tenancy::TenantCtx;
use uuid::Uuid;

use crate::error::AppError;
use crate::state::AppState;

/// `axum::Json`, with every rejection answered as problem JSON, and text PostgreSQL cannot store
/// (NUL, unpaired surrogates) refused as `422 validation_failed` naming the field
/// (`crate::text`).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, AppError> {
        if !json_content_type(request.headers()) {
            return Err(AppError::UnsupportedMediaType);
        }
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    AppError::PayloadTooLarge
                } else {
                    AppError::BadRequest(e.body_text())
                }
            })?;
        if let Some(field) = crate::text::unstorable_field(&bytes) {
            return Err(AppError::Validation {
                field,
                detail: "Text may not contain the NUL character (U+0000) or an unpaired surrogate."
                    .to_string(),
            });
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        Ok(ApiJson(value))
    }
}

/// `application/json`, or any `application/…+json`.
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

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
        let (actor, record, role, key) = if token.starts_with(API_KEY_PREFIX) {
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
            (
                Actor::ApiKey { key_id: key.key_id },
                record,
                key.role,
                Some(key),
            )
        } else {
            let AuthUser(claims) = AuthUser::from_request_parts(parts, state).await?;
            let key = header
                .or_else(|| claims.org_id.map(|id| id.to_string()))
                .ok_or(AppError::TenantRequired)?;
            let (record, role) = state.orgs.for_member(&key, claims.sub).await?;
            (Actor::User(claims), record, role, None)
        };
        // Counted before the tenant's storage is reached, so a refused request costs no more.
        match &key {
            Some(key) => admit_key(state, record.id.as_uuid(), key).await?,
            None => admit(state, record.id.as_uuid()).await?,
        }
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
    admit_as(state, tenant_id, None).await
}

/// [`admit`] for a request made with API `key`: when the key has a budget of its own
/// (`requests_per_minute`), the request must pass it and its organization's. The key's is
/// checked first, and a request it refuses takes nothing from the organization's budget, so a
/// key past its own limit never slows the organization's other keys and members. The
/// `RateLimit-*` headers report the budget that refused, or else the one with fewer requests
/// remaining.
pub(crate) async fn admit_key(
    state: &AppState,
    tenant_id: Uuid,
    key: &KeyIdentity,
) -> Result<(), AppError> {
    admit_as(state, tenant_id, Some(key)).await
}

async fn admit_as(
    state: &AppState,
    tenant_id: Uuid,
    key: Option<&KeyIdentity>,
) -> Result<(), AppError> {
    tracing::Span::current().record("tenant_id", tracing::field::display(tenant_id));
    let slot = RequestTenant::current();
    if let Some(slot) = &slot
        && slot.tenant_id() == Some(tenant_id)
    {
        return Ok(());
    }
    let key_rate = match key.and_then(|k| k.requests_per_minute.map(|n| (k.key_id, n))) {
        Some((key_id, per_minute)) => Some(
            state
                .limiter
                .check_api_key(tenant_id, key_id, i64::from(per_minute))
                .await,
        ),
        None => None,
    };
    let rate = match key_rate {
        // Refused by the key's own budget: the organization's is left alone.
        Some(refused) if !refused.allowed => Some(refused),
        _ => {
            // Cached, and invalidated at once when the plan or an override changes.
            let budget = state
                .orgs
                .limit(tenant_id, tenantry_orgs::Limit::ApiRequestsPerMinute)
                .await?;
            let org_rate = match budget {
                Some(per_minute) => Some(state.limiter.check(tenant_id, per_minute).await),
                None => None,
            };
            tighter(key_rate, org_rate)
        }
    };
    if let Some(slot) = &slot {
        slot.set(TenantUse { tenant_id, rate });
    }
    match rate {
        Some(decision) if !decision.allowed => Err(AppError::RateLimited {
            retry_after: decision.retry_after_seconds(),
            limit: decision.limit,
            reset: decision.reset_seconds(),
            api_key: key_rate.is_some_and(|d| !d.allowed),
        }),
        _ => Ok(()),
    }
}

/// Drops what the rate limiter keeps of hard-deleted organization `tenant_id`: its state in
/// this process and, with Redis, every key under `tenantry:<tenant_id>:`. A Redis that does not
/// answer is logged, not an error: the deletion stands, and the keys expire within a minute.
pub(crate) async fn forget_tenant(state: &AppState, tenant_id: Uuid) {
    match state.limiter.forget_tenant(tenant_id).await {
        Ok(removed) => {
            tracing::debug!(%tenant_id, removed, "rate-limit state of a deleted organization removed")
        }
        Err(error) => tracing::warn!(
            %tenant_id,
            %error,
            "could not remove a deleted organization's rate-limit keys from Redis; they expire within a minute"
        ),
    }
}

/// Of two decisions on one request, the one to report: a refusal, else the one with fewer
/// requests remaining (on a tie, the smaller budget).
fn tighter(a: Option<Decision>, b: Option<Decision>) -> Option<Decision> {
    match (a, b) {
        (Some(a), Some(b)) => Some(match (a.allowed, b.allowed) {
            (false, _) => a,
            (true, false) => b,
            (true, true) if (b.remaining, b.limit) < (a.remaining, a.limit) => b,
            (true, true) => a,
        }),
        (a, b) => a.or(b),
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn decision(allowed: bool, limit: u32, remaining: u32) -> Decision {
        Decision {
            allowed,
            limit,
            remaining,
            reset: Duration::from_secs(1),
            retry_after: Duration::ZERO,
        }
    }

    #[test]
    fn the_tighter_budget_is_reported() {
        let key = decision(true, 10, 3);
        let org = decision(true, 600, 500);
        assert_eq!(tighter(Some(key), Some(org)), Some(key));
        assert_eq!(tighter(Some(org), Some(key)), Some(key));
        let refused = decision(false, 600, 0);
        assert_eq!(tighter(Some(key), Some(refused)), Some(refused));
        assert_eq!(tighter(Some(refused), Some(key)), Some(refused));
        // A tie on what remains: the smaller budget.
        let small = decision(true, 5, 2);
        let large = decision(true, 50, 2);
        assert_eq!(tighter(Some(large), Some(small)), Some(small));
        assert_eq!(tighter(None, Some(org)), Some(org));
        assert_eq!(tighter(Some(key), None), Some(key));
        assert_eq!(tighter(None, None), None);
    }
}
