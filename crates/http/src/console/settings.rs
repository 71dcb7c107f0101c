//! "Settings" (the organization's profile, its plan, the default organization, leaving, and
//! deleting it) and "Usage" (everything used against the plan's limits, and API requests per
//! day).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use tenantry_orgs::{Action, OrgDetails, ProfileChange, Used};

use super::account::Nothing;
use super::charts;
use super::error::ConsoleError;
use super::org::{OrgPage, form_error, outcome};
use super::session::{self, Form, SignedIn};
use super::view::{self, Errors, Field, field};
use crate::audit::Origin;
use crate::error::AppError;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ProfileForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    slug: String,
    #[serde(default)]
    logo_url: String,
    #[serde(default)]
    billing_email: String,
}

fn limit_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "unlimited".to_owned(),
        v => v.to_string(),
    }
}

fn settings_page(
    page: &OrgPage,
    details: &OrgDetails,
    input: &ProfileForm,
    errors: &Errors,
) -> Markup {
    let admin = page.role.may(Action::Administer);
    let owner = page.role.may(Action::Own);
    let org = &details.summary;
    let default = page.signed.user().default_org_id == Some(org.id);
    html! {
        h1 { "Settings" }
        section.card {
            h2 { "Profile" }
            @if admin {
                form.stack method="post" action=(page.path("settings")) novalidate {
                    (view::csrf(page.csrf()))
                    (view::form_errors(errors, &["name", "slug", "logo_url", "billing_email"]))
                    (field(Field::new("Name", "name").value(&input.name).required().errors(errors)))
                    (field(Field::new("Slug", "slug").value(&input.slug).required().errors(errors)
                        .hint("Used in addresses: changing it changes every link to this organization.")))
                    (field(Field::new("Logo URL", "logo_url").kind("url").value(&input.logo_url).errors(errors)
                        .hint("An https address of a square image, shown in the header.")))
                    (field(Field::new("Billing email", "billing_email").kind("email").value(&input.billing_email).errors(errors)))
                    div { button.primary type="submit" { "Save" } }
                }
            } @else {
                dl.facts {
                    dt { "Name" } dd { (org.name) }
                    dt { "Slug" } dd { (org.slug) }
                    dt { "Logo URL" } dd { (org.logo_url.as_deref().unwrap_or("—")) }
                    dt { "Billing email" } dd { (org.billing_email.as_deref().unwrap_or("—")) }
                }
                p.muted { "Only admins and owners change the profile." }
            }
        }
        section.card {
            h2 { "Plan: " (plan_name(&org.plan)) }
            div.grid2 {
                div {
                    h3 { "Limits" }
                    dl.facts {
                        @for (key, value) in &details.limits {
                            dt { code { (key) } } dd { (limit_text(value)) }
                        }
                    }
                }
                div {
                    h3 { "Features" }
                    dl.facts {
                        @for (key, value) in &details.features {
                            dt { code { (key) } } dd { @if value == &serde_json::Value::Bool(true) { "included" } @else { "not included" } }
                        }
                    }
                }
            }
            p.muted { "Plans are changed by the platform's operators." }
        }
        section.card {
            h2 { "Your membership" }
            p { "You are " strong { (page.role.as_str()) } " of " (org.name) "." }
            div.actions {
                @if default {
                    span.muted { "This is your default organization: you start here when you log in." }
                } @else {
                    (view::post_button(&page.path("settings/default"), "Set as default organization", page.csrf(), None, ""))
                }
                (view::post_button(
                    &page.path("settings/leave"),
                    "Leave organization",
                    page.csrf(),
                    Some(&format!("Leave {}? You lose access at once.", org.name)),
                    "danger",
                ))
            }
        }
        @if owner {
            section.card.danger-zone {
                h2 { "Delete organization" }
                p {
                    "Deleting " strong { (org.name) } " stops its monitors and closes it for every member. "
                    "It can be restored by the platform's operators during the retention window; after that, everything it owns is purged for good. "
                    "Every owner is emailed the purge date."
                }
                p { a href=(page.path("export")) { "Download an export" } " of everything it owns first." }
                form.stack method="post" action=(page.path("settings/delete")) {
                    (view::csrf(page.csrf()))
                    (field(Field::new("Type the slug to confirm", "confirm").required().errors(errors)
                        .hint(&format!("Type “{}”.", org.slug))))
                    div { button.danger type="submit" { "Delete organization" } }
                }
            }
        }
    }
}

fn plan_name(plan: &str) -> String {
    let mut chars = plan.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn profile_of(details: &OrgDetails) -> ProfileForm {
    ProfileForm {
        name: details.summary.name.clone(),
        slug: details.summary.slug.clone(),
        logo_url: details.summary.logo_url.clone().unwrap_or_default(),
        billing_email: details.summary.billing_email.clone().unwrap_or_default(),
    }
}

pub(crate) async fn page(
    State(state): State<AppState>,
    page: OrgPage,
) -> Result<Response, ConsoleError> {
    let details = state.orgs.details(&page.record, page.role).await?;
    let body = settings_page(&page, &details, &profile_of(&details), &Errors::default());
    Ok(page.render("Settings", body))
}

/// Saves the profile (admins); a new slug moves the page to the new address.
pub(crate) async fn save(
    State(state): State<AppState>,
    origin: Origin,
    page: OrgPage,
    Form(input): Form<ProfileForm>,
) -> Result<Response, ConsoleError> {
    page.writable()?;
    let optional = |s: &str| Some(s.trim().to_owned());
    let change = ProfileChange {
        name: Some(input.name.clone()),
        slug: Some(input.slug.trim().to_owned()).filter(|s| s != page.slug()),
        logo_url: optional(&input.logo_url),
        billing_email: optional(&input.billing_email),
        settings: None,
    };
    match state
        .orgs
        .update(
            page.role,
            page.org_id(),
            &change,
            &origin.by_user(page.signed.user().id),
        )
        .await
    {
        Ok(org) => Ok(session::redirect_with(
            &state,
            &format!("/o/{}/settings", org.slug),
            "The profile is saved.",
        )),
        Err(e) => {
            let errors = form_error(AppError::from(e))?;
            let details = state.orgs.details(&page.record, page.role).await?;
            let body = settings_page(&page, &details, &input, &errors);
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                page.render("Settings", body),
            )
                .into_response())
        }
    }
}

