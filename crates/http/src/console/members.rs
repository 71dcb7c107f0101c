//! "Members": the team, role changes and removals (admins), invitations by email and the
//! pending ones (resend, revoke). The rules are the organization service's (only owners grant
//! or remove owners, the last owner stays); a refusal is shown as a message.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;
use tenantry_identity::Email;
use tenantry_orgs::{Action, Invitation, Member, Role};
use uuid::Uuid;

use super::account::Nothing;
use super::error::ConsoleError;
use super::org::{OrgPage, form_error, outcome};
use super::session::Form;
use super::view::{self, Errors, Field, field, select};
use crate::audit::Origin;
use crate::error::AppError;
use crate::state::AppState;

const ROLES: &[(&str, &str)] = &[
    ("viewer", "viewer"),
    ("member", "member"),
    ("admin", "admin"),
    ("owner", "owner"),
];

fn id(text: &str) -> Result<Uuid, ConsoleError> {
    text.parse().map_err(|_| AppError::NotFound.into())
}

fn invite_form(page: &OrgPage, input: &InviteForm, errors: &Errors, in_dialog: bool) -> Markup {
    html! {
        form.stack method="post" action=(page.path("members/invite")) novalidate {
            (view::csrf(page.csrf()))
            (view::form_errors(errors, &["email", "role"]))
            (field(Field::new("Email", "email").kind("email").value(&input.email).required().errors(errors)))
            (select("Role", "role", ROLES, input.role.as_deref().unwrap_or("member"), errors.of("role")))
            div.actions {
                button.primary type="submit" { "Send invitation" }
                @if in_dialog {
                    button type="button" data-close { "Cancel" }
                } @else {
                    a.button href=(page.path("members")) { "Cancel" }
                }
            }
        }
    }
}

fn expires_in(invitation: &Invitation) -> String {
    // Counted up: an invitation sent a minute ago expires in 7 days, not 6.
    let seconds = (invitation.expires_at - Utc::now()).num_seconds();
    let days = (seconds + 86_399) / 86_400;
    let hours = (seconds + 3_599) / 3_600;
    if seconds <= 0 {
        "Expired".to_owned()
    } else if hours > 24 {
        format!("Expires in {days} day{}", if days == 1 { "" } else { "s" })
    } else {
        format!(
            "Expires in {hours} hour{}",
            if hours == 1 { "" } else { "s" }
        )
    }
}

fn members_page(page: &OrgPage, members: &[Member], invitations: &[Invitation]) -> Markup {
    let admin = page.role.may(Action::Administer);
    let me = page.signed.user().id;
    html! {
        (view::heading("Members", html! {
            @if admin {
                a.button.primary href=(page.path("members/invite")) data-dialog="invite-dialog" { "Invite" }
            }
        }))
        div.table-wrap {
            table {
                thead { tr {
                    th { "Email" } th { "Name" } th { "Role" } th { "Joined" }
                    @if admin { th { span.sr { "Actions" } } }
                } }
                tbody {
                    @for m in members {
                        tr data-member=(m.email) {
                            td { (m.email) @if m.user_id == me { " " span.muted { "(you)" } } }
                            td { (m.name) }
                            td {
                                @if admin {
                                    form.inline method="post" action=(page.path(&format!("members/{}/role", m.user_id))) {
                                        (view::csrf(page.csrf()))
                                        label.sr for={"role-" (m.user_id)} { "Role" }
                                        select id={"role-" (m.user_id)} name="role" {
                                            @for (value, text) in ROLES {
                                                option value=(value) selected[*value == m.role.as_str()] { (text) }
                                            }
                                        }
                                        " "
                                        button.small type="submit" { "Change role" }
                                    }
                                } @else {
                                    (m.role.as_str())
                                }
                            }
                            td { (view::when(&m.joined_at)) }
                            @if admin {
                                td {
                                    (view::post_button(
                                        &page.path(&format!("members/{}/remove", m.user_id)),
                                        "Remove",
                                        page.csrf(),
                                        Some(&format!("Remove {} from {}? Their API keys are revoked.", m.email, page.record.name)),
                                        "small danger",
                                    ))
                                }
                            }
                        }
                    }
                }
            }
        }
        @if admin {
            h2 { "Pending invitations" }
            @if invitations.is_empty() {
                p.muted { "No pending invitations." }
            } @else {
                div.table-wrap {
                    table {
                        thead { tr { th { "Email" } th { "Role" } th { "Expires" } th { span.sr { "Actions" } } } }
                        tbody {
                            @for i in invitations {
                                tr data-invitation=(i.email) {
                                    td { (i.email) }
                                    td { (i.role.as_str()) }
                                    td { (expires_in(i)) }
                                    td.actions {
                                        (view::post_button(&page.path(&format!("invitations/{}/resend", i.id)), "Resend", page.csrf(), None, "small"))
                                        (view::post_button(
                                            &page.path(&format!("invitations/{}/revoke", i.id)),
                                            "Revoke",
                                            page.csrf(),
                                            Some(&format!("Revoke the invitation of {}?", i.email)),
                                            "small danger",
                                        ))
                                    }
                                }
                            }
                        }
                    }
                }
            }
            dialog #invite-dialog aria-labelledby="invite-title" {
                h2 #invite-title { "Invite a member" }
                (invite_form(page, &InviteForm::default(), &Errors::default(), true))
            }
        }
    }
}

