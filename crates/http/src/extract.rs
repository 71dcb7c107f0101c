//! Extractors: JSON bodies whose rejections are problem JSON, and the authenticated caller.

use axum::extract::{FromRequest, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use tenantry_identity::AccessClaims;
use tenantry_orgs::{Action, Role};
use tenantry_tenancy::TenantCtx;

use crate::error::AppError;
use crate::server::AppState;

/// `axum::Json`, with every rejection answered as problem JSON.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct ApiJson<T>(pub T);

/// The caller, from a valid access token of an open session.
#[derive(Debug, Clone)]
pub struct AuthUser(pub AccessClaims);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(AppError::unauthorized)?;
        let claims = state.identity.authenticate(token).await?;
        tracing::Span::current().record("user_id", tracing::field::display(claims.sub));
        Ok(AuthUser(claims))
    }
}

/// The caller inside an organization: from the `X-Tenant` header (id or slug), else the token's
/// `org_id`. Membership is checked on every request; an organization that does not exist and one
/// the caller does not belong to are the same 404.
#[derive(Debug, Clone)]
pub struct TenantScope {
    pub claims: AccessClaims,
    pub role: Role,
    pub ctx: TenantCtx,
}

impl TenantScope {
    /// Refuses with 403 unless the caller's role allows `action`.
    pub fn require(&self, action: Action) -> Result<(), AppError> {
        if self.role.may(action) {
            Ok(())
        } else {
            Err(AppError::forbidden(format!(
                "Your role ({}) does not allow this.",
                self.role
            )))
        }
    }
}

impl FromRequestParts<AppState> for TenantScope {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let AuthUser(claims) = AuthUser::from_request_parts(parts, state).await?;
        let header = parts
            .headers
            .get("x-tenant")
            .map(|v| v.to_str().map(str::trim).map(str::to_owned))
            .transpose()
            .map_err(|_| AppError::NotFound)?;
        let key = header
            .filter(|k| !k.is_empty())
            .or_else(|| claims.org_id.map(|id| id.to_string()))
            .ok_or(AppError::TenantRequired)?;
        let (record, role) = state.orgs.for_member(&key, claims.sub).await?;
        let ctx = state.tenancy.resolve_id(record.id).await?;
        tracing::Span::current().record("tenant_id", tracing::field::display(record.id));
        Ok(TenantScope { claims, role, ctx })
    }
}

/// Refuses with 403 unless `role` allows `action`.
pub fn require(role: Role, action: Action) -> Result<(), AppError> {
    if role.may(action) {
        Ok(())
    } else {
        Err(AppError::forbidden(format!(
            "Your role ({role}) does not allow this."
        )))
    }
}

/// A page of a list: `{items, next_cursor}`.
#[derive(Debug, serde::Serialize)]
pub struct Items<T> {
    pub items: Vec<T>,
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
