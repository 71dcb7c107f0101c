//! The shared limiter: every instance keeps its tenants' TATs in one Redis, updated by one Lua
//! script (read, decide, write, atomically, on the Redis server's clock, so instances' clocks do
//! not matter). A tenant's key is `tenantry:<tenant id>:api_requests`, an API key's own budget
//! `tenantry:<tenant id>:api_key:<key id>`; each expires once its budget is full again, so idle
//! tenants leave nothing behind. Every key of a tenant starts with `tenantry:<tenant id>:`, so a
//! deleted tenant's keys are found by that prefix and removed ([`forget_tenant`]).
//!
//! Redis is never waited on for long: every call has a short timeout ([`TIMEOUT`]). The first
//! failure marks Redis down (logged once) and the caller falls back to the in-process limiter; a
//! background task then reconnects, backing off up to [`MAX_BACKOFF`], and marks it up again
//! (logged once). Requests in between never touch Redis.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use uuid::Uuid;

use crate::gcra::{Decision, Gcra};

/// The longest a request waits for Redis (a connection attempt: twice this, to connect and for
/// a `PING`).
pub const TIMEOUT: Duration = Duration::from_millis(250);
/// The longest pause between two reconnection attempts while Redis is down.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// `KEYS[1]` the tenant's key; `ARGV[1]` the interval (µs), `ARGV[2]` the burst (the limit).
/// Returns `{admitted (0|1), now (µs), TAT after the request (µs)}`. Mirrors `Gcra::step`.
const SCRIPT: &str = r"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next = tat + interval
if next - now > interval * burst then
  return {0, now, tat}
end
redis.call('SET', KEYS[1], string.format('%d', next), 'PX', math.max(1, math.ceil((next - now) / 1000)))
return {1, now, next}
";

/// Keys scanned per `SCAN` call when removing a tenant's keys.
const SCAN_COUNT: usize = 1000;

/// What every Redis key of `tenant` starts with.
pub fn tenant_prefix(tenant: Uuid) -> String {
    format!("tenantry:{tenant}:")
}

/// The Redis key holding `tenant`'s request budget.
pub fn key(tenant: Uuid) -> String {
    format!("{}api_requests", tenant_prefix(tenant))
}

/// The Redis key holding the own budget of API key `key_id` of `tenant`.
pub fn api_key_key(tenant: Uuid, key_id: Uuid) -> String {
    format!("{}api_key:{key_id}", tenant_prefix(tenant))
}

pub(crate) struct Shared {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    connection: ArcSwapOption<ConnectionManager>,
    up: AtomicBool,
    script: redis::Script,
}

impl Shared {
    /// Connects to `url` (waiting at most twice [`TIMEOUT`]); when Redis does not answer, starts down
    /// and keeps trying in the background. A malformed URL is an error.
    pub(crate) async fn connect(url: &str) -> Result<Self, redis::RedisError> {
        let inner = Arc::new(Inner {
            client: redis::Client::open(url)?,
            connection: ArcSwapOption::empty(),
            up: AtomicBool::new(false),
            script: redis::Script::new(SCRIPT),
        });
        match connect(&inner.client).await {
            Ok(connection) => {
                inner.connection.store(Some(Arc::new(connection)));
                inner.up.store(true, Ordering::Release);
                tracing::info!("rate limits are shared through Redis");
            }
            Err(error) => {
                tracing::warn!(
                    %error,
                    "Redis does not answer: rate limits are per instance until it does"
                );
                tokio::spawn(reconnect(Arc::downgrade(&inner)));
            }
        }
        Ok(Shared { inner })
    }

