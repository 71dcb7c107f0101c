//! The scheduler: every server instance runs one. Due checks are claimed from the schedule in
//! the control database under leases ([`plan::claim`]: `FOR UPDATE SKIP LOCKED`, fair across
//! organizations and weighted by plan), never more than the instance's workers can start soon
//! (backpressure: what is not claimed stays due, and the lag shows it); claimed checks wait in a
//! queue per organization ([`FairQueue`]: the organization with the fewest checks running per
//! unit of weight goes first) for one of a fixed number of workers. A worker reads the monitor through the tenant door, runs the check, records the
//! result (and the incident it opens or resolves, with its alerts) and moves the slot on.
//!
//! An instance that dies leaves its leases to expire; another instance then takes the slots
//! over. A slot already recorded is not run again, and recording is idempotent per slot, so no
//! check is counted twice and none is lost.

mod fair;
mod plan;
mod stats;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use tenantry_tenancy::{Tenancy, TenancyError, TenantCtx, TenantId, TenantTx};
use tokio::sync::{Mutex, Notify};
use uuid::Uuid;

pub use fair::FairQueue;
pub use plan::{
    Claim, Claimant, LEASE_SLACK, Next, Reconciled, claim, claim_reserving, extend, finish,
    lease_for, next_slot, plan, reconcile, release_agent, seconds_to_next_due, unplan, weight_of,
};
pub use stats::{CheckOutcome, SchedulerMetrics, TenantLabels};

use crate::checks::{
    CheckKind, CheckSpec, Checker, HeartbeatState, default_grace, heartbeat_deadline, heartbeat_due,
};
use crate::monitors::{self, Monitor};
use crate::results::{Observation, Recorded, record_result};

/// How an instance schedules.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Checks run at once on this instance.
    pub workers: usize,
    /// Checks claimed beyond the running ones, waiting for a worker: enough to keep the workers
    /// busy between two claims, few enough that other instances get the rest.
    pub prefetch: usize,
    /// How often due checks are looked for when nothing else wakes the claimer.
    pub poll: Duration,
    /// How often the schedule is compared with every organization's monitors.
    pub reconcile_every: Duration,
    /// A claim's lease beyond twice the check's time limit ([`lease_for`]): how long the slots
    /// of an instance that died wait before another takes them over.
    pub lease_slack: Duration,
    /// How long a stopping instance lets its running checks finish.
    pub drain: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            workers: 32,
            prefetch: 16,
            poll: Duration::from_millis(500),
            reconcile_every: Duration::from_secs(300),
            lease_slack: LEASE_SLACK,
            drain: Duration::from_secs(10),
        }
    }
}

/// A check slot whose row was written less than this long ago is not removed for lack of a
/// monitor: the monitor's transaction may still be committing.
const YOUNG_ROW: TimeDelta = TimeDelta::minutes(1);
/// How long a slot waits before another try when the tenant's storage failed.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// The shortest wait between two claims while checks are coming due.
const MIN_WAIT: Duration = Duration::from_millis(20);

/// Workers kept for organizations other than the busiest: with no more than this many workers
/// idle, a worker takes only a check of an organization with fewer checks running per unit of
/// weight than the one with the most. An organization whose backlog could fill every worker
/// leaves these for the others' next checks, which then start when due instead of waiting for
/// one of its checks to end. (Under overload by a single organization they stay idle: the
/// price of that promptness.)
pub fn reserved_workers(workers: usize) -> usize {
    if workers < 2 { 0 } else { (workers / 8).max(1) }
}

/// What woke the claimer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    /// A check came due, or the poll.
    Due,
    /// A worker finished.
    Finished,
}

/// What one claim got.
enum Claimed {
    /// As many as there was room for: more may be due.
    Full,
    /// Less: every claimable check due now is taken.
    Partial,
    /// Nothing asked for: the workers have enough (or the claim failed).
    NoRoom,
}

/// One instance's scheduler. `run` until shutdown.
pub struct Scheduler {
    shared: Arc<Shared>,
    config: SchedulerConfig,
}

struct Shared {
    tenancy: Tenancy,
    checker: Checker,
    metrics: SchedulerMetrics,
    /// This instance's name on its leases.
    owner: Uuid,
    queue: Mutex<FairQueue<Queued>>,
    /// Claimed checks are waiting.
    work: Notify,
    /// A worker finished: there is room to claim.
    room: Notify,
    running: AtomicUsize,
    workers: usize,
    /// [`reserved_workers`] of `workers`.
    reserved: usize,
    lease_slack: Duration,
}

struct Queued {
    claim: Claim,
    claimed: Instant,
}

