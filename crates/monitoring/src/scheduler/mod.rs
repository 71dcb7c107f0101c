//! The scheduler: every server instance runs one. Checks are claimed from the schedule in the
//! control database under leases ([`claim_ahead`]: `FOR UPDATE SKIP LOCKED`, fair across
//! organizations and weighted by plan), those due now and those coming due within a short
//! lookahead, never more than the instance's workers can start (backpressure: what is not
//! claimed stays due, and the lag shows it). Claimed checks are prepared at once, in one read
//! per organization (`prepare.rs`: the tenant resolved, the monitors read, slots recorded
//! already dropped), and wait in the instance's timetable (`timetable.rs`) for their due time and a worker:
//! the timetable is fair across organizations and keeps a busy organization's backlog from
//! taking the worker another organization's check will need when it falls due. The dispatcher
//! (`work.rs`) starts each check when the timetable says so; the check runs, is recorded (with
//! the incident it opens or resolves, and its alerts), and its slot is moved on in batches
//! (`release.rs`).
//!
//! An instance that dies leaves its leases to expire; another instance then takes the slots
//! over. A slot already recorded is not run again, and recording is idempotent per slot, so no
//! check is counted twice and none is lost.

mod plan;
mod prepare;
mod release;
mod stats;
mod timetable;
mod work;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tenantry_tenancy::Tenancy;
use tokio::sync::{Notify, mpsc, watch};
use uuid::Uuid;

pub use plan::{
    Ask, Claim, Claimant, LEASE_SLACK, Next, Reconciled, claim, claim_ahead, extend, finish,
    finish_all, lease_for, leased_to, next_slot, plan, reconcile, release_agent,
    seconds_to_next_due, unplan,
};
pub use stats::{CheckOutcome, SchedulerMetrics, TenantLabels};

use crate::checks::Checker;
use release::Release;
use timetable::Timetable;
use work::Ready;

/// How an instance schedules.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Checks run at once on this instance.
    pub workers: usize,
    /// Checks due claimed beyond the running ones, waiting for a worker: enough to keep the
    /// workers busy between two claims, few enough that other instances get the rest.
    pub prefetch: usize,
    /// How long before their due time checks are claimed, so that each starts on time and the
    /// timetable knows what is coming (zero: only checks already due).
    pub lookahead: Duration,
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
            lookahead: Duration::from_secs(1),
            poll: Duration::from_millis(500),
            reconcile_every: Duration::from_secs(300),
            lease_slack: LEASE_SLACK,
            drain: Duration::from_secs(10),
        }
    }
}

/// The shortest wait between two claims while checks are coming due.
const MIN_WAIT: Duration = Duration::from_millis(20);

/// Part of the claim kept for organizations other than the busiest ([`Ask::unreserved`]): with
/// the instance's room taken by checks of the organization with the most running, it still
/// claims this many due checks of the others (and as many again to wait for a worker).
pub fn reserved_workers(workers: usize) -> usize {
    if workers < 2 { 0 } else { (workers / 8).max(1) }
}

/// How many checks a claim may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Room {
    due: usize,
    unreserved: usize,
    ahead: usize,
    ahead_unreserved: usize,
}

impl Room {
    /// The room of an instance of `workers` running `running` checks with `due` more due and
    /// waiting, and `ahead` claimed that are not due yet.
    fn of(
        config: &SchedulerConfig,
        workers: usize,
        running: usize,
        due: usize,
        ahead: usize,
    ) -> Self {
        let reserved = reserved_workers(workers);
        let general = workers + config.prefetch - reserved;
        let held = running + due;
        let ahead_room = if config.lookahead.is_zero() {
            0
        } else {
            let most = 3 * (workers + config.prefetch) + 2 * reserved;
            (2 * (workers + config.prefetch))
                .saturating_sub(ahead)
                .min(most.saturating_sub(held + ahead))
        };
        let unreserved = general.saturating_sub(held);
        Self {
            due: (general + 2 * reserved).saturating_sub(held),
            unreserved,
            ahead: ahead_room,
            ahead_unreserved: if unreserved > 0 { ahead_room } else { 0 },
        }
    }
}

