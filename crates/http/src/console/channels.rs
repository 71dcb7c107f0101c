//! "Alert channels" (webhooks and email addresses that hear of incidents; "Send test alert")
//! and "Status pages" (public or private pages of chosen monitors, with a link to the public
//! address). Saving goes through `cases::channels`, as the JSON API does.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use tenantry_monitoring::alerts::{self, AlertChannel, AlertChannelInput};
use tenantry_monitoring::{self as monitoring, Monitor, StatusPage, StatusPageInput};
use tenantry_orgs::Action;
use uuid::Uuid;

use super::account::Nothing;
use super::error::ConsoleError;
use super::org::{OrgPage, form_error, outcome};
use super::session::{self, Form};
use super::view::{self, Errors, Field, field, select};
use crate::audit::Origin;
use crate::cases::channels as case;
use crate::cases::monitors::Acting;
use crate::error::AppError;
use crate::state::AppState;

/// A form's fields as sent, repeated names included (the chosen monitors).
type Fields = Vec<(String, String)>;

fn value<'a>(fields: &'a Fields, name: &str) -> &'a str {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map_or("", |(_, v)| v.as_str())
}

fn chosen(fields: &Fields) -> Vec<String> {
    fields
        .iter()
        .filter(|(n, _)| n == "monitor")
        .map(|(_, v)| v.clone())
        .collect()
}

fn id(text: &str) -> Result<Uuid, ConsoleError> {
    text.parse().map_err(|_| AppError::NotFound.into())
}

async fn monitors_of(state: &AppState, page: &OrgPage) -> Result<Vec<Monitor>, ConsoleError> {
    let ctx = page.ctx(state).await?;
    let mut tx = ctx.begin_read().await?;
    let monitors = monitoring::list(&mut tx, 500, None).await?;
    tx.commit().await?;
    Ok(monitors)
}

/// Checkboxes of the organization's monitors, `checked` ticked.
fn monitor_choice(legend: &str, hint: &str, monitors: &[Monitor], checked: &[String]) -> Markup {
    html! {
        fieldset.field {
            legend { (legend) }
            p.hint { (hint) }
            @if monitors.is_empty() { p.muted { "No monitors yet." } }
            @for m in monitors {
                @let box_id = format!("m-{}", m.id);
                div {
                    input type="checkbox" id=(box_id) name="monitor" value=(m.id) checked[checked.contains(&m.id.to_string())];
                    " "
                    label for=(box_id) { (m.name) }
                }
            }
        }
    }
}

// ---- Alert channels

fn channel_form(
    page: &OrgPage,
    action: &str,
    fields: &Fields,
    monitors: &[Monitor],
    errors: &Errors,
    submit: &str,
) -> Markup {
    let kind = match value(fields, "kind") {
        "" => "webhook",
        k => k,
    };
    html! {
        form.stack method="post" action=(action) novalidate {
            (view::csrf(page.csrf()))
            (view::form_errors(errors, &["name", "kind", "url", "email", "monitor_ids"]))
            (field(Field::new("Name", "name").value(value(fields, "name")).required().errors(errors)))
            (select("Type", "kind", &[("webhook", "Webhook"), ("email", "Email")], kind, errors.of("kind")))
            (field(Field::new("Webhook URL", "url").kind("url").value(value(fields, "url")).errors(errors)
                .hint("Webhooks: alerts are POSTed here, signed with the channel's secret.")))
            (field(Field::new("Email", "email").kind("email").value(value(fields, "email")).errors(errors)
                .hint("Email channels: the address alerts are sent to.")))
            (monitor_choice("Monitors", "None ticked: every monitor's incidents.", monitors, &chosen(fields)))
            div.actions {
                button.primary type="submit" { (submit) }
                a.button href=(page.path("alert-channels")) { "Cancel" }
            }
        }
    }
}

