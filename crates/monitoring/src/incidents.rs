//! Incidents: a monitor's outages, opened after `confirmations` consecutive failed checks and
//! resolved by the next success ([`crate::record_result`] does both). At most one is open per
//! monitor. Every query runs inside a `TenantTx`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tenantry_tenancy::TenantTx;
use uuid::Uuid;

use crate::results::After;

/// An outage of one monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Incident {
    pub id: Uuid,
    pub monitor_id: Uuid,
    /// When the first failed check of the run that opened it ran.
    pub started_at: DateTime<Utc>,
    /// When the check that ended it ran; `null` while it is open.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Why the check that confirmed it failed.
    #[schema(example = "connection refused")]
    pub cause: String,
}

const COLUMNS: &str = "id, monitor_id, started_at, resolved_at, cause";

/// Up to `limit` incidents of `monitor_id`, newest first, after `after`.
pub async fn list_incidents(
    tx: &mut TenantTx,
    monitor_id: Uuid,
    limit: i64,
    after: Option<After>,
) -> sqlx::Result<Vec<Incident>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM incidents
         WHERE monitor_id = $1
           AND ($2::timestamptz IS NULL OR (started_at, id) < ($2, $3))
         ORDER BY started_at DESC, id DESC LIMIT $4"
    ))
    .bind(monitor_id)
    .bind(after.map(|a| a.at))
    .bind(after.map(|a| a.id))
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}

/// Every open incident of the tenant.
pub async fn open_incidents(tx: &mut TenantTx) -> sqlx::Result<Vec<Incident>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM incidents WHERE resolved_at IS NULL ORDER BY started_at"
    ))
    .fetch_all(&mut **tx)
    .await
}

/// The open incident of `monitor_id`, if it has one.
pub async fn open_incident(tx: &mut TenantTx, monitor_id: Uuid) -> sqlx::Result<Option<Incident>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM incidents WHERE monitor_id = $1 AND resolved_at IS NULL"
    ))
    .bind(monitor_id)
    .fetch_optional(&mut **tx)
    .await
}

/// Opens an incident for `monitor_id`, started at the earliest of its latest `run` results (the
/// run of failures that confirmed it), unless one is open already (then `None`).
pub(crate) async fn open(
    tx: &mut TenantTx,
    monitor_id: Uuid,
    run: i64,
    cause: &str,
) -> sqlx::Result<Option<Incident>> {
    sqlx::query_as(&format!(
        "INSERT INTO incidents (tenant_id, id, monitor_id, started_at, cause)
         SELECT $1, $2, $3, min(r.checked_at), $5
         FROM (SELECT checked_at FROM check_results WHERE monitor_id = $3
               ORDER BY checked_at DESC, id DESC LIMIT $4) r
         ON CONFLICT (tenant_id, monitor_id) WHERE resolved_at IS NULL DO NOTHING
         RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant_id().as_uuid())
    .bind(Uuid::now_v7())
    .bind(monitor_id)
    .bind(run.max(1))
    .bind(cause)
    .fetch_optional(&mut **tx)
    .await
}

/// Resolves the open incident of `monitor_id` at `at` (never before it started), if there is one.
pub(crate) async fn resolve(
    tx: &mut TenantTx,
    monitor_id: Uuid,
    at: DateTime<Utc>,
) -> sqlx::Result<Option<Incident>> {
    sqlx::query_as(&format!(
        "UPDATE incidents SET resolved_at = greatest(started_at, $2)
         WHERE monitor_id = $1 AND resolved_at IS NULL
         RETURNING {COLUMNS}"
    ))
    .bind(monitor_id)
    .bind(at)
    .fetch_optional(&mut **tx)
    .await
}
