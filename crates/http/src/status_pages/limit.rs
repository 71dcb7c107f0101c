//! The budget of anonymous public-page requests: per client address, and in all. Never an
//! organization's: anonymous traffic spends nothing of the organization's own budget or usage.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Requests per minute one client address may make to public pages.
pub const PER_CLIENT_PER_MINUTE: f64 = 120.0;
/// Requests per minute all clients together may make to public pages on one instance.
pub const ALL_CLIENTS_PER_MINUTE: f64 = 6000.0;
/// Client addresses remembered at most; past it, the idle ones are forgotten.
const MAX_CLIENTS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(capacity: f64, now: Instant) -> Self {
        Self {
            tokens: capacity,
            at: now,
        }
    }

    /// Takes a token if there is one; else how long until there is.
    fn take(&mut self, per_minute: f64, now: Instant) -> Result<(), Duration> {
        let rate = per_minute / 60.0;
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(per_minute);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }
}

/// Token buckets of the public pages.
#[derive(Debug)]
pub struct PublicLimiter {
    clients: Mutex<HashMap<IpAddr, Bucket>>,
    all: Mutex<Bucket>,
    per_client: f64,
    all_clients: f64,
}

impl Default for PublicLimiter {
    fn default() -> Self {
        Self::new(PER_CLIENT_PER_MINUTE, ALL_CLIENTS_PER_MINUTE)
    }
}

impl PublicLimiter {
    pub fn new(per_client: f64, all_clients: f64) -> Self {
        Self {
            clients: Mutex::new(HashMap::new()),
            all: Mutex::new(Bucket::full(all_clients, Instant::now())),
            per_client,
            all_clients,
        }
    }

    /// Admits one request from `client`, or says in how many seconds to retry.
    pub fn admit(&self, client: Option<IpAddr>) -> Result<(), u64> {
        let now = Instant::now();
        if let Some(client) = client {
            let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
            if clients.len() >= MAX_CLIENTS && !clients.contains_key(&client) {
                let per_client = self.per_client;
                clients.retain(|_, b| {
                    let mut b = *b;
                    // Keep the addresses still short of a full bucket.
                    b.take(per_client, now).is_ok() && b.tokens + 1.0 < per_client
                });
            }
            let bucket = clients
                .entry(client)
                .or_insert_with(|| Bucket::full(self.per_client, now));
            bucket
                .take(self.per_client, now)
                .map_err(|wait| wait.as_secs().max(1))?;
        }
        let mut all = self.all.lock().unwrap_or_else(|p| p.into_inner());
        all.take(self.all_clients, now)
            .map_err(|wait| wait.as_secs().max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_is_held_to_its_budget_and_others_are_not() {
        let limiter = PublicLimiter::new(5.0, 100.0);
        let a: IpAddr = "127.0.0.1".parse().unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let b: IpAddr = IpAddr::from([127, 0, 0, 2]);
        for _ in 0..5 {
            assert!(limiter.admit(Some(a)).is_ok());
        }
        assert!(limiter.admit(Some(a)).is_err());
        assert!(limiter.admit(Some(b)).is_ok());
    }

    #[test]
    fn all_clients_share_a_cap() {
        let limiter = PublicLimiter::new(100.0, 3.0);
        for i in 0..3u8 {
            assert!(limiter.admit(Some(IpAddr::from([10, 0, 0, i]))).is_ok());
        }
        assert!(limiter.admit(Some(IpAddr::from([10, 0, 0, 9]))).is_err());
    }
}
