//! The order in which an instance's workers take the checks it has claimed: fair across
//! organizations by what each has running. Each organization with checks waiting has a lane
//! (oldest due first); the next check comes from the lane whose organization is in the lowest
//! round, its round being its checks running on this instance divided by its weight, and among
//! equal rounds from the lane whose check has waited longest. So an organization with nothing
//! running goes before one with 5,000 checks queued and every worker busy with its checks, and a
//! plan of weight 4 runs four checks at once for every one of a plan of weight 1 when both have
//! more than their share waiting. It is the claim's rule ([`super::claim`]) applied again to
//! what this instance holds.
//!
//! A pop looks at every lane; an instance holds no more checks than its workers and prefetch,
//! so there are few.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};
use uuid::Uuid;

struct Lane<T> {
    /// Oldest due first.
    items: VecDeque<(DateTime<Utc>, T)>,
    weight: u32,
}

/// Checks waiting for a worker, served fairly across organizations.
pub struct FairQueue<T> {
    lanes: HashMap<Uuid, Lane<T>>,
    /// Checks taken from the queue and not yet [`FairQueue::done`], per organization, with the
    /// organization's weight.
    running: HashMap<Uuid, (u32, u32)>,
    in_flight: usize,
    len: usize,
}

impl<T> Default for FairQueue<T> {
    fn default() -> Self {
        Self {
            lanes: HashMap::new(),
            running: HashMap::new(),
            in_flight: 0,
            len: 0,
        }
    }
}

impl<T> FairQueue<T> {
    /// Queues `item` of organization `org`, due at `due`, whose share is `weight` (at least 1).
    pub fn push(&mut self, org: Uuid, weight: u32, due: DateTime<Utc>, item: T) {
        let lane = self.lanes.entry(org).or_insert_with(|| Lane {
            items: VecDeque::new(),
            weight: 1,
        });
        lane.weight = weight.max(1);
        let at = lane.items.partition_point(|(queued, _)| *queued <= due);
        lane.items.insert(at, (due, item));
        self.len += 1;
    }

    /// The next check to run, if any; it counts as running for its organization until
    /// [`FairQueue::done`].
    pub fn pop(&mut self) -> Option<(Uuid, T)> {
        self.pop_below(u32::MAX)
    }

    /// The next check of an organization in a lower round than the busiest one's (fewer
    /// checks running per unit of weight than the organization with the most), if any: what a
    /// worker kept in reserve may take.
    pub fn pop_reserved(&mut self) -> Option<(Uuid, T)> {
        let busiest = self
            .running
            .values()
            .map(|(running, weight)| running / weight)
            .max()
            .unwrap_or(0);
        self.pop_below(busiest)
    }

    /// The next check of an organization whose round is below `limit`.
    fn pop_below(&mut self, limit: u32) -> Option<(Uuid, T)> {
        let org = self
            .lanes
            .iter()
            .filter_map(|(org, lane)| {
                let (due, _) = lane.items.front()?;
                let running = self.running.get(org).map_or(0, |(running, _)| *running);
                let round = running / lane.weight;
                (round < limit).then_some(((round, *due, *org), *org))
            })
            .min_by_key(|(key, _)| *key)
            .map(|(_, org)| org)?;
        let lane = self.lanes.get_mut(&org)?;
        let (_, item) = lane.items.pop_front()?;
        let weight = lane.weight;
        if lane.items.is_empty() {
            self.lanes.remove(&org);
        }
        self.len -= 1;
        let running = self.running.entry(org).or_insert((0, weight));
        running.0 += 1;
        running.1 = weight;
        self.in_flight += 1;
        Some((org, item))
    }

    /// A check of `org` taken from the queue has finished.
    pub fn done(&mut self, org: Uuid) {
        if let Some((running, _)) = self.running.get_mut(&org) {
            *running = running.saturating_sub(1);
            self.in_flight = self.in_flight.saturating_sub(1);
            if *running == 0 {
                self.running.remove(&org);
            }
        }
    }

    /// Checks taken and not yet done.
    pub fn running(&self) -> usize {
        self.in_flight
    }

