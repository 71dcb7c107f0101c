//! Heartbeat (push) monitors, evaluated without I/O: the monitored job pings its `heartbeat_url`
//! at least every `interval`; the monitor is down once a ping is later than `interval + grace`.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// What a heartbeat monitor's pings amount to at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeartbeatState {
    /// The last ping is recent enough.
    Up,
    /// The expected ping is later than `interval + grace`.
    Down,
    /// No ping yet, and the first one is not late yet.
    Pending,
}

/// The grace a heartbeat gets by default: a fifth of the interval, at least 30 seconds (a job
/// run every minute by cron may ping 30 s late without being down; one run daily, 4.8 hours).
pub fn default_grace(interval: Duration) -> Duration {
    (interval / 5).max(Duration::from_secs(30))
}

/// The moment the monitor goes down unless a ping arrives: `interval + grace` after the last
/// ping, or after the monitor's creation when there was none.
pub fn heartbeat_deadline(
    last_ping: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    interval: Duration,
    grace: Duration,
) -> DateTime<Utc> {
    let allowed = TimeDelta::from_std(interval.saturating_add(grace)).unwrap_or(TimeDelta::MAX);
    last_ping
        .unwrap_or(created_at)
        .checked_add_signed(allowed)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The state at `now`: `Up` while the last ping is at most `interval + grace` old, `Pending`
/// while there has been no ping and the monitor is at most that old, `Down` after.
pub fn heartbeat_due(
    last_ping: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    interval: Duration,
    grace: Duration,
    now: DateTime<Utc>,
) -> HeartbeatState {
    if now > heartbeat_deadline(last_ping, created_at, interval, grace) {
        HeartbeatState::Down
    } else if last_ping.is_some() {
        HeartbeatState::Up
    } else {
        HeartbeatState::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    const MINUTE: Duration = Duration::from_secs(60);
    const GRACE: Duration = Duration::from_secs(30);

    #[test]
    fn no_ping_is_pending_until_interval_plus_grace_after_creation() {
        let created = at(0);
        assert_eq!(
            heartbeat_due(None, created, MINUTE, GRACE, at(0)),
            HeartbeatState::Pending
        );
        assert_eq!(
            heartbeat_due(None, created, MINUTE, GRACE, at(90)),
            HeartbeatState::Pending
        );
        assert_eq!(
            heartbeat_due(None, created, MINUTE, GRACE, at(91)),
            HeartbeatState::Down
        );
    }

    #[test]
    fn a_recent_ping_is_up_and_a_late_one_down() {
        let created = at(0);
        let ping = Some(at(600));
        assert_eq!(
            heartbeat_due(ping, created, MINUTE, GRACE, at(610)),
            HeartbeatState::Up
        );
        assert_eq!(
            heartbeat_due(ping, created, MINUTE, GRACE, at(690)),
            HeartbeatState::Up
        );
        assert_eq!(
            heartbeat_due(ping, created, MINUTE, GRACE, at(691)),
            HeartbeatState::Down
        );
    }

    #[test]
    fn a_ping_stamped_after_now_counts_as_recent() {
        let ping = Some(at(100));
        assert_eq!(
            heartbeat_due(ping, at(0), MINUTE, GRACE, at(95)),
            HeartbeatState::Up
        );
    }

    #[test]
    fn deadline_follows_the_last_ping() {
        assert_eq!(heartbeat_deadline(None, at(0), MINUTE, GRACE), at(90));
        assert_eq!(
            heartbeat_deadline(Some(at(500)), at(0), MINUTE, GRACE),
            at(590)
        );
    }

    #[test]
    fn huge_intervals_never_overflow() {
        let forever = Duration::from_secs(u64::MAX);
        assert_eq!(
            heartbeat_due(None, at(0), forever, forever, at(1)),
            HeartbeatState::Pending
        );
    }

    #[test]
    fn default_grace_is_a_fifth_of_the_interval_and_at_least_30_s() {
        assert_eq!(
            default_grace(Duration::from_secs(60)),
            Duration::from_secs(30)
        );
        assert_eq!(
            default_grace(Duration::from_secs(300)),
            Duration::from_secs(60)
        );
        assert_eq!(
            default_grace(Duration::from_secs(86_400)),
            Duration::from_secs(17_280)
        );
    }
}
