//! The console's page frame and the small pieces every page is made of: the header with the
//! organization switcher and the navigation, form fields with their errors, confirmations,
//! dates. Everything is escaped by `maud`; nothing here runs inline script or style (the CSP
//! forbids both).

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use tenantry_identity::User;
use tenantry_orgs::OrgSummary;

use super::assets;

/// The sections of an organization's pages, in the navigation's order: path segment, visible
/// name, and whether only admins see it.
pub(crate) const SECTIONS: &[(&str, &str, bool)] = &[
    ("monitors", "Monitors", false),
    ("alert-channels", "Alert channels", false),
    ("status-pages", "Status pages", false),
    ("agents", "Agents", false),
    ("members", "Members", false),
    ("api-keys", "API keys", true),
    ("audit", "Audit log", true),
    ("usage", "Usage", false),
    ("settings", "Settings", false),
];

/// What the header shows: who is signed in, their organizations and the current one.
#[derive(Debug, Clone)]
pub(crate) struct Chrome {
    pub user: User,
    pub csrf: String,
    pub orgs: Vec<OrgSummary>,
    /// The organization shown, and the section of its pages (`monitors`, `members`, …).
    pub current: Option<(OrgSummary, &'static str)>,
    pub flash: Option<String>,
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="color-scheme" content="light dark";
            title { (title) " · Tenantry" }
            link rel="stylesheet" href=(assets::CSS_PATH);
            link rel="icon" href=(assets::ICON_PATH) type="image/svg+xml";
            script src=(assets::JS_PATH) defer {}
        }
    }
}

fn brand() -> Markup {
    html! {
        a.brand href="/" {
            img src=(assets::ICON_PATH) alt="" width="24" height="24";
            span { "Tenantry" }
        }
    }
}

/// A page for a visitor: no navigation (log in, sign up, invitations, errors).
pub(crate) fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                a.skip href="#main" { "Skip to content" }
                header.top { (brand()) }
                main #main { (body) }
            }
        }
    }
}

/// A signed-in user's page.
pub(crate) fn page(chrome: &Chrome, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    (brand())
                    (switcher(chrome))
                    nav.account aria-label="Account" {
                        @if chrome.user.platform_admin {
                            a href="/admin" { "Admin" }
                        }
                        a href="/account/sessions" title=(chrome.user.email) { "Sessions" }
                        form.inline method="post" action="/logout" {
                            (csrf(&chrome.csrf))
                            button.link type="submit" { "Log out" }
                        }
                    }
                }
                div.frame {
                    @if let Some((org, section)) = &chrome.current {
                        nav.sections aria-label="Organization" {
                            ul {
                                @for (path, name, admin_only) in SECTIONS {
                                    @if !admin_only || org.role.may(tenantry_orgs::Action::Administer) {
                                        li {
                                            a href={"/o/" (org.slug) "/" (path)}
                                                aria-current=[(section == path).then_some("page")] { (name) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    main #main {
                        @if let Some(message) = &chrome.flash {
                            p.flash role="status" { (message) }
                        }
                        @if let Some((org, _)) = &chrome.current {
                            @if org.status == tenantry_tenancy::TenantStatus::Suspended {
                                p.flash.warn role="status" { "This organization is suspended: you can look, but not change anything. Contact the platform's operators." }
                            }
                        }
                        (body)
                    }
                }
            }
        }
    }
}

/// The organization switcher: the current organization, and a list of all the user's with the
/// current one marked and "Create organization" at the end. Each entry leads to the same kind
/// of page in that organization.
fn switcher(chrome: &Chrome) -> Markup {
    let (current_name, section) = match &chrome.current {
        Some((org, section)) => (org.name.as_str(), *section),
        None => ("Choose an organization", "monitors"),
    };
    let logo = chrome
        .current
        .as_ref()
        .and_then(|(o, _)| o.logo_url.as_deref())
        .filter(|u| u.starts_with("https://"));
    html! {
        details.switcher {
            summary aria-label={"Switch organization (current: " (current_name) ")"} {
                @if let Some(logo) = logo {
                    img.logo src=(logo) alt="" width="20" height="20";
                }
                span.current { (current_name) }
                span.caret aria-hidden="true" { "▾" }
            }
            div.menu {
                p.menu-title { "Switch organization" }
                ul {
                    @for org in &chrome.orgs {
                        @let here = chrome.current.as_ref().is_some_and(|(c, _)| c.id == org.id);
                        li {
                            a href={"/o/" (org.slug) "/" (section)} aria-current=[here.then_some("true")] {
                                (org.name)
                                @if here { span.check aria-hidden="true" { " ✓" } }
                                span.role { (org.role.as_str()) }
                            }
                        }
                    }
                    li.create { a href="/orgs/new" { "Create organization" } }
                }
            }
        }
    }
}

/// The hidden field carrying the form's CSRF token.
pub(crate) fn csrf(token: &str) -> Markup {
    html! { input type="hidden" name="_csrf" value=(token); }
}

/// A form field: its label, the input, and the error for it, if any.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field<'a> {
    pub label: &'a str,
    pub name: &'a str,
    pub kind: &'a str,
    pub value: &'a str,
    pub error: Option<&'a str>,
    pub required: bool,
    pub hint: Option<&'a str>,
}

impl<'a> Field<'a> {
    pub fn new(label: &'a str, name: &'a str) -> Self {
        Field {
            label,
            name,
            kind: "text",
            value: "",
            error: None,
            required: false,
            hint: None,
        }
    }

    pub fn kind(mut self, kind: &'a str) -> Self {
        self.kind = kind;
        self
    }

    pub fn value(mut self, value: &'a str) -> Self {
        self.value = value;
        self
    }

    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub fn hint(mut self, hint: &'a str) -> Self {
        self.hint = Some(hint);
        self
    }

    /// The error of `errors` that names this field.
    pub fn errors(mut self, errors: &'a Errors) -> Self {
        self.error = errors.of(self.name);
        self
    }
}

pub(crate) fn field(f: Field<'_>) -> Markup {
    let id = format!("f-{}", f.name);
    let described = match (f.error, f.hint) {
        (Some(_), _) => Some(format!("{id}-error")),
        (None, Some(_)) => Some(format!("{id}-hint")),
        _ => None,
    };
    html! {
        div.field.invalid[f.error.is_some()] {
            label for=(id) { (f.label) }
            input id=(id) name=(f.name) type=(f.kind) value=(f.value) required[f.required]
                aria-invalid=[f.error.map(|_| "true")] aria-describedby=[described];
            @if let Some(error) = f.error {
                p.error id={(id) "-error"} { (error) }
            } @else if let Some(hint) = f.hint {
                p.hint id={(id) "-hint"} { (hint) }
            }
        }
    }
}

/// A select field: `options` are (value, visible text).
pub(crate) fn select(
    label: &str,
    name: &str,
    options: &[(&str, &str)],
    selected: &str,
    error: Option<&str>,
) -> Markup {
    let id = format!("f-{name}");
    html! {
        div.field.invalid[error.is_some()] {
            label for=(id) { (label) }
            select id=(id) name=(name) aria-invalid=[error.map(|_| "true")] {
                @for (value, text) in options {
                    option value=(value) selected[*value == selected] { (text) }
                }
            }
            @if let Some(error) = error { p.error { (error) } }
        }
    }
}

/// The errors of a form, by field (`""`: the form as a whole).
#[derive(Debug, Clone, Default)]
pub(crate) struct Errors(Vec<(String, String)>);

impl Errors {
    pub fn one(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Errors(vec![(field.into(), detail.into())])
    }

    pub fn of(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, d)| d.as_str())
    }

    /// The errors that name no field shown by the form.
    pub fn general(&self, shown: &[&str]) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(f, _)| !shown.contains(&f.as_str()))
            .map(|(_, d)| d.as_str())
            .collect()
    }
}