fn channel_input(fields: &Fields) -> Result<AlertChannelInput, AppError> {
    let text = |name: &str| Some(value(fields, name).trim().to_owned()).filter(|s| !s.is_empty());
    let kind = value(fields, "kind").to_owned();
    let monitor_ids = chosen(fields)
        .iter()
        .map(|m| {
            m.parse::<Uuid>()
                .map_err(|_| AppError::invalid("monitor_ids", "not a monitor of this organization"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AlertChannelInput {
        name: value(fields, "name").trim().to_owned(),
        url: if kind == "webhook" { text("url") } else { None },
        email: if kind == "email" { text("email") } else { None },
        kind,
        secret: None,
        monitor_ids: Some(monitor_ids).filter(|m| !m.is_empty()),
    })
}

fn channels_page(
    page: &OrgPage,
    channels: &[AlertChannel],
    monitors: &[Monitor],
    fields: &Fields,
    errors: &Errors,
    secret: Option<&str>,
) -> Markup {
    let can_edit = page.role.may(Action::ManageMonitoring);
    html! {
        h1 { "Alert channels" }
        @if let Some(secret) = secret {
            (view::secret_once("Webhook signing secret", secret, "verify the Tenantry-Signature header of each alert with it. It is shown only now: copy it."))
        }
        @if channels.is_empty() {
            p.muted { "No alert channels: incidents are recorded, but nobody hears of them." }
        } @else {
            div.table-wrap { table {
                thead { tr { th { "Name" } th { "Type" } th { "Sends to" } th { "Monitors" } @if can_edit { th { span.sr { "Actions" } } } } }
                tbody {
                    @for c in channels {
                        tr {
                            td { a href=(page.path(&format!("alert-channels/{}", c.id))) { (c.name) } }
                            td { (c.kind) }
                            td { code { (c.url.as_deref().or(c.email.as_deref()).unwrap_or("—")) } }
                            td { @if c.all_monitors { "all" } @else { (c.monitor_ids.len()) } }
                            @if can_edit {
                                td.actions {
                                    (view::post_button(&page.path(&format!("alert-channels/{}/test", c.id)), "Send test alert", page.csrf(), None, "small"))
                                }
                            }
                        }
                    }
                }
            } }
        }
        @if can_edit {
            section.card {
                h2 { "New alert channel" }
                (channel_form(page, &page.path("alert-channels"), fields, monitors, errors, "Create"))
            }
        }
    }
}

/// `channel` as `page`'s user may see it: viewers and members see a webhook's scheme, host and
/// port only.
fn shown_to(page: &OrgPage, channel: AlertChannel) -> AlertChannel {
    if page.role.may(Action::Administer) {
        channel
    } else {
        channel.with_url_masked()
    }
}

async fn channels_of(state: &AppState, page: &OrgPage) -> Result<Vec<AlertChannel>, ConsoleError> {
    let ctx = page.ctx(state).await?;
    let mut tx = ctx.begin_read().await?;
    let channels = alerts::list_channels(&mut tx, 500, None).await?;
    tx.commit().await?;
    Ok(channels.into_iter().map(|c| shown_to(page, c)).collect())
}

async fn one_channel(
    state: &AppState,
    page: &OrgPage,
    id: Uuid,
) -> Result<AlertChannel, ConsoleError> {
    let ctx = page.ctx(state).await?;
    let mut tx = ctx.begin_read().await?;
    let found = alerts::get_channel(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(shown_to(page, found))
}

pub(crate) async fn channels(
    State(state): State<AppState>,
    page: OrgPage,
) -> Result<Response, ConsoleError> {
    let channels = channels_of(&state, &page).await?;
    let monitors = monitors_of(&state, &page).await?;
    Ok(page.render(
        "Alert channels",
        channels_page(
            &page,
            &channels,
            &monitors,
            &Fields::new(),
            &Errors::default(),
            None,
        ),
    ))
}

pub(crate) async fn create_channel(
    State(state): State<AppState>,
    origin: Origin,
    page: OrgPage,
    Form(fields): Form<Fields>,
) -> Result<Response, ConsoleError> {
    page.writable()?;
    let ctx = page.ctx(&state).await?;
    let acting = Acting::new(&ctx, page.role, origin.by_user(page.signed.user().id));
    let saved = match channel_input(&fields) {
        Ok(input) => case::create_channel(&state, &acting, &input).await,
        Err(e) => Err(e),
    };
    let monitors = monitors_of(&state, &page).await?;
    match saved {
        Ok(saved) => {
            let channels = channels_of(&state, &page).await?;
            let webhook = saved.channel.kind == "webhook";
            let secret = saved.shown().secret.filter(|_| webhook);
            Ok((
                StatusCode::CREATED,
                page.render(
                    "Alert channels",
                    channels_page(
                        &page,
                        &channels,
                        &monitors,
                        &Fields::new(),
                        &Errors::default(),
                        secret.as_deref(),
                    ),
                ),
            )
                .into_response())
        }
        Err(e) => {
            let errors = form_error(e)?;
            let channels = channels_of(&state, &page).await?;
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                page.render(
                    "Alert channels",
                    channels_page(&page, &channels, &monitors, &fields, &errors, None),
                ),
            )
                .into_response())
        }
    }
}

fn fields_of_channel(c: &AlertChannel) -> Fields {
    let mut fields = vec![
        ("name".to_owned(), c.name.clone()),
        ("kind".to_owned(), c.kind.clone()),
        ("url".to_owned(), c.url.clone().unwrap_or_default()),
        ("email".to_owned(), c.email.clone().unwrap_or_default()),
    ];
    fields.extend(
        c.monitor_ids
            .iter()
            .map(|m| ("monitor".to_owned(), m.to_string())),
    );
    fields
}

fn channel_edit(
    page: &OrgPage,
    c: &AlertChannel,
    fields: &Fields,
    monitors: &[Monitor],
    errors: &Errors,
) -> Markup {
    let can_edit = page.role.may(Action::ManageMonitoring);
    html! {
        (view::heading(&c.name, html! {
            @if can_edit {
                (view::post_button(&page.path(&format!("alert-channels/{}/test", c.id)), "Send test alert", page.csrf(), None, ""))
                (view::post_button(
                    &page.path(&format!("alert-channels/{}/delete", c.id)),
                    "Delete",
                    page.csrf(),
                    Some(&format!("Delete the alert channel {}?", c.name)),
                    "danger",
                ))
            }
        }))
        section.card {
            @if can_edit {
                (channel_form(page, &page.path(&format!("alert-channels/{}", c.id)), fields, monitors, errors, "Save"))
                @if c.kind == "webhook" {
                    p.muted { "Signing secret: " code { (c.secret.as_deref().unwrap_or("—")) } " (kept when you save)." }
                }
            } @else {
                dl.facts {
                    dt { "Type" } dd { (c.kind) }
                    dt { "Sends to" } dd { code { (c.url.as_deref().or(c.email.as_deref()).unwrap_or("—")) } }
                }
            }
        }
    }
}

pub(crate) async fn channel_page(
    State(state): State<AppState>,
    page: OrgPage,
    Path((_, channel)): Path<(String, String)>,
) -> Result<Response, ConsoleError> {
    let channel = id(&channel)?;
    let c = one_channel(&state, &page, channel).await?;
    let monitors = monitors_of(&state, &page).await?;
    Ok(page.render(
        &c.name,
        channel_edit(
            &page,
            &c,
            &fields_of_channel(&c),
            &monitors,
            &Errors::default(),
        ),
    ))
}

pub(crate) async fn update_channel(
    State(state): State<AppState>,
    origin: Origin,
    page: OrgPage,
    Path((_, channel)): Path<(String, String)>,
    Form(fields): Form<Fields>,
) -> Result<Response, ConsoleError> {
    let channel = id(&channel)?;
    page.writable()?;
    let ctx = page.ctx(&state).await?;
    let acting = Acting::new(&ctx, page.role, origin.by_user(page.signed.user().id));
    let saved = match channel_input(&fields) {
        Ok(input) => case::replace_channel(&state, &acting, channel, &input).await,
        Err(e) => Err(e),
    };
    match saved {
        Ok(_) => Ok(session::redirect_with(
            &state,
            &page.path("alert-channels"),
            "The alert channel is saved.",
        )),
        Err(e) => {
            let errors = form_error(e)?;
            let c = one_channel(&state, &page, channel).await?;
            let monitors = monitors_of(&state, &page).await?;
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                page.render(
                    &c.name,
                    channel_edit(&page, &c, &fields, &monitors, &errors),
                ),
            )
                .into_response())
        }
    }
}

