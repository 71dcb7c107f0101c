//! The schedule's rows (`monitoring.schedule` in the control database): kept in step with the
//! monitors ([`plan`], [`unplan`], [`reconcile`]), claimed under leases ([`claim`]) and moved
//! to the next slot when a check is recorded ([`finish`]).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::{PgConnection, PgExecutor};
use tenantry_tenancy::ControlDb;
use tenantry_tenancy::{Tenancy, TenancyError, TenantStatus};
use uuid::Uuid;

use crate::monitors::Monitor;

/// One due check an instance (or an agent) holds a lease on.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Claim {
    pub org_id: Uuid,
    pub monitor_id: Uuid,
    /// The slot: when the check was due.
    pub due_at: DateTime<Utc>,
    pub interval_seconds: i32,
    pub timeout_seconds: i32,
    /// The organization's plan.
    pub plan: String,
    /// The organization's share of a worker pool: its plan's `scheduler_weight` in the plans
    /// table (`orgs.plans`), 1 for a plan it does not name.
    pub weight: i32,
    /// When the row was last written from its monitor.
    pub planned_at: DateTime<Utc>,
}

/// An organization's weight in SQL: its plan's `scheduler_weight`, over `orgs.plans` aliased `p`
/// (joined on `control.tenants` aliased `t`), 1 when the plans table does not name the plan.
const WEIGHT_SQL: &str = "coalesce(p.scheduler_weight, 1)";

/// How long a claim stays leased: twice the check's time limit and this slack (by default), so
/// a check waiting its turn in the instance's queue and then running to its timeout keeps its
/// lease.
pub const LEASE_SLACK: Duration = Duration::from_secs(30);

/// The lease on a check whose time limit is `timeout_seconds`.
pub fn lease_for(timeout_seconds: i32, slack: Duration) -> Duration {
    Duration::from_secs(timeout_seconds.max(1) as u64 * 2) + slack
}

/// A transaction whose commit does not wait for the disk. Leases and slot moves are hints: one
/// lost in a database crash means a slot run again, which its stored result makes harmless
/// (recorded once, and not even run when the result is there). The results themselves are
/// written durably, in the tenant's transaction.
async fn lazily(control: &ControlDb) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    control
        .begin_with("BEGIN; SET LOCAL synchronous_commit = off")
        .await
}

/// Makes the schedule match `monitor` of `org_id`: a row for an enabled monitor not assigned to
/// anything else, none for a disabled one. A new row is due at once; a changed interval brings
/// the next slot no later than one new interval from now. Call it before committing the
/// transaction that created or changed the monitor, on [`tenantry_tenancy::TenantTx::control`]
/// (in that transaction when the tenant lives in the control database; a row whose monitor
/// never commits is otherwise removed by the first worker that claims it).
pub async fn plan(
    control: impl PgExecutor<'_>,
    org_id: Uuid,
    monitor: &Monitor,
    agent_id: Option<Uuid>,
) -> sqlx::Result<()> {
    if !monitor.enabled {
        return unplan(control, org_id, monitor.id).await;
    }
    sqlx::query(
        "INSERT INTO monitoring.schedule
             (org_id, monitor_id, interval_seconds, timeout_seconds, agent_id, next_due_at)
         VALUES ($1, $2, $3, $4, $5, now())
         ON CONFLICT (org_id, monitor_id) DO UPDATE SET
             interval_seconds = EXCLUDED.interval_seconds,
             timeout_seconds = EXCLUDED.timeout_seconds,
             agent_id = EXCLUDED.agent_id,
             planned_at = now(),
             next_due_at = least(schedule.next_due_at,
                                 now() + make_interval(secs => EXCLUDED.interval_seconds))",
    )
    .bind(org_id)
    .bind(monitor.id)
    .bind(monitor.interval_seconds)
    .bind(monitor.timeout_seconds)
    .bind(agent_id)
    .execute(control)
    .await?;
    Ok(())
}

