//! An instance's timetable: the checks it has claimed, each waiting for its due time and a
//! worker, and the checks its workers are running. It decides what a free worker starts:
//!
//! - **Fairness by recent use.** Each organization is charged the time its checks hold
//!   workers, divided by its weight, and the charge fades with a time constant of
//!   [`MEMORY`] (an exponentially decayed account, as a fair-share scheduler keeps). Of the
//!   checks due, the one of the organization with the least charge goes first; among equals
//!   the check due longest. An organization that has kept many workers busy lately goes after
//!   one that has not, even at a moment when it has few checks running, and a plan of weight 4
//!   runs four checks for every one of a plan of weight 1 when both have more waiting than
//!   can run.
//! - **No check waits for a heavier organization's.** Checks are claimed a little before they
//!   fall due, so the timetable knows what comes next. A check is expected to hold its worker
//!   as long as its organization's recent checks did, with a margin of four deviations (as
//!   TCP expects a round trip). Before starting a check of organization X, the timetable makes
//!   sure that the checks coming due meanwhile of organizations charged less than X will
//!   still find a worker at their due time — a worker idle now, or one whose running check is
//!   expected to have ended by then (backfilling, as batch schedulers do with reservations).
//!   Of a lighter organization, it counts as many checks as that organization could start
//!   before coming within half a check of X's charge: so an organization far heavier than the others (a backlog
//!   of thousands) leaves them every worker they need, while organizations of about the same
//!   use do not hold workers idle for each other. If a check cannot start, its worker stays
//!   idle for the lighter organization's check.
//!
//! It holds no more checks than the instance claimed (workers, prefetch and lookahead), so
//! every decision looks at a few dozen entries.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

/// How long an organization's use of the workers is remembered: its charge fades by `1/e`
/// over this time.
pub const MEMORY: Duration = Duration::from_secs(30);

/// How much of a new duration an organization's average hold and its deviation take in
/// (exponentially weighted averages).
const HOLD_WEIGHT: f64 = 0.25;

/// How many deviations above its average a check is expected to hold its worker.
const HOLD_DEVIATIONS: f64 = 4.0;

/// Organizations remembered at most; past this, those with nothing waiting or running are
/// forgotten (charge and holds), the least charged first.
const ORGS_KEPT: usize = 10_000;

/// What the timetable has learned of an organization's checks: how long they hold a worker.
#[derive(Debug, Clone, Copy)]
struct HoldStats {
    average: f64,
    deviation: f64,
}

impl HoldStats {
    fn first(held: Duration) -> Self {
        Self {
            average: held.as_secs_f64(),
            deviation: held.as_secs_f64() / 2.0,
        }
    }

    fn learn(&mut self, held: Duration) {
        let held = held.as_secs_f64();
        self.deviation =
            (1.0 - HOLD_WEIGHT) * self.deviation + HOLD_WEIGHT * (held - self.average).abs();
        self.average = (1.0 - HOLD_WEIGHT) * self.average + HOLD_WEIGHT * held;
    }

    /// How long a check is expected to hold its worker, at most.
    fn expected(&self) -> Duration {
        Duration::try_from_secs_f64(self.average + HOLD_DEVIATIONS * self.deviation)
            .unwrap_or(Duration::MAX)
    }
}

/// One organization's account.
struct Org {
    weight: u32,
    running: u32,
    /// Worker seconds charged, as of `at` (fading since).
    charge: f64,
    at: DateTime<Utc>,
    hold: Option<HoldStats>,
}

impl Org {
    fn new(now: DateTime<Utc>) -> Self {
        Self {
            weight: 1,
            running: 0,
            charge: 0.0,
            at: now,
            hold: None,
        }
    }

    /// The charge at `now`, per unit of weight.
    fn share(&self, now: DateTime<Utc>) -> f64 {
        self.charge_at(now) / f64::from(self.weight.max(1))
    }