pub(crate) async fn test_channel(
    State(state): State<AppState>,
    origin: Origin,
    page: OrgPage,
    Path((_, channel)): Path<(String, String)>,
    Form(_): Form<Nothing>,
) -> Result<Response, ConsoleError> {
    let channel = id(&channel)?;
    page.writable()?;
    let ctx = page.ctx(&state).await?;
    let user = page.signed.user();
    let acting = Acting::new(&ctx, page.role, origin.by_user(user.id));
    let result = case::test_channel(&state, &acting, channel, &user.email).await;
    outcome(
        &state,
        &page.path("alert-channels"),
        result,
        "A test alert is on its way.",
    )
}

pub(crate) async fn delete_channel(
    State(state): State<AppState>,
    origin: Origin,
    page: OrgPage,
    Path((_, channel)): Path<(String, String)>,
    Form(_): Form<Nothing>,
) -> Result<Response, ConsoleError> {
    let channel = id(&channel)?;
    page.writable()?;
    let ctx = page.ctx(&state).await?;
    let acting = Acting::new(&ctx, page.role, origin.by_user(page.signed.user().id));
    let result = case::remove_channel(&acting, channel).await;
    outcome(
        &state,
        &page.path("alert-channels"),
        result,
        "The alert channel is deleted.",
    )
}

