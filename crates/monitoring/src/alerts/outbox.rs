//! The tenant side of the alert outbox (`alert_deliveries`): deliveries inserted in the
//! transaction of the incident they announce ([`enqueue`]), claimed by a deliverer with
//! `FOR UPDATE SKIP LOCKED` and a lease, and their outcomes. Every query runs inside a
//! `TenantTx`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tenantry_tenancy::TenantTx;
use uuid::Uuid;

use crate::results::Transition;

/// The event of an incident opened.
pub const OPENED: &str = "incident.opened";
/// The event of an incident resolved.
pub const RESOLVED: &str = "incident.resolved";

/// The event of a test alert, sent to one channel on request.
pub const TEST: &str = "alert.test";

/// Deliveries made or given up are kept this long, then pruned.
const DONE_RETENTION_DAYS: i32 = 30;

/// Inserts one delivery of `transition` per channel announcing its monitor (channels for all
/// monitors, and those listing it), in the caller's transaction: the deliveries exist if and only
/// if the incident's change commits. The payload — the event, the monitor as the API shows it
/// (after the check that moved it) and the incident — is built now. An event already enqueued
/// for a channel is not enqueued twice. Returns how many deliveries were inserted.
///
/// [`crate::record_result`] calls this itself; whoever commits its transaction must call
/// [`super::note_pending`] before the commit when it returns a transition.
pub async fn enqueue(tx: &mut TenantTx, transition: &Transition) -> sqlx::Result<u64> {
    let (event, incident) = match transition {
        Transition::Opened(incident) => (OPENED, incident),
        Transition::Resolved(incident) => (RESOLVED, incident),
    };
    let channels: Vec<Uuid> = sqlx::query_scalar(
        "SELECT c.id FROM alert_channels c
         WHERE c.all_monitors
            OR EXISTS (SELECT 1 FROM alert_channel_monitors m
                       WHERE m.tenant_id = c.tenant_id AND m.channel_id = c.id
                         AND m.monitor_id = $1)
         ORDER BY c.id",
    )
    .bind(incident.monitor_id)
    .fetch_all(&mut **tx)
    .await?;
    if channels.is_empty() {
        return Ok(0);
    }
    let Some(monitor) = crate::monitors::get(tx, incident.monitor_id).await? else {
        return Ok(0);
    };
    let payload = json!({ "event": event, "monitor": monitor, "incident": incident });
    let ids: Vec<Uuid> = channels.iter().map(|_| Uuid::now_v7()).collect();
    let done = sqlx::query(
        "INSERT INTO alert_deliveries (tenant_id, id, channel_id, incident_id, event, payload)
         SELECT $1, d.id, d.channel_id, $4, $5, $6
         FROM unnest($2::uuid[], $3::uuid[]) AS d(id, channel_id)
         ON CONFLICT (tenant_id, channel_id, incident_id, event) DO NOTHING",
    )
    .bind(tx.tenant_id().as_uuid())
    .bind(&ids)
    .bind(&channels)
    .bind(incident.id)
    .bind(event)
    .bind(&payload)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

/// Queues a test alert to channel `channel_id` of the tenant, in the caller's transaction
/// (whose committer must [`super::note_pending`] the organization): a delivery shaped like an
/// incident's, naming a monitor "Test alert" and no incident, delivered and retried like
/// any other. `false` when the tenant has no such channel.
pub async fn enqueue_test(
    tx: &mut TenantTx,
    channel_id: Uuid,
    sent_by: &str,
) -> sqlx::Result<bool> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM alert_channels WHERE id = $1)")
            .bind(channel_id)
            .fetch_one(&mut **tx)
            .await?;
    if !exists {
        return Ok(false);
    }
    let payload = json!({
        "event": TEST,
        "monitor": {"id": null, "name": "Test alert", "kind": "test", "target": null},
        "incident": {
            "id": null,
            "started_at": Utc::now(),
            "resolved_at": null,
            "cause": format!("A test alert sent by {sent_by}: this channel works."),
        },
    });
    sqlx::query(
        "INSERT INTO alert_deliveries (tenant_id, id, channel_id, incident_id, event, payload)
         VALUES ($1, $2, $3, NULL, $4, $5)",
    )
    .bind(tx.tenant_id().as_uuid())
    .bind(Uuid::now_v7())
    .bind(channel_id)
    .bind(TEST)
    .bind(&payload)
    .execute(&mut **tx)
    .await?;
    Ok(true)
}

