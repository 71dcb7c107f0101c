//! Guessing is throttled: failed logins per email and per client address, sign-ups per address,
//! and failed invitation accepts, refresh-token uses and heartbeat pings per address. Each key has
//! a few free attempts (its burst); past them it is refused with `429 too_many_attempts` and
//! `Retry-After` until its count decays, one attempt every `recovery`. A successful login resets
//! its address, so the real owner is not locked out for long by someone else's guesses; the
//! per-email count decays in minutes. The counts are this instance's: with several instances
//! behind a balancer each holds its own.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys remembered at most by one throttle; past it, those fully decayed are forgotten.
const MAX_KEYS: usize = 50_000;

/// One kind of attempt's counts.
#[derive(Debug)]
pub struct Throttle {
    burst: f64,
    recovery: Duration,
    counts: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Throttle {
    /// `burst` attempts are free; then one more every `recovery`.
    pub fn new(burst: u32, recovery: Duration) -> Self {
        Self {
            burst: f64::from(burst),
            recovery,
            counts: Mutex::new(HashMap::new()),
        }
    }

    fn decayed(&self, count: f64, at: Instant, now: Instant) -> f64 {
        let recovered =
            now.saturating_duration_since(at).as_secs_f64() / self.recovery.as_secs_f64();
        (count - recovered).max(0.0)
    }

    /// `Err(seconds)` when `key` has used its attempts.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        match counts.get(key) {
            Some(&(count, at)) => {
                let count = self.decayed(count, at, now);
                if count + 1.0 > self.burst {
                    let wait = (count + 1.0 - self.burst) * self.recovery.as_secs_f64();
                    Err((wait.ceil() as u64).max(1))
                } else {
                    Ok(())
                }
            }
            None => Ok(()),
        }
    }

    /// Counts one attempt against `key`.
    pub fn count(&self, key: &str) {
        let now = Instant::now();
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.len() >= MAX_KEYS && !counts.contains_key(key) {
            counts.retain(|_, (count, at)| self.decayed(*count, *at, now) > 0.0);
        }
        let entry = counts.entry(key.to_string()).or_insert((0.0, now));
        *entry = (self.decayed(entry.0, entry.1, now) + 1.0, now);
    }

    /// Forgets `key`'s attempts.
    pub fn reset(&self, key: &str) {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// The throttles of one instance.
#[derive(Debug)]
pub struct Throttles {
    /// Failed logins per email address (decays in minutes).
    pub login_email: Throttle,
    /// Failed logins per client address (reset by a success from it).
    pub login_client: Throttle,
    /// Sign-ups per client address, failed or not.
    pub signup_client: Throttle,
    /// Failed invitation accepts and look-ups per client address.
    pub invitation_client: Throttle,
    /// Failed refresh-token uses per client address.
    pub refresh_client: Throttle,
    /// Unknown heartbeat tokens per client address.
    pub heartbeat_client: Throttle,
}

impl Default for Throttles {
    fn default() -> Self {
        Self {
            login_email: Throttle::new(10, Duration::from_secs(30)),
            login_client: Throttle::new(20, Duration::from_secs(10)),
            signup_client: Throttle::new(30, Duration::from_secs(20)),
            invitation_client: Throttle::new(20, Duration::from_secs(10)),
            refresh_client: Throttle::new(20, Duration::from_secs(10)),
            heartbeat_client: Throttle::new(30, Duration::from_secs(2)),
        }
    }
}

/// The key of a client address (`unknown` when the connection's peer is not known).
pub fn client_key(peer: Option<IpAddr>) -> String {
    peer.map_or_else(|| "unknown".to_string(), |ip| ip.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusals_and_a_reset() {
        let throttle = Throttle::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(throttle.check("k").is_ok());
            throttle.count("k");
        }
        let wait = throttle.check("k").unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(throttle.check("other").is_ok());
        throttle.reset("k");
        assert!(throttle.check("k").is_ok());
    }
}

/// The client address of a request, as a throttle key.
#[derive(Debug, Clone)]
pub struct Client(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|axum::extract::ConnectInfo(addr)| addr.ip());
        Ok(Client(client_key(peer)))
    }
}

/// Refuses with `429 too_many_attempts` while any of `checks` has used its attempts.
pub fn admit(checks: &[(&Throttle, &str)]) -> Result<(), crate::error::AppError> {
    for (throttle, key) in checks {
        throttle
            .check(key)
            .map_err(|retry_after| crate::error::AppError::TooManyAttempts { retry_after })?;
    }
    Ok(())
}
