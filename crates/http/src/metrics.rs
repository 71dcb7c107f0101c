//! Prometheus metrics: request counters and latencies recorded by a middleware, and gauges of
//! tenants and pools refreshed from the engine at every scrape.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tenantry_monitoring::scheduler::SchedulerMetrics;
use tenantry_tenancy::{Isolation, PoolStats, TenantStatus};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    pub isolation: String,
    pub status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantUsageLabels {
    pub tenant: String,
}

/// How many organizations get a label of their own in per-tenant metrics; the rest share
/// [`OTHER_TENANTS`].
pub const TOP_TENANTS: i64 = 20;
/// The label of every organization outside the top [`TOP_TENANTS`].
pub const OTHER_TENANTS: &str = "_other";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub pool: String,
}

/// The server's metrics, one registry per application (never global, so tests can run several).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
    tenants: Family<TenantLabels, Gauge>,
    tenant_requests: Family<TenantUsageLabels, Gauge>,
    connections: Family<PoolLabels, Gauge>,
    idle: Family<PoolLabels, Gauge>,
    tenant_pools: Gauge,
    tenant_pool_capacity: Gauge,
    budget: Gauge,
    pools_opened: Gauge,
    pools_evicted: Gauge,
    /// Agents' results refused because the agent did not hold the slot's lease.
    pub agent_results_rejected: Counter,
    /// The check scheduler's lag, outcomes and occupancy (recorded by the scheduler).
    pub scheduler: SchedulerMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tenantry");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            latency.clone(),
        );
        let tenants = Family::<TenantLabels, Gauge>::default();
        registry.register(
            "tenants",
            "Tenants by isolation tier and status",
            tenants.clone(),
        );
        let tenant_requests = Family::<TenantUsageLabels, Gauge>::default();
        registry.register(
            "tenant_api_requests_period",
            "API requests this calendar month (UTC) per organization: the 20 with the most by slug, the others together as tenant=\"_other\"",
            tenant_requests.clone(),
        );
        let connections = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "pool_connections",
            "Open connections per pool",
            connections.clone(),
        );
        let idle = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "pool_idle_connections",
            "Idle connections per pool",
            idle.clone(),
        );
        let tenant_pools = Gauge::default();
        registry.register(
            "tenant_pools_open",
            "Database-tier tenant pools open",
            tenant_pools.clone(),
        );
        let tenant_pool_capacity = Gauge::default();
        registry.register(
            "tenant_pools_capacity",
            "Most database-tier pools open at once",
            tenant_pool_capacity.clone(),
        );
        let budget = Gauge::default();
        registry.register(
            "tenant_connection_budget",
            "Most connections all database-tier pools may hold",
            budget.clone(),
        );
        let pools_opened = Gauge::default();
        registry.register(
            "tenant_pools_opened",
            "Database-tier pools opened since start",
            pools_opened.clone(),
        );
        let pools_evicted = Gauge::default();
        registry.register(
            "tenant_pools_evicted",
            "Database-tier pools closed to stay within the budget",
            pools_evicted.clone(),
        );
        let agent_results_rejected = Counter::default();
        registry.register(
            "agent_results_rejected",
            "Agent results refused: no lease of that agent on that slot",
            agent_results_rejected.clone(),
        );
        let scheduler = SchedulerMetrics::new();
        scheduler.register(&mut registry);
        Self {
            registry,
            scheduler,
            requests,
            latency,
            tenants,
            tenant_requests,
            connections,
            idle,
            tenant_pools,
            tenant_pool_capacity,
            budget,
            pools_opened,
            pools_evicted,
            agent_results_rejected,
        }
    }

    /// Sets the tenant gauges, zero for every tier and status without tenants.
    /// API requests this period per organization: the top ones by slug, the rest as one.
    pub fn set_tenant_requests(&self, top: &[(String, i64)], other: i64) {
        self.tenant_requests.clear();
        for (slug, n) in top {
            self.tenant_requests
                .get_or_create(&TenantUsageLabels {
                    tenant: slug.clone(),
                })
                .set(*n);
        }
        self.tenant_requests
            .get_or_create(&TenantUsageLabels {
                tenant: OTHER_TENANTS.to_string(),
            })
            .set(other);
    }

    pub fn set_tenants(&self, counts: &[(Isolation, TenantStatus, i64)]) {
        for tier in Isolation::ALL {
            for status in TenantStatus::ALL {
                let n = counts
                    .iter()
                    .find(|(t, s, _)| t == tier && s == status)
                    .map_or(0, |c| c.2);
                self.tenants
                    .get_or_create(&TenantLabels {
                        isolation: tier.to_string(),
                        status: status.to_string(),
                    })
                    .set(n);
            }
        }
    }

    pub fn set_pools(&self, stats: &PoolStats) {
        let pool = |name: &str| PoolLabels {
            pool: name.to_string(),
        };
        self.connections
            .get_or_create(&pool("runtime"))
            .set(stats.runtime_connections.into());
        self.connections
            .get_or_create(&pool("owner"))
            .set(stats.owner_connections.into());
        self.connections
            .get_or_create(&pool("tenant"))
            .set(stats.tenant_connections.into());
        self.idle
            .get_or_create(&pool("runtime"))
            .set(stats.runtime_idle.into());
        self.tenant_pools.set(stats.tenant_pools as i64);
        self.tenant_pool_capacity
            .set(stats.tenant_pool_capacity as i64);
        self.budget.set(stats.tenant_connection_budget.into());
        self.pools_opened.set(stats.tenant_pools_opened as i64);
        self.pools_evicted.set(stats.tenant_pools_evicted as i64);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}
