//! Check results and the state machine they drive. [`record_result`] stores one check of one
//! slot (a monitor and the time the check was due: recorded at most once) and, under the
//! monitor row's lock, moves the monitor: `pending` → `up` on a success, `down` after
//! `confirmations` consecutive failures (opening an incident), back `up` on the next success
//! (resolving it). [`record_ping`] is a heartbeat monitor's push. Every query runs inside a
//! `TenantTx`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tenantry_tenancy::TenantTx;
use uuid::Uuid;

use crate::alerts;
use crate::incidents::{self, Incident};

/// What a check found, and when: a check runner's outcome as [`record_result`] stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// When the check ran.
    pub checked_at: DateTime<Utc>,
    pub ok: bool,
    /// How long the check took, when it measured it.
    pub latency_ms: Option<i32>,
    /// The HTTP status, for `http` and `keyword` checks that got an answer.
    pub status_code: Option<i32>,
    /// Why the check failed (stored and shown cut to [`MAX_ERROR_CHARS`]).
    pub error: Option<String>,
}

/// The longest error text kept, in characters.
pub const MAX_ERROR_CHARS: usize = 1000;

/// The cause of an incident whose confirming failure gave no error text.
const UNKNOWN_CAUSE: &str = "the check failed";

impl Observation {
    /// A passed check.
    pub fn up(checked_at: DateTime<Utc>, latency_ms: Option<i32>) -> Self {
        Self {
            checked_at,
            ok: true,
            latency_ms,
            status_code: None,
            error: None,
        }
    }

    /// A failed check, and why.
    pub fn down(checked_at: DateTime<Utc>, error: impl Into<String>) -> Self {
        Self {
            checked_at,
            ok: false,
            latency_ms: None,
            status_code: None,
            error: Some(error.into()),
        }
    }
}

/// One check of a monitor, as stored and listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct CheckResult {
    pub id: Uuid,
    pub monitor_id: Uuid,
    /// When the check ran.
    pub checked_at: DateTime<Utc>,
    /// Whether the check passed.
    pub ok: bool,
    /// How long the check took, in milliseconds (`null` when it measured nothing, e.g. a ping).
    #[schema(example = 42)]
    pub latency_ms: Option<i32>,
    /// The HTTP status, for `http` and `keyword` monitors that got an answer.
    #[schema(example = 200)]
    pub status_code: Option<i32>,
    /// Why the check failed.
    pub error: Option<String>,
}

const COLUMNS: &str = "id, monitor_id, checked_at, ok, latency_ms, status_code, error";

/// A monitor's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorStatus {
    /// Not checked yet, or failing without confirmation since it was created.
    Pending,
    Up,
    Down,
}

impl MonitorStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MonitorStatus::Pending => "pending",
            MonitorStatus::Up => "up",
            MonitorStatus::Down => "down",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(MonitorStatus::Pending),
            "up" => Some(MonitorStatus::Up),
            "down" => Some(MonitorStatus::Down),
            _ => None,
        }
    }

    /// A status read from the database (whose CHECK allows only the three).
    fn read(text: &str) -> sqlx::Result<Self> {
        Self::parse(text)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown monitor status {text:?}").into()))
    }
}

/// An incident opened or resolved by a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Opened(Incident),
    Resolved(Incident),
}

/// What [`record_result`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// This slot was recorded before: nothing changed.
    Duplicate,
    /// No such monitor (deleted meanwhile): nothing recorded.
    NoMonitor,
    /// The result was stored; the monitor's status after it, and the incident it opened or
    /// resolved. A result older than the monitor's latest check is stored without moving it.
    Stored {
        result: CheckResult,
        status: MonitorStatus,
        transition: Option<Transition>,
    },
}

impl Recorded {
    /// Whether an incident was opened or resolved, so alert deliveries may have been enqueued:
    /// the caller must then [`alerts::note_pending`] the organization before committing.
    pub fn needs_delivery(&self) -> bool {
        matches!(
            self,
            Recorded::Stored {
                transition: Some(_),
                ..
            }
        )
    }
}

/// The monitor's state, locked for the rest of the transaction.
#[derive(sqlx::FromRow)]
struct State {
    status: String,
    confirmations: i32,
    consecutive_failures: i32,
    last_checked_at: Option<DateTime<Utc>>,
}