    fn charge_at(&self, now: DateTime<Utc>) -> f64 {
        let elapsed = (now - self.at).to_std().unwrap_or_default();
        self.charge * (-elapsed.as_secs_f64() / MEMORY.as_secs_f64()).exp()
    }

    /// Adds `seconds` (negative to refund) as of `now`.
    fn charge(&mut self, seconds: f64, now: DateTime<Utc>) {
        let at = self.at.max(now);
        self.charge = (self.charge_at(at) + seconds).max(0.0);
        self.at = at;
    }
}

struct Entry<T> {
    due: DateTime<Utc>,
    /// How long the check may hold a worker when its organization has no history yet.
    guess: Duration,
    item: T,
}

/// A check a worker started; hand it back to [`Timetable::done`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    id: u64,
    pub org: Uuid,
}

struct Running {
    org: Uuid,
    /// How long it was expected to hold its worker (what its organization was charged).
    expected: Duration,
    /// When its worker is expected to be free again.
    ends: DateTime<Utc>,
}

/// What a free worker does now.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<T> {
    /// Start this check.
    Start(Run, T),
    /// Nothing to start now; look again at this time (when the next check falls due), or
    /// when something changes (a check ends, checks are added).
    Wait(Option<DateTime<Utc>>),
}

/// Claimed checks and running ones, per organization.
pub struct Timetable<T> {
    workers: usize,
    /// Each organization's checks waiting, oldest due first.
    lanes: HashMap<Uuid, VecDeque<Entry<T>>>,
    orgs: HashMap<Uuid, Org>,
    running: HashMap<u64, Running>,
    next_run: u64,
    len: usize,
}

impl<T> Timetable<T> {
    /// A timetable for `workers` workers (at least one).
    pub fn new(workers: usize) -> Self {
        Self {
            workers: workers.max(1),
            lanes: HashMap::new(),
            orgs: HashMap::new(),
            running: HashMap::new(),
            next_run: 0,
            len: 0,
        }
    }

    /// Adds `item` of organization `org`, whose share is `weight` (at least 1), due at `due`;
    /// `guess` is how long it may hold a worker while the organization has no checks ended.
    pub fn push(&mut self, org: Uuid, weight: u32, due: DateTime<Utc>, guess: Duration, item: T) {
        self.orgs.entry(org).or_insert_with(|| Org::new(due)).weight = weight.max(1);
        let lane = self.lanes.entry(org).or_default();
        let at = lane.partition_point(|queued| queued.due <= due);
        lane.insert(at, Entry { due, guess, item });
        self.len += 1;
    }

    /// What a free worker should do at `now`. Call it until it says [`Next::Wait`].
    pub fn next(&mut self, now: DateTime<Utc>) -> Next<T> {
        let wake = self.next_due_after(now);
        let idle = self.workers.saturating_sub(self.running.len());
        if idle == 0 {
            return Next::Wait(None);
        }
        let mut candidates: Vec<(f64, DateTime<Utc>, Uuid)> = self
            .lanes
            .iter()
            .filter_map(|(org, lane)| {
                let front = lane.front()?;
                (front.due <= now).then(|| (self.share(org, now), front.due, *org))
            })
            .collect();
        if candidates.is_empty() {
            return Next::Wait(wake);
        }
        candidates
            .sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let ends = self.expected_ends(now);
        for (share, _, org) in candidates {
            let hold = self.hold_of(&org);
            if self.leaves_room(now, now + hold, share, idle - 1, &ends) {
                return self.start(org, now, hold);
            }
        }
        // Every worker still idle is kept for a check coming due.
        Next::Wait(wake)
    }

