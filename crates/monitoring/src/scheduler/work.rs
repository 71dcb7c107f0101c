//! Running checks: the dispatcher starts each check the [`Timetable`](super::Timetable) hands
//! it, at its due time, as a task of its own; the task runs the check, records it (the
//! incident it opens or resolves and their alerts in the same transaction) and hands the slot
//! to the releaser.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use tenantry_tenancy::{TenancyError, TenantCtx};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::Shared;
use super::plan::{Claim, Next, extend, lease_for, next_slot};
use super::stats::{CheckOutcome, TenantLabels};
use super::timetable::{self, Run};
use crate::checks::{
    CheckKind, CheckSpec, HeartbeatState, default_grace, heartbeat_deadline, heartbeat_due,
};
use crate::monitors::{Monitor, MonitorKind};
use crate::results::{Observation, Recorded, record_result};

/// How long a slot waits before another try when the tenant's storage failed.
pub(super) const RETRY_AFTER: Duration = Duration::from_secs(10);

/// A claimed check, prepared: its tenant resolved and its monitor read.
pub(super) struct Ready {
    pub claim: Claim,
    pub claimed: Instant,
    pub ctx: TenantCtx,
    pub monitor: Box<Monitor>,
    pub labels: TenantLabels,
}

/// Starts checks as the timetable allows, until `stopped`; the checks still running then.
pub(super) async fn dispatch(
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) -> JoinSet<()> {
    let mut checks = JoinSet::new();
    loop {
        if *stopped.borrow() {
            break;
        }
        let now = Utc::now();
        let mut started = Vec::new();
        let wake = {
            let mut table = shared.table();
            let wake = loop {
                match table.next(now) {
                    timetable::Next::Start(run, ready) => started.push((run, ready)),
                    timetable::Next::Wait(wake) => break wake,
                }
            };
            shared.metrics.set_occupancy(table.len(), table.running());
            wake
        };
        for (run, ready) in started {
            checks.spawn(check(shared.clone(), run, ready));
        }
        while checks.try_join_next().is_some() {}
        let sleep = wake.map(|at| {
            let wait = (at - Utc::now()).to_std().unwrap_or_default();
            tokio::time::Instant::now() + wait
        });
        tokio::select! {
            () = shared.changed.notified() => {}
            () = sleep_until(sleep) => {}
            _ = stopped.changed() => {}
        }
    }
    checks
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A started check's worker and slot. However the check's task ends (done, a panic, the abort
/// of a stopping instance), the worker goes back to the timetable, and a slot not released yet
/// is released for another try at once (by any instance: recorded once whatever happens).
struct Hold {
    shared: Arc<Shared>,
    run: Run,
    began: Instant,
    claim: Option<Claim>,
}

impl Hold {
    fn release(&mut self, next: Next) {
        if let Some(claim) = self.claim.take() {
            self.shared.release(claim, next);
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.release(Next::Retry(Duration::ZERO));
        self.shared
            .table()
            .done(self.run, self.began.elapsed(), Utc::now());
        self.shared.changed.notify_one();
        self.shared.room.notify_one();
    }
}

/// Runs one started check, records it and releases its slot.
pub(super) async fn check(shared: Arc<Shared>, run: Run, ready: Ready) {
    let mut hold = Hold {
        shared: shared.clone(),
        run,
        began: Instant::now(),
        claim: Some(ready.claim.clone()),
    };
    // A heartbeat monitor is judged by its last ping, which may have arrived since it was
    // read; a check that waited for a worker may find its monitor changed.
    let ready = if ready.monitor.kind == MonitorKind::Heartbeat
        || ready.claimed.elapsed() > shared.fresh_for
    {
        hold.claim = None;
        let claimed = ready.claimed;
        match super::prepare::prepare(&shared, vec![ready.claim], claimed)
            .await
            .pop()
        {
            Some(again) => {
                hold.claim = Some(again.claim.clone());
                again
            }
            // Released as its monitor now says.
            None => return,
        }
    } else {
        ready
    };
    let Ready {
        claim,
        claimed,
        ctx,
        monitor,
        labels,
    } = ready;
    let began = hold.began;
    let (next, outcome, overhead) = match keep_lease(&shared, &claim, &monitor, claimed).await {
        Ok(true) => {
            let started_at = Utc::now();
            shared.metrics.lag(
                &labels,
                (started_at - claim.due_at).to_std().unwrap_or_default(),
            );
            let overhead = began.elapsed();
            let observation = observe(&shared, &claim, &monitor, started_at).await;
            let recording = Instant::now();
            let (next, outcome) = match record(&shared, &ctx, &claim, observation.as_ref()).await {
                Ok(outcome) => (slot_after(&claim, &monitor, &shared, &labels), outcome),
                Err(e) => {
                    tracing::warn!(tenant = %labels.tenant, monitor = %claim.monitor_id, error = %e, "recording a check failed; the slot is retried");
                    (Next::Retry(RETRY_AFTER), CheckOutcome::retried)
                }
            };
            (next, outcome, overhead + recording.elapsed())
        }
        // Another claimer has it now: releasing changes nothing of theirs.
        Ok(false) => (
            Next::Retry(Duration::ZERO),
            CheckOutcome::retried,
            began.elapsed(),
        ),
        Err(e) => {
            tracing::warn!(monitor = %claim.monitor_id, error = %e, "extending a check's lease failed; the slot is retried");
            (
                Next::Retry(RETRY_AFTER),
                CheckOutcome::retried,
                began.elapsed(),
            )
        }
    };
    hold.release(next);
    shared.metrics.overhead(overhead);
    shared.metrics.outcome(outcome);
}

/// Makes the lease last the check when the check waited long enough for it to run short;
/// false when the lease is no longer this instance's.
async fn keep_lease(
    shared: &Shared,
    claim: &Claim,
    monitor: &Monitor,
    claimed: Instant,
) -> sqlx::Result<bool> {
    let lease = lease_for(claim.timeout_seconds, shared.lease_slack);
    let needed = Duration::from_secs(monitor.timeout_seconds.max(1) as u64 + 10);
    if claimed.elapsed() + needed <= lease {
        return Ok(true);
    }
    extend(shared.tenancy.control_db(), claim, shared.owner, needed).await
}

/// Runs the monitor's check (a heartbeat monitor's is the deadline of its pings); `None` when
/// there is nothing to record yet (a heartbeat monitor waiting for its first ping).
async fn observe(
    shared: &Shared,
    claim: &Claim,
    monitor: &Monitor,
    now: DateTime<Utc>,
) -> Option<Observation> {
    let kind = match monitor.kind {
        MonitorKind::Http => CheckKind::Http,
        MonitorKind::Keyword => CheckKind::Keyword,
        MonitorKind::Tcp => CheckKind::Tcp,
        MonitorKind::Heartbeat => return heartbeat(monitor, now),
    };
    let spec = CheckSpec {
        kind,
        target: monitor.target.clone().unwrap_or_default(),
        keyword: monitor.keyword.clone(),
        timeout: Duration::from_secs(monitor.timeout_seconds.max(1) as u64),
    };
    let targets = shared.features.targets(claim.org_id).await;
    let outcome = shared.checker.run_for(&spec, targets).await;
    Some(Observation {
        checked_at: now,
        ok: outcome.ok,
        latency_ms: Some(outcome.latency_ms),
        status_code: outcome.status_code,
        error: outcome.error,
    })
}

fn heartbeat(monitor: &Monitor, now: DateTime<Utc>) -> Option<Observation> {
    let interval = Duration::from_secs(monitor.interval_seconds.max(1) as u64);
    let grace = default_grace(interval);
    match heartbeat_due(
        monitor.last_ping_at,
        monitor.created_at,
        interval,
        grace,
        now,
    ) {
        HeartbeatState::Up => Some(Observation::up(now, None)),
        HeartbeatState::Pending => None,
        HeartbeatState::Down => Some(Observation::down(
            now,
            match monitor.last_ping_at {
                Some(at) => format!("no ping since {}", at.format("%Y-%m-%d %H:%M:%S UTC")),
                None => "no ping since the monitor was created".to_string(),
            },
        )),
    }
}

/// The slot after this one, with the monitor's current interval; a heartbeat monitor is
/// looked at again right after its deadline if that comes sooner.
pub(super) fn slot_after(
    claim: &Claim,
    monitor: &Monitor,
    shared: &Shared,
    labels: &TenantLabels,
) -> Next {
    let now = Utc::now();
    let interval = TimeDelta::seconds(monitor.interval_seconds.max(1).into());
    let (mut at, skipped) = next_slot(claim.due_at, interval, now);
    if skipped > 0 {
        shared.metrics.skipped(labels, skipped);
        tracing::warn!(tenant = %labels.tenant, monitor = %monitor.id, skipped, "checks are more than an interval behind; slots skipped");
    }
    if monitor.kind == MonitorKind::Heartbeat {
        let every = Duration::from_secs(monitor.interval_seconds.max(1) as u64);
        let deadline = heartbeat_deadline(
            monitor.last_ping_at,
            monitor.created_at,
            every,
            default_grace(every),
        ) + TimeDelta::seconds(1);
        if deadline > now && deadline < at {
            at = deadline;
        }
    }
    Next::Slot {
        at,
        interval_seconds: monitor.interval_seconds,
        timeout_seconds: monitor.timeout_seconds,
    }
}

/// Stores the check of this slot (nothing when there is nothing to record yet). An incident it
/// opens or resolves has its alerts queued in the same transaction, and the organization noted
/// for the deliverer before the commit.
async fn record(
    shared: &Shared,
    ctx: &TenantCtx,
    claim: &Claim,
    observation: Option<&Observation>,
) -> Result<CheckOutcome, TenancyError> {
    let Some(observation) = observation else {
        return Ok(CheckOutcome::up);
    };
    let mut tx = ctx.begin().await?;
    // The commit does not wait for the disk: a PostgreSQL crash loses at most the last moment's
    // results, and the slot moves of the same moment with them (one write-ahead log, written in
    // order), so those slots are run and recorded again.
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    let recorded = record_result(&mut tx, claim.monitor_id, claim.due_at, observation).await?;
    if recorded.needs_delivery() {
        let mut control = tx.control(shared.tenancy.control_db()).await?;
        crate::alerts::note_pending_in(&mut control, claim.org_id).await?;
    }
    tx.commit().await?;
    Ok(match recorded {
        Recorded::Duplicate => CheckOutcome::duplicate,
        Recorded::NoMonitor => CheckOutcome::gone,
        Recorded::Stored { result, .. } if result.ok => CheckOutcome::up,
        Recorded::Stored { .. } => CheckOutcome::down,
    })
}