pub(crate) async fn make_default(
    State(state): State<AppState>,
    page: OrgPage,
    Form(_): Form<Nothing>,
) -> Result<Response, ConsoleError> {
    let result = state
        .identity
        .set_default_org(page.signed.user().id, Some(page.org_id()))
        .await
        .map_err(AppError::from);
    outcome(
        &state,
        &page.path("settings"),
        result,
        &format!("{} is your default organization.", page.record.name),
    )
}

/// Leaves the organization; the last owner is told why they cannot.
pub(crate) async fn leave(
    State(state): State<AppState>,
    origin: Origin,
    page: OrgPage,
    Form(_): Form<Nothing>,
) -> Result<Response, ConsoleError> {
    let user = page.signed.user().id;
    match state
        .orgs
        .leave(page.org_id(), user, &origin.by_user(user))
        .await
    {
        Ok(()) => Ok(session::redirect_with(
            &state,
            "/",
            &format!("You left {}.", page.record.name),
        )),
        Err(e) => outcome::<()>(&state, &page.path("settings"), Err(e.into()), ""),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct DeleteForm {
    #[serde(default)]
    confirm: String,
}

/// Soft-deletes the organization (owners), once its slug is typed.
pub(crate) async fn delete(
    State(state): State<AppState>,
    origin: Origin,
    page: OrgPage,
    Form(input): Form<DeleteForm>,
) -> Result<Response, ConsoleError> {
    page.require(Action::Own)?;
    if input.confirm.trim() != page.slug() {
        let details = state.orgs.details(&page.record, page.role).await?;
        let errors = Errors::one(
            "confirm",
            format!("Type “{}” to delete this organization.", page.slug()),
        );
        let body = settings_page(&page, &details, &profile_of(&details), &errors);
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            page.render("Settings", body),
        )
            .into_response());
    }
    let user = page.signed.user().id;
    let result = crate::cases::organizations::delete(
        &state,
        &origin.by_user(user),
        user,
        &page.record,
        page.role,
        None,
    )
    .await;
    match result {
        Ok(()) => Ok(session::redirect_with(
            &state,
            "/",
            &format!(
                "{} is deleted. Every owner was emailed how to restore it or download its data.",
                page.record.name
            ),
        )),
        Err(e) => outcome::<()>(&state, &page.path("settings"), Err(e), ""),
    }
}

/// `/o/{slug}/export`: the owner's download of everything the organization owns.
pub(crate) async fn export(
    State(state): State<AppState>,
    origin: Origin,
    signed: SignedIn,
    axum::extract::Path(slug): axum::extract::Path<String>,
) -> Result<Response, ConsoleError> {
    let user = signed.user().id;
    Ok(crate::export::download(&state, origin.by_user(user), user, &slug).await?)
}

fn meter(title: &str, used: &Used, unit: &str) -> Markup {
    html! {
        section.card {
            h2 { (title) }
            p.figure {
                (used.used) @if let Some(limit) = used.limit { " / " (limit) } " " span.muted { (unit) }
            }
            @match used.limit {
                Some(limit) if limit > 0 => {
                    meter min="0" max=(limit) low=(limit * 7 / 10) high=(limit * 9 / 10) optimum="0" value=(used.used)
                        aria-label={(title) ": " (used.used) " of " (limit)} {}
                }
                _ => { p.muted { "No limit on this plan." } }
            }
        }
    }
}

/// "Usage": each count against its limit, storage, and API requests per day this period.
pub(crate) async fn usage(
    State(state): State<AppState>,
    page: OrgPage,
) -> Result<Response, ConsoleError> {
    let report = crate::cases::usage::report(&state, &page.record).await?;
    let days = crate::cases::usage::per_day(&state, &page.record).await?;
    let body = html! {
        h1 { "Usage" }
        p.muted { "Plan: " (plan_name(&report.plan)) ". This period started " (view::when(&report.period_start)) "." }
        div.usage {
            (meter("Users", &report.users, "members and pending invitations"))
            (meter("Monitors", &report.monitors, "monitors"))
            (meter("Agents", &report.agents, "agents"))
            (meter("API keys", &report.api_keys, "keys"))
            section.card {
                h2 { "API requests this period" }
                p.figure { (report.api_requests.used) }
                @if let Some(rate) = report.api_requests.limit {
                    p.muted { "Rate limit: " (rate) " requests per minute." }
                }
            }
            section.card {
                h2 { "Storage" }
                p.figure { (charts::bytes(report.storage_bytes)) }
            }
        }
        section.card {
            h2 { "API requests per day" }
            (charts::daily_bars(&days))
        }
    };
    Ok(page.render("Usage", body))
}
