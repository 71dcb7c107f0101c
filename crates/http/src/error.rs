//! `AppError`, the one error type at the HTTP edge, answered as RFC 9457 problem JSON with a
//! stable machine `code`. 5xx bodies say nothing internal; the full error is logged once by the
//! request middleware. Domain errors map here exhaustively.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tenantry_identity::IdentityError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("no such resource")]
    NotFound,
    #[error("the control database is unreachable")]
    NotReady,
    /// 401 with a code: `unauthorized`, `invalid_credentials`, `invalid_token`,
    /// `refresh_token_reused`.
    #[error("{detail}")]
    Unauthorized {
        code: &'static str,
        detail: &'static str,
    },
    /// 403: the caller may see the resource but not do this (`forbidden`), or the organization is
    /// suspended (`tenant_suspended`).
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    /// 403 `limit_exceeded`: the organization's plan allows no more of this; `limit` is the
    /// limit's key.
    #[error("{detail}")]
    LimitExceeded { limit: String, detail: String },
    /// 429 `rate_limited`: the organization's `api_requests_per_minute` is spent, or, when
    /// `api_key`, the calling API key's own `requests_per_minute`. `retry_after`: seconds until a
    /// request is admitted again; `reset`: seconds until the whole budget is.
    #[error("the budget of {limit} requests per minute is spent")]
    RateLimited {
        retry_after: u64,
        limit: u32,
        reset: u64,
        api_key: bool,
    },
    #[error("no organization in context")]
    TenantRequired,
    /// 429 `too_many_attempts`: too many failed logins (or sign-ups, accepts, refreshes, pings)
    /// for this email or from this address; retry in `retry_after` seconds.
    #[error("too many attempts")]
    TooManyAttempts { retry_after: u64 },
    /// 403 `feature_unavailable`: the organization's plan does not include `feature`.
    #[error("the plan does not include {feature}")]
    FeatureUnavailable { feature: &'static str },
    /// 503 `export_busy`: every export slot of this instance is streaming an archive.
    #[error("every export slot is busy")]
    ExportBusy,
    /// 409 `export_in_progress`: an export of this organization is already streaming.
    #[error("an export of the organization is in progress")]
    ExportInProgress,
    /// 503 `tenant_moving`: the organization is being switched to another tier; writes resume
    /// within seconds.
    #[error("the organization is being moved")]
    Moving,
    /// 503 `tenant_unavailable`: the PostgreSQL server holding the organization's data cannot
    /// be reached; other organizations are served, and this one is again once it is back.
    #[error("the organization's database server cannot be reached")]
    TenantUnavailable,
    /// 503 `database_unavailable`: PostgreSQL cannot be reached or has no connection to spare
    /// (the pool timed out, connections refused or lost, `too_many_connections`). An
    /// `Unexpected` error caused by one of these is answered this way (see
    /// `database_unavailable`).
    #[error("the database is unavailable: {0:#}")]
    DatabaseUnavailable(anyhow::Error),
    /// 408 `request_timeout`: the request body did not arrive in time.
    #[error("the request body did not arrive within {0} s")]
    RequestTimeout(u64),
    #[error("{0}")]
    Conflict(String),
    /// 410: something that existed and is no longer usable (an invitation expired, revoked,
    /// replaced or used).
    #[error("{0}")]
    Gone(String),
    /// 422 naming the field at fault.
    #[error("{field}: {detail}")]
    Validation { field: String, detail: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("the body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("the body is larger than 1 MiB")]
    PayloadTooLarge,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// An error, as RFC 9457 problem JSON (`application/problem+json`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem: `https://tenantry.dev/problems/<code>`.
    #[serde(rename = "type")]
    #[schema(example = "https://tenantry.dev/problems/not_found")]
    kind: String,
    /// A short summary of the kind of problem.
    #[schema(example = "Not found")]
    title: &'static str,
    /// The HTTP status code.
    #[schema(example = 404)]
    status: u16,
    /// What went wrong this time, for a human.
    detail: String,
    /// The stable, machine-readable snake_case code: `bad_request`, `tenant_required`,
    /// `unauthorized`, `invalid_credentials`, `invalid_token`, `refresh_token_reused`,
    /// `forbidden`, `tenant_suspended`, `email_mismatch`, `limit_exceeded`, `rate_limited`, `not_found`, `conflict`, `gone`,
    /// `payload_too_large`, `unsupported_media_type`, `validation_failed`, `internal`,
    /// `not_ready`, `database_unavailable`, `request_timeout`, ...
    #[schema(example = "not_found")]
    code: &'static str,
    /// With `validation_failed`: the field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    /// With `limit_exceeded`: the key of the limit reached, e.g. `max_monitors`; with
    /// `rate_limited`: `api_requests_per_minute`.
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<String>,
    /// With `feature_unavailable`: the key of the feature the plan lacks, e.g. `agents`.
    #[serde(skip_serializing_if = "Option::is_none")]
    feature: Option<String>,
}

impl AppError {
    pub fn unauthorized() -> Self {
        AppError::Unauthorized {
            code: "unauthorized",
            detail: "Sign in: send `Authorization: Bearer <access token>`.",
        }
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        AppError::Forbidden {
            code: "forbidden",
            detail: detail.into(),
        }
    }

    pub fn suspended() -> Self {
        AppError::Forbidden {
            code: "tenant_suspended",
            detail: "This organization is suspended.".to_string(),
        }
    }

    pub fn invalid(field: &str, detail: impl Into<String>) -> Self {
        AppError::Validation {
            field: field.to_string(),
            detail: detail.into(),
        }
    }

    pub(crate) fn parts(
        &self,
    ) -> (
        StatusCode,
        &'static str,
        &'static str,
        String,
        Option<String>,
    ) {
        match self {
            AppError::NotFound => (
                StatusCode::NOT_FOUND,
                "not_found",
                "Not found",
                "No resource exists at this path.".to_string(),
                None,
            ),
            AppError::NotReady => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "Not ready",
                "The control database does not answer; retry shortly.".to_string(),
                None,
            ),
            AppError::Unauthorized { code, detail } => (
                StatusCode::UNAUTHORIZED,
                code,
                "Unauthorized",
                detail.to_string(),
                None,
            ),
            AppError::Forbidden { code, detail } => (
                StatusCode::FORBIDDEN,
                code,
                "Forbidden",
                detail.clone(),
                None,
            ),
            AppError::LimitExceeded { detail, .. } => (
                StatusCode::FORBIDDEN,
                "limit_exceeded",
                "Limit exceeded",
                detail.clone(),
                None,
            ),
            AppError::RateLimited {
                retry_after,
                limit,
                api_key,
                ..
            } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many requests",
                format!(
                    "{whose} budget of {limit} API requests per minute is spent; retry in \
                     {retry_after} s.",
                    whose = if *api_key {
                        "This API key's"
                    } else {
                        "This organization's"
                    }
                ),
                None,
            ),
            AppError::FeatureUnavailable { feature } => (
                StatusCode::FORBIDDEN,
                "feature_unavailable",
                "Feature unavailable",
                format!(
                    "The organization's plan does not include {feature}: ask for a plan that does."
                ),
                None,
            ),
            AppError::TooManyAttempts { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "Too many attempts",
                format!("Too many attempts; retry in {retry_after} s."),
                None,
            ),
            AppError::ExportInProgress => (
                StatusCode::CONFLICT,
                "export_in_progress",
                "Export in progress",
                "An export of this organization is already being downloaded; retry once it has \
                 finished (a download that stops reading is cut after 30 s)."
                    .to_string(),
                None,
            ),
            AppError::ExportBusy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "export_busy",
                "Exports busy",
                "As many exports as this server streams at once are in progress; retry in half a \
                 minute."
                    .to_string(),
                None,
            ),
            AppError::Moving => (
                StatusCode::SERVICE_UNAVAILABLE,
                "tenant_moving",
                "Organization moving",
                "This organization's data is being moved to another tier; retry in a second."
                    .to_string(),
                None,
            ),
            AppError::TenantUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "tenant_unavailable",
                "Organization unavailable",
                "The database server holding this organization's data cannot be reached; retry in a moment."
                    .to_string(),
                None,
            ),
            AppError::DatabaseUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "Database unavailable",
                "The database cannot take this request right now; retry in a moment.".to_string(),
                None,
            ),
            AppError::RequestTimeout(_) => (
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "Request timeout",
                self.to_string(),
                None,
            ),
            AppError::TenantRequired => (
                StatusCode::BAD_REQUEST,
                "tenant_required",
                "Organization required",
                "Name the organization: an X-Tenant header (id or slug), or a token issued for it \
                 (log in with a default organization, or switch)."
                    .to_string(),
                None,
            ),
            AppError::Conflict(detail) => (
                StatusCode::CONFLICT,
                "conflict",
                "Conflict",
                detail.clone(),
                None,
            ),
            AppError::Gone(detail) => (StatusCode::GONE, "gone", "Gone", detail.clone(), None),
            AppError::Validation { field, detail } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "Validation failed",
                format!("{field}: {detail}"),
                Some(field.clone()),
            ),
            AppError::BadRequest(detail) => (
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Bad request",
                detail.clone(),
                None,
            ),
            AppError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
                self.to_string(),
                None,
            ),
            AppError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
                self.to_string(),
                None,
            ),
            AppError::Unexpected(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "Something went wrong on our side; the request id identifies it in the logs."
                    .to_string(),
                None,
            ),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        // A failure to reach the database is the client's to retry, not ours to hide.
        let error = match self {
            AppError::Unexpected(e) if database_unavailable(&e) => AppError::DatabaseUnavailable(e),
            other => other,
        };
        let (status, code, title, detail, field) = error.parts();
        let body = Problem {
            kind: format!("https://tenantry.dev/problems/{code}"),
            title,
            status: status.as_u16(),
            detail,
            code,
            field,
            limit: match &error {
                AppError::LimitExceeded { limit, .. } => Some(limit.clone()),
                AppError::RateLimited { api_key: true, .. } => Some(KEY_RATE_LIMIT.to_string()),
                AppError::RateLimited { .. } => Some(RATE_LIMIT_KEY.to_string()),
                _ => None,
            },
            feature: match &error {
                AppError::FeatureUnavailable { feature } => Some(feature.to_string()),
                _ => None,
            },
        };
        let mut response = (status, Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let AppError::Unexpected(e) | AppError::DatabaseUnavailable(e) = &error {
            response
                .extensions_mut()
                .insert(LoggedError(format!("{e:#}")));
        }
        let retry_after = match error {
            AppError::Moving
            | AppError::NotReady
            | AppError::DatabaseUnavailable(_)
            | AppError::TenantUnavailable => Some(1),
            AppError::ExportBusy => Some(30),
            AppError::TooManyAttempts { retry_after } => Some(retry_after),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let AppError::RateLimited {
            retry_after,
            limit,
            reset,
            ..
        } = error
        {
            let headers = response.headers_mut();
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            rate_limit_headers(headers, limit, 0, reset);
        }
        response
    }
}

