//! "API keys" (admins: list with prefix, role and last use; create, showing the secret once;
//! revoke) and "Agents" (list; register, showing the token once with the command to run;
//! delete).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use tenantry_orgs::{Action, ApiKey, KeySpec, Role};

use super::account::Nothing;
use super::error::ConsoleError;
use super::org::{OrgPage, form_error, outcome};
use super::session::Form;
use super::view::{self, Errors, Field, field, select};
use crate::audit::Origin;
use crate::cases::agents as agent_case;
use crate::cases::monitors::Acting;
use crate::error::AppError;
use crate::state::AppState;

const KEY_ROLES: &[(&str, &str)] = &[
    ("viewer", "viewer (read only)"),
    ("member", "member (manage monitoring)"),
    ("admin", "admin"),
];

#[derive(Debug, Default, Deserialize)]
pub(crate) struct KeyForm {
    #[serde(default)]
    name: String,
    role: Option<String>,
}

fn keys_page(
    page: &OrgPage,
    keys: &[ApiKey],
    input: &KeyForm,
    errors: &Errors,
    secret: Option<&str>,
) -> Markup {
    html! {
        h1 { "API keys" }
        @if let Some(secret) = secret {
            (view::secret_once("New API key", secret, "send it as Authorization: Bearer <key>. It is shown only now: copy it."))
        }
        section.card {
            h2 { "Create API key" }
            form.stack method="post" action=(page.path("api-keys")) novalidate {
                (view::csrf(page.csrf()))
                (view::form_errors(errors, &["name", "role"]))
                (field(Field::new("Name", "name").value(&input.name).required().errors(errors)
                    .hint("What uses it, such as “CI deploys”.")))
                (select("Role", "role", KEY_ROLES, input.role.as_deref().unwrap_or("member"), errors.of("role")))
                div { button.primary type="submit" { "Create API key" } }
            }
        }
        @if keys.is_empty() {
            p.muted { "No API keys." }
        } @else {
            div.table-wrap {
                table {
                    thead { tr { th { "Name" } th { "Prefix" } th { "Role" } th { "Last used" } th { span.sr { "Actions" } } } }
                    tbody {
                        @for k in keys {
                            tr {
                                td { (k.name) }
                                td { code { (k.prefix) "…" } }
                                td { (k.role.as_str()) }
                                td { @if let Some(at) = &k.last_used_at { (view::ago(at)) } @else { "never" } }
                                td {
                                    (view::post_button(
                                        &page.path(&format!("api-keys/{}/revoke", k.id)),
                                        "Revoke",
                                        page.csrf(),
                                        Some(&format!("Revoke the key {}? Requests with it are refused at once.", k.name)),
                                        "small danger",
                                    ))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub(crate) async fn list(
    State(state): State<AppState>,
    page: OrgPage,
) -> Result<Response, ConsoleError> {
    page.require(Action::Administer)?;
    let keys = state.orgs.keys(page.org_id()).await?;
    Ok(page.render(
        "API keys",
        keys_page(&page, &keys, &KeyForm::default(), &Errors::default(), None),
    ))
}

/// Creates a key and shows its secret, this once.
pub(crate) async fn create(
    State(state): State<AppState>,
    origin: Origin,
    page: OrgPage,
    Form(input): Form<KeyForm>,
) -> Result<Response, ConsoleError> {
    page.require(Action::Administer)?;
    page.writable()?;
    let user = page.signed.user().id;
    let created = match input.role.as_deref().unwrap_or("member").parse::<Role>() {
        Ok(role) => state
            .orgs
            .create_key(
                page.role,
                page.org_id(),
                user,
                &KeySpec {
                    name: &input.name,
                    role,
                    requests_per_minute: None,
                },
                &origin.by_user(user),
            )
            .await
            .map_err(AppError::from),
        Err(_) => Err(AppError::invalid("role", "choose viewer, member or admin")),
    };
    let keys = state.orgs.keys(page.org_id()).await?;
    match created {
        Ok(new) => Ok((
            StatusCode::CREATED,
            page.render(
                "API keys",
                keys_page(
                    &page,
                    &keys,
                    &KeyForm::default(),
                    &Errors::default(),
                    Some(&new.secret),
                ),
            ),
        )
            .into_response()),
        Err(e) => {
            let errors = form_error(e)?;
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                page.render("API keys", keys_page(&page, &keys, &input, &errors, None)),
            )
                .into_response())
        }
    }
}

pub(crate) async fn revoke(
    State(state): State<AppState>,
    origin: Origin,
    page: OrgPage,
    Path((_, id)): Path<(String, String)>,
    Form(_): Form<Nothing>,
) -> Result<Response, ConsoleError> {
    page.writable()?;
    let id: uuid::Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    let result = state
        .orgs
        .revoke_key(
            page.role,
            page.org_id(),
            id,
            &origin.by_user(page.signed.user().id),
        )
        .await
        .map_err(AppError::from);
    outcome(
        &state,
        &page.path("api-keys"),
        result,
        "The key is revoked.",
    )
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AgentForm {
    #[serde(default)]
    name: String,
}

fn agents_page(
    state: &AppState,
    page: &OrgPage,
    agents: &[tenantry_monitoring::Agent],
    input: &AgentForm,
    errors: &Errors,
    token: Option<&str>,
    included: bool,
) -> Markup {
    let admin = page.role.may(Action::Administer);
    let server = state.identity.keys().issuer();
    html! {
        h1 { "Agents" }
        p.muted { "An agent runs checks from another network (behind a firewall, another region) and reports to this server. Assign monitors to it when you edit them through the API." }
        @if let Some(token) = token {
            div.secret role="status" {
                p { strong { "Agent token" } " — shown only now. Run the agent where it should check from:" }
                div.copy {
                    code #secret-value { "tenantry agent --server " (server) " --token " (token) }
                    button.copy-button type="button" data-copy="secret-value" { "Copy" }
                }
            }
        }
        @if !included {
            p.flash.warn { "The organization's plan does not include agents." }
        } @else if admin {
            section.card {
                h2 { "Register an agent" }
                form.stack method="post" action=(page.path("agents")) novalidate {
                    (view::csrf(page.csrf()))
                    (view::form_errors(errors, &["name"]))
                    (field(Field::new("Name", "name").value(&input.name).required().errors(errors)
                        .hint("Where it runs, such as “office network”.")))
                    div { button.primary type="submit" { "Register agent" } }
                }
            }
        }
        @if agents.is_empty() {
            p.muted { "No agents." }
        } @else {
            div.table-wrap {
                table {
                    thead { tr { th { "Name" } th { "Registered" } th { "Last seen" } @if admin { th { span.sr { "Actions" } } } } }
                    tbody {
                        @for a in agents {
                            tr {
                                td { (a.name) }
                                td { (view::when(&a.created_at)) }
                                td { @if let Some(at) = &a.last_seen_at { (view::ago(at)) } @else { "never" } }
                                @if admin {
                                    td {
                                        (view::post_button(
                                            &page.path(&format!("agents/{}/delete", a.id)),
                                            "Delete",
                                            page.csrf(),
                                            Some(&format!("Delete the agent {}? Its monitors go back to the servers.", a.name)),
                                            "small danger",
                                        ))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn agents_of(
    state: &AppState,
    page: &OrgPage,
) -> Result<Vec<tenantry_monitoring::Agent>, ConsoleError> {
    let ctx = page.ctx(state).await?;
    let mut tx = ctx.begin_read().await?;
    let agents = tenantry_monitoring::list_agents(&mut tx, 500, None).await?;
    tx.commit().await?;
    Ok(agents)
}

pub(crate) async fn agents(
    State(state): State<AppState>,
    page: OrgPage,
) -> Result<Response, ConsoleError> {
    let agents = agents_of(&state, &page).await?;
    let included = state
        .orgs
        .feature(page.org_id(), tenantry_orgs::Feature::Agents)
        .await?;
    let body = agents_page(
        &state,
        &page,
        &agents,
        &AgentForm::default(),
        &Errors::default(),
        None,
        included,
    );
    Ok(page.render("Agents", body))
}

pub(crate) async fn register_agent(
    State(state): State<AppState>,
    origin: Origin,
    page: OrgPage,
    Form(input): Form<AgentForm>,
) -> Result<Response, ConsoleError> {
    page.writable()?;
    let ctx = page.ctx(&state).await?;
    let acting = Acting::new(&ctx, page.role, origin.by_user(page.signed.user().id));
    let registered = agent_case::register(&state, &acting, &input.name).await;
    let agents = agents_of(&state, &page).await?;
    match registered {
        Ok((_, token)) => {
            let body = agents_page(
                &state,
                &page,
                &agents,
                &AgentForm::default(),
                &Errors::default(),
                Some(&token),
                true,
            );
            Ok((StatusCode::CREATED, page.render("Agents", body)).into_response())
        }
        Err(e) => {
            let errors = form_error(e)?;
            let body = agents_page(&state, &page, &agents, &input, &errors, None, true);
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                page.render("Agents", body),
            )
                .into_response())
        }
    }
}

pub(crate) async fn delete_agent(
    State(state): State<AppState>,
    origin: Origin,
    page: OrgPage,
    Path((_, id)): Path<(String, String)>,
    Form(_): Form<Nothing>,
) -> Result<Response, ConsoleError> {
    page.writable()?;
    let id: uuid::Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    let ctx = page.ctx(&state).await?;
    let acting = Acting::new(&ctx, page.role, origin.by_user(page.signed.user().id));
    let result = agent_case::remove(&state, &acting, id).await;
    outcome(
        &state,
        &page.path("agents"),
        result,
        "The agent is deleted.",
    )
}