/// The errors of a form not tied to one of its `shown` fields, above it.
pub(crate) fn form_errors(errors: &Errors, shown: &[&str]) -> Markup {
    let general = errors.general(shown);
    html! {
        @if !general.is_empty() {
            div.alert role="alert" {
                @for e in general { p { (e) } }
            }
        }
    }
}

/// A button that posts a small form (with the CSRF token); with `confirm`, the script asks
/// first (without script, the form is sent as is).
pub(crate) fn post_button(
    action: &str,
    label: &str,
    csrf_token: &str,
    confirm: Option<&str>,
    class: &str,
) -> Markup {
    html! {
        form.inline method="post" action=(action) data-confirm=[confirm] {
            (csrf(csrf_token))
            button class=(class) type="submit" { (label) }
        }
    }
}

/// A time as the console shows it: `2026-12-06 14:03 UTC`.
pub(crate) fn when(at: &DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M UTC")) }
    }
}

/// How long ago `at` was, in words.
pub(crate) fn ago(at: &DateTime<Utc>) -> String {
    let seconds = (Utc::now() - *at).num_seconds().max(0);
    match seconds {
        0..60 => format!("{seconds} s ago"),
        60..3600 => format!("{} min ago", seconds / 60),
        3600..86400 => format!("{} h ago", seconds / 3600),
        _ => format!("{} days ago", seconds / 86400),
    }
}

/// A status dot and its word (the word is what screen readers and the tests read).
pub(crate) fn status(status: &str) -> Markup {
    html! {
        span class={"status status-" (status)} data-status=(status) {
            span.dot aria-hidden="true" {}
            span.word { (status) }
        }
    }
}

/// A page heading with actions beside it.
pub(crate) fn heading(title: &str, actions: Markup) -> Markup {
    html! {
        div.heading {
            h1 { (title) }
            div.actions { (actions) }
        }
    }
}

/// A secret shown once, with a copy button.
pub(crate) fn secret_once(label: &str, value: &str, note: &str) -> Markup {
    html! {
        div.secret role="status" {
            p { strong { (label) } " — " (note) }
            div.copy {
                code #secret-value { (value) }
                button.copy-button type="button" data-copy="secret-value" { "Copy" }
            }
        }
    }
}