impl Scheduler {
    pub fn new(
        tenancy: Tenancy,
        checker: Checker,
        config: SchedulerConfig,
        metrics: SchedulerMetrics,
    ) -> Self {
        metrics.set_workers(config.workers);
        Self {
            shared: Arc::new(Shared {
                tenancy,
                checker,
                metrics,
                owner: Uuid::now_v7(),
                queue: Mutex::new(FairQueue::default()),
                work: Notify::new(),
                room: Notify::new(),
                running: AtomicUsize::new(0),
                workers: config.workers.max(1),
                reserved: reserved_workers(config.workers.max(1)),
                lease_slack: config.lease_slack,
            }),
            config,
        }
    }

    /// The id this instance's leases carry.
    pub fn owner(&self) -> Uuid {
        self.shared.owner
    }

    /// Claims and runs checks until `shutdown` completes; then claims no more, gives back the
    /// checks not started (due again at once, for any instance) and lets the running ones
    /// finish.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let workers: Vec<_> = (0..self.config.workers.max(1))
            .map(|_| tokio::spawn(work(self.shared.clone())))
            .collect();
        tokio::pin!(shutdown);
        let mut reconciled: Option<Instant> = None;
        let mut wake = Wake::Due;
        let mut next_claim = Instant::now();
        loop {
            if reconciled.is_none_or(|at| at.elapsed() >= self.config.reconcile_every) {
                reconciled = Some(Instant::now());
                match reconcile(&self.shared.tenancy).await {
                    Ok(done) if done.added + done.removed > 0 => tracing::info!(
                        added = done.added,
                        removed = done.removed,
                        organizations = done.organizations,
                        "schedule reconciled with the monitors"
                    ),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "schedule reconciliation failed; retried later")
                    }
                }
            }
            match (self.claim_some(wake).await, wake) {
                (Claimed::Full, _) => next_claim = Instant::now(),
                // A finished check that left the queue full enough changes nothing about when
                // the next check comes due.
                (Claimed::NoRoom, Wake::Finished) => {}
                // Due checks may be waiting for room: look again shortly (nothing is asked of
                // the database until there is room).
                (Claimed::NoRoom, Wake::Due) => next_claim = Instant::now() + MIN_WAIT,
                (Claimed::Partial, _) => next_claim = Instant::now() + self.until_next_due().await,
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep_until(next_claim.into()) => wake = Wake::Due,
                () = self.shared.room.notified() => wake = Wake::Finished,
            }
        }
        self.give_back().await;
        let drained = Instant::now();
        while self.shared.running.load(Ordering::Acquire) > 0
            && drained.elapsed() < self.config.drain
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for worker in &workers {
            worker.abort();
        }
        for worker in workers {
            let _ = worker.await;
        }
    }

    /// How long to wait for the next check to come due (the poll at most; a failure to ask
    /// is the poll too).
    async fn until_next_due(&self) -> Duration {
        match seconds_to_next_due(self.shared.tenancy.runtime_pool()).await {
            Ok(Some(seconds)) => Duration::from_secs_f64(seconds.max(0.0))
                .clamp(MIN_WAIT, self.config.poll.max(MIN_WAIT)),
            Ok(None) => self.config.poll,
            Err(e) => {
                tracing::warn!(error = %e, "looking for the next due check failed; polling");
                self.config.poll
            }
        }
    }

    /// Claims what the workers can start soon. Checks of any organization fill the workers
    /// not reserved and the prefetch; checks of organizations other than the busiest may go
    /// past that by twice the reserve (the reserved workers, and as many waiting for them), so
    /// that checks of the busiest, queued and unable to start, never keep theirs from being
    /// claimed. Woken by a finished check, it claims only once the queue is down to half the
    /// prefetch, in one batch rather than a row each time a worker finishes; woken by a check
    /// coming due, it claims whatever there is room for, so that check waits for no one.
    async fn claim_some(&self, wake: Wake) -> Claimed {
        let shared = &self.shared;
        let queued = shared.queue.lock().await.len();
        let running = shared.running.load(Ordering::Acquire);
        let held = queued + running;
        let general = shared.workers + self.config.prefetch - shared.reserved;
        let room = (general + 2 * shared.reserved).saturating_sub(held);
        let unreserved = general.saturating_sub(held);
        if room == 0 || (wake == Wake::Finished && queued > self.config.prefetch / 2) {
            return Claimed::NoRoom;
        }
        let started = Instant::now();
        let claims = match claim_reserving(
            shared.tenancy.runtime_pool(),
            Claimant::Instances,
            shared.owner,
            room as i64,
            unreserved as i64,
            self.config.lease_slack,
        )
        .await
        {
            Ok(claims) => claims,
            Err(e) => {
                tracing::warn!(error = %e, "claiming due checks failed; retrying");
                return Claimed::NoRoom;
            }
        };
        let claimed = if claims.len() == room {
            Claimed::Full
        } else {
            Claimed::Partial
        };
        if !claims.is_empty() {
            let mut queue = shared.queue.lock().await;
            for claim in claims {
                let weight = weight_of(&claim.plan) as u32;
                queue.push(
                    claim.org_id,
                    weight,
                    claim.due_at,
                    Queued {
                        claim,
                        claimed: Instant::now(),
                    },
                );
            }
            shared.metrics.set_occupancy(queue.len(), running);
            drop(queue);
            shared.work.notify_waiters();
            for _ in 0..self.config.workers {
                shared.work.notify_one();
            }
        }
        shared.metrics.overhead(started.elapsed());
        claimed
    }

    /// Releases every claim not started yet, due again at once.
    async fn give_back(&self) {
        let mut queue = self.shared.queue.lock().await;
        while let Some((_, queued)) = queue.pop() {
            if let Err(e) = finish(
                self.shared.tenancy.runtime_pool(),
                &queued.claim,
                self.shared.owner,
                Next::Retry(Duration::ZERO),
            )
            .await
            {
                tracing::warn!(error = %e, "releasing a claimed check failed; its lease will expire");
            }
        }
    }
}