    /// Whether Redis is in use right now.
    pub(crate) fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Acquire)
    }

    /// The decision from Redis for the budget kept at `key`; `None` when Redis is down or
    /// failed now (then marked down).
    pub(crate) async fn check(&self, key: String, gcra: Gcra) -> Option<Decision> {
        if !self.is_up() {
            return None;
        }
        let mut connection = ConnectionManager::clone(&*self.inner.connection.load_full()?);
        let mut invocation = self.inner.script.key(key);
        invocation.arg(gcra.interval_micros()).arg(gcra.limit());
        let call = invocation.invoke_async::<(i64, i64, i64)>(&mut connection);
        let error = match tokio::time::timeout(TIMEOUT, call).await {
            Ok(Ok((admitted, now, tat))) => {
                return Some(gcra.decision(admitted == 1, to_u64(now), to_u64(tat)));
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no answer within {} ms", TIMEOUT.as_millis()),
        };
        if self.inner.up.swap(false, Ordering::AcqRel) {
            tracing::warn!(
                %error,
                "Redis failed: rate limits are per instance until it is back"
            );
            tokio::spawn(reconnect(Arc::downgrade(&self.inner)));
        }
        None
    }
}

impl Shared {
    /// Removes every key of `tenant`. Tried even while Redis is marked down (it may be back
    /// already); a failure leaves the up/down state to the request path.
    pub(crate) async fn forget_tenant(&self, tenant: Uuid) -> Result<u64, String> {
        let Some(connection) = self.inner.connection.load_full() else {
            return Err("Redis has not answered since the start".to_string());
        };
        let mut connection = ConnectionManager::clone(&connection);
        unlink_prefix(&mut connection, &tenant_prefix(tenant)).await
    }
}

/// Removes every key of `tenant` from the Redis at `url`, for a process without a limiter (the
/// CLI): connects (waiting at most twice [`TIMEOUT`]), then scans and unlinks.
pub(crate) async fn forget_tenant_at(url: &str, tenant: Uuid) -> Result<u64, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut connection = connect(&client).await?;
    unlink_prefix(&mut connection, &tenant_prefix(tenant)).await
}

/// `SCAN MATCH <prefix>*` over the whole key space, `UNLINK`ing each batch found; returns how
/// many keys were removed. Every call waits at most [`TIMEOUT`] (the connection's own timeout,
/// and this one). `prefix` must hold no glob character (a tenant prefix holds none).
async fn unlink_prefix<C>(connection: &mut C, prefix: &str) -> Result<u64, String>
where
    C: redis::aio::ConnectionLike + Send,
{
    let pattern = format!("{prefix}*");
    let mut cursor: u64 = 0;
    let mut removed = 0;
    loop {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT);
        let (next, keys): (u64, Vec<String>) = timed(scan.query_async(&mut *connection)).await?;
        if !keys.is_empty() {
            let mut unlink = redis::cmd("UNLINK");
            unlink.arg(&keys);
            let count: u64 = timed(unlink.query_async(&mut *connection)).await?;
            removed += count;
        }
        if next == 0 {
            return Ok(removed);
        }
        cursor = next;
    }
}

async fn timed<T>(
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {} ms", TIMEOUT.as_millis())),
    }
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A fresh connection that answered `PING`, within twice [`TIMEOUT`].
async fn connect(client: &redis::Client) -> Result<ConnectionManager, String> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(TIMEOUT)
        .set_response_timeout(TIMEOUT)
        .set_number_of_retries(0)
        .set_max_delay(MAX_BACKOFF.as_millis() as u64);
    let attempt = async {
        let mut connection = ConnectionManager::new_with_config(client.clone(), config).await?;
        redis::cmd("PING")
            .query_async::<()>(&mut connection)
            .await?;
        Ok::<_, redis::RedisError>(connection)
    };
    match tokio::time::timeout(TIMEOUT * 2, attempt).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {} ms", (TIMEOUT * 2).as_millis())),
    }
}

/// Tries to connect again, backing off, until it succeeds (then marks Redis up) or the limiter
/// is gone.
async fn reconnect(inner: Weak<Inner>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        tokio::time::sleep(backoff).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        match connect(&inner.client).await {
            Ok(connection) => {
                inner.connection.store(Some(Arc::new(connection)));
                inner.up.store(true, Ordering::Release);
                tracing::info!("Redis answers again: rate limits are shared again");
                return;
            }
            Err(error) => tracing::debug!(%error, "Redis still does not answer"),
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