/// What woke the claimer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    /// A check came due, or the poll.
    Due,
    /// A check ended.
    Finished,
}

/// What one claim got.
enum Claimed {
    /// As many as there was room for: more may be due.
    Full,
    /// Less: every claimable check is taken.
    Partial,
    /// Nothing asked for: the instance holds enough (or the claim failed).
    NoRoom,
}

/// One instance's scheduler. `run` until shutdown.
pub struct Scheduler {
    shared: Arc<Shared>,
    config: SchedulerConfig,
    releases: mpsc::UnboundedReceiver<Release>,
}

struct Shared {
    tenancy: Tenancy,
    checker: Checker,
    /// Whether an organization's checks may reach private targets.
    features: crate::features::PlanFeatures,
    metrics: SchedulerMetrics,
    /// This instance's name on its leases.
    owner: Uuid,
    table: std::sync::Mutex<Timetable<Ready>>,
    /// The timetable changed (checks added, a check ended): the dispatcher looks again.
    changed: Notify,
    /// A check ended: there may be room to claim.
    room: Notify,
    releases: mpsc::UnboundedSender<Release>,
    workers: usize,
    lease_slack: Duration,
    /// A check prepared longer ago than this (it waited for a worker) reads its monitor again
    /// before it runs.
    fresh_for: Duration,
}

/// How long past the lookahead a prepared check may wait for a worker and still run on what
/// was read when it was claimed.
const FRESH_PAST_LOOKAHEAD: Duration = Duration::from_secs(1);

/// How long a stopping instance waits for its last released slots to be written.
const FLUSH_WAIT: Duration = Duration::from_secs(10);

/// Puts prepared checks in the timetable, each weighted by its plan and expected to take its
/// time limit.
fn queue(table: &mut Timetable<Ready>, ready: Vec<Ready>) {
    for ready in ready {
        let weight = ready.claim.weight.max(1) as u32;
        let guess = Duration::from_secs(ready.monitor.timeout_seconds.max(1) as u64);
        table.push(ready.claim.org_id, weight, ready.claim.due_at, guess, ready);
    }
}

impl Shared {
    fn table(&self) -> std::sync::MutexGuard<'_, Timetable<Ready>> {
        // A panic while holding the lock leaves a timetable that is still consistent: every
        // method completes its change before it can fail.
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Hands `claim` to the releaser, which moves its row as `next` says.
    fn release(&self, claim: Claim, next: Next) {
        if self.releases.send(Release::Slot(claim, next)).is_err() {
            tracing::warn!("the releaser has stopped; the slot's lease will expire");
        }
    }
}

impl Scheduler {
    pub fn new(
        tenancy: Tenancy,
        checker: Checker,
        config: SchedulerConfig,
        metrics: SchedulerMetrics,
    ) -> Self {
        let workers = config.workers.max(1);
        metrics.set_workers(workers);
        let (releases, receiver) = mpsc::unbounded_channel();
        Self {
            shared: Arc::new(Shared {
                features: crate::features::PlanFeatures::new(&tenancy),
                tenancy,
                checker,
                metrics,
                owner: Uuid::now_v7(),
                table: std::sync::Mutex::new(Timetable::new(workers)),
                changed: Notify::new(),
                room: Notify::new(),
                releases,
                workers,
                lease_slack: config.lease_slack,
                fresh_for: config.lookahead + FRESH_PAST_LOOKAHEAD,
            }),
            config,
            releases: receiver,
        }
    }

    /// The id this instance's leases carry.
    pub fn owner(&self) -> Uuid {
        self.shared.owner
    }