    /// Checks waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many organizations have checks waiting.
    pub fn organizations(&self) -> usize {
        self.lanes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn a_crowded_organization_does_not_delay_a_small_one() {
        let mut queue = FairQueue::default();
        for i in 0..5000 {
            queue.push(org(1), 1, at(i), i);
        }
        // Every worker busy with the crowded organization's checks.
        for _ in 0..8 {
            assert_eq!(queue.pop().unwrap().0, org(1));
        }
        // A check of a small organization, due after all of them, goes first.
        queue.push(org(2), 1, at(10_000), -1);
        assert_eq!(queue.pop(), Some((org(2), -1)));
        assert_eq!(queue.len(), 4992);
    }

    #[test]
    fn weights_set_the_shares_of_the_running_checks() {
        let mut queue = FairQueue::default();
        for i in 0..100 {
            queue.push(org(1), 1, at(i), i);
            queue.push(org(2), 4, at(i), i);
            queue.push(org(3), 2, at(i), i);
        }
        let mut counts = HashMap::new();
        for _ in 0..70 {
            *counts.entry(queue.pop().unwrap().0).or_insert(0) += 1;
        }
        assert_eq!(counts[&org(1)], 10);
        assert_eq!(counts[&org(2)], 40);
        assert_eq!(counts[&org(3)], 20);
    }

    #[test]
    fn a_finished_check_gives_its_organization_its_turn_back() {
        let mut queue = FairQueue::default();
        for i in 0..10 {
            queue.push(org(1), 1, at(i), i);
            queue.push(org(2), 1, at(100 + i), i);
        }
        // Both have one running; org 1's next check is older.
        assert_eq!(queue.pop().unwrap().0, org(1));
        assert_eq!(queue.pop().unwrap().0, org(2));
        // Org 2's check finishes: org 2 has fewer running, so it goes before org 1's older one.
        queue.done(org(2));
        assert_eq!(queue.pop().unwrap().0, org(2));
        assert_eq!(queue.pop().unwrap().0, org(1));
    }

    #[test]
    fn the_oldest_check_goes_first_among_equals_and_within_a_lane() {
        let mut queue = FairQueue::default();
        queue.push(org(1), 1, at(30), "a-30");
        queue.push(org(1), 1, at(10), "a-10");
        queue.push(org(2), 1, at(20), "b-20");
        assert_eq!(queue.pop(), Some((org(1), "a-10")));
        queue.done(org(1));
        assert_eq!(queue.pop(), Some((org(2), "b-20")));
        queue.done(org(2));
        assert_eq!(queue.pop(), Some((org(1), "a-30")));
        assert_eq!(queue.pop(), None);
    }

    #[test]
    fn the_reserve_is_for_organizations_other_than_the_busiest() {
        let mut queue = FairQueue::default();
        for i in 0..10 {
            queue.push(org(1), 2, at(i), i);
        }
        // Nothing runs: nobody is busier than org 1.
        assert_eq!(queue.pop_reserved(), None);
        for _ in 0..6 {
            assert_eq!(queue.pop().unwrap().0, org(1));
        }
        // Org 1 runs six at weight 2 (round 3); org 2 runs none, then one, two: below it.
        for i in 0..3 {
            queue.push(org(2), 1, at(100 + i), 100 + i);
        }
        assert_eq!(queue.pop_reserved(), Some((org(2), 100)));
        assert_eq!(queue.pop_reserved(), Some((org(2), 101)));
        assert_eq!(queue.pop_reserved(), Some((org(2), 102)));
        // Org 1 is the busiest still: none of its checks from the reserve.
        assert_eq!(queue.pop_reserved(), None);
        assert_eq!(queue.running(), 9);
        assert_eq!(queue.pop().unwrap().0, org(1));
        assert_eq!(queue.running(), 10);
    }

    #[test]
    fn each_lane_keeps_its_order_and_nothing_is_lost() {
        let mut queue = FairQueue::default();
        for i in 0..10 {
            queue.push(org(i % 3), 1 + (i % 2) as u32, at(i as i64), i);
        }
        let mut seen: HashMap<Uuid, Vec<u128>> = HashMap::new();
        while let Some((o, i)) = queue.pop() {
            seen.entry(o).or_default().push(i);
        }
        assert!(queue.is_empty());
        assert_eq!(queue.organizations(), 0);
        assert_eq!(seen.values().map(Vec::len).sum::<usize>(), 10);
        for items in seen.values() {
            assert!(items.windows(2).all(|w| w[0] < w[1]), "{items:?}");
        }
    }
}
