//! `/invitations/{token}`, the page the invitation email links to: what the invitation is for,
//! and one button to accept it — signed in as the invited address, or, for a visitor without
//! an account, with a name and a password (the account is created and signed in). An expired,
//! revoked, replaced or used invitation gets a page saying so. Its address carries the token:
//! like every console page it has `Referrer-Policy: same-origin`, so no other site learns it.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use tenantry_identity::User;
use tenantry_orgs::{InvitationPreview, OrgsError};

use super::error::{ConsoleError, status_page};
use super::session::{self, Form, Visitor};
use super::view::{self, Errors, Field, field};
use crate::audit::Origin;
use crate::cases::invitations as case;
use crate::error::AppError;
use crate::state::AppState;
use crate::throttle::{self, Client};

fn unusable(e: OrgsError) -> Result<Response, ConsoleError> {
    Ok(match e {
        OrgsError::NotFound => status_page(
            StatusCode::NOT_FOUND,
            "No such invitation",
            "No invitation has this link. Check that you copied the whole link from the email.",
        ),
        OrgsError::Gone(detail) => status_page(
            StatusCode::GONE,
            "This invitation can no longer be used",
            &format!("{detail} Ask the organization's admins to send a new one."),
        ),
        e => return Err(e.into()),
    })
}

fn invitation(
    token: &str,
    preview: &InvitationPreview,
    visitor: &Visitor,
    user: Option<&User>,
    input: &AcceptForm,
    errors: &Errors,
) -> Markup {
    let action = format!("/invitations/{token}");
    html! {
        section.card {
            h1 { "Join " (preview.organization.name) }
            p {
                "You are invited to join " strong { (preview.organization.name) }
                " as " strong { (preview.role.as_str()) } ", as " strong { (preview.email) } "."
            }
            p.muted { "The invitation expires " (view::when(&preview.expires_at)) "." }
            (view::form_errors(errors, &["name", "password"]))
            @match user {
                Some(user) if user.email.eq_ignore_ascii_case(&preview.email) => {
                    form method="post" action=(action) {
                        (view::csrf(&visitor.csrf))
                        button.primary type="submit" { "Accept invitation" }
                    }
                }
                Some(user) => {
                    p.alert role="alert" {
                        "You are signed in as " (user.email) ", but this invitation is for " (preview.email)
                        ". Log out and sign in as that address to accept it."
                    }
                }
                None => {
                    form.stack method="post" action=(action) novalidate {
                        (view::csrf(&visitor.csrf))
                        p { "New to Tenantry? Choose your name and a password; your account is created for " (preview.email) "." }
                        (field(Field::new("Name", "name").value(&input.name).required().errors(errors)))
                        (field(Field::new("Password", "password").kind("password").required().errors(errors)
                            .hint("At least 8 characters.")))
                        div { button.primary type="submit" { "Accept invitation" } }
                    }
                    p.muted {
                        "Already have an account for " (preview.email) "? "
                        a href={"/login?next=" (super::error::form_urlencoded(&action))} { "Log in" }
                        " and come back to this page."
                    }
                }
            }
        }
    }
}

fn render(status: StatusCode, body: Markup) -> Response {
    (status, Html(view::bare("Invitation", body).into_string())).into_response()
}

/// The invitation page the email links to
///
/// An HTML page: the organization and role the invitation is for, and a button to accept it
/// (signed in as the invited address, or creating the account). No sign-in needed to see it.
#[utoipa::path(
    get,
    path = "/invitations/{token}",
    tag = "invitations",
    operation_id = "invitation_page",
    params(("token" = String, Path, description = "The invitation token from the email")),
    responses(
        (status = 200, description = "The invitation, and the form to accept it", body = String, content_type = "text/html"),
        (status = 404, description = "A page saying no invitation has this token", body = String, content_type = "text/html"),
        (status = 410, description = "A page saying the invitation is no longer valid (expired, revoked, replaced or used)", body = String, content_type = "text/html"),
        (status = 500, description = "A page saying something went wrong", body = String, content_type = "text/html"),
    )
)]
pub(crate) async fn page(
    State(state): State<AppState>,
    client: Client,
    visitor: Visitor,
    Path(token): Path<String>,
) -> Result<Response, ConsoleError> {
    let throttle = &state.throttles.invitation_client;
    throttle::admit(&[(throttle, &client.0)])?;
    let preview = match state.orgs.preview_invitation(&token).await {
        Ok(preview) => preview,
        Err(e) => {
            if matches!(e, OrgsError::NotFound | OrgsError::Gone(_)) {
                throttle.count(&client.0);
            }
            return unusable(e);
        }
    };
    let user = visitor.signed.as_ref().map(|s| &s.user);
    let body = invitation(
        &token,
        &preview,
        &visitor,
        user,
        &AcceptForm::default(),
        &Errors::default(),
    );
    Ok(render(StatusCode::OK, body))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AcceptForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

/// Accepts: as the signed-in user, or creating the visitor's account and signing it in; then
/// opens the organization.
pub(crate) async fn accept(
    State(state): State<AppState>,
    client: Client,
    origin: Origin,
    headers: HeaderMap,
    visitor: Visitor,
    Path(token): Path<String>,
    Form(input): Form<AcceptForm>,
) -> Result<Response, ConsoleError> {
    let throttle = &state.throttles.invitation_client;
    throttle::admit(&[(throttle, &client.0)])?;
    let accepted = match &visitor.signed {
        Some(signed) => case::accept_as(&state, &origin, &token, signed.user.clone())
            .await
            .map(|(m, _)| (m, None)),
        None => {
            let signup = case::AcceptSignup {
                name: input.name.clone(),
                password: input.password.clone(),
            };
            match case::sign_up_and_accept(&state, &origin, &token, &signup).await {
                Ok((membership, user)) => {
                    let signed = state
                        .identity
                        .sign_in_browser(user.id, session::user_agent(&headers))
                        .await?;
                    Ok((membership, Some(signed.cookie_token)))
                }
                Err(e) => Err(e),
            }
        }
    };
    match accepted {
        Ok((membership, cookie)) => {
            let record = state.tenancy.find(&membership.org_id.to_string()).await?;
            let mut response = session::redirect_with(
                &state,
                &format!("/o/{}/monitors", record.slug),
                &format!(
                    "Welcome to {}: you joined as {}.",
                    record.name,
                    membership.role.as_str()
                ),
            );
            if let Some(cookie) = cookie {
                session::sign_in(&state, &mut response, &cookie);
            }
            Ok(response)
        }
        Err(AppError::NotFound) => {
            throttle.count(&client.0);
            unusable(OrgsError::NotFound)
        }
        Err(AppError::Gone(detail)) => {
            throttle.count(&client.0);
            unusable(OrgsError::Gone(detail))
        }
        Err(e) => {
            let preview = match state.orgs.preview_invitation(&token).await {
                Ok(preview) => preview,
                Err(e) => return unusable(e),
            };
            let errors = super::org::form_error(e)?;
            let user = visitor.signed.as_ref().map(|s| &s.user);
            let body = invitation(&token, &preview, &visitor, user, &input, &errors);
            Ok(render(StatusCode::UNPROCESSABLE_ENTITY, body))
        }
    }
}
