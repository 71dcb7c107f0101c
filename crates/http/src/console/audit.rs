//! "Audit log" (admins): the organization's entries, newest first, filtered by actor and
//! action, with whether its hash chains verify ("Chain verified", or which entry is altered or
//! missing).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use tenantry_orgs::{Action, Feature};
use uuid::Uuid;

use super::error::{ConsoleError, form_urlencoded};
use super::org::OrgPage;
use super::view;
use crate::error::AppError;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AuditFilter {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    cursor: Option<String>,
}

pub(crate) async fn page(
    State(state): State<AppState>,
    page: OrgPage,
    Query(filter): Query<AuditFilter>,
) -> Result<Response, ConsoleError> {
    page.require(Action::Administer)?;
    state
        .orgs
        .require_feature(page.org_id(), Feature::AuditLog)
        .await?;
    let members = state.orgs.members(page.org_id()).await?;
    let keys = state.orgs.keys(page.org_id()).await?;
    let mut names: HashMap<Uuid, String> = members
        .iter()
        .map(|m| (m.user_id, m.email.clone()))
        .collect();
    names.extend(keys.iter().map(|k| (k.id, format!("API key {}", k.name))));
    let actor = match filter.actor.trim() {
        "" => None,
        text => Some(
            text.parse::<Uuid>()
                .map_err(|_| AppError::invalid("actor", "choose an actor from the list"))?,
        ),
    };
    let action = match filter.action.trim() {
        "" => None,
        text => Some(
            text.parse::<tenantry_audit::ActionFilter>()
                .map_err(|e| AppError::invalid("action", e))?,
        ),
    };
    let query = tenantry_audit::Filter {
        actor,
        action,
        since: None,
        limit: 50,
        cursor: filter.cursor.clone(),
    };
    let ctx = page.ctx(&state).await?;
    let (entries, next) = match tenantry_audit::list(&state.tenancy, &ctx, &query).await {
        Ok(found) => found,
        Err(e) if e.downcast_ref::<tenantry_audit::InvalidCursor>().is_some() => {
            return Err(AppError::invalid("cursor", "not a cursor this server returned").into());
        }
        Err(e) => return Err(AppError::Unexpected(e).into()),
    };
    let verification =
        tenantry_audit::verify_through_door(state.tenancy.control_db(), &ctx).await?;
    let next_link = next.map(|cursor| {
        format!(
            "{}?actor={}&action={}&cursor={}",
            page.path("audit"),
            form_urlencoded(&filter.actor),
            form_urlencoded(&filter.action),
            form_urlencoded(&cursor)
        )
    });
    let body = html! {
        h1 { "Audit log" }
        @if verification.is_intact() {
            p.flash role="status" data-chain="verified" {
                strong { "Chain verified" } ": "
                (verification.organization_entries + verification.tenant_entries)
                " entries, each hash-chained to the one before; none is altered or missing."
            }
        } @else {
            div.alert role="alert" data-chain="broken" {
                p { strong { "The chain does not verify." } }
                @for problem in &verification.problems { p { (problem) } }
            }
        }
        form.card.stack method="get" action=(page.path("audit")) {
            div.grid2 {
                div.field {
                    label for="f-actor" { "Actor" }
                    select #f-actor name="actor" {
                        option value="" { "Anyone" }
                        @for m in &members {
                            option value=(m.user_id) selected[filter.actor == m.user_id.to_string()] { (m.email) }
                        }
                        @for k in &keys {
                            option value=(k.id) selected[filter.actor == k.id.to_string()] { "API key " (k.name) }
                        }
                    }
                }
                (view::field(view::Field::new("Action", "action").value(&filter.action)
                    .hint("Exactly, such as member.added, or a family ending in a dot, such as monitor.")))
            }
            div { button type="submit" { "Filter" } }
        }
        @if entries.is_empty() {
            p.muted { "No entries match." }
        } @else {
            div.table-wrap {
                table {
                    thead { tr { th { "When" } th { "Actor" } th { "Action" } th { "Target" } th { "From" } } }
                    tbody {
                        @for e in &entries {
                            tr {
                                td { (view::when(&e.at)) }
                                td {
                                    @match e.actor_id {
                                        Some(id) => { (names.get(&id).cloned().unwrap_or_else(|| id.to_string())) }
                                        None => { (format!("{:?}", e.actor_kind).to_lowercase()) }
                                    }
                                }
                                td { code { (e.action) } }
                                td { (e.target_kind) @if let Some(t) = &e.target_id { " " code { (t) } } }
                                td.muted { (e.ip.as_deref().unwrap_or("—")) }
                            }
                        }
                    }
                }
            }
            @if let Some(link) = next_link {
                p { a href=(link) { "Older entries" } }
            }
        }
    };
    Ok(page.render("Audit log", body))
}