/// Removes `monitor_id` of `org_id` from the schedule (deleted or disabled).
pub async fn unplan(
    control: impl PgExecutor<'_>,
    org_id: Uuid,
    monitor_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM monitoring.schedule WHERE org_id = $1 AND monitor_id = $2")
        .bind(org_id)
        .bind(monitor_id)
        .execute(control)
        .await?;
    Ok(())
}

/// Who claims: the server instances (monitors assigned to no agent) or one agent of one
/// organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimant {
    Instances,
    Agent { org_id: Uuid, agent_id: Uuid },
}

/// What a claim asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask {
    /// Checks due by now, at most.
    pub due: i64,
    /// Of those, how many may be of any organization; the rest of `due` is kept for
    /// organizations in a lower round than the busiest one (fewer checks running per unit of
    /// weight than the organization with the most), so that checks of the busiest, claimed and
    /// unable to start, never keep another organization's due check from being claimed.
    pub unreserved: i64,
    /// Checks not due yet but within `horizon`, at most (the soonest first).
    pub ahead: i64,
    /// Of those, how many may be of any organization; the rest only of organizations in a
    /// lower round than the busiest one.
    pub ahead_unreserved: i64,
    pub horizon: Duration,
}

impl Ask {
    /// Up to `max` checks due by now, of any organization.
    pub fn due(max: i64) -> Self {
        Self {
            due: max,
            unreserved: max,
            ahead: 0,
            ahead_unreserved: 0,
            horizon: Duration::ZERO,
        }
    }
}

/// Leases up to `max` due checks to `owner` ([`lease_for`] each with `slack`), fairly across
/// organizations: each organization's due checks are ranked oldest first, after the checks it
/// has running already (leased, on any instance), and the claim takes rank 1 of every
/// organization before rank 2 of any, an organization of weight `w` getting `w` ranks per round
/// (so a plan with a higher weight is delayed last). Counting what is running carries the
/// rounds over from one claim to the next: an organization whose backlog fills the workers ranks
/// behind one with a single check due. Only active organizations' checks are claimed: a
/// suspended or deleted organization's monitors stop. Rows another claimer has locked are
/// skipped. Only the `max` oldest due checks of each organization are ranked, read in order
/// from its index, so a backlog of thousands is never sorted as a whole.
pub async fn claim(
    control: &ControlDb,
    claimant: Claimant,
    owner: Uuid,
    max: i64,
    slack: Duration,
) -> sqlx::Result<Vec<Claim>> {
    claim_ahead(control, claimant, owner, &Ask::due(max), slack).await
}

/// Which of `slots` (monitor, due time) of the organization are leased to `owner` now: the
/// schedule row's slot is that due time and its lease is `owner`'s (an agent may post results
/// for exactly those).
pub async fn leased_to(
    control: &ControlDb,
    org_id: Uuid,
    owner: Uuid,
    slots: &[(Uuid, DateTime<Utc>)],
) -> sqlx::Result<std::collections::HashSet<(Uuid, DateTime<Utc>)>> {
    if slots.is_empty() {
        return Ok(Default::default());
    }
    let (monitors, due): (Vec<Uuid>, Vec<DateTime<Utc>>) = slots.iter().copied().unzip();
    let leased: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(
        "SELECT s.monitor_id, s.next_due_at FROM monitoring.schedule s
         JOIN unnest($3::uuid[], $4::timestamptz[]) AS r(monitor_id, due_at)
           ON s.monitor_id = r.monitor_id AND s.next_due_at = r.due_at
         WHERE s.org_id = $1 AND s.lease_owner = $2",
    )
    .bind(org_id)
    .bind(owner)
    .bind(&monitors)
    .bind(&due)
    .fetch_all(control)
    .await?;
    Ok(leased.into_iter().collect())
}