    /// Whether the checks coming due before `until` of organizations charged less than
    /// `share` each find a worker at their due time, with `spare` workers idle and the running
    /// checks ending when expected. Of each such organization, only as many count as it could
    /// start before coming within half a check of `share`: past that, its checks wait their
    /// turn like the others'.
    fn leaves_room(
        &self,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        share: f64,
        spare: usize,
        ends: &[DateTime<Utc>],
    ) -> bool {
        let mut coming: Vec<DateTime<Utc>> = Vec::new();
        for (org, lane) in &self.lanes {
            let Some(account) = self.orgs.get(org) else {
                continue;
            };
            let lighter = share - account.share(now);
            if lighter <= 0.0 {
                continue;
            }
            let per_check = self.hold_of(org).as_seconds_f64() / f64::from(account.weight.max(1));
            let before_even = if per_check > 0.0 {
                (lighter / per_check).round().min(lane.len() as f64) as usize
            } else {
                lane.len()
            };
            coming.extend(
                lane.iter()
                    .map(|entry| entry.due)
                    .take_while(|due| *due <= until)
                    .take(before_even),
            );
        }
        coming.sort_unstable();
        coming.iter().enumerate().all(|(i, due)| {
            let freed = ends.partition_point(|end| end <= due);
            spare + freed > i
        })
    }

    fn start(&mut self, org: Uuid, now: DateTime<Utc>, hold: TimeDelta) -> Next<T> {
        let Some(lane) = self.lanes.get_mut(&org) else {
            return Next::Wait(None);
        };
        let Some(entry) = lane.pop_front() else {
            return Next::Wait(None);
        };
        if lane.is_empty() {
            self.lanes.remove(&org);
        }
        self.len -= 1;
        let expected = hold.to_std().unwrap_or_default();
        let account = self.orgs.entry(org).or_insert_with(|| Org::new(now));
        account.running += 1;
        account.charge(expected.as_secs_f64(), now);
        let id = self.next_run;
        self.next_run += 1;
        self.running.insert(
            id,
            Running {
                org,
                expected,
                ends: now + hold,
            },
        );
        Next::Start(Run { id, org }, entry.item)
    }

    /// `run` ended at `now` after holding its worker for `held`: its organization's charge is
    /// put right (it was charged the expected hold when it started) and its holds learned.
    pub fn done(&mut self, run: Run, held: Duration, now: DateTime<Utc>) {
        let Some(running) = self.running.remove(&run.id) else {
            return;
        };
        if let Some(account) = self.orgs.get_mut(&running.org) {
            account.running = account.running.saturating_sub(1);
            account.charge(held.as_secs_f64() - running.expected.as_secs_f64(), now);
            match account.hold.as_mut() {
                Some(hold) => hold.learn(held),
                None => account.hold = Some(HoldStats::first(held)),
            }
        }
        if self.orgs.len() > ORGS_KEPT {
            self.forget(now);
        }
    }

    /// Forgets the least charged organizations with nothing waiting or running, down to
    /// three quarters of [`ORGS_KEPT`].
    fn forget(&mut self, now: DateTime<Utc>) {
        let mut idle: Vec<(f64, Uuid)> = self
            .orgs
            .iter()
            .filter(|(org, account)| account.running == 0 && !self.lanes.contains_key(org))
            .map(|(org, account)| (account.charge_at(now), *org))
            .collect();
        idle.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let excess = self.orgs.len().saturating_sub(ORGS_KEPT * 3 / 4);
        for (_, org) in idle.into_iter().take(excess) {
            self.orgs.remove(&org);
        }
    }

    /// Takes every check not started, for giving back.
    pub fn drain(&mut self) -> Vec<T> {
        let mut items = Vec::with_capacity(self.len);
        for (_, lane) in self.lanes.drain() {
            items.extend(lane.into_iter().map(|entry| entry.item));
        }
        self.len = 0;
        items
    }

    /// Checks running.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Checks waiting: `(due by now, due later)`.
    pub fn waiting(&self, now: DateTime<Utc>) -> (usize, usize) {
        let due: usize = self
            .lanes
            .values()
            .map(|lane| lane.partition_point(|entry| entry.due <= now))
            .sum();
        (due, self.len - due)
    }

    /// Checks waiting, due or not.
    pub fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How long `org`'s checks are expected to hold a worker, once learned.
    #[cfg(test)]
    pub fn expected_hold(&self, org: &Uuid) -> Option<Duration> {
        self.orgs.get(org)?.hold.map(|hold| hold.expected())
    }

