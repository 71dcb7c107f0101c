//! `AppError`, the one error type at the HTTP edge, answered as RFC 9457 problem JSON with a
//! stable machine `code`. 5xx bodies say nothing internal; the full error is logged once.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("no such resource")]
    NotFound,
    #[error("the control database is unreachable")]
    NotReady,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

#[derive(Debug, Serialize)]
struct Problem {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: String,
    code: &'static str,
}

impl AppError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str, String) {
        match self {
            AppError::NotFound => (
                StatusCode::NOT_FOUND,
                "not_found",
                "Not found",
                "No resource exists at this path.".to_string(),
            ),
            AppError::NotReady => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "Not ready",
                "The control database does not answer; retry shortly.".to_string(),
            ),
            AppError::Unexpected(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "Something went wrong on our side; the request id identifies it in the logs."
                    .to_string(),
            ),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code, title, detail) = self.parts();
        let body = Problem {
            kind: format!("https://tenantry.dev/problems/{code}"),
            title,
            status: status.as_u16(),
            detail,
            code,
        };
        let mut response = (status, Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let AppError::Unexpected(e) = &self {
            response
                .extensions_mut()
                .insert(LoggedError(format!("{e:#}")));
        }
        response
    }
}

/// The full text of a 5xx error, carried to the logging middleware in the response extensions.
#[derive(Debug, Clone)]
pub(crate) struct LoggedError(pub String);
