//! The keys of plans, typed: a limit or a feature is named by an enum, so a misspelt key cannot
//! compile, and text from outside (a settings file, an admin's request) is parsed once, at the
//! edge; a key unknown there is refused, and a feature not set anywhere is off (fail closed).

use std::fmt;

/// A limit a plan sets (`null`: unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Limit {
    MaxUsers,
    MaxMonitors,
    MaxAgents,
    MaxApiKeys,
    MinCheckIntervalS,
    ApiRequestsPerMinute,
    RetentionDays,
}

impl Limit {
    pub const ALL: [Limit; 7] = [
        Limit::MaxUsers,
        Limit::MaxMonitors,
        Limit::MaxAgents,
        Limit::MaxApiKeys,
        Limit::MinCheckIntervalS,
        Limit::ApiRequestsPerMinute,
        Limit::RetentionDays,
    ];

    /// The key as plans store it.
    pub const fn key(self) -> &'static str {
        match self {
            Limit::MaxUsers => "max_users",
            Limit::MaxMonitors => "max_monitors",
            Limit::MaxAgents => "max_agents",
            Limit::MaxApiKeys => "max_api_keys",
            Limit::MinCheckIntervalS => "min_check_interval_s",
            Limit::ApiRequestsPerMinute => "api_requests_per_minute",
            Limit::RetentionDays => "retention_days",
        }
    }

    pub fn parse(key: &str) -> Option<Limit> {
        Limit::ALL.into_iter().find(|l| l.key() == key)
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A feature a plan turns on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    Agents,
    StatusPages,
    WebhookAlerts,
    EmailAlerts,
    AuditLog,
    Export,
    /// Checks and webhooks may reach private addresses (off unless a platform admin allows it).
    PrivateTargets,
}

impl Feature {
    pub const ALL: [Feature; 7] = [
        Feature::Agents,
        Feature::StatusPages,
        Feature::WebhookAlerts,
        Feature::EmailAlerts,
        Feature::AuditLog,
        Feature::Export,
        Feature::PrivateTargets,
    ];

    /// The key as plans store it.
    pub const fn key(self) -> &'static str {
        match self {
            Feature::Agents => "agents",
            Feature::StatusPages => "status_pages",
            Feature::WebhookAlerts => "webhook_alerts",
            Feature::EmailAlerts => "email_alerts",
            Feature::AuditLog => "audit_log",
            Feature::Export => "export",
            Feature::PrivateTargets => "private_targets",
        }
    }

    pub fn parse(key: &str) -> Option<Feature> {
        Feature::ALL.into_iter().find(|f| f.key() == key)
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_unknown_ones_are_refused() {
        for limit in Limit::ALL {
            assert_eq!(Limit::parse(limit.key()), Some(limit));
        }
        for feature in Feature::ALL {
            assert_eq!(Feature::parse(feature.key()), Some(feature));
        }
        assert_eq!(Limit::parse("max_monitor"), None);
        assert_eq!(Feature::parse("agent"), None);
    }
}
