//! Check runners: one check of a monitor, run against its target, folded into an [`Outcome`].
//! No database and no scheduler here: the scheduler (and an agent) hands a [`CheckSpec`] to the
//! process-wide [`Checker`] and stores what comes back.
//!
//! What "up" means, per kind:
//! - `http`: a `GET` of the URL whose final status, after following at most 5 redirects, is
//!   2xx or 3xx. TLS certificates are always verified (rustls, the system's trust store plus any
//!   [`CheckerConfig::extra_root_certificates`]).
//! - `keyword`: as `http`, and the response body contains the keyword (case-sensitive, compared
//!   as bytes). Only the first [`CheckerConfig::max_body_bytes`] (1 MiB by default) of the body
//!   are read: a keyword that appears only after them is not found.
//! - `tcp`: a TCP connection to `host:port` is established.
//!
//! Each check has one timeout covering name resolution, connecting, TLS, every redirect hop and
//! (for `keyword`) reading the body. Waiting for a free slot under
//! [`CheckerConfig::max_in_flight`] is not counted.
//!
//! Heartbeat (push) monitors run no check; [`heartbeat_due`] says what their pings amount to.

pub(crate) mod guard;
mod heartbeat;
mod http;
mod tcp;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

pub use guard::{AddressClass, classify};
pub use heartbeat::{HeartbeatState, default_grace, heartbeat_deadline, heartbeat_due};

/// The most redirects an `http` or `keyword` check follows.
pub const MAX_REDIRECTS: usize = 5;

/// The User-Agent every check sends.
pub const USER_AGENT: &str = concat!("Tenantry/", env!("CARGO_PKG_VERSION"), " (uptime check)");

/// What kind of check to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// `GET` a URL; up on a final 2xx/3xx status.
    Http,
    /// `GET` a URL; up on a final 2xx/3xx status whose body contains the keyword.
    Keyword,
    /// Connect to `host:port`.
    Tcp,
}

/// One check to run: everything the runner needs from a monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckSpec {
    pub kind: CheckKind,
    /// A URL (`http`, `keyword`) or `host:port` (`tcp`; an IPv6 address in brackets).
    pub target: String,
    /// The text a `keyword` check looks for; ignored by the other kinds.
    pub keyword: Option<String>,
    /// The whole check's time limit, serialized as `timeout_ms`.
    #[serde(rename = "timeout_ms", with = "millis")]
    pub timeout: Duration,
}

/// How one check went. `error` is a short message for people ("connection refused",
/// "status 503", "timed out after 5 s") and is `None` exactly when `ok`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub ok: bool,
    /// Time until the outcome was known: the final response's headers (`http`), the keyword found
    /// or the body read (`keyword`), the connection established (`tcp`), or the failure.
    pub latency_ms: i32,
    /// The final HTTP status, when a response arrived.
    pub status_code: Option<i32>,
    pub error: Option<String>,
}

impl Outcome {
    fn up(elapsed: Duration, status_code: Option<i32>) -> Self {
        Outcome {
            ok: true,
            latency_ms: millis_i32(elapsed),
            status_code,
            error: None,
        }
    }

    fn down(elapsed: Duration, status_code: Option<i32>, error: impl Into<String>) -> Self {
        Outcome {
            ok: false,
            latency_ms: millis_i32(elapsed),
            status_code,
            error: Some(error.into()),
        }
    }
}

/// Whether one check (or one webhook delivery) is held to the SSRF guard. An organization the
/// platform admin allowed private targets (the `private_targets` plan feature) runs
/// [`Targets::Any`]; every other runs [`Targets::Public`], which is the same as `Any` when the
/// guard is off for the whole server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Targets {
    /// Only public addresses, when `forbid_private_targets` is on.
    Public,
    /// Any address.
    Any,
}

/// How the process's [`Checker`] behaves. `Default` is what a self-hosted server uses.
#[derive(Debug, Clone)]
pub struct CheckerConfig {
    /// Refuse targets that resolve to loopback, private, link-local, unspecified, multicast,
    /// CGNAT, documentation, benchmarking and the other non-public special-purpose addresses,
    /// and every address of this server's own interfaces (an SSRF guard). The server turns it
    /// on unless told otherwise (`forbid_private_targets`); this type's `Default` leaves it off,
    /// for an agent, which checks its own network.
    pub forbid_private_targets: bool,
    /// Addresses still allowed when `forbid_private_targets` is on (a known internal service).
    pub allowed_private_addresses: Vec<IpAddr>,
    /// The most checks running at once in this process; more wait for a slot.
    pub max_in_flight: usize,
    /// Idle keep-alive connections kept per host. A check that reuses one measures no connect
    /// or TLS handshake.
    pub pool_max_idle_per_host: usize,
    /// How long an idle connection is kept.
    pub pool_idle_timeout: Duration,
    /// How much of a body a `keyword` check reads at most.
    pub max_body_bytes: usize,
    /// PEM certificates trusted as roots besides the system's (an internal CA).
    pub extra_root_certificates: Vec<String>,
}

impl Default for CheckerConfig {
    fn default() -> Self {
        CheckerConfig {
            forbid_private_targets: false,
            allowed_private_addresses: Vec::new(),
            max_in_flight: 64,
            pool_max_idle_per_host: 2,
            pool_idle_timeout: Duration::from_secs(20),
            max_body_bytes: 1024 * 1024,
            extra_root_certificates: Vec::new(),
        }
    }
}

