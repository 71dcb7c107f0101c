//! The organization a page is about ([`OrgPage`], from `/o/{org_slug}/…`), creating an
//! organization, and the organization's start page.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use tenantry_orgs::{Action, OrgSummary, Role};
use tenantry_tenancy::{Isolation, TenantCtx, TenantRecord, TenantStatus};

use super::error::ConsoleError;
use super::session::{Form, SignedIn};
use super::view::{self, Chrome, Errors, Field, SECTIONS, field};
use crate::audit::Origin;
use crate::error::AppError;
use crate::state::AppState;

/// A page of an organization the signed-in user belongs to. A missing organization, one the
/// user is not a member of and a deleted one are the same 404 page.
#[derive(Debug, Clone)]
pub(crate) struct OrgPage {
    pub signed: SignedIn,
    pub record: TenantRecord,
    pub role: Role,
    pub chrome: Chrome,
}

impl OrgPage {
    pub fn slug(&self) -> &str {
        &self.record.slug
    }

    pub fn org_id(&self) -> uuid::Uuid {
        self.record.id.as_uuid()
    }

    pub fn csrf(&self) -> &str {
        self.signed.csrf()
    }

    /// `/o/{slug}/{rest}`.
    pub fn path(&self, rest: &str) -> String {
        format!("/o/{}/{rest}", self.record.slug)
    }

    /// Refuses (403) unless the user's role allows `action`.
    pub fn require(&self, action: Action) -> Result<(), ConsoleError> {
        Ok(crate::extract::require(self.role, action)?)
    }

    /// Refuses changes to a suspended organization.
    pub fn writable(&self) -> Result<(), ConsoleError> {
        match self.record.status {
            TenantStatus::Active => Ok(()),
            _ => Err(AppError::suspended().into()),
        }
    }

    /// The door to the organization's data.
    pub async fn ctx(&self, state: &AppState) -> Result<TenantCtx, ConsoleError> {
        Ok(state.tenancy.resolve_id(self.record.id).await?)
    }

    /// The page, in the frame with this organization's header.
    pub fn render(&self, title: &str, body: Markup) -> Response {
        Html(view::page(&self.chrome, title, body).into_string()).into_response()
    }
}

/// The section of an organization's pages a path is in.
fn section_of(path: &str) -> &'static str {
    let section = path.split('/').nth(3).unwrap_or_default();
    SECTIONS
        .iter()
        .find(|(s, _, _)| *s == section)
        .map_or("monitors", |(s, _, _)| s)
}

impl FromRequestParts<AppState> for OrgPage {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ConsoleError> {
        let signed = SignedIn::from_request_parts(parts, state).await?;
        let path = parts.uri.path().to_owned();
        let slug = path.split('/').nth(2).unwrap_or_default();
        let (record, role) = state
            .orgs
            .for_member(slug, signed.user().id)
            .await
            .map_err(AppError::from)?;
        if !matches!(
            record.status,
            TenantStatus::Active | TenantStatus::Suspended
        ) {
            return Err(AppError::NotFound.into());
        }
        let chrome = chrome(state, &signed, Some((&record, role, section_of(&path)))).await?;
        Ok(OrgPage {
            signed,
            record,
            role,
            chrome,
        })
    }
}

