//! Connection pools: the owner and runtime pools of the control database, and a bounded LRU cache
//! of database-tier tenant pools that keeps every tenant pool together under one connection
//! budget.
//!
//! Shared- and schema-tier tenants live in the control database, on the runtime pool, so a
//! tenant's change and a control-table write can share one transaction. A pool evicted from the
//! cache closes once its connections in use come back, so under churn the budget is briefly
//! exceeded. Each tenant lock (provisioning, deletion, migration) holds an owner connection, and
//! at most `owner_max - 1` are held at once, so the work under them always finds one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::PoolConfig;
use crate::ids::TenantId;
use crate::servers::Server;

/// The database-tier pools in use, at most `capacity` of them, each of at most
/// `per_tenant_max` connections, so together they never exceed the budget.
#[derive(Debug)]
pub struct TenantPools {
    config: PoolConfig,
    cache: Mutex<HashMap<TenantId, Entry>>,
    opened: AtomicU64,
    evicted: AtomicU64,
}

#[derive(Debug)]
struct Entry {
    pool: PgPool,
    /// The server the pool connects to.
    server: String,
    last_used: Instant,
}

/// A snapshot of the pools, for `/metrics`.
#[derive(Debug, Clone, Serialize)]
pub struct PoolStats {
    pub runtime_connections: u32,
    pub runtime_idle: u32,
    pub owner_connections: u32,
    pub owner_idle: u32,
    pub tenant_pools: usize,
    pub tenant_pool_capacity: usize,
    pub tenant_connections: u32,
    pub tenant_idle: u32,
    pub tenant_connection_budget: u32,
    pub tenant_pools_opened: u64,
    pub tenant_pools_evicted: u64,
}

impl PoolStats {
    /// No connection of any pool is checked out (or on its way back).
    pub fn all_idle(&self) -> bool {
        self.runtime_idle == self.runtime_connections
            && self.owner_idle == self.owner_connections
            && self.tenant_idle == self.tenant_connections
    }
}

impl TenantPools {
    pub fn new(config: PoolConfig) -> Self {
        Self {
            config,
            cache: Mutex::new(HashMap::new()),
            opened: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        }
    }

