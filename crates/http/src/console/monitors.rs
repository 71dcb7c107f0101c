//! "Monitors": the list with each monitor's status and 24-hour uptime, creating and editing a
//! monitor, and a monitor's page (status, response times, uptime over 24 hours and 30 days,
//! recent results and incidents, pause, resume, delete). Statuses follow changes live through
//! the organization's event stream (`live`). Saving goes through `cases::monitors`, as the
//! JSON API does.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, DurationRound, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use tenantry_monitoring::{self as monitoring, Monitor, MonitorInput, MonitorKind, TimeRange};
use tenantry_orgs::Action;
use uuid::Uuid;

use super::account::Nothing;
use super::charts::{self, Bucket};
use super::error::ConsoleError;
use super::org::{OrgPage, form_error, outcome};
use super::session::{self, Form};
use super::view::{self, Errors, Field, field, select};
use crate::audit::Origin;
use crate::cases::monitors::{self as case, Acting};
use crate::error::AppError;
use crate::state::AppState;

const KINDS: &[(&str, &str)] = &[
    ("http", "HTTP(S)"),
    ("keyword", "Keyword"),
    ("tcp", "TCP port"),
    ("heartbeat", "Heartbeat (push)"),
];

fn monitor_id(text: &str) -> Result<Uuid, ConsoleError> {
    text.parse().map_err(|_| AppError::NotFound.into())
}

/// What the list and the page show as a monitor's status: `paused` when it is not checked.
fn shown_status(m: &Monitor) -> &str {
    if m.enabled { &m.status } else { "paused" }
}

fn uptime_text(tally: Option<&(i64, i64)>) -> String {
    match tally {
        Some((ok, total)) if *total > 0 => format!("{:.2} %", *ok as f64 * 100.0 / *total as f64),
        _ => "—".to_owned(),
    }
}

