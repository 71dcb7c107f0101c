//! `/api/v1/auth/*`, `/api/v1/user` and the JWKS: sign-up, login, refresh, logout, the caller.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tenantry_identity::{Email, TokenPair, User};

use crate::error::AppError;
use crate::extract::{ApiJson, AuthUser};
use crate::server::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/signup", post(signup))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/user", get(me))
        .route("/.well-known/jwks.json", get(jwks))
}

#[derive(Deserialize)]
struct Signup {
    email: String,
    password: String,
    name: String,
}

#[derive(Deserialize)]
struct Login {
    email: String,
    password: String,
}

#[derive(Deserialize)]
struct Refresh {
    refresh_token: String,
}

/// A user and a fresh token pair.
#[derive(Serialize)]
struct Session {
    user: User,
    #[serde(flatten)]
    tokens: Tokens,
}

#[derive(Serialize)]
pub(crate) struct Tokens {
    access_token: String,
    refresh_token: String,
    token_type: &'static str,
    expires_in: i64,
}

impl From<TokenPair> for Tokens {
    fn from(pair: TokenPair) -> Self {
        Tokens {
            access_token: pair.access_token,
            refresh_token: pair.refresh_token,
            token_type: "Bearer",
            expires_in: pair.expires_in,
        }
    }
}

async fn signup(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Signup>,
) -> Result<(StatusCode, Json<Session>), AppError> {
    let email = Email::parse(&body.email).map_err(|e| AppError::invalid("email", e))?;
    let (user, tokens) = state
        .identity
        .signup(&email, &body.password, &body.name)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Session {
            user,
            tokens: tokens.into(),
        }),
    ))
}

async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Login>,
) -> Result<Json<Session>, AppError> {
    let (user, tokens) = state.identity.login(&body.email, &body.password).await?;
    Ok(Json(Session {
        user,
        tokens: tokens.into(),
    }))
}

async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Refresh>,
) -> Result<Json<Tokens>, AppError> {
    Ok(Json(
        state.identity.refresh(&body.refresh_token).await?.into(),
    ))
}

async fn logout(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> Result<StatusCode, AppError> {
    state.identity.logout(&claims).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> Result<Json<User>, AppError> {
    // A token whose user is gone is no longer valid.
    let user = state
        .identity
        .user(claims.sub)
        .await?
        .ok_or(AppError::Unauthorized {
            code: "invalid_token",
            detail: "The token's user no longer exists: sign in again.",
        })?;
    Ok(Json(user))
}

async fn jwks(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.identity.keys().jwks())
}
