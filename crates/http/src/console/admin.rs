//! "Admin", for platform admins only (anyone else gets the 404 page): every tenant with its
//! status, plan, tier, placement and usage; creating one; and a tenant's page to change its
//! plan, limits and features, suspend, activate or restore it, move it to another tier
//! (showing the move's progress), and delete it (soft, or a purge confirmed by the slug, as the
//! CLI asks). Every change goes through `cases::tenants`, as the admin API does.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use serde_json::{Map, Value};
use tenantry_orgs::{EntitlementChange, Limit};
use tenantry_tenancy::{Isolation, TenantRecord, TenantStatus};

use super::error::ConsoleError;
use super::org::{chrome, form_error, outcome};
use super::session::{self, Form, SignedIn};
use super::view::{self, Errors, Field, field, select};
use crate::audit::Origin;
use crate::cases::tenants::{self as case, Transition};
use crate::error::AppError;
use crate::state::AppState;

/// A signed-in platform admin (checked against the users table on every request); anyone else
/// gets the 404 page.
pub(crate) struct Admin(SignedIn);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ConsoleError> {
        // The session layer read the user from the users table for this request.
        let signed = SignedIn::from_request_parts(parts, state).await?;
        if signed.user().platform_admin {
            Ok(Admin(signed))
        } else {
            Err(AppError::NotFound.into())
        }
    }
}

const TIERS: &[(&str, &str)] = &[
    ("shared", "shared (row-level security)"),
    ("schema", "schema per tenant"),
    ("database", "database per tenant"),
];

fn tier(text: &str) -> Result<Isolation, AppError> {
    match text {
        "shared" => Ok(Isolation::Shared),
        "schema" => Ok(Isolation::Schema),
        "database" => Ok(Isolation::Database),
        _ => Err(AppError::invalid(
            "isolation",
            "choose shared, schema or database",
        )),
    }
}

async fn render(
    state: &AppState,
    admin: &Admin,
    title: &str,
    status: StatusCode,
    body: Markup,
) -> Result<Response, ConsoleError> {
    let chrome = chrome(state, &admin.0, None).await?;
    Ok((status, Html(view::page(&chrome, title, body).into_string())).into_response())
}

type Fields = Vec<(String, String)>;

fn value<'a>(fields: &'a Fields, name: &str) -> &'a str {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map_or("", |(_, v)| v.as_str())
}

async fn tenants_page(
    state: &AppState,
    admin: &Admin,
    fields: &Fields,
    errors: &Errors,
) -> Result<Markup, ConsoleError> {
    let tenants = state.tenancy.list().await?;
    let plans = state.orgs.plans().await?;
    let plan_options: Vec<(&str, &str)> = plans
        .iter()
        .map(|p| (p.name.as_str(), p.name.as_str()))
        .collect();
    // Every tenant's member count, in one query.
    let counts: std::collections::HashMap<uuid::Uuid, i64> =
        sqlx::query_as("SELECT org_id, count(*) FROM orgs.memberships GROUP BY org_id")
            .fetch_all(state.tenancy.control_db())
            .await?
            .into_iter()
            .collect();
    let rows: Vec<_> = tenants
        .iter()
        .map(|t| (t, counts.get(&t.id.as_uuid()).copied().unwrap_or(0)))
        .collect();
    let plan = match value(fields, "plan") {
        "" => "free",
        p => p,
    };
    let isolation = match value(fields, "isolation") {
        "" => "shared",
        i => i,
    };
    Ok(html! {
        h1 { "Admin" }
        h2 { "Tenants" }
        div.table-wrap {
            table {
                thead { tr { th { "Slug" } th { "Name" } th { "Status" } th { "Plan" } th { "Tier" } th { "Placement" } th.num { "Members" } } }
                tbody {
                    @for (t, members) in &rows {
                        tr data-tenant=(t.slug) {
                            td { a href={"/admin/tenants/" (t.slug)} { (t.slug) } }
                            td { (t.name) }
                            td { (t.status) }
                            td { (t.plan) }
                            td { (t.isolation) }
                            td { code { (t.server) "/" (t.database_name) "/" (t.schema_name) } }
                            td.num { (members) }
                        }
                    }
                }
            }
        }
        section.card {
            h2 { "Create a tenant" }
            form.stack method="post" action="/admin" novalidate {
                (view::csrf(admin.0.csrf()))
                (view::form_errors(errors, &["name", "slug", "admin_email", "plan", "isolation"]))
                (field(Field::new("Name", "name").value(value(fields, "name")).required().errors(errors)))
                (field(Field::new("Slug", "slug").value(value(fields, "slug")).required().errors(errors)))
                (field(Field::new("Owner's email", "admin_email").kind("email").value(value(fields, "admin_email")).required().errors(errors)
                    .hint("Invited by email as the tenant's owner.")))
                (select("Plan", "plan", &plan_options, plan, errors.of("plan")))
                (select("Tier", "isolation", TIERS, isolation, errors.of("isolation")))
                div { button.primary type="submit" { "Create tenant" } }
            }
        }
    })
}