/// [`claim`] as `ask` says: due checks as [`claim`] ranks them, past `ask.unreserved` only of
/// organizations below the busiest one's round, and checks coming due within `ask.horizon`,
/// the soonest first (past `ask.ahead_unreserved` likewise only of organizations below the
/// busiest), for an instance that starts each at its due time. Leases of agents do not count
/// toward the server instances' rounds, nor the instances' toward an agent's.
pub async fn claim_ahead(
    control: &ControlDb,
    claimant: Claimant,
    owner: Uuid,
    ask: &Ask,
    slack: Duration,
) -> sqlx::Result<Vec<Claim>> {
    let (due, ahead) = (ask.due.max(0), ask.ahead.max(0));
    if due + ahead == 0 {
        return Ok(Vec::new());
    }
    let (scope, org, agent) = match claimant {
        Claimant::Instances => ("s.agent_id IS NULL", None, None),
        Claimant::Agent { org_id, agent_id } => (
            "s.org_id = $4 AND s.agent_id = $5",
            Some(org_id),
            Some(agent_id),
        ),
    };
    let claimable = format!(
        "{scope} AND s.next_due_at <= now() + make_interval(secs => $7)
         AND (s.lease_until IS NULL OR s.lease_until < now())"
    );
    let mut tx = lazily(control).await?;
    let claims = sqlx::query_as(&format!(
        "WITH busy AS (
             SELECT s.org_id, count(*) AS running
             FROM monitoring.schedule s
             WHERE {scope} AND s.lease_owner IS NOT NULL AND s.lease_until > now()
             GROUP BY s.org_id
         ), busiest AS (
             SELECT coalesce(max(b.running / {WEIGHT_SQL}), 0) AS round
             FROM busy b JOIN control.tenants t ON t.id = b.org_id
             LEFT JOIN orgs.plans p ON p.name = t.plan
         ), due AS (
             SELECT DISTINCT s.org_id
             FROM monitoring.schedule s
             WHERE {claimable}
         ), ranked AS (
             SELECT d.org_id, d.monitor_id, d.next_due_at, t.plan, {WEIGHT_SQL} AS weight,
                    coalesce(b.running, 0) + d.n AS rank
             FROM due o
             JOIN control.tenants t ON t.id = o.org_id
             LEFT JOIN orgs.plans p ON p.name = t.plan
             LEFT JOIN busy b ON b.org_id = o.org_id
             CROSS JOIN LATERAL (
                 SELECT s.org_id, s.monitor_id, s.next_due_at,
                        row_number() OVER (ORDER BY s.next_due_at, s.monitor_id) AS n
                 FROM monitoring.schedule s
                 WHERE s.org_id = o.org_id AND {claimable}
                 ORDER BY s.next_due_at, s.monitor_id
                 LIMIT greatest($2, $8)
             ) d
             WHERE t.status = 'active'
         ), ordered AS (
             SELECT org_id, monitor_id, plan, weight, next_due_at > now() AS ahead,
                    (rank - 1) / weight AS round,
                    row_number() OVER (
                        PARTITION BY next_due_at > now()
                        ORDER BY CASE WHEN next_due_at > now() THEN 0 ELSE (rank - 1) / weight END,
                                 next_due_at
                    ) AS position
             FROM ranked
         ), candidates AS (
             SELECT org_id, monitor_id, plan, weight FROM ordered
             WHERE (NOT ahead AND position <= $2
                    AND (position <= $6 OR round < (SELECT round FROM busiest)))
                OR (ahead AND position <= $8
                    AND (position <= $9 OR round < (SELECT round FROM busiest)))
         ), locked AS (
             SELECT s.org_id, s.monitor_id, c.plan, c.weight
             FROM monitoring.schedule s
             JOIN candidates c USING (org_id, monitor_id)
             WHERE {claimable}
             FOR UPDATE OF s SKIP LOCKED
         )
         UPDATE monitoring.schedule s
         SET lease_owner = $1,
             lease_until = now() + make_interval(secs => s.timeout_seconds * 2 + $3::float8)
         FROM locked l
         WHERE s.org_id = l.org_id AND s.monitor_id = l.monitor_id
         RETURNING s.org_id, s.monitor_id, s.next_due_at AS due_at, s.interval_seconds,
                   s.timeout_seconds, l.plan, l.weight::int4 AS weight, s.planned_at"
    ))
    .bind(owner)
    .bind(due)
    .bind(slack.as_secs_f64())
    .bind(org)
    .bind(agent)
    .bind(ask.unreserved.clamp(0, due))
    .bind(ask.horizon.as_secs_f64())
    .bind(ahead)
    .bind(ask.ahead_unreserved.clamp(0, ahead))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(claims)
}

