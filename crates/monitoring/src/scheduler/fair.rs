//! Deficit round robin over per-organization queues: the order in which an instance's workers
//! take the checks it has claimed. Each organization with checks waiting has a lane; a round
//! visits the lanes in turn and takes up to `weight` checks from each, so an organization with
//! 5,000 checks waiting gets no more turns than one with a single check, and a plan of weight 4
//! four times the turns of a plan of weight 1.

use std::collections::{HashMap, VecDeque};

use uuid::Uuid;

struct Lane<T> {
    items: VecDeque<T>,
    weight: u32,
    /// Turns left in the current visit.
    deficit: u32,
}

/// Checks waiting for a worker, served fairly across organizations.
pub struct FairQueue<T> {
    lanes: HashMap<Uuid, Lane<T>>,
    /// Organizations with a non-empty lane, in visiting order; the front is being served.
    ring: VecDeque<Uuid>,
    len: usize,
}

impl<T> Default for FairQueue<T> {
    fn default() -> Self {
        Self {
            lanes: HashMap::new(),
            ring: VecDeque::new(),
            len: 0,
        }
    }
}

impl<T> FairQueue<T> {
    /// Queues `item` of organization `org` whose share is `weight` (at least 1).
    pub fn push(&mut self, org: Uuid, weight: u32, item: T) {
        let lane = self.lanes.entry(org).or_insert_with(|| Lane {
            items: VecDeque::new(),
            weight: 1,
            deficit: 0,
        });
        if lane.items.is_empty() {
            self.ring.push_back(org);
        }
        lane.weight = weight.max(1);
        lane.items.push_back(item);
        self.len += 1;
    }

    /// The next check to run, if any.
    pub fn pop(&mut self) -> Option<(Uuid, T)> {
        loop {
            let org = *self.ring.front()?;
            let Some(lane) = self.lanes.get_mut(&org) else {
                // Never happens: a lane leaves the ring when it empties. Skip it regardless.
                self.ring.pop_front();
                continue;
            };
            if lane.deficit == 0 {
                lane.deficit = lane.weight;
            }
            let Some(item) = lane.items.pop_front() else {
                self.ring.pop_front();
                self.lanes.remove(&org);
                continue;
            };
            lane.deficit -= 1;
            self.len -= 1;
            if lane.items.is_empty() {
                self.ring.pop_front();
                self.lanes.remove(&org);
            } else if lane.deficit == 0 {
                self.ring.rotate_left(1);
            }
            return Some((org, item));
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many organizations have checks waiting.
    pub fn organizations(&self) -> usize {
        self.ring.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn a_crowded_organization_does_not_delay_a_small_one() {
        let mut queue = FairQueue::default();
        for i in 0..5000 {
            queue.push(org(1), 1, i);
        }
        queue.push(org(2), 1, -1);
        let first_two: Vec<Uuid> = (0..2).map(|_| queue.pop().unwrap().0).collect();
        assert!(first_two.contains(&org(2)), "{first_two:?}");
        assert_eq!(queue.len(), 4999);
    }

    #[test]
    fn weights_set_the_shares_of_a_round() {
        let mut queue = FairQueue::default();
        for i in 0..100 {
            queue.push(org(1), 1, i);
            queue.push(org(2), 4, i);
            queue.push(org(3), 2, i);
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
    fn each_lane_keeps_its_order_and_nothing_is_lost() {
        let mut queue = FairQueue::default();
        for i in 0..10 {
            queue.push(org(i % 3), 1 + (i % 2) as u32, i);
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