pub(crate) async fn tenants(
    State(state): State<AppState>,
    admin: Admin,
) -> Result<Response, ConsoleError> {
    let body = tenants_page(&state, &admin, &Fields::new(), &Errors::default()).await?;
    render(&state, &admin, "Admin", StatusCode::OK, body).await
}

pub(crate) async fn create(
    State(state): State<AppState>,
    origin: Origin,
    admin: Admin,
    Form(fields): Form<Fields>,
) -> Result<Response, ConsoleError> {
    let user = admin.0.user().clone();
    let created = match tier(value(&fields, "isolation")) {
        Ok(isolation) => {
            let spec = case::NewTenantSpec {
                name: value(&fields, "name"),
                slug: value(&fields, "slug").trim(),
                admin_email: value(&fields, "admin_email"),
                plan: Some(value(&fields, "plan")).filter(|p| !p.is_empty()),
                isolation,
                server: None,
            };
            case::create(&state, &origin.by_user(user.id), &user, &spec).await
        }
        Err(e) => Err(e),
    };
    match created {
        Ok((record, invitation)) => Ok(session::redirect_with(
            &state,
            &format!("/admin/tenants/{}", record.slug),
            &format!(
                "{} is created in the {} tier; {} is invited as its owner.",
                record.name, record.isolation, invitation.email
            ),
        )),
        Err(e) => {
            let errors = form_error(e)?;
            let body = tenants_page(&state, &admin, &fields, &errors).await?;
            render(
                &state,
                &admin,
                "Admin",
                StatusCode::UNPROCESSABLE_ENTITY,
                body,
            )
            .await
        }
    }
}

fn limit_value(value: Option<&Value>) -> String {
    match value {
        Some(Value::Null) => "unlimited".to_owned(),
        Some(v) => v.to_string(),
        None => String::new(),
    }
}