/// The limit key whose budget a `429 rate_limited` reports.
pub const RATE_LIMIT_KEY: &str = tenantry_orgs::Limit::ApiRequestsPerMinute.key();

/// The `limit` a `429 rate_limited` names when the calling API key's own budget is spent: the
/// key's field.
pub const KEY_RATE_LIMIT: &str = "requests_per_minute";

/// `RateLimit-Limit` (requests per minute), `RateLimit-Remaining` (requests admitted right now,
/// back to back) and `RateLimit-Reset` (seconds until the whole budget is back), on refused and
/// admitted requests alike.
pub(crate) fn rate_limit_headers(headers: &mut HeaderMap, limit: u32, remaining: u32, reset: u64) {
    headers.insert("ratelimit-limit", HeaderValue::from(limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(reset));
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => {
                // serde's message names the field: "missing field `email`", "...at line 1".
                let text = e.body_text();
                let field = text
                    .split('`')
                    .nth(1)
                    .map(str::to_string)
                    .unwrap_or_else(|| "body".to_string());
                AppError::Validation {
                    field,
                    detail: text,
                }
            }
            JsonRejection::JsonSyntaxError(e) => AppError::BadRequest(e.body_text()),
            JsonRejection::MissingJsonContentType(_) => AppError::UnsupportedMediaType,
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge,
            other => AppError::BadRequest(other.body_text()),
        }
    }
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> Self {
        AppError::BadRequest(rejection.body_text())
    }
}