    /// One step, driven by the caller instead of [`Scheduler::run`]'s clock: claims the checks
    /// due now (as many as the workers), runs them through the same path as `run` (the
    /// timetable, the check, its recording), moves their slots on, and returns how many ran.
    /// For tests and tools that step the scheduler; not to be mixed with `run`.
    pub async fn tick(&mut self) -> anyhow::Result<usize> {
        let shared = &self.shared;
        let control = shared.tenancy.control_db();
        let claims = claim_ahead(
            control,
            Claimant::Instances,
            shared.owner,
            &Ask::due(shared.workers as i64),
            self.config.lease_slack,
        )
        .await?;
        let mut started = Vec::new();
        if !claims.is_empty() {
            let ready = prepare::prepare(shared, claims, Instant::now()).await;
            let mut table = shared.table();
            queue(&mut table, ready);
            while let timetable::Next::Start(run, ready) = table.next(Utc::now()) {
                started.push((run, ready));
            }
        }
        let ran = started.len();
        let mut checks = tokio::task::JoinSet::new();
        for (run, ready) in started {
            checks.spawn(work::check(shared.clone(), run, ready));
        }
        while checks.join_next().await.is_some() {}
        // What the checks (and the claims skipped while preparing) handed to the releaser.
        let mut slots = Vec::new();
        while let Ok(release) = self.releases.try_recv() {
            match release {
                Release::Slot(claim, next) => slots.push((claim, next)),
                Release::Flush(done) => {
                    let _ = done.send(());
                }
            }
        }
        if !slots.is_empty() {
            finish_all(control, shared.owner, &slots).await?;
        }
        Ok(ran)
    }

    /// Claims and runs checks until `shutdown` completes; then claims no more, gives back the
    /// checks not started (due again at once, for any instance) and lets the running ones
    /// finish.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Scheduler {
            shared,
            config,
            releases,
        } = self;
        let releaser = tokio::spawn(release::run(
            shared.tenancy.control_db().clone(),
            shared.owner,
            shared.metrics.clone(),
            releases,
        ));
        let (stop, stopped) = watch::channel(false);
        let dispatcher = tokio::spawn(work::dispatch(shared.clone(), stopped));
        let claimer = Claimer {
            shared: shared.clone(),
            config: config.clone(),
        };
        claimer.run(shutdown).await;

        let _ = stop.send(true);
        let mut checks = dispatcher.await.unwrap_or_default();
        let queued = shared.table().drain();
        for ready in queued {
            shared.release(ready.claim, Next::Retry(Duration::ZERO));
        }
        let _ = tokio::time::timeout(config.drain, async {
            while checks.join_next().await.is_some() {}
        })
        .await;
        checks.abort_all();
        while checks.join_next().await.is_some() {}
        let (flushed, flushing) = tokio::sync::oneshot::channel();
        if shared.releases.send(Release::Flush(flushed)).is_ok()
            && tokio::time::timeout(FLUSH_WAIT, flushing).await.is_err()
        {
            tracing::warn!("releasing the last check slots timed out; their leases will expire");
        }
        releaser.abort();
        let _ = releaser.await;
    }
}

/// Claims checks as they come within the lookahead and as room frees, and keeps the schedule
/// in step with the monitors.
struct Claimer {
    shared: Arc<Shared>,
    config: SchedulerConfig,
}