// ---- Status pages

fn page_form(
    page: &OrgPage,
    action: &str,
    fields: &Fields,
    monitors: &[Monitor],
    errors: &Errors,
    submit: &str,
) -> Markup {
    let public = value(fields, "public") == "on";
    html! {
        form.stack method="post" action=(action) novalidate {
            (view::csrf(page.csrf()))
            (view::form_errors(errors, &["title", "slug", "monitor_ids"]))
            (field(Field::new("Title", "title").value(value(fields, "title")).required().errors(errors)))
            (field(Field::new("Slug", "slug").value(value(fields, "slug")).required().errors(errors)
                .hint(&format!("The page's address is /status/{}/<slug>.", page.slug()))))
            (monitor_choice("Monitors", "The monitors the page shows.", monitors, &chosen(fields)))
            div {
                input type="checkbox" id="f-public" name="public" checked[public];
                " "
                label for="f-public" { "Public: anyone with the address may see it" }
            }
            div.actions {
                button.primary type="submit" { (submit) }
                a.button href=(page.path("status-pages")) { "Cancel" }
            }
        }
    }
}

fn page_input(fields: &Fields) -> StatusPageInput {
    StatusPageInput {
        slug: value(fields, "slug").trim().to_owned(),
        title: value(fields, "title").trim().to_owned(),
        monitor_ids: chosen(fields),
        public: value(fields, "public") == "on",
    }
}

async fn pages_of(state: &AppState, page: &OrgPage) -> Result<Vec<StatusPage>, ConsoleError> {
    let ctx = page.ctx(state).await?;
    let mut tx = ctx.begin_read().await?;
    let pages = monitoring::list_pages(&mut tx, 500, None).await?;
    tx.commit().await?;
    Ok(pages)
}

fn pages_page(
    page: &OrgPage,
    pages: &[StatusPage],
    monitors: &[Monitor],
    fields: &Fields,
    errors: &Errors,
) -> Markup {
    let can_edit = page.role.may(Action::ManageMonitoring);
    html! {
        h1 { "Status pages" }
        @if pages.is_empty() {
            p.muted { "No status pages." }
        } @else {
            div.table-wrap { table {
                thead { tr { th { "Title" } th { "Address" } th { "Monitors" } th { "Visibility" } } }
                tbody {
                    @for p in pages {
                        @let address = format!("/status/{}/{}", page.slug(), p.slug);
                        tr {
                            td { a href=(page.path(&format!("status-pages/{}", p.id))) { (p.title) } }
                            td { @if p.public { a href=(address) { (address) } } @else { code { (address) } } }
                            td { (p.monitor_ids.len()) }
                            td { @if p.public { "public" } @else { "private" } }
                        }
                    }
                }
            } }
        }
        @if can_edit {
            section.card {
                h2 { "New status page" }
                (page_form(page, &page.path("status-pages"), fields, monitors, errors, "Create"))
            }
        }
    }
}

pub(crate) async fn pages(
    State(state): State<AppState>,
    page: OrgPage,
) -> Result<Response, ConsoleError> {
    let pages = pages_of(&state, &page).await?;
    let monitors = monitors_of(&state, &page).await?;
    Ok(page.render(
        "Status pages",
        pages_page(&page, &pages, &monitors, &Fields::new(), &Errors::default()),
    ))
}

