//! An instance's timetable: the checks it has claimed, each waiting for its due time and a
//! worker, and the checks its workers are running. It decides what a free worker starts:
//!
//! - **Fairness.** Of the checks due, the one of the organization in the lowest round goes
//!   first, its round being its checks running on this instance divided by its weight; among
//!   equal rounds the check due longest. An organization with nothing running goes before one
//!   with 5,000 checks queued and every worker busy with its checks, and a plan of weight 4 runs
//!   four checks at once for every one of a plan of weight 1 when both have more than their
//!   share waiting. It is the claim's rule ([`super::claim`]) applied again to what this
//!   instance holds.
//! - **No check waits for another organization's.** Checks are claimed a little before they
//!   fall due, so the timetable knows what comes next. A check holds its worker for about as
//!   long as its organization's recent checks did; before starting one, the timetable makes
//!   sure that every check coming due meanwhile of an organization in a lower round will still
//!   find a worker at its due time: a worker idle now, or one whose running check is expected
//!   to have ended by then (backfilling, as batch schedulers do with reservations). If not, the
//!   worker stays idle for it. So a busy organization's backlog fills the workers between the
//!   others' checks instead of in front of them, and the others' checks start when due.
//!
//! It holds no more checks than the instance claimed (workers, prefetch and lookahead), so
//! every decision looks at a few dozen entries.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

/// How much of a new duration an organization's expected hold takes in (an exponentially
/// weighted average).
const HOLD_WEIGHT: f64 = 0.25;

/// Expected holds kept at most; past this, those of organizations with nothing waiting or
/// running are forgotten (they start again from their checks' timeouts).
const HOLDS_KEPT: usize = 10_000;

struct Entry<T> {
    due: DateTime<Utc>,
    /// How long the check may hold a worker when its organization has no history yet.
    guess: Duration,
    item: T,
}

/// One organization's checks waiting, oldest due first.
struct Lane<T> {
    entries: VecDeque<Entry<T>>,
}

#[derive(Default)]
struct Org {
    weight: u32,
    running: u32,
}

/// A check a worker started; hand it back to [`Timetable::done`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    id: u64,
    pub org: Uuid,
}

