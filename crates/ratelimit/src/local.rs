//! The in-process limiter: `governor`'s GCRA, keyed by [`Subject`] (an organization, or one of
//! its API keys). A keyed `governor` limiter has one quota for all its keys, so there is one per
//! distinct budget (plans make a handful), each keeping the state of the subjects on that budget
//! in a sharded map: subjects never wait for each other beyond a shard's brief lock. The
//! budgets' map itself is read without any lock or shared counter (`arc-swap`), and copied on the
//! rare write (a budget seen for the first time). Each budget's map is also held directly, so a
//! deleted organization's states can be dropped ([`Local::forget_tenant`]), which `governor`
//! alone does not offer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::{Quota, RateLimiter};
use uuid::Uuid;

use crate::gcra::{Decision, Gcra};

/// Whose budget a check counts against: an organization's, or one of its API keys' own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Subject {
    pub(crate) tenant: Uuid,
    pub(crate) api_key: Option<Uuid>,
}

/// The states of one budget's subjects, shared between its `governor` limiter and
/// [`Local::forget_tenant`].
#[derive(Clone, Default)]
struct States(Arc<DashMapStateStore<Subject>>);

impl StateStore for States {
    type Key = Subject;

    fn measure_and_replace<T, F, E>(&self, key: &Subject, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0.measure_and_replace(key, f)
    }
}

impl ShrinkableKeyedStateStore<Subject> for States {
    fn retain_recent(&self, drop_below: Nanos) {
        ShrinkableKeyedStateStore::retain_recent(&*self.0, drop_below);
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

type Keyed = RateLimiter<Subject, States, DefaultClock, StateInformationMiddleware>;

/// One budget: its limiter, and the map of states it keeps.
struct Budget {
    limiter: Keyed,
    states: States,
}

impl Budget {
    fn new(gcra: Gcra) -> Self {
        let states = States::default();
        Budget {
            limiter: Keyed::new(quota(gcra), states.clone(), DefaultClock::default()),
            states,
        }
    }
}

#[derive(Default)]
pub(crate) struct Local {
    by_budget: ArcSwap<HashMap<u32, Arc<Budget>>>,
}

impl Local {
    pub(crate) fn check(&self, subject: Subject, gcra: Gcra) -> Decision {
        let budgets = self.by_budget.load();
        if let Some(budget) = budgets.get(&gcra.limit()) {
            return decide(&budget.limiter, subject, gcra);
        }
        drop(budgets);
        let new = Arc::new(Budget::new(gcra));
        self.by_budget.rcu(|current| {
            let mut next = HashMap::clone(current);
            next.entry(gcra.limit()).or_insert_with(|| new.clone());
            next
        });
        // The one stored, should another thread have stored one first.
        let budgets = self.by_budget.load();
        let budget = budgets.get(&gcra.limit()).unwrap_or(&new);
        decide(&budget.limiter, subject, gcra)
    }

    /// Forgets subjects whose budget is full again (their state says nothing).
    pub(crate) fn forget_idle(&self) {
        for budget in self.by_budget.load().values() {
            budget.limiter.retain_recent();
        }
    }

    /// Forgets every state of `tenant`: its own budget's and its API keys'. Returns how many
    /// states were dropped.
    pub(crate) fn forget_tenant(&self, tenant: Uuid) -> usize {
        let mut dropped = 0;
        for budget in self.by_budget.load().values() {
            let before = budget.states.0.len();
            budget
                .states
                .0
                .retain(|subject, _| subject.tenant != tenant);
            dropped += before.saturating_sub(budget.states.0.len());
        }
        dropped
    }

    /// How many subjects of `tenant` have a state (tests).
    #[cfg(test)]
    fn states_of(&self, tenant: Uuid) -> usize {
        self.by_budget
            .load()
            .values()
            .map(|b| {
                b.states
                    .0
                    .iter()
                    .filter(|e| e.key().tenant == tenant)
                    .count()
            })
            .sum()
    }
}

fn decide(limiter: &Keyed, subject: Subject, gcra: Gcra) -> Decision {
    let interval = gcra.interval();
    let limit = gcra.limit();
    match limiter.check_key(&subject) {
        Ok(snapshot) => {
            let remaining = snapshot.remaining_burst_capacity().min(limit);
            Decision {
                allowed: true,
                limit,
                remaining,
                // `governor` keeps the TAT to itself; from `remaining`, the time until the
                // budget is full is at most this (and more than one interval less).
                reset: interval.saturating_mul(limit - remaining),
                retry_after: Duration::ZERO,
            }
        }
        Err(not_until) => {
            let retry_after = not_until.wait_time_from(limiter.clock().now());
            Decision {
                allowed: false,
                limit,
                remaining: 0,
                // Refused: the TAT is `limit - 1` intervals past the next admission.
                reset: retry_after + interval.saturating_mul(limit - 1),
                retry_after,
            }
        }
    }
}

/// The same interval and burst as the Redis script uses.
fn quota(gcra: Gcra) -> Quota {
    let burst = std::num::NonZeroU32::MIN.saturating_add(gcra.limit() - 1);
    Quota::with_period(gcra.interval())
        .unwrap_or_else(|| Quota::per_minute(burst))
        .allow_burst(burst)
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn org(tenant: Uuid) -> Subject {
        Subject {
            tenant,
            api_key: None,
        }
    }

    #[test]
    fn admits_the_burst_then_refuses_with_a_wait_of_about_one_interval() {
        let local = Local::default();
        let gcra = Gcra::per_minute(NonZeroU32::new(4).unwrap());
        let tenant = Uuid::new_v4();
        let remaining: Vec<u32> = (0..4)
            .map(|_| local.check(org(tenant), gcra))
            .inspect(|d| assert!(d.allowed))
            .map(|d| d.remaining)
            .collect();
        assert_eq!(remaining, [3, 2, 1, 0]);
        let refused = local.check(org(tenant), gcra);
        assert!(!refused.allowed);
        assert_eq!(refused.limit, 4);
        // 15 s per request, less the time the test took (far less than 5 s).
        assert!(refused.retry_after > Duration::from_secs(10));
        assert!(refused.retry_after <= Duration::from_secs(15));
        assert!(refused.reset > Duration::from_secs(55));
        // Another tenant on the same budget is untouched, and so is an API key of this one.
        assert_eq!(local.check(org(Uuid::new_v4()), gcra).remaining, 3);
        let key = Subject {
            tenant,
            api_key: Some(Uuid::new_v4()),
        };
        assert_eq!(local.check(key, gcra).remaining, 3);
    }

    #[test]
    fn forgetting_a_tenant_drops_its_states_and_its_keys_only() {
        let local = Local::default();
        let five = Gcra::per_minute(NonZeroU32::new(5).unwrap());
        let nine = Gcra::per_minute(NonZeroU32::new(9).unwrap());
        let (gone, kept) = (Uuid::new_v4(), Uuid::new_v4());
        let key = Subject {
            tenant: gone,
            api_key: Some(Uuid::new_v4()),
        };
        for _ in 0..5 {
            local.check(org(gone), five);
            local.check(org(kept), five);
        }
        local.check(key, nine);
        assert!(!local.check(org(gone), five).allowed);
        assert_eq!(local.states_of(gone), 2);

        assert_eq!(local.forget_tenant(gone), 2);
        assert_eq!(local.states_of(gone), 0);
        // A full budget again, for the organization and its key.
        assert_eq!(local.check(org(gone), five).remaining, 4);
        assert_eq!(local.check(key, nine).remaining, 8);
        // The other tenant's state is untouched: still spent.
        assert!(!local.check(org(kept), five).allowed);
    }
}