async fn tenant_page(
    state: &AppState,
    admin: &Admin,
    record: &TenantRecord,
    errors: &Errors,
) -> Result<Markup, ConsoleError> {
    let entitlements = state.orgs.entitlements(record).await?;
    let plans = state.orgs.plans().await?;
    let plan_options: Vec<(&str, &str)> = plans
        .iter()
        .map(|p| (p.name.as_str(), p.name.as_str()))
        .collect();
    let moving = state.moves.of(&record.slug);
    let csrf = admin.0.csrf();
    let base = format!("/admin/tenants/{}", record.slug);
    let live = matches!(
        record.status,
        TenantStatus::Active | TenantStatus::Suspended
    );
    Ok(html! {
        p { a href="/admin" { "← All tenants" } }
        h1 { (record.name) " " span.muted { "(" (record.slug) ")" } }
        section.card {
            dl.facts {
                dt { "Status" } dd data-field="status" { (record.status) }
                dt { "Plan" } dd { (record.plan) }
                dt { "Tier" } dd data-field="tier" { (record.isolation) }
                dt { "Placement" } dd { code { (record.server) "/" (record.database_name) "/" (record.schema_name) } }
                dt { "Provisioning" } dd { (record.provision_step) @if let Some(e) = &record.last_error { " — " (e) } }
                dt { "Created" } dd { (view::when(&record.created_at)) }
                @if let Some(at) = &record.deleted_at { dt { "Deleted" } dd { (view::when(at)) } }
            }
            div.actions {
                @match record.status {
                    TenantStatus::Active => { (view::post_button(&format!("{base}/status?to=suspend"), "Suspend", csrf, Some("Suspend this tenant? Its members can look but not change anything."), "")) }
                    TenantStatus::Suspended => { (view::post_button(&format!("{base}/status?to=activate"), "Activate", csrf, None, "")) }
                    TenantStatus::Deleted => { (view::post_button(&format!("{base}/status?to=restore"), "Restore", csrf, None, "")) }
                    _ => {}
                }
            }
        }
        (view::form_errors(errors, &["plan", "confirm", "to"]))
        @if record.status != TenantStatus::Deleted {
            section.card {
                h2 { "Plan, limits and features" }
                form.stack method="post" action=(base) {
                    (view::csrf(csrf))
                    (select("Plan", "plan", &plan_options, &record.plan, errors.of("plan")))
                    h3 { "Limits" }
                    p.hint { "The tenant's own overrides: a number or “unlimited”; an empty field leaves it as it is." }
                    div.grid2 {
                        @for limit in Limit::ALL {
                            @let key = limit.key();
                            @let current = limit_value(entitlements.overrides.limits.get(key));
                            (field(Field::new(key, &format!("limit.{key}")).value(&current).errors(errors)
                                .hint(&format!("Effective: {}", limit_value(entitlements.limits.get(key))))))
                        }
                    }
                    h3 { "Features" }
                    div.grid2 {
                        @for (key, effective) in &entitlements.features {
                            @let chosen = match entitlements.overrides.features.get(key) { Some(Value::Bool(true)) => "on", Some(Value::Bool(false)) => "off", _ => "" };
                            (select(key, &format!("feature.{key}"), &[("", "as it is"), ("on", "on"), ("off", "off")], chosen, None))
                            span.hint { "Effective: " @if effective == &Value::Bool(true) { "on" } @else { "off" } }
                        }
                    }
                    div { button.primary type="submit" { "Save" } }
                }
            }
        }
        @if live {
            section.card {
                h2 { "Move to another tier" }
                @if let Some(m) = &moving {
                    div role="status" data-move=(if m.finished { "finished" } else { "running" }) {
                        p { strong { @if m.finished { "The last move:" } @else { "Moving — reload to follow:" } } }
                        ol { @for line in &m.lines { li { (line) } } }
                    }
                }
                form.stack method="post" action={(base) "/move"} {
                    (view::csrf(csrf))
                    (select("Tier", "to", TIERS, "", errors.of("to")))
                    p.hint { "The data is copied and verified while the tenant is in use; writes pause for under a second at the switch." }
                    div { button type="submit" { "Move" } }
                }
            }
        }
        section.card.danger-zone {
            h2 { "Delete" }
            @if live {
                p { "A soft delete closes the tenant for its members and emails its owners; it can be restored until the retention window ends." }
                (view::post_button(&format!("{base}/delete"), "Delete (restorable)", csrf, Some("Delete this tenant? It can be restored during the retention window."), "danger"))
            }
            p { "A purge removes its storage and every row it owns, for good. Type the slug to confirm." }
            form.stack method="post" action={(base) "/delete"} {
                (view::csrf(csrf))
                input type="hidden" name="hard" value="true";
                (field(Field::new("Slug to confirm the purge", "confirm").required().errors(errors)))
                div { button.danger type="submit" { "Purge for good" } }
            }
        }
    })
}

pub(crate) async fn tenant(
    State(state): State<AppState>,
    admin: Admin,
    Path(slug): Path<String>,
) -> Result<Response, ConsoleError> {
    let record = case::tenant(&state, &slug).await?;
    let body = tenant_page(&state, &admin, &record, &Errors::default()).await?;
    render(&state, &admin, &record.name, StatusCode::OK, body).await
}

