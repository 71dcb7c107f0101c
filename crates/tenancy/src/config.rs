//! How the engine reaches PostgreSQL and how big its pools are.

use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

/// Everything the engine needs to run. The owner options are for a role with CREATEDB and
/// CREATEROLE; the engine derives every other connection from them.
#[derive(Clone)]
pub struct EngineConfig {
    /// The owner role, connected to a database that exists (the control database or a
    /// maintenance database such as `postgres`).
    pub owner: PgConnectOptions,
    /// The name of the control database, created when missing.
    pub control_database: String,
    /// The prefix of every role and tenant database name.
    pub prefix: String,
    pub pools: PoolConfig,
}

#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Connections of the runtime role to the control database for everything but door
    /// transactions: lookups, the control schemas, the scheduler's bookkeeping.
    pub runtime_max: u32,
    /// Connections of the runtime role to the control database for door transactions of
    /// shared- and schema-tier tenants, a pool of their own: a transaction's work on the side
    /// (a lookup the caches miss, a row of the control schemas) takes a connection of
    /// `runtime_max` and never waits for one that door transactions hold.
    pub runtime_tx_max: u32,
    /// Connections of the owner role to the control database (provisioning, lifecycle,
    /// migrations); at least 2. Fleet migrations work on at most this many minus one tenants at
    /// once.
    pub owner_max: u32,
    /// The most connections all database-tier tenant pools may hold together.
    pub tenant_connection_budget: u32,
    /// The most connections one database-tier tenant pool may hold.
    pub per_tenant_max: u32,
    /// A database-tier pool unused this long is closed.
    pub tenant_pool_idle: Duration,
    pub acquire_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            runtime_max: 20,
            runtime_tx_max: Self::default_runtime_tx_max(),
            owner_max: 8,
            tenant_connection_budget: 64,
            per_tenant_max: 4,
            tenant_pool_idle: Duration::from_secs(300),
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

impl PoolConfig {
    /// [`PoolConfig::runtime_tx_max`] unless configured: 4 per core of this machine, from 8 to
    /// 32 (8 on 2 cores). A door transaction is short and keeps a core busy while it runs, not a
    /// connection waiting: more connections than that only spread the transactions over more
    /// backends, which take turns on the same cores with colder caches. On 2 cores, reads
    /// through the HTTP API cost PostgreSQL 37 to 40 µs each on 20 connections and 29 µs on 8
    /// (BENCHMARKS.md, (i)).
    pub fn default_runtime_tx_max() -> u32 {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        u32::try_from(cores.saturating_mul(4))
            .unwrap_or(u32::MAX)
            .clamp(8, 32)
    }

    /// How many database-tier pools may be open at once within the connection budget.
    pub fn tenant_pool_capacity(&self) -> usize {
        (self.tenant_connection_budget / self.per_tenant_max.max(1)).max(1) as usize
    }
}

impl std::fmt::Debug for EngineConfig {
    /// Leaves the owner's connection options (and their password) out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("owner", &self.owner.get_username())
            .field("host", &self.owner.get_host())
            .field("control_database", &self.control_database)
            .field("prefix", &self.prefix)
            .field("pools", &self.pools)
            .finish()
    }
}
