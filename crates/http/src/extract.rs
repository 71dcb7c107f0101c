//! Extractors: JSON bodies whose rejections are problem JSON, and the authenticated caller.

use axum::extract::{FromRequest, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use tenantry_identity::AccessClaims;

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