/// Seconds (by the database's clock) until the next check of an active organization for the
/// server instances comes within `horizon` of its due time; `None` when none is scheduled
/// beyond it. Checks within it already but not claimable (leased, waiting for a retry) are not
/// looked at: the poll finds them.
pub async fn seconds_to_next_due(
    control: &ControlDb,
    horizon: Duration,
) -> sqlx::Result<Option<f64>> {
    sqlx::query_scalar(
        "SELECT extract(epoch FROM s.next_due_at - now())::float8 - $1
         FROM monitoring.schedule s
         JOIN control.tenants t ON t.id = s.org_id
         WHERE s.agent_id IS NULL AND t.status = 'active'
           AND s.next_due_at > now() + make_interval(secs => $1)
         ORDER BY s.next_due_at
         LIMIT 1",
    )
    .bind(horizon.as_secs_f64())
    .fetch_optional(control)
    .await
}

/// Extends the lease on `claim` for `for_at_least` more (a check about to start late in its
/// lease). False when the lease is no longer `owner`'s: another claimer has the slot.
pub async fn extend(
    control: &ControlDb,
    claim: &Claim,
    owner: Uuid,
    for_at_least: Duration,
) -> sqlx::Result<bool> {
    let mut tx = lazily(control).await?;
    let done = sqlx::query(
        "UPDATE monitoring.schedule
         SET lease_until = greatest(lease_until, now() + make_interval(secs => $5))
         WHERE org_id = $1 AND monitor_id = $2 AND lease_owner = $3 AND next_due_at = $4",
    )
    .bind(claim.org_id)
    .bind(claim.monitor_id)
    .bind(owner)
    .bind(claim.due_at)
    .bind(for_at_least.as_secs_f64())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// Where a claimed slot goes once handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Recorded (or nothing to record): the next slot is due at this time.
    Slot {
        at: DateTime<Utc>,
        interval_seconds: i32,
        timeout_seconds: i32,
    },
    /// Not handled (the tenant's storage was unreachable, a move was switching it): the same
    /// slot again after this pause.
    Retry(Duration),
    /// The monitor is gone or disabled: the row is removed.
    Remove,
}

/// Releases `claim` held by `owner` as `next` says. A lease lost meanwhile (taken over after
/// it expired) is left to its new holder.
pub async fn finish(
    control: &ControlDb,
    claim: &Claim,
    owner: Uuid,
    next: Next,
) -> sqlx::Result<()> {
    finish_all(control, owner, &[(claim.clone(), next)]).await
}