/// A delivery claimed for an attempt.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Claimed {
    pub id: Uuid,
    pub channel_id: Uuid,
    /// Attempts made before this one.
    pub attempts: i32,
    pub payload: Value,
}

/// Claims up to `limit` due deliveries for `owner` until `lease` from now: not delivered, not
/// given up, due, and not leased by a live deliverer. Rows another transaction is claiming are
/// skipped.
pub(crate) async fn claim(
    tx: &mut TenantTx,
    owner: Uuid,
    limit: i64,
    lease: Duration,
) -> sqlx::Result<Vec<Claimed>> {
    sqlx::query_as(
        "WITH due AS (
             SELECT tenant_id, id FROM alert_deliveries
             WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()
               AND (lease_until IS NULL OR lease_until < now())
             ORDER BY next_attempt_at, id
             LIMIT $2
             FOR UPDATE SKIP LOCKED)
         UPDATE alert_deliveries d
         SET lease_owner = $1, lease_until = now() + make_interval(secs => $3)
         FROM due WHERE d.tenant_id = due.tenant_id AND d.id = due.id
         RETURNING d.id, d.channel_id, d.attempts, d.payload",
    )
    .bind(owner)
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(&mut **tx)
    .await
}

/// Records delivery `id` as made (whoever holds its lease: it was sent).
pub(crate) async fn delivered(tx: &mut TenantTx, id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE alert_deliveries
         SET delivered_at = now(), attempts = attempts + 1, last_error = NULL,
             lease_owner = NULL, lease_until = NULL
         WHERE id = $1 AND delivered_at IS NULL AND failed_at IS NULL",
    )
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records a failed attempt of delivery `id` by `owner` (ignored if its lease has passed to
/// another deliverer): tried again after `retry_in`, or given up (`failed_at`) when it was
/// created more than `give_up_after` ago. Returns true when it was given up.
pub(crate) async fn attempt_failed(
    tx: &mut TenantTx,
    id: Uuid,
    owner: Uuid,
    error: &str,
    retry_in: Duration,
    give_up_after: Duration,
) -> sqlx::Result<bool> {
    let failed: Option<bool> = sqlx::query_scalar(
        "UPDATE alert_deliveries
         SET attempts = attempts + 1, last_error = $3, lease_owner = NULL, lease_until = NULL,
             next_attempt_at = now() + make_interval(secs => $4),
             failed_at = CASE WHEN created_at <= now() - make_interval(secs => $5)
                              THEN now() END
         WHERE id = $1 AND lease_owner = $2 AND delivered_at IS NULL AND failed_at IS NULL
         RETURNING failed_at IS NOT NULL",
    )
    .bind(id)
    .bind(owner)
    .bind(error.chars().take(2000).collect::<String>())
    .bind(retry_in.as_secs_f64())
    .bind(give_up_after.as_secs_f64())
    .fetch_optional(&mut **tx)
    .await?;
    Ok(failed.unwrap_or(false))
}

/// When the tenant's next delivery is due (a leased one: when its lease ends), if any is
/// pending.
pub(crate) async fn next_due(tx: &mut TenantTx) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar(
        "SELECT min(greatest(next_attempt_at, coalesce(lease_until, next_attempt_at)))
         FROM alert_deliveries WHERE delivered_at IS NULL AND failed_at IS NULL",
    )
    .fetch_one(&mut **tx)
    .await
}

/// Deletes up to 1,000 deliveries made or given up more than 30 days ago.
pub(crate) async fn prune(tx: &mut TenantTx) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "DELETE FROM alert_deliveries WHERE (tenant_id, id) IN (
             SELECT tenant_id, id FROM alert_deliveries
             WHERE (delivered_at IS NOT NULL OR failed_at IS NOT NULL)
               AND created_at < now() - make_interval(days => $1)
             LIMIT 1000)",
    )
    .bind(DONE_RETENTION_DAYS)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}