    /// `org`'s charge at `now` per unit of weight (0 for an organization not seen).
    fn share(&self, org: &Uuid, now: DateTime<Utc>) -> f64 {
        self.orgs.get(org).map_or(0.0, |account| account.share(now))
    }

    /// How long a check of `org` is expected to hold its worker: learned, or the timeout of
    /// its first check waiting while nothing is.
    fn hold_of(&self, org: &Uuid) -> TimeDelta {
        let hold = self
            .orgs
            .get(org)
            .and_then(|account| account.hold)
            .map(|hold| hold.expected())
            .unwrap_or_else(|| {
                self.lanes
                    .get(org)
                    .and_then(|lane| lane.front())
                    .map_or(Duration::ZERO, |entry| entry.guess)
            });
        TimeDelta::from_std(hold).unwrap_or(TimeDelta::MAX)
    }

    /// When each running check's worker is expected to be free, soonest first; a check past
    /// its expected end is expected to end now.
    fn expected_ends(&self, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut ends: Vec<_> = self
            .running
            .values()
            .map(|running| running.ends.max(now))
            .collect();
        ends.sort_unstable();
        ends
    }

    /// The first due time after `now` of any check waiting.
    fn next_due_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.lanes
            .values()
            .filter_map(|lane| {
                let at = lane.partition_point(|entry| entry.due <= now);
                lane.get(at).map(|entry| entry.due)
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap() + TimeDelta::milliseconds(ms)
    }

    const SECOND: Duration = Duration::from_secs(1);

    /// Starts whatever can start at `now`, in order.
    fn start_all<T>(table: &mut Timetable<T>, now: DateTime<Utc>) -> Vec<(Run, T)> {
        let mut started = Vec::new();
        while let Next::Start(run, item) = table.next(now) {
            started.push((run, item));
        }
        started
    }

    /// `org` has run `n` checks of `held` each, ending by `now`.
    fn history(table: &mut Timetable<i64>, org: Uuid, n: usize, held: Duration, now: i64) {
        for _ in 0..n {
            table.push(org, 1, at(now), SECOND, -1);
            let (run, _) = start_all(table, at(now)).remove(0);
            table.done(run, held, at(now));
        }
    }

    #[test]
    fn a_crowded_organization_does_not_delay_a_small_one() {
        let mut table = Timetable::new(8);
        for i in 0..5000 {
            table.push(org(1), 1, at(i), SECOND, i);
        }
        // Every worker busy with the crowded organization's checks.
        let crowded = start_all(&mut table, at(10_000));
        assert_eq!(crowded.len(), 8);
        // A check of a small organization, due after all of them, goes first when one ends.
        table.push(org(2), 1, at(10_000), SECOND, -1);
        assert_eq!(table.next(at(10_000)), Next::Wait(None));
        table.done(crowded[0].0, SECOND, at(10_001));
        assert!(matches!(table.next(at(10_001)), Next::Start(run, -1) if run.org == org(2)));
        assert_eq!(table.len(), 4992);
    }

    #[test]
    fn weights_set_the_shares_of_the_workers() {
        let mut table = Timetable::new(70);
        for i in 0..100 {
            table.push(org(1), 1, at(i), SECOND, i);
            table.push(org(2), 4, at(i), SECOND, i);
            table.push(org(3), 2, at(i), SECOND, i);
        }
        let mut counts = HashMap::new();
        for (run, _) in start_all(&mut table, at(1_000)) {
            *counts.entry(run.org).or_insert(0) += 1;
        }
        assert_eq!(counts[&org(1)], 10);
        assert_eq!(counts[&org(2)], 40);
        assert_eq!(counts[&org(3)], 20);
    }

    #[test]
    fn a_check_waits_for_its_due_time_and_says_when_that_is() {
        let mut table = Timetable::new(4);
        table.push(org(1), 1, at(500), SECOND, "later");
        table.push(org(1), 1, at(100), SECOND, "sooner");
        assert_eq!(table.next(at(0)), Next::Wait(Some(at(100))));
        assert!(matches!(table.next(at(100)), Next::Start(_, "sooner")));
        assert_eq!(table.next(at(100)), Next::Wait(Some(at(500))));
        assert_eq!(table.waiting(at(100)), (0, 1));
        assert!(matches!(table.next(at(501)), Next::Start(_, "later")));
        assert_eq!(table.next(at(501)), Next::Wait(None));
        assert!(table.is_empty());
    }

    #[test]
    fn recent_use_counts_and_fades() {
        let mut table = Timetable::new(1);
        // Org 1 kept a worker busy for a minute just now; org 2 not at all.
        history(&mut table, org(1), 60, SECOND, 0);
        table.push(org(1), 1, at(0), SECOND, 1);
        table.push(org(2), 1, at(100), SECOND, 2);
        // Org 2's check, due later, goes first.
        assert!(matches!(table.next(at(100)), Next::Start(run, 2) if run.org == org(2)));
        // Five minutes on, org 1's use has faded below org 2's newer one.
        let mut table = Timetable::new(1);
        history(&mut table, org(1), 60, SECOND, 0);
        history(&mut table, org(2), 1, SECOND, 290_000);
        table.push(org(2), 1, at(290_000), SECOND, 2);
        table.push(org(1), 1, at(295_000), SECOND, 1);
        assert!(matches!(table.next(at(300_000)), Next::Start(run, 1) if run.org == org(1)));
    }

    #[test]
    fn a_heavy_organization_leaves_a_worker_for_a_check_coming_due() {
        let mut table = Timetable::new(2);
        // The heavy organization has a backlog of checks that may take a second each; the
        // light one a check due in half a second.
        for i in 0..10 {
            table.push(org(1), 1, at(i), SECOND, i);
        }
        table.push(org(2), 1, at(500), SECOND, 100);
        // One heavy check starts (both were even); a second would hold the last worker past
        // the light check, which now has the lower charge.
        let first = start_all(&mut table, at(10));
        assert_eq!(first.len(), 1);
        assert_eq!(table.next(at(20)), Next::Wait(Some(at(500))));
        assert!(matches!(table.next(at(500)), Next::Start(run, 100) if run.org == org(2)));
    }

    #[test]
    fn a_running_check_ending_in_time_lets_the_heavy_organization_use_the_idle_worker() {
        let mut table = Timetable::new(2);
        // Org 1's checks are learned to take 100 ms, steadily.
        history(&mut table, org(1), 30, Duration::from_millis(100), 0);
        let hold = table.expected_hold(&org(1)).unwrap();
        assert!(
            (Duration::from_millis(100)..Duration::from_millis(101)).contains(&hold),
            "{hold:?}"
        );
        for i in 1..10 {
            table.push(org(1), 1, at(i), SECOND, i);
        }
        let running = start_all(&mut table, at(10));
        assert_eq!(running.len(), 2, "nothing is coming due: both workers busy");
        table.done(running[0].0, Duration::from_millis(100), at(100));
        // A light check due at 150 ms: the heavy check still running ends at 110 ms, in time
        // for it, so the idle worker may start another heavy check now...
        table.push(org(2), 1, at(150), SECOND, 100);
        assert!(matches!(table.next(at(100)), Next::Start(run, _) if run.org == org(1)));
        assert_eq!(table.next(at(100)), Next::Wait(None));
        // ...and the light check starts on the worker that frees.
        table.done(running[1].0, Duration::from_millis(100), at(110));
        assert!(matches!(table.next(at(150)), Next::Start(run, 100) if run.org == org(2)));
    }

    #[test]
    fn only_the_checks_a_lighter_organization_may_run_before_catching_up_are_waited_for() {
        let mut table = Timetable::new(4);
        // Org 1 has used two worker seconds more than org 2 (checks of a second each).
        history(&mut table, org(1), 2, SECOND, 0);
        for i in 0..10 {
            table.push(org(1), 1, at(i), SECOND, i);
        }
        // Ten checks of org 2, all due in half a second (created together).
        for i in 0..10 {
            table.push(org(2), 1, at(500), SECOND, 100 + i);
        }
        // Two seconds behind, org 2 may start two checks before catching up: org 1 starts one
        // check, leaving three workers; a second would leave two, for org 2's next three.
        let started = start_all(&mut table, at(10));
        assert_eq!(started.len(), 1);
        assert_eq!(started[0].0.org, org(1));
        assert_eq!(table.next(at(20)), Next::Wait(Some(at(500))));
        // At their due time org 2 runs its checks on the three idle workers.
        let light = start_all(&mut table, at(500));
        assert_eq!(light.len(), 3);
        assert!(light.iter().all(|(run, _)| run.org == org(2)));
    }

    #[test]
    fn organizations_of_about_the_same_use_do_not_hold_workers_for_each_other() {
        let mut table = Timetable::new(1);
        history(&mut table, org(1), 1, Duration::from_millis(1_100), 0);
        history(&mut table, org(2), 1, SECOND, 0);
        table.push(org(1), 1, at(0), SECOND, 1);
        table.push(org(2), 1, at(100), SECOND, 2);
        // Org 1 has used a tenth of a check more: not enough to keep the worker for org 2.
        assert!(matches!(table.next(at(0)), Next::Start(_, 1)));
    }

    #[test]
    fn an_organization_whose_checks_vary_is_expected_to_hold_longer() {
        let mut table = Timetable::new(1);
        for held in [100, 300, 100, 300, 100, 300] {
            history(&mut table, org(1), 1, Duration::from_millis(held), 0);
        }
        // About 200 ms on average, give or take 100: expected to take up to about 600 ms.
        let hold = table.expected_hold(&org(1)).unwrap();
        assert!(
            (Duration::from_millis(450)..Duration::from_millis(700)).contains(&hold),
            "{hold:?}"
        );
    }

    #[test]
    fn drained_checks_are_all_given_back_and_running_ones_stay_counted() {
        let mut table = Timetable::new(2);
        for i in 0..10 {
            table.push(org(i % 3), 1 + (i % 2) as u32, at(i as i64), SECOND, i);
        }
        let started = start_all(&mut table, at(100));
        assert_eq!(started.len(), 2);
        let mut rest = table.drain();
        rest.extend(started.iter().map(|(_, i)| *i));
        rest.sort_unstable();
        assert_eq!(rest, (0..10).collect::<Vec<_>>());
        assert!(table.is_empty());
        assert_eq!(table.running(), 2);
        for (run, _) in started {
            table.done(run, SECOND, at(1_100));
        }
        assert_eq!(table.running(), 0);
    }

    #[test]
    fn each_lane_keeps_its_order() {
        let mut table = Timetable::new(1);
        for i in 0..10 {
            table.push(org(i % 3), 1, at(10 - i as i64), SECOND, i);
        }
        let mut seen: HashMap<Uuid, Vec<i64>> = HashMap::new();
        while let Next::Start(run, i) = table.next(at(100)) {
            seen.entry(run.org).or_default().push(10 - i as i64);
            table.done(run, SECOND, at(100));
        }
        assert_eq!(seen.values().map(Vec::len).sum::<usize>(), 10);
        for dues in seen.values() {
            assert!(dues.windows(2).all(|w| w[0] <= w[1]), "{dues:?}");
        }
    }

    #[test]
    fn idle_organizations_are_forgotten_past_the_limit() {
        let mut table = Timetable::new(1);
        for n in 0..ORGS_KEPT as u128 + 1 {
            history(&mut table, org(n), 1, SECOND, 0);
        }
        assert!(table.orgs.len() <= ORGS_KEPT);
        assert!(table.orgs.len() >= ORGS_KEPT * 3 / 4);
    }
}
