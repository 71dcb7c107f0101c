//! GCRA (the generic cell rate algorithm) as plain numbers. A budget of `limit` requests per
//! minute is one request every `interval` (a minute divided by `limit`), with bursts of up to
//! `limit` at once. A tenant's whole state is one instant, its theoretical arrival time (TAT): a
//! request at `now` is admitted when `max(TAT, now) + interval - now` stays within `limit`
//! intervals, and then moves the TAT on by one interval. A TAT in the past is a full budget, so
//! idle state can be forgotten.
//!
//! Times here are microseconds on one clock (the Redis server's, for the shared limiter).

use std::num::NonZeroU32;
use std::time::Duration;

/// The period budgets are given for.
pub const PERIOD: Duration = Duration::from_secs(60);

/// The outcome of one request against its tenant's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is within the budget.
    pub allowed: bool,
    /// The budget: requests per minute.
    pub limit: u32,
    /// How many more requests would be admitted right now, back to back (0 when refused).
    pub remaining: u32,
    /// How long until the whole budget is available again.
    pub reset: Duration,
    /// How long until the next request is admitted (zero when this one was).
    pub retry_after: Duration,
}

impl Decision {
    /// A budget of nothing: every request refused, as for `api_requests_per_minute = 0`.
    pub fn refuse_all() -> Self {
        Decision {
            allowed: false,
            limit: 0,
            remaining: 0,
            reset: PERIOD,
            retry_after: PERIOD,
        }
    }

    /// `reset` in whole seconds, rounded up.
    pub fn reset_seconds(&self) -> u64 {
        ceil_seconds(self.reset)
    }

    /// `retry_after` in whole seconds, rounded up and at least 1.
    pub fn retry_after_seconds(&self) -> u64 {
        ceil_seconds(self.retry_after).max(1)
    }
}

fn ceil_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The parameters of one budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    limit: u32,
    interval_us: u64,
}

impl Gcra {
    /// `limit` requests per minute: one every minute / `limit` (at least a microsecond).
    pub fn per_minute(limit: NonZeroU32) -> Self {
        let micros = PERIOD.as_micros() as u64;
        Gcra {
            limit: limit.get(),
            interval_us: (micros / u64::from(limit.get())).max(1),
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The time one request takes out of the budget.
    pub fn interval(&self) -> Duration {
        Duration::from_micros(self.interval_us)
    }

    pub fn interval_micros(&self) -> u64 {
        self.interval_us
    }

    /// How far the TAT may run ahead of now after an admitted request: `limit` intervals.
    fn window_us(&self) -> u64 {
        self.interval_us * u64::from(self.limit)
    }

    /// One request at `now` against the stored TAT (`None`: no state, a full budget): the
    /// decision, and the TAT to store when it was admitted. The Redis script does exactly this,
    /// atomically; the crate's tests hold the script to it.
    pub fn step(&self, stored: Option<u64>, now: u64) -> (Decision, Option<u64>) {
        let tat = stored.map_or(now, |t| t.max(now));
        let next = tat + self.interval_us;
        if next - now > self.window_us() {
            (self.decision(false, now, tat), None)
        } else {
            (self.decision(true, now, next), Some(next))
        }
    }

    /// The decision for a request at `now`, given the TAT after it: the new TAT when it was
    /// admitted, the unchanged one when it was refused.
    pub fn decision(&self, allowed: bool, now: u64, tat: u64) -> Decision {
        let window = self.window_us();
        let ahead = tat.saturating_sub(now).min(window);
        if allowed {
            Decision {
                allowed,
                limit: self.limit,
                remaining: u32::try_from((window - ahead) / self.interval_us).unwrap_or(u32::MAX),
                reset: Duration::from_micros(ahead),
                retry_after: Duration::ZERO,
            }
        } else {
            // Admitted again once `tat + interval - now` fits in the window.
            let wait = (ahead + self.interval_us).saturating_sub(window).max(1);
            Decision {
                allowed,
                limit: self.limit,
                remaining: 0,
                reset: Duration::from_micros(ahead),
                retry_after: Duration::from_micros(wait),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gcra(limit: u32) -> Gcra {
        Gcra::per_minute(NonZeroU32::new(limit).unwrap())
    }

    const SECOND: u64 = 1_000_000;

    #[test]
    fn the_interval_is_a_minute_divided_by_the_limit() {
        assert_eq!(gcra(60).interval(), Duration::from_secs(1));
        assert_eq!(gcra(600).interval(), Duration::from_millis(100));
        assert_eq!(gcra(60_000).interval(), Duration::from_millis(1));
        // Never zero, however large the budget.
        assert_eq!(gcra(u32::MAX).interval_micros(), 1);
    }

    #[test]
    fn a_full_budget_admits_a_burst_of_limit_then_refuses() {
        let g = gcra(5);
        let now = 1_000 * SECOND;
        let mut tat = None;
        for expected_remaining in (0..5).rev() {
            let (d, next) = g.step(tat, now);
            assert!(d.allowed);
            assert_eq!(d.remaining, expected_remaining);
            assert_eq!(d.retry_after, Duration::ZERO);
            tat = next;
        }
        // Five requests took the whole minute's budget: full again in a minute.
        assert_eq!(tat, Some(now + 60 * SECOND));
        let (d, next) = g.step(tat, now);
        assert!(!d.allowed);
        assert_eq!(next, None);
        assert_eq!(d.remaining, 0);
        assert_eq!(d.reset, Duration::from_secs(60));
        // One interval (12 s) frees one request.
        assert_eq!(d.retry_after, Duration::from_secs(12));
        assert_eq!((d.reset_seconds(), d.retry_after_seconds()), (60, 12));
    }

    #[test]
    fn the_budget_refills_one_request_per_interval() {
        let g = gcra(5);
        let now = 1_000 * SECOND;
        let full = Some(now + 60 * SECOND);
        // Just before one interval has passed: still refused, with the rest of the wait.
        let (d, _) = g.step(full, now + 12 * SECOND - 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::from_micros(1));
        assert_eq!(d.retry_after_seconds(), 1);
        // After one interval: one admitted, and none left.
        let (d, next) = g.step(full, now + 12 * SECOND);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        assert_eq!(next, Some(now + 72 * SECOND));
        // After half a minute of quiet, 2 of the 5 are back: one admitted, one more left.
        let (d, _) = g.step(full, now + 30 * SECOND);
        assert!(d.allowed);
        assert_eq!(d.remaining, 1);
        assert_eq!(d.reset, Duration::from_secs(42));
    }

    #[test]
    fn a_tat_in_the_past_is_a_full_budget() {
        let g = gcra(100);
        let now = 5_000 * SECOND;
        let (stale, _) = g.step(Some(now - 3_600 * SECOND), now);
        let (fresh, _) = g.step(None, now);
        assert_eq!(stale, fresh);
        assert_eq!(fresh.remaining, 99);
        assert_eq!(fresh.reset, Duration::from_millis(600));
        assert_eq!(fresh.reset_seconds(), 1);
    }

    #[test]
    fn refusing_all_waits_a_minute() {
        let d = Decision::refuse_all();
        assert!(!d.allowed);
        assert_eq!((d.limit, d.remaining, d.retry_after_seconds()), (0, 0, 60));
    }
}
