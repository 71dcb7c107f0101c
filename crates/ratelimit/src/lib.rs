//! Per-tenant request budgets: `limit` requests per minute, with bursts of up to `limit`, by GCRA
//! ([`gcra`]). In process with `governor` ([`Limiter::in_process`]), or shared by every server
//! instance through Redis ([`Limiter::with_redis`]), falling back to in-process budgets while
//! Redis is unreachable. Tenants are separate keys: one exhausting its budget never slows
//! another, and no global lock is taken (in process, tenants' states live in a sharded map). An
//! API key may have a budget of its own besides its tenant's ([`Limiter::check_api_key`]). A
//! deleted tenant's state is dropped, in process and in Redis ([`Limiter::forget_tenant`]).
//!
//! No HTTP here: the HTTP layer turns a [`Decision`] into `429` and `RateLimit-*` headers.

pub mod gcra;
mod limits;
mod local;
#[cfg(feature = "test-server")]
pub mod server;
mod shared;

use std::cell::Cell;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Arc;

use uuid::Uuid;

pub use crate::gcra::{Decision, Gcra, PERIOD};
pub use crate::limits::LIMIT_TTL;
pub use crate::shared::{
    MAX_BACKOFF, TIMEOUT, api_key_key as redis_api_key_key, key as redis_key, tenant_prefix,
};

use crate::limits::LimitCache;
use crate::local::{Local, Subject};
use crate::shared::Shared;

/// Every this many checks on a thread, state that says nothing (full budgets, stale limits) is
/// dropped. Counted per thread, so that no counter is shared on the hot path.
const HOUSEKEEPING_EVERY: u64 = 1 << 14;

thread_local! {
    static CHECKS: Cell<u64> = const { Cell::new(0) };
}

#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    #[error("the Redis URL is not valid: {0}")]
    InvalidUrl(String),
    /// Redis did not answer, or failed, while removing a tenant's keys.
    #[error("Redis failed: {0}")]
    Redis(String),
}

/// The rate limiter of one server instance; clones share it.
#[derive(Clone)]
pub struct Limiter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("shared", &self.inner.shared.is_some())
            .field("redis_up", &self.is_shared())
            .finish()
    }
}

struct Inner {
    local: Local,
    shared: Option<Shared>,
    limits: LimitCache,
}

impl Limiter {
    /// Budgets kept in this process only: each instance has its own.
    pub fn in_process() -> Self {
        Self::new(None)
    }

    /// Budgets shared through the Redis at `url` (`redis://[USER:PASSWORD@]HOST[:PORT][/DB]`;
    /// TLS is not built in). Waits at most twice [`TIMEOUT`] for Redis (to connect, then for a
    /// `PING`): when it does not answer, the limiter starts with in-process budgets and keeps
    /// trying in the background. Only a malformed URL is an error.
    pub async fn with_redis(url: &str) -> Result<Self, RateLimitError> {
        let shared = Shared::connect(url)
            .await
            .map_err(|e| RateLimitError::InvalidUrl(e.to_string()))?;
        Ok(Self::new(Some(shared)))
    }

    fn new(shared: Option<Shared>) -> Self {
        Limiter {
            inner: Arc::new(Inner {
                local: Local::default(),
                shared,
                limits: LimitCache::new(LIMIT_TTL),
            }),
        }
    }

    /// Whether budgets are shared through Redis right now (false in process, and while Redis
    /// is down).
    pub fn is_shared(&self) -> bool {
        self.inner.shared.as_ref().is_some_and(Shared::is_up)
    }

    /// Counts one request of `tenant` against a budget of `per_minute` requests per minute. A
    /// budget of 0 or less refuses everything.
    pub async fn check(&self, tenant: Uuid, per_minute: i64) -> Decision {
        let subject = Subject {
            tenant,
            api_key: None,
        };
        self.check_subject(subject, redis_key(tenant), per_minute)
            .await
    }

    /// Counts one request of API key `key_id` of `tenant` against the key's own budget of
    /// `per_minute` requests per minute (kept apart from the tenant's: a request made with a
    /// key with a budget of its own is checked against both). A budget of 0 or less refuses
    /// everything.
    pub async fn check_api_key(&self, tenant: Uuid, key_id: Uuid, per_minute: i64) -> Decision {
        let subject = Subject {
            tenant,
            api_key: Some(key_id),
        };
        self.check_subject(subject, redis_api_key_key(tenant, key_id), per_minute)
            .await
    }

    async fn check_subject(
        &self,
        subject: Subject,
        redis_key: String,
        per_minute: i64,
    ) -> Decision {
        self.housekeeping();
        let limit = u32::try_from(per_minute.max(0)).unwrap_or(u32::MAX);
        let Some(gcra) = NonZeroU32::new(limit).map(Gcra::per_minute) else {
            return Decision::refuse_all();
        };
        if let Some(shared) = &self.inner.shared
            && let Some(decision) = shared.check(redis_key, gcra).await
        {
            return decision;
        }
        self.inner.local.check(subject, gcra)
    }

    /// Forgets everything about `tenant` (a hard-deleted one): its budget and its API keys'
    /// states in this process, its remembered budget, and, with Redis, every key starting with
    /// `tenantry:<tenant id>:` (`SCAN` and `UNLINK`). Returns how many Redis keys were removed
    /// (0 without Redis). When Redis does not answer, the in-process state is dropped all the
    /// same and the error is returned: the keys left behind expire on their own within a
    /// minute (each expires once its budget is full again).
    pub async fn forget_tenant(&self, tenant: Uuid) -> Result<u64, RateLimitError> {
        self.inner.local.forget_tenant(tenant);
        self.inner.limits.forget(tenant);
        match &self.inner.shared {
            Some(shared) => shared
                .forget_tenant(tenant)
                .await
                .map_err(RateLimitError::Redis),
            None => Ok(0),
        }
    }

    /// The tenant's budget per minute (`None`: unlimited), from `load` at most once per
    /// [`LIMIT_TTL`]: a changed budget applies within that time.
    pub async fn budget<F, Fut, E>(&self, tenant: Uuid, load: F) -> Result<Option<i64>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<i64>, E>>,
    {
        self.inner.limits.get(tenant, load).await
    }

    /// Removes every key of `tenant` from the Redis at `url`, for a process without a
    /// [`Limiter`] (the CLI's hard delete); see [`Limiter::forget_tenant`]. A malformed URL
    /// is [`RateLimitError::InvalidUrl`]; a Redis that does not answer (within twice
    /// [`TIMEOUT`]) or fails, [`RateLimitError::Redis`].
    pub async fn forget_tenant_at(url: &str, tenant: Uuid) -> Result<u64, RateLimitError> {
        redis::Client::open(url).map_err(|e| RateLimitError::InvalidUrl(e.to_string()))?;
        shared::forget_tenant_at(url, tenant)
            .await
            .map_err(RateLimitError::Redis)
    }

    fn housekeeping(&self) {
        let due = CHECKS.with(|checks| {
            let n = checks.get().wrapping_add(1);
            checks.set(n);
            n % HOUSEKEEPING_EVERY == 0
        });
        if due {
            self.inner.local.forget_idle();
            self.inner.limits.forget_stale();
        }
    }
}