/// The plan, limit and feature change a form describes.
fn entitlement_change(fields: &Fields) -> Result<EntitlementChange, AppError> {
    let mut limits = Map::new();
    let mut features = Map::new();
    for (name, value) in fields {
        if let Some(key) = name.strip_prefix("limit.") {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            let parsed = if value.eq_ignore_ascii_case("unlimited") {
                Value::Null
            } else {
                Value::from(
                    value
                        .parse::<i64>()
                        .map_err(|_| AppError::invalid(name, "a whole number, or “unlimited”"))?,
                )
            };
            limits.insert(key.to_owned(), parsed);
        } else if let Some(key) = name.strip_prefix("feature.") {
            match value.as_str() {
                "on" => {
                    features.insert(key.to_owned(), Value::Bool(true));
                }
                "off" => {
                    features.insert(key.to_owned(), Value::Bool(false));
                }
                _ => {}
            }
        }
    }
    serde_json::from_value(serde_json::json!({
        "plan": value(fields, "plan"),
        "limits": limits,
        "features": features,
    }))
    .map_err(|e| AppError::BadRequest(e.to_string()))
}

pub(crate) async fn change(
    State(state): State<AppState>,
    origin: Origin,
    admin: Admin,
    Path(slug): Path<String>,
    Form(fields): Form<Fields>,
) -> Result<Response, ConsoleError> {
    let record = case::tenant(&state, &slug).await?;
    let result = match entitlement_change(&fields) {
        Ok(change) => state
            .orgs
            .change_entitlements(
                record.id.as_uuid(),
                &change,
                &origin.by_user(admin.0.user().id),
            )
            .await
            .map_err(AppError::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Ok(session::redirect_with(
            &state,
            &format!("/admin/tenants/{slug}"),
            "The plan, limits and features are saved; they apply to the next request.",
        )),
        Err(e) => {
            let errors = form_error(e)?;
            let body = tenant_page(&state, &admin, &record, &errors).await?;
            render(
                &state,
                &admin,
                &record.name,
                StatusCode::UNPROCESSABLE_ENTITY,
                body,
            )
            .await
        }
    }
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct StatusQuery {
    to: String,
}

pub(crate) async fn set_status(
    State(state): State<AppState>,
    origin: Origin,
    admin: Admin,
    Path(slug): Path<String>,
    axum::extract::Query(query): axum::extract::Query<StatusQuery>,
    Form(_): Form<super::account::Nothing>,
) -> Result<Response, ConsoleError> {
    let transition = match query.to.as_str() {
        "activate" => Transition::Activate,
        "suspend" => Transition::Suspend,
        "restore" => Transition::Restore,
        _ => return Err(AppError::NotFound.into()),
    };
    let result = case::change_status(
        &state,
        &origin.by_user(admin.0.user().id),
        &slug,
        transition,
    )
    .await;
    let done = match transition {
        Transition::Activate => "The tenant is active.",
        Transition::Suspend => "The tenant is suspended.",
        Transition::Restore => "The tenant is restored.",
    };
    outcome(&state, &format!("/admin/tenants/{slug}"), result, done)
}

pub(crate) async fn move_tier(
    State(state): State<AppState>,
    origin: Origin,
    admin: Admin,
    Path(slug): Path<String>,
    Form(fields): Form<Fields>,
) -> Result<Response, ConsoleError> {
    let result = match tier(value(&fields, "to")) {
        Ok(to) => {
            case::start_move(&state, origin.by_user(admin.0.user().id), &slug, to, None).await
        }
        Err(e) => Err(AppError::invalid("to", e.to_string())),
    };
    outcome(
        &state,
        &format!("/admin/tenants/{slug}"),
        result,
        "The move started; reload to follow it.",
    )
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    origin: Origin,
    admin: Admin,
    Path(slug): Path<String>,
    Form(fields): Form<Fields>,
) -> Result<Response, ConsoleError> {
    let hard = value(&fields, "hard") == "true";
    let user = admin.0.user().clone();
    let confirm = value(&fields, "confirm").trim().to_owned();
    let result = case::delete(
        &state,
        &origin.by_user(user.id),
        &user,
        &slug,
        hard.then_some(confirm.as_str()),
    )
    .await;
    match result {
        Ok(()) if hard => Ok(session::redirect_with(
            &state,
            "/admin",
            &format!("{slug} is purged."),
        )),
        Ok(()) => Ok(session::redirect_with(
            &state,
            &format!("/admin/tenants/{slug}"),
            "The tenant is deleted; it can be restored during the retention window.",
        )),
        Err(e) => outcome::<()>(&state, &format!("/admin/tenants/{slug}"), Err(e), ""),
    }
}
