//! `/api/v1/auth/*`, `/api/v1/user` and the JWKS: sign-up, login, refresh, logout, the caller.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tenantry_identity::{Email, TokenPair, User};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{AppError, Problem};
use crate::extract::{ApiJson, AuthUser};
use crate::openapi::{JsonBody, PROBLEM, SignedIn, schemas::Jwks};
use crate::state::AppState;
use crate::throttle::{self, Client};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(jwks))
}

#[derive(Deserialize, ToSchema)]
struct Signup {
    #[schema(example = "ada@example.com")]
    email: String,
    /// At least 8 characters.
    password: String,
    /// 1 to 200 characters.
    #[schema(example = "Ada Lovelace")]
    name: String,
}

#[derive(Deserialize, ToSchema)]
struct Login {
    #[schema(example = "ada@example.com")]
    email: String,
    password: String,
}

#[derive(Deserialize, ToSchema)]
struct Refresh {
    /// The refresh token of the last pair; it works once.
    refresh_token: String,
}

/// A user and a fresh token pair.
#[derive(Serialize, ToSchema)]
struct Session {
    user: User,
    #[serde(flatten)]
    tokens: Tokens,
}

/// An access token and the refresh token that renews it.
#[derive(Serialize, ToSchema)]
pub(crate) struct Tokens {
    /// A JWT (EdDSA), sent as `Authorization: Bearer <access_token>`; its `org_id` claim is the
    /// organization in context, when there is one.
    access_token: String,
    /// Trade it once at `/api/v1/auth/refresh` for a new pair.
    refresh_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    token_type: &'static str,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
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

/// Sign up: a new user, signed in
#[utoipa::path(
    post,
    path = "/api/v1/auth/signup",
    tag = "auth",
    request_body = Signup,
    responses(
        (status = 429, description = "`too_many_attempts`: too many failed attempts for this email or from this address; retry after `Retry-After` seconds", body = Problem, content_type = PROBLEM),
        (status = 201, description = "The new user and a token pair", body = Session),
        JsonBody,
        (status = 409, description = "`conflict`: an account with this email exists", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`validation_failed`: `field` names what is wrong (email, password, name)", body = Problem, content_type = PROBLEM),
    )
)]
async fn signup(
    State(state): State<AppState>,
    client: Client,
    ApiJson(body): ApiJson<Signup>,
) -> Result<(StatusCode, Json<Session>), AppError> {
    let throttle = &state.throttles.signup_client;
    throttle::admit(&[(throttle, &client.0)])?;
    throttle.count(&client.0);
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

/// Log in with email and password
///
/// The access token's `org_id` is the user's default organization, when there is one.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    request_body = Login,
    responses(
        (status = 429, description = "`too_many_attempts`: too many failed attempts for this email or from this address; retry after `Retry-After` seconds", body = Problem, content_type = PROBLEM),
        (status = 200, description = "The user and a token pair", body = Session),
        JsonBody,
        (status = 401, description = "`invalid_credentials`: the email or password is wrong (the same answer for an unknown email)", body = Problem, content_type = PROBLEM),
    )
)]
async fn login(
    State(state): State<AppState>,
    client: Client,
    ApiJson(body): ApiJson<Login>,
) -> Result<Json<Session>, AppError> {
    let throttles = &state.throttles;
    let email = format!("email:{}", body.email.trim().to_lowercase());
    throttle::admit(&[
        (&throttles.login_client, &client.0),
        (&throttles.login_email, &email),
    ])?;
    match state.identity.login(&body.email, &body.password).await {
        Ok((user, tokens)) => {
            throttles.login_client.reset(&client.0);
            Ok(Json(Session {
                user,
                tokens: tokens.into(),
            }))
        }
        Err(e) => {
            if matches!(e, tenantry_identity::IdentityError::InvalidCredentials) {
                throttles.login_client.count(&client.0);
                throttles.login_email.count(&email);
            }
            Err(e.into())
        }
    }
}

/// Trade a refresh token for a new pair
///
/// The old refresh token stops working; presenting it again revokes the whole session.
#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    tag = "auth",
    request_body = Refresh,
    responses(
        (status = 429, description = "`too_many_attempts`: too many failed attempts for this email or from this address; retry after `Retry-After` seconds", body = Problem, content_type = PROBLEM),
        (status = 200, description = "A new token pair", body = Tokens),
        JsonBody,
        (status = 401, description = "`invalid_token`: unknown, expired or revoked; `refresh_token_reused`: already used, and the session is now revoked", body = Problem, content_type = PROBLEM),
    )
)]
async fn refresh(
    State(state): State<AppState>,
    client: Client,
    ApiJson(body): ApiJson<Refresh>,
) -> Result<Json<Tokens>, AppError> {
    let throttle = &state.throttles.refresh_client;
    throttle::admit(&[(throttle, &client.0)])?;
    match state.identity.refresh(&body.refresh_token).await {
        Ok(tokens) => Ok(Json(tokens.into())),
        Err(e) => {
            if !matches!(e, tenantry_identity::IdentityError::Unexpected(_)) {
                throttle.count(&client.0);
            }
            Err(e.into())
        }
    }
}

/// Log out: end the session
///
/// The session's access and refresh tokens stop working.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out"),
        SignedIn,
    )
)]
async fn logout(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> Result<StatusCode, AppError> {
    state.identity.logout(&claims).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller, with `default_org_id`
#[utoipa::path(
    get,
    path = "/api/v1/user",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The signed-in user", body = User),
        SignedIn,
    )
)]
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

/// The public keys that verify access tokens (JWKS)
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "auth",
    responses((status = 200, description = "A JSON Web Key Set of Ed25519 keys", body = Jwks))
)]
async fn jwks(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.identity.keys().jwks())
}
