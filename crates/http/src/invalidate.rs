//! Synchronous cache invalidation on the instance that made a change.
//!
//! The engine's caches (`tenantry_tenancy::cache`) hold registry records, API keys, members'
//! roles, limits and open sessions. Every instance, this one included, forgets an entry when
//! PostgreSQL announces its change; but the announcement arrives a moment after the commit, and
//! the next request on this instance must not see the old value. So a request that may have
//! changed such data — any request that is not a read, to the routes that manage
//! organizations, their members, keys, invitations, plans and limits, users and sessions —
//! flushes this instance's caches once its handler has finished (committed), and waits until
//! every instance's listener has acknowledged the notifications committed so far (so every
//! other instance has applied them too), before its response is sent.

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

/// Route prefixes whose changes concern what the caches hold.
const AUTHORIZATION_ROUTES: &[&str] = &[
    "/api/v1/organizations",
    "/api/v1/admin",
    "/api/v1/auth",
    "/api/v1/user",
    "/api/v1/invitations",
];

pub(crate) async fn after_changes(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let changes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) && AUTHORIZATION_ROUTES
        .iter()
        .any(|prefix| request.uri().path().starts_with(prefix));
    let response = next.run(request).await;
    if changes {
        state.tenancy.caches().flush();
        // Every instance has applied the change's invalidation once all have acknowledged it.
        state.tenancy.sync_caches().await;
    }
    response
}