/// The team, and for admins the pending invitations.
pub(crate) async fn list(
    State(state): State<AppState>,
    page: OrgPage,
) -> Result<Response, ConsoleError> {
    let members = state.orgs.members(page.org_id()).await?;
    let invitations = if page.role.may(Action::Administer) {
        state.orgs.invitations(page.org_id()).await?
    } else {
        Vec::new()
    };
    Ok(page.render("Members", members_page(&page, &members, &invitations)))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct InviteForm {
    #[serde(default)]
    email: String,
    role: Option<String>,
}

/// The invite form as a page (the "Invite" dialog without script).
pub(crate) async fn invite_page(page: OrgPage) -> Result<Response, ConsoleError> {
    page.require(Action::Administer)?;
    let body = html! {
        section.card.narrow {
            h1 { "Invite a member" }
            (invite_form(&page, &InviteForm::default(), &Errors::default(), false))
        }
    };
    Ok(page.render("Invite a member", body))
}

/// Sends an invitation; the form comes back with the reason when it is refused.
pub(crate) async fn invite(
    State(state): State<AppState>,
    origin: Origin,
    page: OrgPage,
    Form(input): Form<InviteForm>,
) -> Result<Response, ConsoleError> {
    page.writable()?;
    let user = page.signed.user().clone();
    let sent = async {
        let email = Email::parse(&input.email).map_err(|e| AppError::invalid("email", e))?;
        let role: Role = input
            .role
            .as_deref()
            .unwrap_or("member")
            .parse()
            .map_err(|_| AppError::invalid("role", "choose viewer, member, admin or owner"))?;
        let inviter = crate::invitations::inviter(&state, user.id).await?;
        Ok::<_, AppError>(
            state
                .orgs
                .invite(
                    page.role,
                    page.org_id(),
                    &inviter,
                    &email,
                    role,
                    &origin.by_user(user.id),
                )
                .await?,
        )
    }
    .await;
    match sent {
        Ok(invitation) => Ok(super::session::redirect_with(
            &state,
            &page.path("members"),
            &format!("An invitation is on its way to {}.", invitation.email),
        )),
        Err(e) => {
            let errors = form_error(e)?;
            let body = html! {
                section.card.narrow {
                    h1 { "Invite a member" }
                    (invite_form(&page, &input, &errors, false))
                }
            };
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                page.render("Invite a member", body),
            )
                .into_response())
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct RoleForm {
    role: String,
}

pub(crate) async fn change_role(
    State(state): State<AppState>,
    origin: Origin,
    page: OrgPage,
    Path((_, user)): Path<(String, String)>,
    Form(input): Form<RoleForm>,
) -> Result<Response, ConsoleError> {
    page.writable()?;
    let member = id(&user)?;
    let result = match input.role.parse::<Role>() {
        Ok(role) => state
            .orgs
            .change_role(
                page.role,
                page.org_id(),
                member,
                role,
                &origin.by_user(page.signed.user().id),
            )
            .await
            .map_err(AppError::from),
        Err(_) => Err(AppError::invalid(
            "role",
            "choose viewer, member, admin or owner",
        )),
    };
    outcome(
        &state,
        &page.path("members"),
        result,
        "The role is changed.",
    )
}

pub(crate) async fn remove(
    State(state): State<AppState>,
    origin: Origin,
    page: OrgPage,
    Path((_, user)): Path<(String, String)>,
    Form(_): Form<Nothing>,
) -> Result<Response, ConsoleError> {
    page.writable()?;
    let member = id(&user)?;
    let result = state
        .orgs
        .remove_member(
            page.role,
            page.org_id(),
            member,
            &origin.by_user(page.signed.user().id),
        )
        .await
        .map_err(AppError::from);
    outcome(
        &state,
        &page.path("members"),
        result,
        "The member is removed.",
    )
}

pub(crate) async fn resend(
    State(state): State<AppState>,
    origin: Origin,
    page: OrgPage,
    Path((_, invitation)): Path<(String, String)>,
    Form(_): Form<Nothing>,
) -> Result<Response, ConsoleError> {
    page.writable()?;
    let invitation = id(&invitation)?;
    let user = page.signed.user().id;
    let result = async {
        let inviter = crate::invitations::inviter(&state, user).await?;
        Ok::<_, AppError>(
            state
                .orgs
                .resend_invitation(
                    page.role,
                    page.org_id(),
                    invitation,
                    &inviter,
                    &origin.by_user(user),
                )
                .await?,
        )
    }
    .await;
    outcome(
        &state,
        &page.path("members"),
        result,
        "The invitation is sent again, with a new link.",
    )
}

pub(crate) async fn revoke(
    State(state): State<AppState>,
    origin: Origin,
    page: OrgPage,
    Path((_, invitation)): Path<(String, String)>,
    Form(_): Form<Nothing>,
) -> Result<Response, ConsoleError> {
    page.writable()?;
    let invitation = id(&invitation)?;
    let result = state
        .orgs
        .revoke_invitation(
            page.role,
            page.org_id(),
            invitation,
            &origin.by_user(page.signed.user().id),
        )
        .await
        .map_err(AppError::from);
    outcome(
        &state,
        &page.path("members"),
        result,
        "The invitation is revoked.",
    )
}