/// The header of a signed-in user's page: their organizations (active and suspended ones) and
/// the current one.
pub(crate) async fn chrome(
    state: &AppState,
    signed: &SignedIn,
    current: Option<(&TenantRecord, Role, &'static str)>,
) -> Result<Chrome, ConsoleError> {
    let orgs: Vec<OrgSummary> = state
        .orgs
        .of_user(signed.user().id)
        .await?
        .into_iter()
        .filter(|o| matches!(o.status, TenantStatus::Active | TenantStatus::Suspended))
        .collect();
    let current = current.map(|(record, role, section)| {
        let summary = orgs
            .iter()
            .find(|o| o.id == record.id.as_uuid())
            .cloned()
            .unwrap_or_else(|| tenantry_orgs::Orgs::summary(record, role));
        (summary, section)
    });
    Ok(Chrome {
        user: signed.user().clone(),
        csrf: signed.csrf().to_owned(),
        orgs,
        current,
        flash: signed.flash.clone(),
    })
}

/// `/o/{slug}`: the organization's monitors.
pub(crate) async fn home(page: OrgPage) -> Redirect {
    Redirect::to(&page.path("monitors"))
}

/// Any other path under an organization: the 404 page (after the membership check, so that it
/// is the same page whether or not the organization is the user's).
pub(crate) async fn missing(_: SignedIn) -> Response {
    super::not_found()
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct NewOrg {
    #[serde(default)]
    name: String,
    #[serde(default)]
    slug: String,
}

fn new_org_form(csrf: &str, input: &NewOrg, errors: &Errors) -> Markup {
    html! {
        section.card.narrow {
            h1 { "Create organization" }
            p.muted { "An organization owns monitors, alert channels, status pages and agents; you are its owner and can invite your team." }
            form.stack method="post" action="/orgs/new" {
                (view::csrf(csrf))
                (view::form_errors(errors, &["name", "slug"]))
                (field(Field::new("Organization name", "name").value(&input.name).required().errors(errors)))
                (field(Field::new("Slug", "slug").value(&input.slug).errors(errors)
                    .hint("Optional: lowercase letters, digits and dashes, used in addresses. Made from the name when empty.")))
                div { button.primary type="submit" { "Create" } }
            }
        }
    }
}

/// The "Create organization" page.
pub(crate) async fn new_page(
    State(state): State<AppState>,
    signed: SignedIn,
) -> Result<Response, ConsoleError> {
    let chrome = chrome(&state, &signed, None).await?;
    let body = new_org_form(signed.csrf(), &NewOrg::default(), &Errors::default());
    Ok(Html(view::page(&chrome, "Create organization", body).into_string()).into_response())
}

/// Creates an organization (the user is its owner) and opens it.
pub(crate) async fn create(
    State(state): State<AppState>,
    origin: Origin,
    signed: SignedIn,
    Form(input): Form<NewOrg>,
) -> Result<Response, ConsoleError> {
    let slug = Some(input.slug.trim()).filter(|s| !s.is_empty());
    let user = signed.user().id;
    match state
        .orgs
        .create(
            user,
            &input.name,
            slug,
            Isolation::Shared,
            &origin.by_user(user),
        )
        .await
    {
        Ok(org) => Ok(super::session::redirect_with(
            &state,
            &format!("/o/{}/monitors", org.slug),
            &format!("{} is created. Invite your team from Members.", org.name),
        )),
        Err(e) => {
            let errors = form_error(AppError::from(e))?;
            let chrome = chrome(&state, &signed, None).await?;
            let body = new_org_form(signed.csrf(), &input, &errors);
            Ok((
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                Html(view::page(&chrome, "Create organization", body).into_string()),
            )
                .into_response())
        }
    }
}

/// The errors a form shows for a refused change: a field's error next to it, any other
/// refusal (403, 409, 410, 429) above the form. Errors on our side are not the form's.
pub(crate) fn form_error(e: AppError) -> Result<Errors, ConsoleError> {
    match e {
        AppError::Validation { field, detail } => Ok(Errors::one(field, detail)),
        AppError::NotFound => Err(e.into()),
        e => {
            let (status, _, _, detail, _) = e.parts();
            if status.is_server_error() || status == axum::http::StatusCode::UNAUTHORIZED {
                Err(e.into())
            } else {
                Ok(Errors::one("", detail))
            }
        }
    }
}

/// The message a refused action leaves on the page it returns to; errors on our side are an
/// error page.
pub(crate) fn refusal(e: impl Into<AppError>) -> Result<String, ConsoleError> {
    let e = e.into();
    let errors = form_error(e)?;
    Ok(errors
        .general(&[])
        .first()
        .map_or_else(String::new, |s| (*s).to_owned()))
}

/// Redirects to `to` with the outcome of an action: `done` when it succeeded, the reason when
/// it was refused.
pub(crate) fn outcome<T>(
    state: &AppState,
    to: &str,
    result: Result<T, AppError>,
    done: &str,
) -> Result<Response, ConsoleError> {
    let message = match result {
        Ok(_) => done.to_owned(),
        Err(e) => refusal(e)?,
    };
    Ok(super::session::redirect_with(state, to, &message))
}
