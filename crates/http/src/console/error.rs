//! What a console page answers when it cannot show what was asked: the one 404 page (a missing
//! page, and one of an organization the visitor is not a member of, are the same), the login
//! page for a visitor who must sign in, and a page saying what went wrong otherwise. Errors
//! that belong next to a form's field are not these: the pages show them in the form.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;

use super::view;
use crate::error::{AppError, LoggedError};

#[derive(Debug)]
pub(crate) enum ConsoleError {
    /// Sign in first; then back to `next`.
    SignIn {
        next: String,
    },
    /// A form without its CSRF token, or posted from another site.
    Csrf,
    BadRequest(String),
    /// Any error of the services, shown by its status (404 as the one not-found page).
    App(AppError),
    Unexpected(anyhow::Error),
}

impl From<AppError> for ConsoleError {
    fn from(e: AppError) -> Self {
        ConsoleError::App(e)
    }
}

macro_rules! from_domain {
    ($($error:ty),*) => {$(
        impl From<$error> for ConsoleError {
            fn from(e: $error) -> Self {
                ConsoleError::App(AppError::from(e))
            }
        }
    )*};
}

from_domain!(
    tenantry_orgs::OrgsError,
    tenantry_identity::IdentityError,
    tenantry_tenancy::TenancyError,
    sqlx::Error
);

impl From<anyhow::Error> for ConsoleError {
    fn from(e: anyhow::Error) -> Self {
        ConsoleError::App(AppError::Unexpected(e))
    }
}

/// The page for a status, its heading and what to do.
pub(crate) fn status_page(status: StatusCode, heading: &str, detail: &str) -> Response {
    let body = html! {
        section.narrow.card {
            h1 { (heading) }
            p { (detail) }
            p { a href="/" { "Go to the console's start" } }
        }
    };
    (status, Html(view::bare(heading, body).into_string())).into_response()
}

/// The one "not found" page.
pub(crate) fn not_found() -> Response {
    status_page(
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is no such page, or you do not have access to it. Check the address, or switch to an organization of yours.",
    )
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            ConsoleError::SignIn { next } => {
                let next: String = form_urlencoded(&next);
                Redirect::to(&format!("/login?next={next}")).into_response()
            }
            ConsoleError::Csrf => status_page(
                StatusCode::FORBIDDEN,
                "This form has expired",
                "The form was not sent from this console's page, or your session changed since it was shown. Go back, reload the page and send it again.",
            ),
            ConsoleError::BadRequest(detail) => status_page(
                StatusCode::BAD_REQUEST,
                "The form could not be read",
                &detail,
            ),
            ConsoleError::Unexpected(e) => app_error(AppError::Unexpected(e)),
            ConsoleError::App(e) => app_error(e),
        }
    }
}

fn app_error(e: AppError) -> Response {
    let e = match e {
        AppError::Unexpected(e) if crate::error::database_unavailable(&e) => {
            AppError::DatabaseUnavailable(e)
        }
        other => other,
    };
    if matches!(e, AppError::NotFound | AppError::TenantRequired) {
        return not_found();
    }
    let (status, _, title, detail, _) = e.parts();
    let mut response = if status.is_server_error() {
        status_page(
            status,
            "Something went wrong",
            "The server could not finish this. Try again in a moment; if it keeps failing, the server's log has the details.",
        )
    } else {
        status_page(status, title, &detail)
    };
    if let AppError::Unexpected(e) | AppError::DatabaseUnavailable(e) = &e {
        response
            .extensions_mut()
            .insert(LoggedError(format!("{e:#}")));
    }
    response
}

/// `text` percent-encoded for a query string.
pub(crate) fn form_urlencoded(text: &str) -> String {
    serde_urlencoded::to_string([("", text)])
        .map(|s| s.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}