/// Records `outcome` as the check of `monitor_id` due at `due_at` and moves the monitor's
/// state. The monitor row is locked (`FOR UPDATE`) first, so concurrent recorders of one monitor
/// take turns; a slot already recorded is [`Recorded::Duplicate`] and changes nothing.
/// An incident opened or resolved also enqueues its alert deliveries in `tx`
/// ([`alerts::enqueue`]); when [`Recorded::needs_delivery`], the caller notes the organization
/// ([`alerts::note_pending`]) before committing.
/// Whether a result of the slot (`monitor_id`, `due_at`) is stored already.
pub async fn has_result(
    tx: &mut TenantTx,
    monitor_id: Uuid,
    due_at: DateTime<Utc>,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM check_results WHERE monitor_id = $1 AND due_at = $2)",
    )
    .bind(monitor_id)
    .bind(due_at)
    .fetch_one(&mut **tx)
    .await
}

pub async fn record_result(
    tx: &mut TenantTx,
    monitor_id: Uuid,
    due_at: DateTime<Utc>,
    outcome: &Observation,
) -> sqlx::Result<Recorded> {
    let state: Option<State> = sqlx::query_as(
        "SELECT status, confirmations, consecutive_failures, last_checked_at
         FROM monitors WHERE id = $1 FOR UPDATE",
    )
    .bind(monitor_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(state) = state else {
        return Ok(Recorded::NoMonitor);
    };
    let error = outcome.error.as_deref().map(cut);
    let result: Option<CheckResult> = sqlx::query_as(&format!(
        "INSERT INTO check_results
             (tenant_id, id, monitor_id, due_at, checked_at, ok, latency_ms, status_code, error)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (tenant_id, monitor_id, due_at) DO NOTHING
         RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant_id().as_uuid())
    .bind(Uuid::now_v7())
    .bind(monitor_id)
    .bind(due_at)
    .bind(outcome.checked_at)
    .bind(outcome.ok)
    .bind(outcome.latency_ms.map(|l| l.max(0)))
    .bind(outcome.status_code)
    .bind(error)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(result) = result else {
        return Ok(Recorded::Duplicate);
    };
    let status = MonitorStatus::read(&state.status)?;
    if state
        .last_checked_at
        .is_some_and(|last| result.checked_at < last)
    {
        // A late result (a slow check overtaken by a later one): kept, but the monitor's state
        // follows its latest check.
        return Ok(Recorded::Stored {
            result,
            status,
            transition: None,
        });
    }
    if result.ok {
        set_state(tx, monitor_id, MonitorStatus::Up, 0, result.checked_at).await?;
        let resolved = incidents::resolve(tx, monitor_id, result.checked_at).await?;
        return Ok(Recorded::Stored {
            result,
            status: MonitorStatus::Up,
            transition: announce(tx, resolved.map(Transition::Resolved)).await?,
        });
    }
    let failures = state.consecutive_failures.saturating_add(1);
    if failures < state.confirmations {
        set_state(tx, monitor_id, status, failures, result.checked_at).await?;
        return Ok(Recorded::Stored {
            result,
            status,
            transition: None,
        });
    }
    set_state(
        tx,
        monitor_id,
        MonitorStatus::Down,
        failures,
        result.checked_at,
    )
    .await?;
    let cause = result.error.clone().unwrap_or_else(|| UNKNOWN_CAUSE.into());
    let opened = incidents::open(tx, monitor_id, i64::from(failures), &cause).await?;
    Ok(Recorded::Stored {
        result,
        status: MonitorStatus::Down,
        transition: announce(tx, opened.map(Transition::Opened)).await?,
    })
}

/// Enqueues the alert deliveries of `transition`, if any, in the transaction that makes it.
async fn announce(
    tx: &mut TenantTx,
    transition: Option<Transition>,
) -> sqlx::Result<Option<Transition>> {
    if let Some(transition) = &transition {
        alerts::enqueue(tx, transition).await?;
    }
    Ok(transition)
}

async fn set_state(
    tx: &mut TenantTx,
    monitor_id: Uuid,
    status: MonitorStatus,
    failures: i32,
    checked_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE monitors SET status = $2, consecutive_failures = $3, last_checked_at = $4
         WHERE id = $1",
    )
    .bind(monitor_id)
    .bind(status.as_str())
    .bind(failures)
    .bind(checked_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// `text` cut to [`MAX_ERROR_CHARS`] characters, never empty.
fn cut(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        return UNKNOWN_CAUSE.to_string();
    }
    text.chars().take(MAX_ERROR_CHARS).collect()
}

/// What [`record_ping`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ping {
    /// No enabled heartbeat monitor has this id.
    NoMonitor,
    /// The ping was noted (`last_ping_at`); the monitor was up already.
    Noted,
    /// The monitor was not up: the ping was also recorded as a passed check (which resolves its
    /// incident, if it had one).
    Recovered(Recorded),
}

impl Ping {
    /// [`Recorded::needs_delivery`] of the check a ping recorded.
    pub fn needs_delivery(&self) -> bool {
        match self {
            Ping::Recovered(recorded) => recorded.needs_delivery(),
            Ping::NoMonitor | Ping::Noted => false,
        }
    }
}

/// A ping of heartbeat monitor `monitor_id` at `at`: sets its `last_ping_at` (never back in
/// time), and, when the monitor is not `up`, records a passed check due at `at`.
pub async fn record_ping(
    tx: &mut TenantTx,
    monitor_id: Uuid,
    at: DateTime<Utc>,
) -> sqlx::Result<Ping> {
    let status: Option<String> = sqlx::query_scalar(
        "UPDATE monitors SET last_ping_at = greatest(last_ping_at, $2)
         WHERE id = $1 AND kind = 'heartbeat' AND enabled
         RETURNING status",
    )
    .bind(monitor_id)
    .bind(at)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(status) = status else {
        return Ok(Ping::NoMonitor);
    };
    match MonitorStatus::read(&status)? {
        MonitorStatus::Up => Ok(Ping::Noted),
        MonitorStatus::Pending | MonitorStatus::Down => Ok(Ping::Recovered(
            record_result(tx, monitor_id, at, &Observation::up(at, None)).await?,
        )),
    }
}

/// Deletes the check results that ran more than `retention_days` days ago (by the database's
/// clock); returns how many.
pub async fn prune_results(tx: &mut TenantTx, retention_days: i32) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "DELETE FROM check_results WHERE checked_at < now() - make_interval(days => $1)",
    )
    .bind(retention_days.max(0))
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

