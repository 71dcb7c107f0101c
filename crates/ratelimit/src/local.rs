//! The in-process limiter: `governor`'s GCRA, keyed by tenant id. A keyed `governor` limiter has
//! one quota for all its keys, so there is one per distinct budget (plans make a handful), each
//! keeping the state of the tenants on that budget in a sharded map: tenants never wait for
//! each other beyond a shard's brief lock. The budgets' map itself is read without any lock or
//! shared counter (`arc-swap`), and copied on the rare write (a budget seen for the first time).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use uuid::Uuid;

use crate::gcra::{Decision, Gcra};

type Keyed = RateLimiter<Uuid, DashMapStateStore<Uuid>, DefaultClock, StateInformationMiddleware>;

#[derive(Default)]
pub(crate) struct Local {
    by_budget: ArcSwap<HashMap<u32, Arc<Keyed>>>,
}

impl Local {
    pub(crate) fn check(&self, tenant: Uuid, gcra: Gcra) -> Decision {
        let budgets = self.by_budget.load();
        if let Some(limiter) = budgets.get(&gcra.limit()) {
            return decide(limiter, tenant, gcra);
        }
        drop(budgets);
        let new = Arc::new(RateLimiter::dashmap(quota(gcra)).with_middleware());
        self.by_budget.rcu(|current| {
            let mut next = HashMap::clone(current);
            next.entry(gcra.limit()).or_insert_with(|| new.clone());
            next
        });
        // The one stored, should another thread have stored one first.
        let budgets = self.by_budget.load();
        decide(budgets.get(&gcra.limit()).unwrap_or(&new), tenant, gcra)
    }

    /// Forgets tenants whose budget is full again (their state says nothing).
    pub(crate) fn forget_idle(&self) {
        for limiter in self.by_budget.load().values() {
            limiter.retain_recent();
        }
    }
}

fn decide(limiter: &Keyed, tenant: Uuid, gcra: Gcra) -> Decision {
    let interval = gcra.interval();
    let limit = gcra.limit();
    match limiter.check_key(&tenant) {
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

    #[test]
    fn admits_the_burst_then_refuses_with_a_wait_of_about_one_interval() {
        let local = Local::default();
        let gcra = Gcra::per_minute(NonZeroU32::new(4).unwrap());
        let tenant = Uuid::new_v4();
        let remaining: Vec<u32> = (0..4)
            .map(|_| local.check(tenant, gcra))
            .inspect(|d| assert!(d.allowed))
            .map(|d| d.remaining)
            .collect();
        assert_eq!(remaining, [3, 2, 1, 0]);
        let refused = local.check(tenant, gcra);
        assert!(!refused.allowed);
        assert_eq!(refused.limit, 4);
        // 15 s per request, less the time the test took (far less than 5 s).
        assert!(refused.retry_after > Duration::from_secs(10));
        assert!(refused.retry_after <= Duration::from_secs(15));
        assert!(refused.reset > Duration::from_secs(55));
        // Another tenant on the same budget is untouched.
        assert_eq!(local.check(Uuid::new_v4(), gcra).remaining, 3);
    }
}