/// Building the [`Checker`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckerError {
    #[error("max_in_flight must be at least 1")]
    NoSlots,
    #[error("invalid extra root certificate")]
    Certificate(#[source] reqwest::Error),
    #[error("failed to build the HTTP client")]
    Client(#[source] reqwest::Error),
}

/// Runs checks. Built once per process and shared (it is a cheap `Clone`): one HTTP client with
/// its connection pool, and one limit on checks in flight.
#[derive(Clone)]
pub struct Checker {
    inner: Arc<Inner>,
}

struct Inner {
    /// Held to the guard.
    guarded: Route,
    /// Not held to it: built only when the guard is on (otherwise `guarded` is just as open).
    open: Option<Route>,
    slots: Semaphore,
    max_body_bytes: usize,
}

/// An HTTP client and the guard its resolver and redirects obey.
pub(crate) struct Route {
    client: reqwest::Client,
    guard: Arc<guard::Guard>,
}

impl Route {
    fn new(config: &CheckerConfig, guard: guard::Guard) -> Result<Self, CheckerError> {
        let guard = Arc::new(guard);
        let client = http::build_client(config, guard.clone())?;
        Ok(Route { client, guard })
    }
}

impl Inner {
    fn route(&self, targets: Targets) -> &Route {
        match (targets, &self.open) {
            (Targets::Any, Some(open)) => open,
            _ => &self.guarded,
        }
    }
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker")
            .field("guard", &self.inner.guarded.guard)
            .field("available_slots", &self.inner.slots.available_permits())
            .finish_non_exhaustive()
    }
}

impl Checker {
    pub fn new(config: CheckerConfig) -> Result<Self, CheckerError> {
        if config.max_in_flight == 0 {
            return Err(CheckerError::NoSlots);
        }
        let guarded = Route::new(
            &config,
            guard::Guard::new(
                config.forbid_private_targets,
                config.allowed_private_addresses.clone(),
            ),
        )?;
        let open = if config.forbid_private_targets {
            Some(Route::new(&config, guard::Guard::open())?)
        } else {
            None
        };
        Ok(Checker {
            inner: Arc::new(Inner {
                guarded,
                open,
                slots: Semaphore::new(config.max_in_flight),
                max_body_bytes: config.max_body_bytes,
            }),
        })
    }

    /// Runs one check once a slot is free, held to the guard. Never fails: every problem is a
    /// down [`Outcome`].
    pub async fn run(&self, spec: &CheckSpec) -> Outcome {
        self.run_for(spec, Targets::Public).await
    }

    /// Whether the guard would refuse `target` (a URL, or `host:port`) by its literal address
    /// alone, and why: what creating or updating a monitor or webhook checks, so such a
    /// target is refused at once. Names are judged only when a connection is made.
    pub fn refuses_literal(&self, target: &str, targets: Targets) -> Option<String> {
        let guard = &self.inner.route(targets).guard;
        if let Ok(url) = reqwest::Url::parse(target.trim())
            && url.host().is_some()
        {
            return guard.check_url(&url).err().map(|e| e.to_string());
        }
        let (host, _) = tcp::parse_target(target).ok()?;
        let ip = host.parse::<IpAddr>().ok()?;
        guard.check_ip(ip).err().map(|e| e.to_string())
    }

    /// Runs one check once a slot is free, held to the guard unless `targets` is
    /// [`Targets::Any`].
    pub async fn run_for(&self, spec: &CheckSpec, targets: Targets) -> Outcome {
        let route = self.inner.route(targets);
        let Ok(_slot) = self.inner.slots.acquire().await else {
            // The semaphore is never closed; this only keeps the function total.
            return Outcome::down(Duration::ZERO, None, "checker is shut down");
        };
        let started = Instant::now();
        let work = async {
            match spec.kind {
                CheckKind::Http => {
                    let max_body = self.inner.max_body_bytes;
                    http::check(route, max_body, &spec.target, None, started).await
                }
                CheckKind::Keyword => match spec.keyword.as_deref() {
                    Some(keyword) if !keyword.is_empty() => {
                        let max_body = self.inner.max_body_bytes;
                        http::check(route, max_body, &spec.target, Some(keyword), started).await
                    }
                    _ => Outcome::down(started.elapsed(), None, "keyword check without a keyword"),
                },
                CheckKind::Tcp => tcp::check(&route.guard, &spec.target, started).await,
            }
        };
        match tokio::time::timeout(spec.timeout, work).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::down(
                started.elapsed(),
                None,
                format!("timed out after {}", human_duration(spec.timeout)),
            ),
        }
    }
}

fn millis_i32(elapsed: Duration) -> i32 {
    i32::try_from(elapsed.as_millis()).unwrap_or(i32::MAX)
}

/// "5 s", "1.5 s" or "300 ms".
fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{} s", d.as_secs_f64())
    }
}

/// `Duration` as whole milliseconds in JSON.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(human_duration(Duration::from_secs(5)), "5 s");
        assert_eq!(human_duration(Duration::from_millis(300)), "300 ms");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5 s");
    }

    #[test]
    fn spec_serializes_timeout_in_milliseconds() {
        let spec = CheckSpec {
            kind: CheckKind::Tcp,
            target: "db:5432".into(),
            keyword: None,
            timeout: Duration::from_millis(2500),
        };
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["kind"], "tcp");
        assert_eq!(json["timeout_ms"], 2500);
        let back: CheckSpec = serde_json::from_value(json).unwrap();
        assert_eq!(back, spec);
    }

    #[test]
    fn user_agent_names_the_version() {
        assert!(USER_AGENT.starts_with("Tenantry/"));
        assert!(USER_AGENT.ends_with(" (uptime check)"));
    }
}