impl Claimer {
    async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut reconciled: Option<Instant> = None;
        let mut wake = Wake::Due;
        let mut next_claim = Instant::now();
        loop {
            if reconciled.is_none_or(|at| at.elapsed() >= self.config.reconcile_every) {
                reconciled = Some(Instant::now());
                self.reconcile().await;
            }
            match (self.claim_some(wake).await, wake) {
                (Claimed::Full, _) => next_claim = Instant::now(),
                // A finished check that left enough waiting changes nothing about when the
                // next check comes due.
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
    }

    async fn reconcile(&self) {
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

    /// How long to wait before claiming again: until the next check is half the lookahead
    /// from its due time, so each claim takes a batch (the poll at most; a failure to ask is
    /// the poll too).
    async fn until_next_due(&self) -> Duration {
        let lookahead = self.config.lookahead;
        match seconds_to_next_due(self.shared.tenancy.control_db(), lookahead).await {
            Ok(Some(seconds)) => {
                Duration::from_secs_f64(seconds.max(0.0) + lookahead.as_secs_f64() / 2.0)
                    .clamp(MIN_WAIT, self.config.poll.max(MIN_WAIT))
            }
            Ok(None) => self.config.poll,
            Err(e) => {
                tracing::warn!(error = %e, "looking for the next due check failed; polling");
                self.config.poll
            }
        }
    }

    /// Claims what the workers can start: checks due now to fill the workers and the prefetch
    /// (past that, only of organizations below the busiest, by twice the reserve), and checks
    /// coming due within the lookahead, up to twice as many, all held by the instance never
    /// more than three times workers and prefetch (with the reserve); once the checks due fill
    /// the instance, those coming due too are only of organizations below the busiest, whose
    /// checks the timetable starts on time. Woken by a finished check, it claims only once the
    /// checks due and waiting are down to half the prefetch, in one batch rather than a row
    /// each time a worker finishes; woken by a check coming due, it claims whatever there is
    /// room for.
    async fn claim_some(&self, wake: Wake) -> Claimed {
        let shared = &self.shared;
        let (running, (due, ahead)) = {
            let table = shared.table();
            (table.running(), table.waiting(Utc::now()))
        };
        let room = Room::of(&self.config, shared.workers, running, due, ahead);
        if room.due + room.ahead == 0 || (wake == Wake::Finished && due > self.config.prefetch / 2)
        {
            return Claimed::NoRoom;
        }
        let started = Instant::now();
        let ask = Ask {
            due: room.due as i64,
            unreserved: room.unreserved as i64,
            ahead: room.ahead as i64,
            ahead_unreserved: room.ahead_unreserved as i64,
            horizon: self.config.lookahead,
        };
        let claims = match claim_ahead(
            shared.tenancy.control_db(),
            Claimant::Instances,
            shared.owner,
            &ask,
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
        let now = Utc::now();
        let claimed_due = claims.iter().filter(|c| c.due_at <= now).count();
        // Either part filled: there may be more of it.
        let claimed = if (room.due > 0 && claimed_due >= room.due)
            || (room.ahead > 0 && claims.len() - claimed_due >= room.ahead)
        {
            Claimed::Full
        } else {
            Claimed::Partial
        };
        shared.metrics.overhead(started.elapsed());
        if !claims.is_empty() {
            let ready = prepare::prepare(shared, claims, started).await;
            let mut table = shared.table();
            queue(&mut table, ready);
            shared.metrics.set_occupancy(table.len(), table.running());
            drop(table);
            shared.changed.notify_one();
        }
        claimed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SchedulerConfig {
        SchedulerConfig {
            workers: 16,
            prefetch: 8,
            ..SchedulerConfig::default()
        }
    }

    #[test]
    fn an_idle_instance_claims_what_is_due_and_what_comes_due() {
        let room = Room::of(&config(), 16, 0, 0, 0);
        // 16 + 8 - 2 for anyone, 4 more for organizations below the busiest.
        assert_eq!((room.due, room.unreserved), (26, 22));
        assert_eq!((room.ahead, room.ahead_unreserved), (48, 48));
    }

    #[test]
    fn a_full_instance_claims_ahead_only_for_organizations_below_the_busiest() {
        // Every worker busy and the prefetch waiting.
        let room = Room::of(&config(), 16, 16, 8, 10);
        assert_eq!((room.due, room.unreserved), (2, 0));
        assert_eq!((room.ahead, room.ahead_unreserved), (38, 0));
    }

    #[test]
    fn what_an_instance_holds_is_bounded_however_far_behind_it_is() {
        // Checks claimed ahead fell due and wait behind busy workers: no more room of any kind
        // once the instance holds three times workers and prefetch (and the reserve).
        let room = Room::of(&config(), 16, 16, 40, 20);
        assert_eq!(
            room,
            Room {
                due: 0,
                unreserved: 0,
                ahead: 0,
                ahead_unreserved: 0
            }
        );
        let room = Room::of(&config(), 16, 16, 20, 30);
        assert_eq!((room.due, room.ahead), (0, 10));
        let zero = SchedulerConfig {
            lookahead: Duration::ZERO,
            ..config()
        };
        assert_eq!(Room::of(&zero, 16, 0, 0, 0).ahead, 0);
    }
}