/// A position in a list ordered by a time and an id (creation time for monitors, agents,
/// channels and pages; check or start time for results and incidents): the item at `at` with
/// `id`; the next page starts after it. The one cursor of every paged list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct After {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

/// A time range of results: `since` included, `until` excluded; either may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// Up to `limit` results of `monitor_id` in `range`, newest first, after `after`.
pub async fn list_results(
    tx: &mut TenantTx,
    monitor_id: Uuid,
    limit: i64,
    after: Option<After>,
    range: TimeRange,
) -> sqlx::Result<Vec<CheckResult>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM check_results
         WHERE monitor_id = $1
           AND ($2::timestamptz IS NULL OR (checked_at, id) < ($2, $3))
           AND ($4::timestamptz IS NULL OR checked_at >= $4)
           AND ($5::timestamptz IS NULL OR checked_at < $5)
         ORDER BY checked_at DESC, id DESC LIMIT $6"
    ))
    .bind(monitor_id)
    .bind(after.map(|a| a.at))
    .bind(after.map(|a| a.id))
    .bind(range.since)
    .bind(range.until)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}

/// Checks of one time bucket: those that passed, and all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Tally {
    pub start: DateTime<Utc>,
    pub ok: i64,
    pub total: i64,
}

/// The checks of `monitor_id` since `since`, counted per `bucket` (buckets start at `since`;
/// buckets without checks are absent), oldest first.
pub async fn tally(
    tx: &mut TenantTx,
    monitor_id: Uuid,
    since: DateTime<Utc>,
    bucket: chrono::Duration,
) -> sqlx::Result<Vec<Tally>> {
    sqlx::query_as(
        "SELECT date_bin($3::interval, checked_at, $2) AS start,
                count(*) FILTER (WHERE ok) AS ok, count(*) AS total
         FROM check_results WHERE monitor_id = $1 AND checked_at >= $2
         GROUP BY 1 ORDER BY 1",
    )
    .bind(monitor_id)
    .bind(since)
    .bind(bucket)
    .fetch_all(&mut **tx)
    .await
}

/// For every monitor with checks since `since`: its id, the checks that passed, and all.
pub async fn tally_all(
    tx: &mut TenantTx,
    since: DateTime<Utc>,
) -> sqlx::Result<Vec<(Uuid, i64, i64)>> {
    sqlx::query_as(
        "SELECT monitor_id, count(*) FILTER (WHERE ok), count(*)
         FROM check_results WHERE checked_at >= $1 GROUP BY monitor_id",
    )
    .bind(since)
    .fetch_all(&mut **tx)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_cut_and_never_empty() {
        assert_eq!(cut("  refused "), "refused");
        assert_eq!(cut(""), UNKNOWN_CAUSE);
        let long = "é".repeat(MAX_ERROR_CHARS + 5);
        assert_eq!(cut(&long).chars().count(), MAX_ERROR_CHARS);
    }

    #[test]
    fn statuses_round_trip() {
        for status in [
            MonitorStatus::Pending,
            MonitorStatus::Up,
            MonitorStatus::Down,
        ] {
            assert_eq!(MonitorStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(MonitorStatus::parse("sideways"), None);
    }
}