pub(crate) async fn create_page(
    State(state): State<AppState>,
    origin: Origin,
    page: OrgPage,
    Form(fields): Form<Fields>,
) -> Result<Response, ConsoleError> {
    page.writable()?;
    let ctx = page.ctx(&state).await?;
    let acting = Acting::new(&ctx, page.role, origin.by_user(page.signed.user().id));
    match case::create_page(&state, &acting, &page_input(&fields)).await {
        Ok(created) => Ok(session::redirect_with(
            &state,
            &page.path("status-pages"),
            &format!("The status page {} is created.", created.title),
        )),
        Err(e) => {
            let errors = form_error(e)?;
            let pages = pages_of(&state, &page).await?;
            let monitors = monitors_of(&state, &page).await?;
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                page.render(
                    "Status pages",
                    pages_page(&page, &pages, &monitors, &fields, &errors),
                ),
            )
                .into_response())
        }
    }
}

fn fields_of_page(p: &StatusPage) -> Fields {
    let mut fields = vec![
        ("title".to_owned(), p.title.clone()),
        ("slug".to_owned(), p.slug.clone()),
    ];
    if p.public {
        fields.push(("public".to_owned(), "on".to_owned()));
    }
    fields.extend(
        p.monitor_ids
            .iter()
            .map(|m| ("monitor".to_owned(), m.to_string())),
    );
    fields
}

fn page_edit(
    page: &OrgPage,
    p: &StatusPage,
    fields: &Fields,
    monitors: &[Monitor],
    errors: &Errors,
) -> Markup {
    let address = format!("/status/{}/{}", page.slug(), p.slug);
    let can_edit = page.role.may(Action::ManageMonitoring);
    html! {
        (view::heading(&p.title, html! {
            @if p.public { a.button href=(address) { "Open the public page" } }
            @if can_edit {
                (view::post_button(
                    &page.path(&format!("status-pages/{}/delete", p.id)),
                    "Delete",
                    page.csrf(),
                    Some(&format!("Delete the status page {}? Its address stops working.", p.title)),
                    "danger",
                ))
            }
        }))
        section.card {
            @if can_edit {
                (page_form(page, &page.path(&format!("status-pages/{}", p.id)), fields, monitors, errors, "Save"))
            } @else {
                dl.facts {
                    dt { "Address" } dd { code { (address) } }
                    dt { "Visibility" } dd { @if p.public { "public" } @else { "private" } }
                }
            }
        }
    }
}

async fn one_page(state: &AppState, page: &OrgPage, id: Uuid) -> Result<StatusPage, ConsoleError> {
    let ctx = page.ctx(state).await?;
    let mut tx = ctx.begin_read().await?;
    let found = monitoring::get_page(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(found)
}

pub(crate) async fn page_page(
    State(state): State<AppState>,
    page: OrgPage,
    Path((_, p)): Path<(String, String)>,
) -> Result<Response, ConsoleError> {
    let p = one_page(&state, &page, id(&p)?).await?;
    let monitors = monitors_of(&state, &page).await?;
    Ok(page.render(
        &p.title,
        page_edit(
            &page,
            &p,
            &fields_of_page(&p),
            &monitors,
            &Errors::default(),
        ),
    ))
}

pub(crate) async fn update_page(
    State(state): State<AppState>,
    origin: Origin,
    page: OrgPage,
    Path((_, p)): Path<(String, String)>,
    Form(fields): Form<Fields>,
) -> Result<Response, ConsoleError> {
    let p = id(&p)?;
    page.writable()?;
    let ctx = page.ctx(&state).await?;
    let acting = Acting::new(&ctx, page.role, origin.by_user(page.signed.user().id));
    match case::replace_page(&acting, p, &page_input(&fields)).await {
        Ok(_) => Ok(session::redirect_with(
            &state,
            &page.path("status-pages"),
            "The status page is saved.",
        )),
        Err(e) => {
            let errors = form_error(e)?;
            let found = one_page(&state, &page, p).await?;
            let monitors = monitors_of(&state, &page).await?;
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                page.render(
                    &found.title,
                    page_edit(&page, &found, &fields, &monitors, &errors),
                ),
            )
                .into_response())
        }
    }
}

pub(crate) async fn delete_page(
    State(state): State<AppState>,
    origin: Origin,
    page: OrgPage,
    Path((_, p)): Path<(String, String)>,
    Form(_): Form<Nothing>,
) -> Result<Response, ConsoleError> {
    let p = id(&p)?;
    page.writable()?;
    let ctx = page.ctx(&state).await?;
    let acting = Acting::new(&ctx, page.role, origin.by_user(page.signed.user().id));
    let result = case::remove_page(&acting, p).await;
    outcome(
        &state,
        &page.path("status-pages"),
        result,
        "The status page is deleted.",
    )
}
