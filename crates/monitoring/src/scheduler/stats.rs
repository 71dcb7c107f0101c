//! The scheduler's metrics, registered in the server's Prometheus registry: per-organization
//! lag (a check due → the check started), checks by outcome, slots skipped when far behind,
//! the workers' occupancy and the time the scheduler itself spends per check.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    /// The organization's slug.
    pub tenant: String,
    pub plan: String,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum CheckOutcome {
    up,
    down,
    /// Taken over after its result was recorded: not run again.
    duplicate,
    /// The monitor was deleted or disabled meanwhile.
    gone,
    /// Not handled this time (storage unreachable): the slot is retried.
    retried,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: CheckOutcome,
}

/// Shared by the scheduler (which records) and the metrics endpoint (which renders); cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct SchedulerMetrics {
    lag: Family<TenantLabels, Histogram>,
    checks: Family<OutcomeLabels, Counter>,
    skipped: Family<TenantLabels, Counter>,
    queued: Gauge,
    running: Gauge,
    workers: Gauge,
    overhead: Counter<f64, AtomicU64>,
    totals: Arc<Totals>,
    /// The organizations with series of their own.
    labelled: Arc<Mutex<HashSet<String>>>,
}

/// How many organizations get series of their own in the per-organization metrics (the first
/// this many to run checks since the process started); checks of the others are counted under
/// [`OTHER_TENANTS`] with their plan, so the number of series stays bounded however many
/// organizations there are.
pub const LABELLED_TENANTS: usize = 100;
/// The `tenant` label of the organizations past [`LABELLED_TENANTS`].
pub const OTHER_TENANTS: &str = "_other";

/// Running sums a benchmark reads without parsing the exposition.
#[derive(Debug, Default)]
struct Totals {
    handled: AtomicU64,
    overhead_nanos: AtomicU64,
}

impl Default for SchedulerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl SchedulerMetrics {
    pub fn new() -> Self {
        Self {
            lag: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.005, 2.0, 17))
            }),
            checks: Family::default(),
            skipped: Family::default(),
            queued: Gauge::default(),
            running: Gauge::default(),
            workers: Gauge::default(),
            overhead: Counter::default(),
            totals: Arc::default(),
            labelled: Arc::default(),
        }
    }

    /// Adds every metric to `registry` (prefixed as the registry is).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "check_lag_seconds",
            "From a check's due time to its start, per organization (the first 100 by slug, the others by plan as tenant=\"_other\")",
            self.lag.clone(),
        );
        registry.register(
            "scheduled_checks",
            "Claimed checks by what became of them",
            self.checks.clone(),
        );
        registry.register(
            "check_slots_skipped",
            "Check slots passed over because the checks were more than an interval behind, per organization",
            self.skipped.clone(),
        );
        registry.register(
            "scheduler_queued_checks",
            "Checks claimed by this instance, waiting for a worker",
            self.queued.clone(),
        );
        registry.register(
            "scheduler_running_checks",
            "Checks running on this instance",
            self.running.clone(),
        );
        registry.register(
            "scheduler_workers",
            "This instance's check workers",
            self.workers.clone(),
        );
        registry.register(
            "scheduler_overhead_seconds",
            "Time spent claiming, reading monitors, recording and releasing, outside the checks themselves",
            self.overhead.clone(),
        );
    }

    /// `tenant` itself while it has (or can get) series of its own, else its plan's share of
    /// [`OTHER_TENANTS`].
    fn bounded(&self, tenant: &TenantLabels) -> TenantLabels {
        let mut labelled = self
            .labelled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if labelled.contains(&tenant.tenant) || labelled.len() < LABELLED_TENANTS {
            labelled.insert(tenant.tenant.clone());
            tenant.clone()
        } else {
            TenantLabels {
                tenant: OTHER_TENANTS.to_string(),
                plan: tenant.plan.clone(),
            }
        }
    }

    pub(crate) fn lag(&self, tenant: &TenantLabels, lag: Duration) {
        self.lag
            .get_or_create(&self.bounded(tenant))
            .observe(lag.as_secs_f64());
    }

    pub(crate) fn outcome(&self, outcome: CheckOutcome) {
        self.checks.get_or_create(&OutcomeLabels { outcome }).inc();
        self.totals.handled.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn skipped(&self, tenant: &TenantLabels, slots: u64) {
        self.skipped
            .get_or_create(&self.bounded(tenant))
            .inc_by(slots);
    }

    pub(crate) fn set_occupancy(&self, queued: usize, running: usize) {
        self.queued.set(queued as i64);
        self.running.set(running as i64);
    }

    pub(crate) fn set_workers(&self, workers: usize) {
        self.workers.set(workers as i64);
    }

    pub(crate) fn overhead(&self, spent: Duration) {
        self.overhead.inc_by(spent.as_secs_f64());
        self.totals
            .overhead_nanos
            .fetch_add(spent.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Claimed checks handled so far, and the scheduler's own time spent on them.
    pub fn totals(&self) -> (u64, Duration) {
        (
            self.totals.handled.load(Ordering::Relaxed),
            Duration::from_nanos(self.totals.overhead_nanos.load(Ordering::Relaxed)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organizations_past_the_first_hundred_share_a_label_per_plan() {
        let metrics = SchedulerMetrics::new();
        for n in 0..LABELLED_TENANTS + 5 {
            let tenant = TenantLabels {
                tenant: format!("org-{n}"),
                plan: if n % 2 == 0 { "free" } else { "pro" }.to_string(),
            };
            metrics.lag(&tenant, Duration::from_millis(5));
        }
        // A labelled one keeps its series.
        let first = TenantLabels {
            tenant: "org-0".to_string(),
            plan: "free".to_string(),
        };
        metrics.lag(&first, Duration::from_millis(5));
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let series: HashSet<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("check_lag_seconds_count{"))
            .collect();
        assert_eq!(series.len(), LABELLED_TENANTS + 2, "{series:?}");
        assert!(text.contains("check_lag_seconds_count{tenant=\"org-0\",plan=\"free\"} 2"));
        assert!(text.contains("check_lag_seconds_count{tenant=\"_other\",plan=\"free\"} 3"));
        assert!(text.contains("check_lag_seconds_count{tenant=\"_other\",plan=\"pro\"} 2"));
    }
}