    /// The tenant's pool on `server`, opened (lazily: no connection yet) with `options` when not
    /// cached. Opening one when the server's share of the cache is full closes the least recently
    /// used pool on that server.
    pub fn get(
        &self,
        id: TenantId,
        server: &Server,
        options: impl FnOnce() -> PgConnectOptions,
    ) -> PgPool {
        let mut cache = self.lock();
        if let Some(entry) = cache.get_mut(&id)
            && entry.server == server.name
        {
            entry.last_used = Instant::now();
            return entry.pool.clone();
        }
        if let Some(moved) = cache.remove(&id) {
            close_in_background(moved.pool);
        }
        let capacity = (server.budget / self.config.per_tenant_max.max(1)).max(1) as usize;
        loop {
            if cache.values().filter(|e| e.server == server.name).count() < capacity {
                break;
            }
            let Some(oldest) = cache
                .iter()
                .filter(|(_, e)| e.server == server.name)
                .min_by_key(|(_, e)| e.last_used)
                .map(|(id, _)| *id)
            else {
                break;
            };
            if let Some(entry) = cache.remove(&oldest) {
                self.evicted.fetch_add(1, Ordering::Relaxed);
                close_in_background(entry.pool);
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(self.config.per_tenant_max)
            .min_connections(0)
            .idle_timeout(Some(self.config.tenant_pool_idle))
            .acquire_timeout(self.config.acquire_timeout)
            .connect_lazy_with(options());
        self.opened.fetch_add(1, Ordering::Relaxed);
        cache.insert(
            id,
            Entry {
                pool: pool.clone(),
                server: server.name.clone(),
                last_used: Instant::now(),
            },
        );
        pool
    }

    /// Closes the tenant's pool, if open (the tenant was suspended, deleted or moved).
    pub fn remove(&self, id: TenantId) -> Option<PgPool> {
        let entry = self.lock().remove(&id)?;
        Some(entry.pool)
    }

    /// Closes pools unused for longer than the idle timeout with no connection checked out.
    pub fn reap_idle(&self) -> usize {
        let mut cache = self.lock();
        let idle: Vec<TenantId> = cache
            .iter()
            .filter(|(_, e)| {
                e.last_used.elapsed() >= self.config.tenant_pool_idle
                    && e.pool.size() as usize == e.pool.num_idle()
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &idle {
            if let Some(entry) = cache.remove(id) {
                close_in_background(entry.pool);
            }
        }
        idle.len()
    }

    /// How many tenant pools are open.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Connections this engine's pools hold on `server`.
    pub fn connections_on(&self, server: &str) -> u32 {
        self.lock()
            .values()
            .filter(|e| e.server == server)
            .map(|e| e.pool.size())
            .sum()
    }

    fn connections(&self) -> u32 {
        self.lock().values().map(|e| e.pool.size()).sum()
    }

    fn idle(&self) -> u32 {
        self.lock().values().map(|e| e.pool.num_idle() as u32).sum()
    }

    /// The figures of these pools, of the runtime role's pools (`runtime`) and of the owner's.
    pub fn stats(&self, runtime: &[&PgPool], owner: &PgPool) -> PoolStats {
        PoolStats {
            runtime_connections: runtime.iter().map(|p| p.size()).sum(),
            runtime_idle: runtime.iter().map(|p| p.num_idle() as u32).sum(),
            owner_connections: owner.size(),
            owner_idle: owner.num_idle() as u32,
            tenant_pools: self.count(),
            tenant_pool_capacity: self.config.tenant_pool_capacity(),
            tenant_connections: self.connections(),
            tenant_idle: self.idle(),
            tenant_connection_budget: self.config.tenant_connection_budget,
            tenant_pools_opened: self.opened.load(Ordering::Relaxed),
            tenant_pools_evicted: self.evicted.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Entry>> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Closes a pool once its checked-out connections come back, without blocking the caller.
fn close_in_background(pool: PgPool) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(async move { pool.close().await });
        }
        Err(_) => drop(pool),
    }
}

/// What one idle pooled connection carried when [`crate::Tenancy::inspect_idle_connections`]
/// looked at it. A clean one is outside any transaction, has no tenant set, and has the
/// role's own `search_path`.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionState {
    /// `runtime`, `owner`, or `tenant:<id>` for a database-tier tenant's pool.
    pub pool: String,
    /// The session was inside a transaction block (the connection is then closed, not reused).
    pub in_transaction: bool,
    /// `app.tenant_id` at session level (`None` when unset or empty).
    pub tenant_setting: Option<String>,
    pub search_path: String,
    /// The session-level default for new transactions.
    pub default_read_only: bool,
}

impl ConnectionState {
    /// Whether the connection carries nothing into the next transaction.
    pub fn is_clean(&self, default_search_path: &str) -> bool {
        !self.in_transaction
            && self.tenant_setting.is_none()
            && !self.default_read_only
            && self.search_path == default_search_path
    }
}

/// Takes every idle connection of `pool` at once (so none is looked at twice) and reports
/// what each carries; a connection found inside a transaction block is closed.
pub(crate) async fn inspect_idle(
    name: &str,
    pool: &PgPool,
) -> Result<Vec<ConnectionState>, sqlx::Error> {
    let mut held = Vec::new();
    while let Some(conn) = pool.try_acquire() {
        held.push(conn);
    }
    let mut states = Vec::with_capacity(held.len());
    for conn in &mut held {
        // SAVEPOINT outside a transaction block fails with 25P01.
        let in_transaction = match sqlx::raw_sql("SAVEPOINT tenantry_probe")
            .execute(&mut **conn)
            .await
        {
            Ok(_) => true,
            Err(e) if crate::error::sqlstate(&e).as_deref() == Some("25P01") => false,
            Err(e) => return Err(e),
        };
        if in_transaction {
            conn.close_on_drop();
        }
        let (tenant_setting, search_path, default_read_only): (Option<String>, String, String) =
            sqlx::query_as(
                "SELECT nullif(current_setting('app.tenant_id', true), ''),
                        current_setting('search_path'),
                        current_setting('default_transaction_read_only')",
            )
            .fetch_one(&mut **conn)
            .await?;
        states.push(ConnectionState {
            pool: name.to_string(),
            in_transaction,
            tenant_setting,
            search_path,
            default_read_only: default_read_only == "on",
        });
    }
    Ok(states)
}

impl TenantPools {
    /// The cached database-tier pools, by tenant.
    pub(crate) fn cached(&self) -> Vec<(TenantId, PgPool)> {
        self.lock()
            .iter()
            .map(|(id, e)| (*id, e.pool.clone()))
            .collect()
    }
}
