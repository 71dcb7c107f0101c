//! Signing up, logging in and out, the start page, and the user's sessions.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use tenantry_identity::{Email, IdentityError};

use super::error::ConsoleError;
use super::org::chrome;
use super::session::{self, Form, SignedIn, Visitor};
use super::view::{self, Errors, Field, field};
use crate::error::AppError;
use crate::state::AppState;
use crate::throttle::{self, Client};

/// Where to go after signing in: a path of this console, never another site. Only visible
/// ASCII is allowed (browsers drop tabs and newlines from addresses, and `Location` cannot hold
/// them), starting with one `/` not followed by another `/` or `\\`.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n[1..].starts_with(['/', '\\'])
                && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// `/`: the default organization, else the first one, else the page to create one.
pub(crate) async fn start(
    State(state): State<AppState>,
    visitor: Visitor,
) -> Result<Response, ConsoleError> {
    let Some(signed) = visitor.signed else {
        return Ok(Redirect::to("/login").into_response());
    };
    let orgs = state.orgs.of_user(signed.user.id).await?;
    let active = |o: &&tenantry_orgs::OrgSummary| {
        matches!(
            o.status,
            tenantry_tenancy::TenantStatus::Active | tenantry_tenancy::TenantStatus::Suspended
        )
    };
    let chosen = orgs
        .iter()
        .filter(active)
        .find(|o| Some(o.id) == signed.user.default_org_id)
        .or_else(|| orgs.iter().find(active));
    Ok(match chosen {
        Some(org) => Redirect::to(&format!("/o/{}/monitors", org.slug)).into_response(),
        None => {
            let signed = SignedIn {
                signed,
                flash: visitor.flash,
            };
            let chrome = chrome(&state, &signed, None).await?;
            let body = html! {
                section.card.narrow {
                    h1 { "Welcome to Tenantry" }
                    p { "You are not a member of any organization yet. Create one to add monitors and invite your team, or accept an invitation from the email you received." }
                    p { a.button.primary href="/orgs/new" { "Create organization" } }
                }
            };
            Html(view::page(&chrome, "Welcome", body).into_string()).into_response()
        }
    })
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Next {
    next: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SignupForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

fn signup_form(csrf: &str, input: &SignupForm, errors: &Errors) -> Markup {
    html! {
        section.card {
            h1 { "Sign up" }
            form.stack method="post" action="/signup" novalidate {
                (view::csrf(csrf))
                (view::form_errors(errors, &["name", "email", "password"]))
                (field(Field::new("Name", "name").value(&input.name).required().errors(errors)))
                (field(Field::new("Email", "email").kind("email").value(&input.email).required().errors(errors)))
                (field(Field::new("Password", "password").kind("password").required().errors(errors)
                    .hint("At least 8 characters.")))
                div { button.primary type="submit" { "Sign up" } }
            }
            p.muted { "Already have an account? " a href="/login" { "Log in" } }
        }
    }
}

pub(crate) async fn signup_page(visitor: Visitor) -> Response {
    if visitor.signed.is_some() {
        return Redirect::to("/").into_response();
    }
    let body = signup_form(&visitor.csrf, &SignupForm::default(), &Errors::default());
    Html(view::bare("Sign up", body).into_string()).into_response()
}

/// Creates the account and signs the browser in.
pub(crate) async fn signup(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    visitor: Visitor,
    Form(input): Form<SignupForm>,
) -> Result<Response, ConsoleError> {
    let refused = |errors: Errors, input: &SignupForm| {
        let body = signup_form(&visitor.csrf, input, &errors);
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Html(view::bare("Sign up", body).into_string()),
        )
            .into_response()
    };
    let throttle = &state.throttles.signup_client;
    if let Err(e) = throttle::admit(&[(throttle, &client.0)]) {
        return Ok(refused(super::org::form_error(e)?, &input));
    }
    throttle.count(&client.0);
    let email = match Email::parse(&input.email) {
        Ok(email) => email,
        Err(e) => return Ok(refused(Errors::one("email", e.to_string()), &input)),
    };
    let user = match state
        .identity
        .register(&email, &input.password, &input.name)
        .await
    {
        Ok(user) => user,
        Err(IdentityError::EmailTaken) => {
            return Ok(refused(
                Errors::one(
                    "email",
                    "An account with this email exists: log in instead.",
                ),
                &input,
            ));
        }
        Err(IdentityError::Invalid(detail)) => {
            let field = if detail.starts_with("name") {
                "name"
            } else {
                "password"
            };
            return Ok(refused(Errors::one(field, detail), &input));
        }
        Err(e) => return Err(e.into()),
    };
    let signed = state
        .identity
        .sign_in_browser(user.id, session::user_agent(&headers))
        .await?;
    let mut response = Redirect::to("/").into_response();
    session::sign_in(&state, &mut response, &signed.cookie_token);
    Ok(response)
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

fn login_form(csrf: &str, input: &LoginForm, errors: &Errors, flash: Option<&str>) -> Markup {
    html! {
        section.card {
            h1 { "Log in" }
            @if let Some(message) = flash { p.flash role="status" { (message) } }
            form.stack method="post" action="/login" novalidate {
                (view::csrf(csrf))
                @if let Some(next) = &input.next { input type="hidden" name="next" value=(next); }
                (view::form_errors(errors, &["email", "password"]))
                (field(Field::new("Email", "email").kind("email").value(&input.email).required().errors(errors)))
                (field(Field::new("Password", "password").kind("password").required().errors(errors)))
                div { button.primary type="submit" { "Log in" } }
            }
            p.muted { "New to Tenantry? " a href="/signup" { "Sign up" } }
        }
    }
}

pub(crate) async fn login_page(visitor: Visitor, Query(next): Query<Next>) -> Response {
    if visitor.signed.is_some() {
        return Redirect::to(&safe_next(next.next.as_deref())).into_response();
    }
    let input = LoginForm {
        next: next.next,
        ..LoginForm::default()
    };
    let body = login_form(
        &visitor.csrf,
        &input,
        &Errors::default(),
        visitor.flash.as_deref(),
    );
    Html(view::bare("Log in", body).into_string()).into_response()
}

/// Signs the browser in, with the API's throttles on failed attempts.
pub(crate) async fn login(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    visitor: Visitor,
    Form(input): Form<LoginForm>,
) -> Result<Response, ConsoleError> {
    let refused = |errors: Errors, input: &LoginForm, status: StatusCode| {
        let body = login_form(&visitor.csrf, input, &errors, None);
        (status, Html(view::bare("Log in", body).into_string())).into_response()
    };
    let throttles = &state.throttles;
    let email_key = format!("email:{}", input.email.trim().to_lowercase());
    if let Err(e) = throttle::admit(&[
        (&throttles.login_client, &client.0),
        (&throttles.login_email, &email_key),
    ]) {
        let errors = super::org::form_error(e)?;
        return Ok(refused(errors, &input, StatusCode::TOO_MANY_REQUESTS));
    }
    match state
        .identity
        .login_browser(&input.email, &input.password, session::user_agent(&headers))
        .await
    {
        Ok((_, signed)) => {
            throttles.login_client.reset(&client.0);
            let mut response = Redirect::to(&safe_next(input.next.as_deref())).into_response();
            session::sign_in(&state, &mut response, &signed.cookie_token);
            Ok(response)
        }
        Err(IdentityError::InvalidCredentials) => {
            throttles.login_client.count(&client.0);
            throttles.login_email.count(&email_key);
            Ok(refused(
                Errors::one("password", "The email or password is wrong."),
                &input,
                StatusCode::UNAUTHORIZED,
            ))
        }
        Err(e) => Err(AppError::from(e).into()),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Nothing {}

/// Ends the session and forgets the cookie.
pub(crate) async fn logout(
    State(state): State<AppState>,
    signed: SignedIn,
    Form(_): Form<Nothing>,
) -> Result<Response, ConsoleError> {
    state
        .identity
        .logout_browser(signed.signed.session.session_id)
        .await?;
    let mut response = session::redirect_with(&state, "/login", "You are logged out.");
    session::sign_out(&state, &mut response);
    Ok(response)
}

/// The user's open sessions (browsers and API clients), each revocable.
pub(crate) async fn sessions(
    State(state): State<AppState>,
    signed: SignedIn,
) -> Result<Response, ConsoleError> {
    let sessions = state.identity.sessions(signed.user().id).await?;
    let chrome = chrome(&state, &signed, None).await?;
    let current = signed.signed.session.session_id;
    let body = html! {
        h1 { "Sessions" }
        p.muted { "Every place you are signed in: browsers using this console, and API clients holding tokens. Revoking one signs it out at once." }
        div.table-wrap {
            table {
                thead { tr { th { "Kind" } th { "Browser or client" } th { "Signed in" } th { "Last used" } th { span.sr { "Actions" } } } }
                tbody {
                    @for s in &sessions {
                        tr {
                            td { (s.kind) @if s.id == current { " " strong { "(this session)" } } }
                            td { (s.user_agent.as_deref().unwrap_or("—")) }
                            td { (view::when(&s.created_at)) }
                            td { @if let Some(at) = &s.last_seen_at { (view::ago(at)) } @else { "—" } }
                            td {
                                (view::post_button(
                                    &format!("/account/sessions/{}/revoke", s.id),
                                    "Revoke",
                                    signed.csrf(),
                                    Some("Sign this session out?"),
                                    "small",
                                ))
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(Html(view::page(&chrome, "Sessions", body).into_string()).into_response())
}

pub(crate) async fn revoke_session(
    State(state): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    Form(_): Form<Nothing>,
) -> Result<Response, ConsoleError> {
    let id: uuid::Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    if !state.identity.revoke_session(signed.user().id, id).await? {
        return Err(AppError::NotFound.into());
    }
    if id == signed.signed.session.session_id {
        let mut response = session::redirect_with(&state, "/login", "This session is signed out.");
        session::sign_out(&state, &mut response);
        return Ok(response);
    }
    Ok(session::redirect_with(
        &state,
        "/account/sessions",
        "The session is revoked.",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(safe_next(Some("/o/acme/members")), "/o/acme/members");
        assert_eq!(safe_next(Some("//evil.example/x")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(Some("/\t/evil.example")), "/");
        assert_eq!(safe_next(Some("/a\nb")), "/");
        assert_eq!(
            safe_next(Some("/o/acme/members?x=1")),
            "/o/acme/members?x=1"
        );
        assert_eq!(safe_next(None), "/");
    }
}
