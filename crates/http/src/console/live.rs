//! `/o/{slug}/events`: Server-Sent Events of the organization's monitors, for the monitors
//! pages to follow status changes without reloading. The stream reads the organization's
//! monitors through its own door every [`EVERY`] and sends a `monitor` event for each one whose
//! status, last check or open incident changed (all of them at first), in the order the monitors
//! are listed. It is scoped by construction: it can only read the organization it was opened
//! for, and it ends once the user is no longer a member or the browser session ends (logged out,
//! revoked).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Serialize;
use tenantry_tenancy::TenantCtx;
use uuid::Uuid;

use super::error::ConsoleError;
use super::org::OrgPage;
use super::view;
use crate::state::AppState;

/// How often the stream looks for changes.
const EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Change {
    id: Uuid,
    status: String,
    last_checked_at: Option<chrono::DateTime<chrono::Utc>>,
    last_checked_text: String,
    incident_text: String,
}

async fn snapshot(ctx: &TenantCtx) -> Result<Vec<Change>, crate::error::AppError> {
    let mut tx = ctx.begin_read().await?;
    let monitors = tenantry_monitoring::list(&mut tx, 500, None).await?;
    let open = tenantry_monitoring::open_incidents(&mut tx).await?;
    tx.commit().await?;
    Ok(monitors
        .into_iter()
        .map(|m| {
            let last = m.last_checked_at.or(m.last_ping_at);
            let incident = open.iter().find(|i| i.monitor_id == m.id);
            Change {
                id: m.id,
                status: if m.enabled {
                    m.status
                } else {
                    "paused".to_owned()
                },
                last_checked_at: last,
                last_checked_text: last.map_or_else(|| "never".to_owned(), |at| view::ago(&at)),
                incident_text: incident.map_or_else(
                    || "none".to_owned(),
                    |i| {
                        format!(
                            "since {}: {}",
                            i.started_at.format("%Y-%m-%d %H:%M UTC"),
                            i.cause
                        )
                    },
                ),
            }
        })
        .collect())
}

pub(crate) async fn events(
    State(state): State<AppState>,
    page: OrgPage,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ConsoleError> {
    let ctx = page.ctx(&state).await?;
    let user = page.signed.user().id;
    let session = page.signed.signed.session.session_id;
    let slug = page.record.slug.clone();
    let stream = futures::stream::unfold(
        (
            state,
            ctx,
            HashMap::<Uuid, Change>::new(),
            VecDeque::<Event>::new(),
            true,
        ),
        move |(state, ctx, mut seen, mut queued, mut first)| {
            let slug = slug.clone();
            async move {
                loop {
                    if let Some(event) = queued.pop_front() {
                        return Some((Ok(event), (state, ctx, seen, queued, false)));
                    }
                    // The server shutting down ends the stream (the browser reconnects to another).
                    let mut stopping = state.stopping.clone();
                    if *stopping.borrow() {
                        return None;
                    }
                    if !first {
                        tokio::select! {
                            () = tokio::time::sleep(EVERY) => {}
                            _ = stopping.wait_for(|stop| *stop) => return None,
                        }
                    }
                    first = false;
                    // A session ended, a member removed or an organization gone ends the stream.
                    if !state.identity.session_open(session).await.unwrap_or(false)
                        || state.orgs.for_member(&slug, user).await.is_err()
                    {
                        return None;
                    }
                    let Ok(now) = snapshot(&ctx).await else {
                        continue;
                    };
                    for change in now {
                        if seen.get(&change.id) != Some(&change) {
                            if let Ok(event) = Event::default().event("monitor").json_data(&change)
                            {
                                queued.push_back(event);
                            }
                            seen.insert(change.id, change);
                        }
                    }
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