/// A worker: takes the next check fairly, runs it, repeats. With no more than the reserved
/// workers idle, it takes only a check of an organization other than the busiest.
async fn work(shared: Arc<Shared>) {
    loop {
        let next = {
            let mut queue = shared.queue.lock().await;
            let idle = shared.workers.saturating_sub(queue.running());
            if idle > shared.reserved {
                queue.pop()
            } else {
                queue.pop_reserved()
            }
        };
        let Some((org, queued)) = next else {
            shared.work.notified().await;
            continue;
        };
        let running = shared.running.fetch_add(1, Ordering::AcqRel) + 1;
        shared
            .metrics
            .set_occupancy(shared.queue.lock().await.len(), running);
        handle(&shared, queued).await;
        shared.queue.lock().await.done(org);
        shared.running.fetch_sub(1, Ordering::AcqRel);
        shared.room.notify_one();
    }
}

/// Runs one claimed check and releases its slot.
async fn handle(shared: &Shared, queued: Queued) {
    let Queued { claim, claimed } = queued;
    let began = Instant::now();
    let (next, outcome, overhead) = match prepare(shared, &claim, claimed, Utc::now()).await {
        Ok(Prepared::Run {
            ctx,
            monitor,
            labels,
        }) => {
            let started_at = Utc::now();
            let lag = (started_at - claim.due_at).to_std().unwrap_or_default();
            shared.metrics.lag(&labels, lag);
            let overhead = began.elapsed();
            let observation = observe(shared, &monitor, started_at).await;
            let recording = Instant::now();
            let (next, outcome) = match record(shared, &ctx, &claim, observation.as_ref()).await {
                Ok(outcome) => (slot_after(&claim, &monitor, shared, &labels), outcome),
                Err(e) => {
                    tracing::warn!(tenant = %labels.tenant, monitor = %claim.monitor_id, error = %e, "recording a check failed; the slot is retried");
                    (Next::Retry(RETRY_AFTER), CheckOutcome::retried)
                }
            };
            (next, outcome, overhead + recording.elapsed())
        }
        Ok(Prepared::Skip { next, outcome }) => (next, outcome, began.elapsed()),
        Err(e) => {
            tracing::warn!(monitor = %claim.monitor_id, error = %e, "preparing a check failed; the slot is retried");
            (
                Next::Retry(RETRY_AFTER),
                CheckOutcome::retried,
                began.elapsed(),
            )
        }
    };
    let releasing = Instant::now();
    finish_slot(shared, &claim, next).await;
    shared.metrics.overhead(overhead + releasing.elapsed());
    shared.metrics.outcome(outcome);
}

async fn finish_slot(shared: &Shared, claim: &Claim, next: Next) {
    if let Err(e) = finish(shared.tenancy.runtime_pool(), claim, shared.owner, next).await {
        tracing::warn!(monitor = %claim.monitor_id, error = %e, "releasing a check slot failed; its lease will expire and the slot be taken over");
    }
}

enum Prepared {
    Run {
        ctx: TenantCtx,
        monitor: Box<Monitor>,
        labels: TenantLabels,
    },
    Skip {
        next: Next,
        outcome: CheckOutcome,
    },
}