/// [`finish`] for many claims of `owner` at once: one transaction, a statement per kind of
/// release.
pub async fn finish_all(
    control: &ControlDb,
    owner: Uuid,
    released: &[(Claim, Next)],
) -> sqlx::Result<()> {
    let mut slots = Released::default();
    let mut retries = Released::default();
    let mut removed = Released::default();
    for (claim, next) in released {
        match *next {
            Next::Slot {
                at,
                interval_seconds,
                timeout_seconds,
            } => {
                slots.push(claim);
                slots.at.push(at);
                slots.intervals.push(interval_seconds);
                slots.timeouts.push(timeout_seconds);
            }
            Next::Retry(after) => {
                retries.push(claim);
                retries.after.push(after.as_secs_f64());
            }
            Next::Remove => removed.push(claim),
        }
    }
    let mut tx = lazily(control).await?;
    if !slots.orgs.is_empty() {
        sqlx::query(
            "UPDATE monitoring.schedule s
             SET next_due_at = r.at, interval_seconds = r.interval_seconds,
                 timeout_seconds = r.timeout_seconds, lease_owner = NULL, lease_until = NULL
             FROM unnest($2::uuid[], $3::uuid[], $4::timestamptz[], $5::timestamptz[],
                         $6::int4[], $7::int4[])
                  AS r(org_id, monitor_id, due_at, at, interval_seconds, timeout_seconds)
             WHERE s.org_id = r.org_id AND s.monitor_id = r.monitor_id
               AND s.lease_owner = $1 AND s.next_due_at = r.due_at",
        )
        .bind(owner)
        .bind(&slots.orgs)
        .bind(&slots.monitors)
        .bind(&slots.dues)
        .bind(&slots.at)
        .bind(&slots.intervals)
        .bind(&slots.timeouts)
        .execute(&mut *tx)
        .await?;
    }
    if !retries.orgs.is_empty() {
        sqlx::query(
            "UPDATE monitoring.schedule s
             SET lease_owner = NULL, lease_until = now() + make_interval(secs => r.after)
             FROM unnest($2::uuid[], $3::uuid[], $4::timestamptz[], $5::float8[])
                  AS r(org_id, monitor_id, due_at, after)
             WHERE s.org_id = r.org_id AND s.monitor_id = r.monitor_id
               AND s.lease_owner = $1 AND s.next_due_at = r.due_at",
        )
        .bind(owner)
        .bind(&retries.orgs)
        .bind(&retries.monitors)
        .bind(&retries.dues)
        .bind(&retries.after)
        .execute(&mut *tx)
        .await?;
    }
    if !removed.orgs.is_empty() {
        sqlx::query(
            "DELETE FROM monitoring.schedule s
             USING unnest($2::uuid[], $3::uuid[], $4::timestamptz[])
                   AS r(org_id, monitor_id, due_at)
             WHERE s.org_id = r.org_id AND s.monitor_id = r.monitor_id
               AND s.lease_owner = $1 AND s.next_due_at = r.due_at",
        )
        .bind(owner)
        .bind(&removed.orgs)
        .bind(&removed.monitors)
        .bind(&removed.dues)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Released claims of one kind, column by column.
#[derive(Default)]
struct Released {
    orgs: Vec<Uuid>,
    monitors: Vec<Uuid>,
    dues: Vec<DateTime<Utc>>,
    at: Vec<DateTime<Utc>>,
    intervals: Vec<i32>,
    timeouts: Vec<i32>,
    after: Vec<f64>,
}

impl Released {
    fn push(&mut self, claim: &Claim) {
        self.orgs.push(claim.org_id);
        self.monitors.push(claim.monitor_id);
        self.dues.push(claim.due_at);
    }
}

/// The slot after `due_at`: one interval later; when that is already more than an interval in
/// the past (the instances fell behind, or none ran for a while), the latest slot not after
/// `now`, and how many slots were skipped to get there (reported, never silent).
pub fn next_slot(
    due_at: DateTime<Utc>,
    interval: TimeDelta,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, u64) {
    let next = due_at + interval;
    if interval <= TimeDelta::zero() || next + interval > now {
        return (next, 0);
    }
    let behind = (now - next).num_milliseconds() / interval.num_milliseconds().max(1);
    let skipped = behind.max(0) as u64;
    (next + interval * behind as i32, skipped)
}

/// What [`reconcile`] changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    pub organizations: usize,
    pub added: u64,
    pub removed: u64,
}

/// Makes the schedule match every active organization's monitors: rows added for enabled
/// monitors without one (created by an import, or before a crash), rows removed for monitors
/// deleted or disabled (unless written in the last minute: their monitor's transaction may not
/// have committed yet). Organizations it cannot reach now are left for the next pass.
pub async fn reconcile(tenancy: &Tenancy) -> Result<Reconciled, TenancyError> {
    let control = tenancy.control_db();
    let mut done = Reconciled::default();
    for record in tenancy.list().await? {
        if record.status != TenantStatus::Active {
            continue;
        }
        let ctx = match tenancy.resolve_id(record.id).await {
            Ok(ctx) => ctx,
            Err(TenancyError::NotFound(_) | TenancyError::NotActive { .. }) => continue,
            Err(e) => return Err(e),
        };
        let mut tx = match ctx.begin_read().await {
            Ok(tx) => tx,
            Err(e) => {
                tracing::warn!(tenant = %record.slug, error = %e, "schedule: tenant unreachable, skipped");
                continue;
            }
        };
        let monitors: Vec<(Uuid, i32, i32, Option<Uuid>)> = sqlx::query_as(
            "SELECT id, interval_seconds, timeout_seconds, agent_id FROM monitors WHERE enabled",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let org_id = record.id.as_uuid();
        let mut planned = Planned::default();
        for (id, interval, timeout, agent) in monitors {
            planned.ids.push(id);
            planned.intervals.push(interval);
            planned.timeouts.push(timeout);
            planned.agents.push(agent);
        }
        let mut conn = control.acquire().await?;
        done.added += add_missing(&mut conn, org_id, &planned).await?;
        let ids = planned.ids;
        done.removed += sqlx::query(
            "DELETE FROM monitoring.schedule
             WHERE org_id = $1 AND NOT (monitor_id = ANY($2))
               AND planned_at < now() - interval '1 minute'",
        )
        .bind(org_id)
        .bind(&ids)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        done.organizations += 1;
    }
    Ok(done)
}

/// The enabled monitors of one organization, column by column.
#[derive(Default)]
struct Planned {
    ids: Vec<Uuid>,
    intervals: Vec<i32>,
    timeouts: Vec<i32>,
    agents: Vec<Option<Uuid>>,
}

/// Adds the rows missing from the schedule (counted), and puts rows whose agent differs from
/// their monitor's back in step (a row written in the last minute is left alone: its monitor's
/// transaction may not have committed yet, and this read may predate it).
async fn add_missing(
    conn: &mut PgConnection,
    org_id: Uuid,
    planned: &Planned,
) -> sqlx::Result<u64> {
    let inserted: Vec<bool> = sqlx::query_scalar(
        "INSERT INTO monitoring.schedule
             (org_id, monitor_id, interval_seconds, timeout_seconds, agent_id, next_due_at)
         SELECT $1, m.id, m.interval_seconds, m.timeout_seconds, m.agent_id, now()
         FROM unnest($2::uuid[], $3::int4[], $4::int4[], $5::uuid[])
              AS m(id, interval_seconds, timeout_seconds, agent_id)
         ON CONFLICT (org_id, monitor_id) DO UPDATE SET agent_id = EXCLUDED.agent_id
         WHERE schedule.agent_id IS DISTINCT FROM EXCLUDED.agent_id
           AND schedule.planned_at < now() - interval '1 minute'
         RETURNING xmax = 0",
    )
    .bind(org_id)
    .bind(&planned.ids)
    .bind(&planned.intervals)
    .bind(&planned.timeouts)
    .bind(&planned.agents)
    .fetch_all(conn)
    .await?;
    Ok(inserted.into_iter().filter(|new| *new).count() as u64)
}

/// Puts the monitors of deleted agent `agent_id` of `org_id` back on the server instances
/// (their rows' `agent_id` cleared, and the agent's leases with it, so an instance takes the
/// slots at once); how many rows. Call it after the agent's deletion committed.
pub async fn release_agent(control: &ControlDb, org_id: Uuid, agent_id: Uuid) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE monitoring.schedule
         SET agent_id = NULL,
             lease_owner = CASE WHEN lease_owner = $2 THEN NULL ELSE lease_owner END,
             lease_until = CASE WHEN lease_owner = $2 THEN NULL ELSE lease_until END
         WHERE org_id = $1 AND agent_id = $2",
    )
    .bind(org_id)
    .bind(agent_id)
    .execute(control)
    .await?
    .rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn the_next_slot_follows_the_interval_while_on_time() {
        let minute = TimeDelta::seconds(60);
        assert_eq!(next_slot(at(0), minute, at(5)), (at(60), 0));
        // Late by less than an interval: the next slot is still the following one.
        assert_eq!(next_slot(at(0), minute, at(100)), (at(60), 0));
    }

    #[test]
    fn far_behind_it_jumps_to_the_latest_slot_and_counts_the_skipped() {
        let minute = TimeDelta::seconds(60);
        // Due at 0, now 250: slots 60, 120, 180 are past; 240 is the latest not after now.
        assert_eq!(next_slot(at(0), minute, at(250)), (at(240), 3));
    }
}