pub(crate) async fn list(
    State(state): State<AppState>,
    page: OrgPage,
) -> Result<Response, ConsoleError> {
    let ctx = page.ctx(&state).await?;
    let mut tx = ctx.begin_read().await?;
    let monitors = monitoring::list(&mut tx, 500, None).await?;
    let tallies: HashMap<Uuid, (i64, i64)> =
        monitoring::tally_all(&mut tx, Utc::now() - Duration::hours(24))
            .await?
            .into_iter()
            .map(|(id, ok, total)| (id, (ok, total)))
            .collect();
    tx.commit().await?;
    let can_edit = page.role.may(Action::ManageMonitoring);
    let body = html! {
        (view::heading("Monitors", html! {
            @if can_edit { a.button.primary href=(page.path("monitors/new")) { "New monitor" } }
        }))
        div data-events=(page.path("events")) {
            @if monitors.is_empty() {
                div.card.empty {
                    p { "No monitors yet." }
                    @if can_edit { p { a href=(page.path("monitors/new")) { "Create the first monitor" } } }
                }
            } @else {
                div.table-wrap {
                    table {
                        thead { tr {
                            th { "Status" } th { "Name" } th { "Type" } th { "Target" }
                            th { "Last check" } th.num { "24-hour uptime" }
                        } }
                        tbody {
                            @for m in &monitors {
                                tr data-monitor=(m.id) {
                                    td { (view::status(shown_status(m))) }
                                    td { a href=(page.path(&format!("monitors/{}", m.id))) { (m.name) } }
                                    td { (m.kind) }
                                    td { code { (m.target.as_deref().unwrap_or("—")) } }
                                    td data-field="last-checked" {
                                        @if let Some(at) = m.last_checked_at.or(m.last_ping_at) { (view::ago(&at)) } @else { "never" }
                                    }
                                    td.num { (uptime_text(tallies.get(&m.id))) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page.render("Monitors", body))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct MonitorForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    interval_seconds: String,
    #[serde(default)]
    keyword: String,
}

impl MonitorForm {
    fn of(m: &Monitor) -> Self {
        MonitorForm {
            name: m.name.clone(),
            kind: m.kind.to_string(),
            target: m.target.clone().unwrap_or_default(),
            interval_seconds: m.interval_seconds.to_string(),
            keyword: m.keyword.clone().unwrap_or_default(),
        }
    }

    /// The monitor this form describes (an existing one's other settings kept from `before`).
    fn input(&self, before: Option<&Monitor>) -> Result<MonitorInput, AppError> {
        let interval = match self.interval_seconds.trim() {
            "" => None,
            text => Some(text.parse::<i32>().map_err(|_| {
                AppError::invalid("interval_seconds", "a whole number of seconds, such as 60")
            })?),
        };
        let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        Ok(MonitorInput {
            name: self.name.trim().to_owned(),
            kind: self.kind.clone(),
            target: text(&self.target),
            interval_seconds: interval,
            timeout_seconds: before.map(|b| b.timeout_seconds),
            keyword: if self.kind == "keyword" {
                text(&self.keyword)
            } else {
                None
            },
            enabled: Some(before.is_none_or(|b| b.enabled)),
            confirmations: before.map(|b| b.confirmations),
            agent_id: before.and_then(|b| b.agent_id),
        })
    }
}

fn monitor_form(
    page: &OrgPage,
    action: &str,
    input: &MonitorForm,
    errors: &Errors,
    submit: &str,
) -> Markup {
    let kind = if input.kind.is_empty() {
        "http"
    } else {
        input.kind.as_str()
    };
    let interval = if input.interval_seconds.is_empty() {
        "60"
    } else {
        input.interval_seconds.as_str()
    };
    html! {
        form.stack method="post" action=(action) novalidate {
            (view::csrf(page.csrf()))
            (view::form_errors(errors, &["name", "kind", "target", "interval_seconds", "keyword"]))
            (field(Field::new("Name", "name").value(&input.name).required().errors(errors)))
            (select("Type", "kind", KINDS, kind, errors.of("kind")))
            (field(Field::new("Target", "target").value(&input.target).errors(errors)
                .hint("HTTP and keyword: a URL such as https://example.com/health. TCP: host:port. Heartbeat: leave empty.")))
            (field(Field::new("Interval (seconds)", "interval_seconds").kind("number").value(interval).errors(errors)
                .hint("How often to check; a heartbeat monitor expects a ping this often.")))
            (field(Field::new("Keyword", "keyword").value(&input.keyword).errors(errors)
                .hint("Keyword checks: the text the page must contain.")))
            div.actions {
                button.primary type="submit" { (submit) }
                a.button href=(page.path("monitors")) { "Cancel" }
            }
        }
    }
}

pub(crate) async fn new_page(page: OrgPage) -> Result<Response, ConsoleError> {
    page.require(Action::ManageMonitoring)?;
    let body = html! {
        section.card.narrow {
            h1 { "New monitor" }
            (monitor_form(&page, &page.path("monitors/new"), &MonitorForm::default(), &Errors::default(), "Create"))
        }
    };
    Ok(page.render("New monitor", body))
}

fn acting<'a>(page: &OrgPage, ctx: &'a tenantry_tenancy::TenantCtx, origin: &Origin) -> Acting<'a> {
    Acting::new(ctx, page.role, origin.by_user(page.signed.user().id))
}

/// Creates the monitor and shows it; a heartbeat monitor's ping URL is shown on this answer
/// only.
pub(crate) async fn create(
    State(state): State<AppState>,
    origin: Origin,
    page: OrgPage,
    Form(input): Form<MonitorForm>,
) -> Result<Response, ConsoleError> {
    page.writable()?;
    let ctx = page.ctx(&state).await?;
    let created = match input.input(None) {
        Ok(monitor) => case::create(&state, &acting(&page, &ctx, &origin), &monitor).await,
        Err(e) => Err(e),
    };
    match created {
        Ok(issued) => match issued.heartbeat_url {
            Some(url) => {
                let m = &issued.monitor;
                let body = html! {
                    section.card.narrow {
                        h1 { (m.name) " is created" }
                        (view::secret_once("Ping URL", &url, "send a GET or POST to it at least every interval. It is shown only now: copy it."))
                        p { a.button.primary href=(page.path(&format!("monitors/{}", m.id))) { "Open the monitor" } }
                    }
                };
                Ok((StatusCode::CREATED, page.render("Monitor created", body)).into_response())
            }
            None => Ok(session::redirect_with(
                &state,
                &page.path(&format!("monitors/{}", issued.monitor.id)),
                &format!(
                    "{} is created; its first check runs now.",
                    issued.monitor.name
                ),
            )),
        },
        Err(e) => {
            let errors = form_error(e)?;
            let body = html! {
                section.card.narrow {
                    h1 { "New monitor" }
                    (monitor_form(&page, &page.path("monitors/new"), &input, &errors, "Create"))
                }
            };
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                page.render("New monitor", body),
            )
                .into_response())
        }
    }
}

/// Fills the buckets from `since`, every `step`, that had no checks.
fn buckets(
    tallies: &[monitoring::Tally],
    since: DateTime<Utc>,
    step: Duration,
    count: i64,
) -> Vec<Bucket> {
    (0..count)
        .map(|i| {
            let start = since + step * i as i32;
            let found = tallies.iter().find(|t| t.start == start);
            Bucket {
                start,
                ok: found.map_or(0, |t| t.ok),
                total: found.map_or(0, |t| t.total),
            }
        })
        .collect()
}

pub(crate) async fn show(
    State(state): State<AppState>,
    page: OrgPage,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ConsoleError> {
    let id = monitor_id(&id)?;
    let ctx = page.ctx(&state).await?;
    let now = Utc::now();
    let hour = Duration::hours(1);
    let day = Duration::days(1);
    let since_day = now.duration_trunc(hour).unwrap_or(now) - Duration::hours(23);
    let since_month = now.duration_trunc(day).unwrap_or(now) - Duration::days(29);
    let mut tx = ctx.begin_read().await?;
    let monitor = monitoring::get(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let results = monitoring::list_results(&mut tx, id, 60, None, TimeRange::default()).await?;
    let incidents = monitoring::list_incidents(&mut tx, id, 10, None).await?;
    let hours = monitoring::tally(&mut tx, id, since_day, hour).await?;
    let days = monitoring::tally(&mut tx, id, since_month, day).await?;
    tx.commit().await?;
    let hours = buckets(&hours, since_day, hour, 24);
    let days = buckets(&days, since_month, day, 30);
    let mut times: Vec<(DateTime<Utc>, i32)> = results
        .iter()
        .filter_map(|r| r.latency_ms.map(|ms| (r.checked_at, ms)))
        .collect();
    times.reverse();
    let can_edit = page.role.may(Action::ManageMonitoring);
    let m = &monitor;
    let body = html! {
        (view::heading(&m.name, html! {
            @if can_edit {
                a.button href=(page.path(&format!("monitors/{}/edit", m.id))) { "Edit" }
                @if m.enabled {
                    (view::post_button(&page.path(&format!("monitors/{}/pause", m.id)), "Pause", page.csrf(), None, ""))
                } @else {
                    (view::post_button(&page.path(&format!("monitors/{}/resume", m.id)), "Resume", page.csrf(), None, ""))
                }
                (view::post_button(
                    &page.path(&format!("monitors/{}/delete", m.id)),
                    "Delete",
                    page.csrf(),
                    Some(&format!("Delete {} and its history?", m.name)),
                    "danger",
                ))
            }
        }))
        div data-events=(page.path("events")) {
            section.card data-monitor=(m.id) {
                dl.facts {
                    dt { "Status" } dd { (view::status(shown_status(m))) }
                    dt { "Type" } dd { (m.kind) }
                    dt { "Target" } dd { code { (m.target.as_deref().unwrap_or("—")) } }
                    dt { "Interval" } dd { (m.interval_seconds) " s" }
                    @if let Some(k) = &m.keyword { dt { "Keyword" } dd { code { (k) } } }
                    dt { "Last check" } dd data-field="last-checked" {
                        @if let Some(at) = m.last_checked_at.or(m.last_ping_at) { (view::ago(&at)) } @else { "never" }
                    }
                    dt { "Open incident" } dd data-incident-for=(m.id) {
                        @match incidents.iter().find(|i| i.resolved_at.is_none()) {
                            Some(i) => { "since " (view::when(&i.started_at)) ": " (i.cause) }
                            None => { "none" }
                        }
                    }
                }
                @if m.kind == MonitorKind::Heartbeat {
                    p.muted { "Its ping URL was shown once, when it was created. To get a new one, change its type and back, or create a new monitor." }
                }
            }
        }
        section.card {
            h2 { "Response time" }
            (charts::response_times(&times))
        }
        section.card {
            h2 { "Uptime" }
            (charts::uptime_bar("Last 24 hours", &hours, "%b %d %H:00"))
            (charts::uptime_bar("Last 30 days", &days, "%b %d"))
        }
        div.grid2 {
            section {
                h2 { "Recent results" }
                @if results.is_empty() { p.muted { "No checks yet." } } @else {
                    div.table-wrap { table {
                        thead { tr { th { "When" } th { "Result" } th.num { "Time" } th { "Detail" } } }
                        tbody {
                            @for r in results.iter().take(15) {
                                tr {
                                    td { (view::ago(&r.checked_at)) }
                                    td { (view::status(if r.ok { "up" } else { "down" })) }
                                    td.num { @if let Some(ms) = r.latency_ms { (ms) " ms" } @else { "—" } }
                                    td { @if let Some(code) = r.status_code { "HTTP " (code) " " } (r.error.as_deref().unwrap_or("")) }
                                }
                            }
                        }
                    } }
                }
            }
            section {
                h2 { "Incidents" }
                @if incidents.is_empty() { p.muted { "No incidents." } } @else {
                    div.table-wrap { table {
                        thead { tr { th { "Started" } th { "Resolved" } th { "Cause" } } }
                        tbody {
                            @for i in &incidents {
                                tr {
                                    td { (view::when(&i.started_at)) }
                                    td { @if let Some(at) = &i.resolved_at { (view::when(at)) } @else { strong { "open" } } }
                                    td { (i.cause) }
                                }
                            }
                        }
                    } }
                }
            }
        }
    };
    Ok(page.render(&monitor.name, body))
}

async fn load(
    state: &AppState,
    page: &OrgPage,
    id: Uuid,
) -> Result<(tenantry_tenancy::TenantCtx, Monitor), ConsoleError> {
    let ctx = page.ctx(state).await?;
    let mut tx = ctx.begin_read().await?;
    let monitor = monitoring::get(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok((ctx, monitor))
}

pub(crate) async fn edit_page(
    State(state): State<AppState>,
    page: OrgPage,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ConsoleError> {
    let id = monitor_id(&id)?;
    page.require(Action::ManageMonitoring)?;
    let (_, monitor) = load(&state, &page, id).await?;
    let body = html! {
        section.card.narrow {
            h1 { "Edit " (monitor.name) }
            (monitor_form(&page, &page.path(&format!("monitors/{id}/edit")), &MonitorForm::of(&monitor), &Errors::default(), "Save"))
        }
    };
    Ok(page.render("Edit monitor", body))
}

pub(crate) async fn update(
    State(state): State<AppState>,
    origin: Origin,
    page: OrgPage,
    Path((_, id)): Path<(String, String)>,
    Form(input): Form<MonitorForm>,
) -> Result<Response, ConsoleError> {
    let id = monitor_id(&id)?;
    page.writable()?;
    let (ctx, before) = load(&state, &page, id).await?;
    let saved = match input.input(Some(&before)) {
        Ok(monitor) => case::replace(&state, &acting(&page, &ctx, &origin), id, &monitor).await,
        Err(e) => Err(e),
    };
    match saved {
        Ok(issued) => {
            if let Some(url) = issued.heartbeat_url {
                let body = html! {
                    section.card.narrow {
                        h1 { (issued.monitor.name) " is saved" }
                        (view::secret_once("Ping URL", &url, "send a GET or POST to it at least every interval. It is shown only now: copy it."))
                        p { a.button.primary href=(page.path(&format!("monitors/{id}"))) { "Open the monitor" } }
                    }
                };
                return Ok(page.render("Monitor saved", body));
            }
            Ok(session::redirect_with(
                &state,
                &page.path(&format!("monitors/{id}")),
                "The monitor is saved.",
            ))
        }
        Err(e) => {
            let errors = form_error(e)?;
            let body = html! {
                section.card.narrow {
                    h1 { "Edit " (before.name) }
                    (monitor_form(&page, &page.path(&format!("monitors/{id}/edit")), &input, &errors, "Save"))
                }
            };
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                page.render("Edit monitor", body),
            )
                .into_response())
        }
    }
}

async fn set_enabled(
    state: &AppState,
    origin: &Origin,
    page: &OrgPage,
    id: &str,
    enabled: bool,
) -> Result<Response, ConsoleError> {
    let id = monitor_id(id)?;
    page.writable()?;
    let (ctx, before) = load(state, page, id).await?;
    let result = case::replace(
        state,
        &acting(page, &ctx, origin),
        id,
        &case::input_of(&before, enabled),
    )
    .await;
    let done = if enabled {
        "The monitor is checked again."
    } else {
        "The monitor is paused: it is not checked until you resume it."
    };
    outcome(state, &page.path(&format!("monitors/{id}")), result, done)
}

pub(crate) async fn pause(
    State(state): State<AppState>,
    origin: Origin,
    page: OrgPage,
    Path((_, id)): Path<(String, String)>,
    Form(_): Form<Nothing>,
) -> Result<Response, ConsoleError> {
    set_enabled(&state, &origin, &page, &id, false).await
}

pub(crate) async fn resume(
    State(state): State<AppState>,
    origin: Origin,
    page: OrgPage,
    Path((_, id)): Path<(String, String)>,
    Form(_): Form<Nothing>,
) -> Result<Response, ConsoleError> {
    set_enabled(&state, &origin, &page, &id, true).await
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    origin: Origin,
    page: OrgPage,
    Path((_, id)): Path<(String, String)>,
    Form(_): Form<Nothing>,
) -> Result<Response, ConsoleError> {
    let id = monitor_id(&id)?;
    page.writable()?;
    let ctx = page.ctx(&state).await?;
    let result = case::remove(&state, &acting(&page, &ctx, &origin), id).await;
    match result {
        Ok(()) => Ok(session::redirect_with(
            &state,
            &page.path("monitors"),
            "The monitor is deleted.",
        )),
        Err(e) => outcome::<()>(&state, &page.path(&format!("monitors/{id}")), Err(e), ""),
    }
}
