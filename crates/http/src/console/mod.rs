//! The web console: server-rendered HTML pages (templates are `maud` macros compiled into the
//! binary), plain form posts (a small script only enhances them), cookie sessions with CSRF
//! tokens. Pages call the same services as the JSON API: where a use case holds more than one
//! call, it lives in [`crate::cases`] and both call it there.
//!
//! Why `maud` rather than askama or minijinja: a page is built from many small parts taking
//! typed arguments, and a Rust function is the natural unit for that. The compiler checks every
//! template (a missing variable or a wrong type fails the build), output is escaped by default,
//! and there are no template files to keep in step with structs.
//!
//! Routes: `/` (the start: the default organization, or creating one), `/signup`, `/login`,
//! `/logout`, `/account/sessions`, `/orgs/new`, `/invitations/{token}` (the emailed link),
//! every organization page under `/o/{org_slug}/…` (so two tabs can show two organizations),
//! `/admin/…` for platform admins, and `/static/…`. An organization the user is not a member of
//! answers the same 404 page as a missing one.

mod account;
mod admin;
mod assets;
mod audit;
mod channels;
mod charts;
mod error;
mod invitations;
mod keys;
mod live;
mod members;
mod monitors;
mod org;
mod session;
mod settings;
mod view;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};

pub(crate) use error::not_found;
pub(crate) use invitations::__path_page as __path_invitation_page;
pub(crate) use session::security_headers;

use crate::state::AppState;

/// The console's routes, behind its session middleware.
pub(crate) fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(account::start))
        .route("/signup", get(account::signup_page).post(account::signup))
        .route("/login", get(account::login_page).post(account::login))
        .route("/logout", post(account::logout))
        .route("/account/sessions", get(account::sessions))
        .route(
            "/account/sessions/{id}/revoke",
            post(account::revoke_session),
        )
        .route("/orgs/new", get(org::new_page).post(org::create))
        .route(
            "/invitations/{token}",
            get(invitations::page).post(invitations::accept),
        )
        .route("/o/{slug}", get(org::home))
        .route("/o/{slug}/events", get(live::events))
        .route("/o/{slug}/monitors", get(monitors::list))
        .route(
            "/o/{slug}/monitors/new",
            get(monitors::new_page).post(monitors::create),
        )
        .route("/o/{slug}/monitors/{id}", get(monitors::show))
        .route(
            "/o/{slug}/monitors/{id}/edit",
            get(monitors::edit_page).post(monitors::update),
        )
        .route("/o/{slug}/monitors/{id}/pause", post(monitors::pause))
        .route("/o/{slug}/monitors/{id}/resume", post(monitors::resume))
        .route("/o/{slug}/monitors/{id}/delete", post(monitors::delete))
        .route("/o/{slug}/members", get(members::list))
        .route(
            "/o/{slug}/members/invite",
            get(members::invite_page).post(members::invite),
        )
        .route("/o/{slug}/members/{user}/role", post(members::change_role))
        .route("/o/{slug}/members/{user}/remove", post(members::remove))
        .route("/o/{slug}/invitations/{id}/resend", post(members::resend))
        .route("/o/{slug}/invitations/{id}/revoke", post(members::revoke))
        .route(
            "/o/{slug}/settings",
            get(settings::page).post(settings::save),
        )
        .route("/o/{slug}/settings/default", post(settings::make_default))
        .route("/o/{slug}/settings/leave", post(settings::leave))
        .route("/o/{slug}/settings/delete", post(settings::delete))
        .route("/o/{slug}/usage", get(settings::usage))
        .route("/o/{slug}/export", get(settings::export))
        .route("/o/{slug}/api-keys", get(keys::list).post(keys::create))
        .route("/o/{slug}/api-keys/{id}/revoke", post(keys::revoke))
        .route(
            "/o/{slug}/agents",
            get(keys::agents).post(keys::register_agent),
        )
        .route("/o/{slug}/agents/{id}/delete", post(keys::delete_agent))
        .route("/o/{slug}/audit", get(audit::page))
        .route(
            "/o/{slug}/alert-channels",
            get(channels::channels).post(channels::create_channel),
        )
        .route(
            "/o/{slug}/alert-channels/{id}",
            get(channels::channel_page).post(channels::update_channel),
        )
        .route(
            "/o/{slug}/alert-channels/{id}/test",
            post(channels::test_channel),
        )
        .route(
            "/o/{slug}/alert-channels/{id}/delete",
            post(channels::delete_channel),
        )
        .route(
            "/o/{slug}/status-pages",
            get(channels::pages).post(channels::create_page),
        )
        .route(
            "/o/{slug}/status-pages/{id}",
            get(channels::page_page).post(channels::update_page),
        )
        .route(
            "/o/{slug}/status-pages/{id}/delete",
            post(channels::delete_page),
        )
        .route("/o/{slug}/{*rest}", get(org::missing))
        .route("/admin", get(admin::tenants).post(admin::create))
        .route(
            "/admin/tenants/{slug}",
            get(admin::tenant).post(admin::change),
        )
        .route("/admin/tenants/{slug}/status", post(admin::set_status))
        .route("/admin/tenants/{slug}/move", post(admin::move_tier))
        .route("/admin/tenants/{slug}/delete", post(admin::delete))
        .layer(middleware::from_fn_with_state(state, session::layer))
        // Static files need no session: served without a look at the cookie.
        .route("/static/console.css", get(assets::css))
        .route("/static/console.js", get(assets::js))
        .route("/static/icon.svg", get(assets::icon))
}