/// Reads the monitor and decides: run it, or release the slot without running (monitor gone,
/// organization no longer active, slot already recorded by an instance that died after).
async fn prepare(
    shared: &Shared,
    claim: &Claim,
    claimed: Instant,
    now: DateTime<Utc>,
) -> Result<Prepared, TenancyError> {
    let ctx = match shared
        .tenancy
        .resolve_id(TenantId::from(claim.org_id))
        .await
    {
        Ok(ctx) => ctx,
        // Suspended or deleted since the claim: the row stays for a reactivation.
        Err(TenancyError::NotFound(_) | TenancyError::NotActive { .. }) => {
            return Ok(Prepared::Skip {
                next: Next::Retry(Duration::from_secs(60)),
                outcome: CheckOutcome::retried,
            });
        }
        Err(e) => return Err(e),
    };
    let mut tx = ctx.begin_read().await?;
    let monitor = monitors::get(&mut tx, claim.monitor_id).await?;
    let recorded = match &monitor {
        Some(_) => slot_recorded(&mut tx, claim).await?,
        None => false,
    };
    tx.commit().await?;
    let monitor = match monitor {
        Some(monitor) if monitor.enabled => monitor,
        _ if now - claim.planned_at < YOUNG_ROW => {
            return Ok(Prepared::Skip {
                next: Next::Retry(Duration::from_secs(5)),
                outcome: CheckOutcome::retried,
            });
        }
        _ => {
            return Ok(Prepared::Skip {
                next: Next::Remove,
                outcome: CheckOutcome::gone,
            });
        }
    };
    if monitor.agent_id.is_some() {
        // Assigned to an agent since the row was written: the row follows, and the agent runs
        // the slot.
        plan(
            shared.tenancy.runtime_pool(),
            claim.org_id,
            &monitor,
            monitor.agent_id,
        )
        .await?;
        return Ok(Prepared::Skip {
            next: Next::Retry(Duration::ZERO),
            outcome: CheckOutcome::retried,
        });
    }
    let labels = TenantLabels {
        tenant: ctx.slug().to_string(),
        plan: claim.plan.clone(),
    };
    if recorded {
        return Ok(Prepared::Skip {
            next: slot_after(claim, &monitor, shared, &labels),
            outcome: CheckOutcome::duplicate,
        });
    }
    // Waited in the queue long enough for the lease to run short: make it last the check.
    let lease = lease_for(claim.timeout_seconds, shared.lease_slack);
    let needed = Duration::from_secs(monitor.timeout_seconds as u64 + 10);
    if claimed.elapsed() + needed > lease
        && !extend(shared.tenancy.runtime_pool(), claim, shared.owner, needed).await?
    {
        // Another claimer has it now.
        return Ok(Prepared::Skip {
            next: Next::Retry(Duration::ZERO),
            outcome: CheckOutcome::retried,
        });
    }
    Ok(Prepared::Run {
        ctx,
        monitor: Box::new(monitor),
        labels,
    })
}

async fn slot_recorded(tx: &mut TenantTx, claim: &Claim) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM check_results WHERE monitor_id = $1 AND due_at = $2)",
    )
    .bind(claim.monitor_id)
    .bind(claim.due_at)
    .fetch_one(&mut **tx)
    .await
}

/// Runs the monitor's check (a heartbeat monitor's is the deadline of its pings); `None` when
/// there is nothing to record yet (a heartbeat monitor waiting for its first ping).
async fn observe(shared: &Shared, monitor: &Monitor, now: DateTime<Utc>) -> Option<Observation> {
    let kind = match monitor.kind.as_str() {
        "http" => CheckKind::Http,
        "keyword" => CheckKind::Keyword,
        "tcp" => CheckKind::Tcp,
        "heartbeat" => return heartbeat(monitor, now),
        other => {
            return Some(Observation::down(
                now,
                format!("unknown monitor kind {other:?}"),
            ));
        }
    };
    let spec = CheckSpec {
        kind,
        target: monitor.target.clone().unwrap_or_default(),
        keyword: monitor.keyword.clone(),
        timeout: Duration::from_secs(monitor.timeout_seconds.max(1) as u64),
    };
    let outcome = shared.checker.run(&spec).await;
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
fn slot_after(claim: &Claim, monitor: &Monitor, shared: &Shared, labels: &TenantLabels) -> Next {
    let now = Utc::now();
    let interval = TimeDelta::seconds(monitor.interval_seconds.max(1).into());
    let (mut at, skipped) = next_slot(claim.due_at, interval, now);
    if skipped > 0 {
        shared.metrics.skipped(labels, skipped);
        tracing::warn!(tenant = %labels.tenant, monitor = %monitor.id, skipped, "checks are more than an interval behind; slots skipped");
    }
    if monitor.kind == "heartbeat" {
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
        let mut control = tx.control(shared.tenancy.runtime_pool()).await?;
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
