//! The control side of alert delivery: `monitoring.alert_wakeups`, one row per organization
//! with deliveries to make, so deliverers find them without visiting every tenant. A row is a
//! hint: the deliveries in the tenant's storage are the truth.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tenantry_tenancy::ControlDb;
use uuid::Uuid;

/// The channel [`note_pending`] notifies; deliverers listen on it.
pub(crate) const CHANNEL: &str = "tenantry_alerts";

/// Notes that organization `org_id` has deliveries to make now, and wakes the deliverers.
///
/// Call it on the control database's runtime pool **before** committing the tenant transaction
/// that enqueued them (see [`crate::Recorded::needs_delivery`]): a crash after that commit then
/// never leaves deliveries nobody knows about, and a wakeup whose transaction rolled back finds
/// nothing and goes away. Deliverers keep looking at a freshly noted organization for a while
/// (`DelivererConfig::note_grace`), so a transaction committing shortly after its note is not
/// missed.
pub async fn note_pending(control: &ControlDb, org_id: Uuid) -> sqlx::Result<()> {
    note_pending_in(&mut *control.acquire().await?, org_id).await
}

/// [`note_pending`] on a given connection: the tenant transaction's own
/// ([`tenantry_tenancy::TenantTx::control`]) when the tenant lives in the control database, so
/// the note commits with the deliveries.
pub async fn note_pending_in(conn: &mut PgConnection, org_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "WITH noted AS (
             INSERT INTO monitoring.alert_wakeups (org_id, due_at, noted_at)
             VALUES ($1, now(), now())
             ON CONFLICT (org_id) DO UPDATE
                 SET due_at = least(alert_wakeups.due_at, now()), noted_at = now()
             RETURNING 1)
         SELECT pg_notify($2, '') FROM noted",
    )
    .bind(org_id)
    .bind(CHANNEL)
    .execute(conn)
    .await?;
    Ok(())
}

/// Claims up to `limit` due wakeups for `owner` until `lease` from now (skipping those another
/// deliverer is claiming or holds); returns their organizations.
pub(crate) async fn claim(
    control: &ControlDb,
    owner: Uuid,
    limit: i64,
    lease: Duration,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "WITH due AS (
             SELECT org_id FROM monitoring.alert_wakeups
             WHERE due_at <= now() AND (lease_until IS NULL OR lease_until < now())
             ORDER BY due_at
             LIMIT $2
             FOR UPDATE SKIP LOCKED)
         UPDATE monitoring.alert_wakeups w
         SET lease_owner = $1, lease_until = now() + make_interval(secs => $3)
         FROM due WHERE w.org_id = due.org_id
         RETURNING w.org_id",
    )
    .bind(owner)
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(control)
    .await
}

/// Releases `owner`'s wakeup of `org_id` after a visit that left `next` as the tenant's next
/// pending delivery (`None`: nothing pending).
///
/// With nothing pending, the row is deleted only once its last note is older than `grace`: a
/// younger note may come from a transaction that has not committed its deliveries yet (notes
/// are made before the commit), so the organization is looked at again soon — after half the
/// note's age, between 1 and 30 seconds. A note made during the visit updates `noted_at`, so it
/// is never lost to the delete (which, under the row's lock, sees the newer `noted_at`).
pub(crate) async fn finish(
    control: &ControlDb,
    org_id: Uuid,
    owner: Uuid,
    next: Option<DateTime<Utc>>,
    grace: Duration,
) -> sqlx::Result<()> {
    let mut tx = control.begin().await?;
    sqlx::query(
        "DELETE FROM monitoring.alert_wakeups
         WHERE org_id = $1 AND lease_owner = $2 AND $3::timestamptz IS NULL
           AND noted_at < now() - make_interval(secs => $4)",
    )
    .bind(org_id)
    .bind(owner)
    .bind(next)
    .bind(grace.as_secs_f64())
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE monitoring.alert_wakeups
         SET lease_owner = NULL, lease_until = NULL,
             due_at = CASE
                 WHEN noted_at >= now() - make_interval(secs => $4) THEN least(
                     coalesce($3::timestamptz, 'infinity'),
                     now() + least(greatest((now() - noted_at) / 2, interval '1 second'),
                                   interval '30 seconds'))
                 ELSE coalesce($3::timestamptz, now())
             END
         WHERE org_id = $1 AND lease_owner = $2",
    )
    .bind(org_id)
    .bind(owner)
    .bind(next)
    .bind(grace.as_secs_f64())
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Releases `owner`'s wakeup of `org_id` to be looked at again after `delay` (a tenant that is
/// suspended, moving or unreachable now).
pub(crate) async fn postpone(
    control: &ControlDb,
    org_id: Uuid,
    owner: Uuid,
    delay: Duration,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE monitoring.alert_wakeups
         SET lease_owner = NULL, lease_until = NULL,
             due_at = now() + make_interval(secs => $3)
         WHERE org_id = $1 AND lease_owner = $2",
    )
    .bind(org_id)
    .bind(owner)
    .bind(delay.as_secs_f64())
    .execute(control)
    .await?;
    Ok(())
}

/// Forgets the wakeup of an organization that no longer exists.
pub(crate) async fn forget(control: &ControlDb, org_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM monitoring.alert_wakeups WHERE org_id = $1")
        .bind(org_id)
        .execute(control)
        .await?;
    Ok(())
}

/// Deletes email deduplication records older than a week.
pub(crate) async fn prune_emails(control: &ControlDb) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "DELETE FROM monitoring.alert_emails WHERE created_at < now() - interval '7 days'",
    )
    .execute(control)
    .await?;
    Ok(done.rows_affected())
}