struct Running {
    org: Uuid,
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
    lanes: HashMap<Uuid, Lane<T>>,
    orgs: HashMap<Uuid, Org>,
    /// Expected hold of each organization's checks, learned from the ones that ended.
    holds: HashMap<Uuid, Duration>,
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
            holds: HashMap::new(),
            running: HashMap::new(),
            next_run: 0,
            len: 0,
        }
    }

    /// Adds `item` of organization `org`, whose share is `weight` (at least 1), due at `due`;
    /// `guess` is how long it may hold a worker while the organization has no checks ended.
    pub fn push(&mut self, org: Uuid, weight: u32, due: DateTime<Utc>, guess: Duration, item: T) {
        self.orgs.entry(org).or_default().weight = weight.max(1);
        let lane = self.lanes.entry(org).or_insert_with(|| Lane {
            entries: VecDeque::new(),
        });
        let at = lane.entries.partition_point(|queued| queued.due <= due);
        lane.entries.insert(at, Entry { due, guess, item });
        self.len += 1;
    }

    /// What a free worker should do at `now`. Call it until it says [`Next::Wait`].
    pub fn next(&mut self, now: DateTime<Utc>) -> Next<T> {
        let wake = self.next_due_after(now);
        let idle = self.workers.saturating_sub(self.running.len());
        if idle == 0 {
            return Next::Wait(None);
        }
        let mut candidates: Vec<(u32, DateTime<Utc>, Uuid)> = self
            .lanes
            .iter()
            .filter_map(|(org, lane)| {
                let front = lane.entries.front()?;
                (front.due <= now).then(|| (self.round(org), front.due, *org))
            })
            .collect();
        if candidates.is_empty() {
            return Next::Wait(wake);
        }
        candidates.sort_unstable();
        let ends = self.expected_ends(now);
        for (round, _, org) in candidates {
            let hold = self.hold_of(&org);
            if self.leaves_room(now + hold, round, idle - 1, &ends) {
                return self.start(org, now, hold);
            }
        }
        // Every worker still idle is kept for a check coming due.
        Next::Wait(wake)
    }

    /// Whether the checks coming due before `until` of organizations in a round below `round`
    /// each find a worker at their due time with `spare` workers idle and the running checks
    /// ending when expected. Of an organization below, only as many count as it can start
    /// before reaching `round` itself: past that, its checks wait their turn like the others.
    fn leaves_room(
        &self,
        until: DateTime<Utc>,
        round: u32,
        spare: usize,
        ends: &[DateTime<Utc>],
    ) -> bool {
        let mut coming: Vec<DateTime<Utc>> = Vec::new();
        for (org, lane) in &self.lanes {
            let (running, weight) = self
                .orgs
                .get(org)
                .map_or((0, 1), |o| (o.running, o.weight.max(1)));
            let below = (weight * round).saturating_sub(running);
            coming.extend(
                lane.entries
                    .iter()
                    .map(|entry| entry.due)
                    .take_while(|due| *due <= until)
                    .take(below as usize),
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
        let Some(entry) = lane.entries.pop_front() else {
            return Next::Wait(None);
        };
        if lane.entries.is_empty() {
            self.lanes.remove(&org);
        }
        self.len -= 1;
        self.orgs.entry(org).or_default().running += 1;
        let id = self.next_run;
        self.next_run += 1;
        self.running.insert(
            id,
            Running {
                org,
                ends: now + hold,
            },
        );
        Next::Start(Run { id, org }, entry.item)
    }

    /// `run` ended after holding its worker for `held`.
    pub fn done(&mut self, run: Run, held: Duration) {
        let Some(running) = self.running.remove(&run.id) else {
            return;
        };
        if let Some(org) = self.orgs.get_mut(&running.org) {
            org.running = org.running.saturating_sub(1);
            if org.running == 0 && !self.lanes.contains_key(&running.org) {
                self.orgs.remove(&running.org);
            }
        }
        self.holds
            .entry(running.org)
            .and_modify(|hold| *hold = hold.mul_f64(1.0 - HOLD_WEIGHT) + held.mul_f64(HOLD_WEIGHT))
            .or_insert(held);
        if self.holds.len() > HOLDS_KEPT {
            let (orgs, lanes) = (&self.orgs, &self.lanes);
            self.holds
                .retain(|org, _| orgs.contains_key(org) || lanes.contains_key(org));
        }
    }

    /// Takes every check not started, for giving back.
    pub fn drain(&mut self) -> Vec<T> {
        let mut items = Vec::with_capacity(self.len);
        for (_, lane) in self.lanes.drain() {
            items.extend(lane.entries.into_iter().map(|entry| entry.item));
        }
        self.orgs.retain(|_, org| org.running > 0);
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
            .map(|lane| lane.entries.partition_point(|entry| entry.due <= now))
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

    /// How long `org`'s checks are expected to hold a worker.
    #[cfg(test)]
    pub fn expected_hold(&self, org: &Uuid) -> Option<Duration> {
        self.holds.get(org).copied()
    }

    fn round(&self, org: &Uuid) -> u32 {
        self.orgs
            .get(org)
            .map_or(0, |o| o.running / o.weight.max(1))
    }

    fn hold_of(&self, org: &Uuid) -> TimeDelta {
        let hold = self.holds.get(org).copied().unwrap_or_else(|| {
            self.lanes
                .get(org)
                .and_then(|lane| lane.entries.front())
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
                let at = lane.entries.partition_point(|entry| entry.due <= now);
                lane.entries.get(at).map(|entry| entry.due)
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

    /// Starts whatever can start at `now`: (organization, item) in order.
    fn start_all<T>(table: &mut Timetable<T>, now: DateTime<Utc>) -> Vec<(Run, T)> {
        let mut started = Vec::new();
        while let Next::Start(run, item) = table.next(now) {
            started.push((run, item));
        }
        started
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
        table.done(crowded[0].0, SECOND);
        assert!(matches!(table.next(at(10_001)), Next::Start(run, -1) if run.org == org(2)));
        assert_eq!(table.len(), 4992);
    }

    #[test]
    fn weights_set_the_shares_of_the_running_checks() {
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
    fn a_finished_check_gives_its_organization_its_turn_back() {
        let mut table = Timetable::new(2);
        for i in 0..10 {
            table.push(org(1), 1, at(i), SECOND, i);
            table.push(org(2), 1, at(100 + i), SECOND, i);
        }
        let both = start_all(&mut table, at(1_000));
        assert_eq!(
            both.iter().map(|(r, _)| r.org).collect::<Vec<_>>(),
            [org(1), org(2)]
        );
        // Org 2's check ends: org 2 has fewer running, so it goes before org 1's older one.
        table.done(both[1].0, SECOND);
        assert!(matches!(table.next(at(1_000)), Next::Start(run, _) if run.org == org(2)));
    }

    #[test]
    fn a_busy_organization_leaves_a_worker_for_a_check_coming_due() {
        let mut table = Timetable::new(2);
        // The busy organization has a backlog of checks that may take a second each; the
        // quiet one a check due in half a second.
        for i in 0..10 {
            table.push(org(1), 1, at(i), SECOND, i);
        }
        table.push(org(2), 1, at(500), SECOND, 100);
        // One busy check starts; a second would hold the last worker past the quiet check.
        let first = start_all(&mut table, at(10));
        assert_eq!(first.len(), 1);
        assert_eq!(table.next(at(20)), Next::Wait(Some(at(500))));
        assert!(matches!(table.next(at(500)), Next::Start(run, 100) if run.org == org(2)));
    }

    #[test]
    fn a_running_check_ending_in_time_lets_the_busy_organization_use_the_idle_worker() {
        let mut table = Timetable::new(2);
        table.push(org(1), 1, at(0), SECOND, 0);
        let (run, _) = start_all(&mut table, at(0)).remove(0);
        // Org 1's checks are learned to take 100 ms.
        table.done(run, Duration::from_millis(100));
        assert_eq!(
            table.expected_hold(&org(1)),
            Some(Duration::from_millis(100))
        );
        for i in 1..10 {
            table.push(org(1), 1, at(i), SECOND, i);
        }
        let running = start_all(&mut table, at(10));
        assert_eq!(running.len(), 2, "nothing is coming due: both workers busy");
        table.done(running[0].0, Duration::from_millis(100));
        // A quiet check due at 150 ms: the busy check still running ends at 110 ms, in time
        // for it, so the idle worker may start another busy check now...
        table.push(org(2), 1, at(150), SECOND, 100);
        assert!(matches!(table.next(at(100)), Next::Start(run, _) if run.org == org(1)));
        assert_eq!(table.next(at(100)), Next::Wait(None));
        // ...and the quiet check starts on the worker that frees.
        table.done(running[1].0, Duration::from_millis(100));
        assert!(matches!(table.next(at(150)), Next::Start(run, 100) if run.org == org(2)));
    }

    #[test]
    fn only_the_checks_an_organization_may_start_below_the_busy_round_are_waited_for() {
        let mut table = Timetable::new(4);
        for i in 0..10 {
            table.push(org(1), 1, at(i), SECOND, i);
        }
        // Ten checks of the quiet organization all due in half a second (created together).
        for i in 0..10 {
            table.push(org(2), 1, at(500), SECOND, 100 + i);
        }
        // The busy organization's first check goes (nobody is below round 0). In round 1,
        // one quiet check is below it: one worker of the three idle is enough, a second busy
        // check starts. In round 2, two quiet checks are below it and one worker would be
        // left: the last two stay idle for them.
        let started = start_all(&mut table, at(10));
        assert_eq!(started.len(), 2);
        assert!(started.iter().all(|(run, _)| run.org == org(1)));
        assert_eq!(table.next(at(20)), Next::Wait(Some(at(500))));
        // At their due time the quiet organization runs two, as many as the busy one.
        let quiet = start_all(&mut table, at(500));
        assert_eq!(quiet.len(), 2);
        assert!(quiet.iter().all(|(run, _)| run.org == org(2)));
    }

    #[test]
    fn checks_of_equal_rounds_do_not_hold_workers_for_each_other() {
        let mut table = Timetable::new(1);
        table.push(org(1), 1, at(0), SECOND, "now");
        table.push(org(2), 1, at(100), SECOND, "soon");
        // Both organizations have nothing running: the check due now goes, though it will
        // delay the other.
        assert!(matches!(table.next(at(0)), Next::Start(_, "now")));
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
            table.done(run, SECOND);
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
            table.done(run, SECOND);
        }
        assert_eq!(seen.values().map(Vec::len).sum::<usize>(), 10);
        for dues in seen.values() {
            assert!(dues.windows(2).all(|w| w[0] <= w[1]), "{dues:?}");
        }
    }
}