impl From<IdentityError> for AppError {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::EmailTaken => {
                AppError::Conflict("An account with this email exists.".to_string())
            }
            IdentityError::InvalidCredentials => AppError::Unauthorized {
                code: "invalid_credentials",
                detail: "The email or password is wrong.",
            },
            IdentityError::InvalidToken => AppError::Unauthorized {
                code: "invalid_token",
                detail: "The token is invalid, expired or revoked: sign in again.",
            },
            IdentityError::RefreshReused => AppError::Unauthorized {
                code: "refresh_token_reused",
                detail: "This refresh token was already used; the session is revoked: sign in again.",
            },
            IdentityError::Invalid(detail) => {
                let field = detail.split(':').next().unwrap_or("body").to_string();
                AppError::Validation { field, detail }
            }
            IdentityError::Unexpected(e) => AppError::Unexpected(e),
        }
    }
}

impl From<tenantry_orgs::OrgsError> for AppError {
    fn from(e: tenantry_orgs::OrgsError) -> Self {
        use tenantry_orgs::OrgsError;
        match e {
            OrgsError::NotFound => AppError::NotFound,
            OrgsError::SlugTaken(slug) => AppError::Conflict(format!(
                "The slug {slug:?} is taken, or was let go by another organization less than 30 days ago: choose another."
            )),
            OrgsError::Invalid { field, detail } => AppError::invalid(field, detail),
            OrgsError::Forbidden(detail) => AppError::forbidden(detail),
            OrgsError::Conflict(detail) => AppError::Conflict(detail),
            OrgsError::Gone(detail) => AppError::Gone(detail),
            OrgsError::Suspended => AppError::suspended(),
            OrgsError::LimitExceeded { limit, detail } => AppError::LimitExceeded {
                limit: limit.to_string(),
                detail,
            },
            OrgsError::FeatureUnavailable(feature) => AppError::FeatureUnavailable {
                feature: feature.key(),
            },
            OrgsError::Unexpected(e) => AppError::Unexpected(e),
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        AppError::Unexpected(e.into())
    }
}

impl From<tenantry_tenancy::TenancyError> for AppError {
    fn from(e: tenantry_tenancy::TenancyError) -> Self {
        use tenantry_tenancy::{TenancyError, TenantStatus};
        match e {
            TenancyError::NotFound(_) => AppError::NotFound,
            TenancyError::NotActive {
                status: TenantStatus::Suspended,
                ..
            } => AppError::suspended(),
            // Deleted or not yet provisioned: not there, as far as a caller can tell.
            TenancyError::NotActive { .. } => AppError::NotFound,
            TenancyError::SlugTaken(slug) => AppError::Conflict(format!(
                "The slug {slug:?} is taken, or was let go by another organization less than 30 days ago: choose another."
            )),
            TenancyError::InvalidState {
                slug,
                status,
                action,
            } => AppError::Conflict(format!("Cannot {action} {slug}: it is {status}.")),
            TenancyError::Invalid(detail) => AppError::invalid("body", detail),
            TenancyError::ConfirmationMismatch { .. } => {
                AppError::invalid("confirm", "must repeat the organization's slug")
            }
            TenancyError::Moving(_) => AppError::Moving,
            TenancyError::Unavailable { .. } => AppError::TenantUnavailable,
            TenancyError::Unexpected(e) => AppError::Unexpected(e),
        }
    }
}

/// Whether `e` was caused by PostgreSQL being out of reach or out of connections: the pool
/// timed out or is closed, the connection failed or was lost (`Io`, `Tls`, SQLSTATE class `08`),
/// the server refused it (`53300 too_many_connections`, `57P03 cannot_connect_now`) or is
/// shutting down (`57P01`, `57P02`). Such errors pass once the database is back.
pub(crate) fn database_unavailable(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        if let Some(e) = cause.downcast_ref::<sqlx::Error>() {
            return match e {
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_) => true,
                sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                    code.starts_with("08") || ["53300", "57P01", "57P02", "57P03"].contains(&&*code)
                }),
                _ => false,
            };
        }
        // The domain errors' catch-alls are `transparent`: their `source()` skips the error
        // they wrap, so it is looked into here.
        let wrapped =
            if let Some(tenantry_tenancy::TenancyError::Unexpected(e)) = cause.downcast_ref() {
                Some(e)
            } else if let Some(tenantry_orgs::OrgsError::Unexpected(e)) = cause.downcast_ref() {
                Some(e)
            } else if let Some(IdentityError::Unexpected(e)) = cause.downcast_ref() {
                Some(e)
            } else {
                None
            };
        wrapped.is_some_and(database_unavailable)
    })
}

/// The full text of a 5xx error, carried to the logging middleware in the response extensions.
#[derive(Debug, Clone)]
pub(crate) struct LoggedError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_out_of_reach_is_told_apart_from_other_failures() {
        let timed_out = anyhow::Error::from(tenantry_tenancy::TenancyError::from(
            sqlx::Error::PoolTimedOut,
        ))
        .context("failed to load membership");
        assert!(database_unavailable(&timed_out));
        let refused = anyhow::Error::from(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert!(database_unavailable(&refused));
        let missing = anyhow::Error::from(sqlx::Error::RowNotFound);
        assert!(!database_unavailable(&missing));
        assert!(!database_unavailable(&anyhow::anyhow!("pool timed out")));
        let response = AppError::Unexpected(timed_out).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}
