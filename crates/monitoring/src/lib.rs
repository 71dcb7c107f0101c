//! Monitoring: monitors, validated and stored through the tenant door (every function takes a
//! `TenantTx`); check results and the state machine they drive (`pending` → `up`/`down`,
//! incidents opened after `confirmations` consecutive failures and resolved by the next
//! success); heartbeat tokens, the one table of this crate in the control database (the
//! `monitoring` schema, [`control_schema`]); agents, which run an organization's checks from
//! another machine (their rows and tokens here, the process's loop in [`agent`]). No HTTP
//! server inside.

pub mod agent;
mod agents;
pub mod alerts;
pub mod checks;
mod features;
mod heartbeats;
mod incidents;
mod monitors;
pub mod protocol;
mod results;
mod retention;
pub mod scheduler;
mod status_pages;

pub use agents::{
    AGENT_TOKEN_PREFIX, Agent, AgentIdentity, AgentToken, Registrar, agent_last_seen, agent_name,
    count_agents, create_agent, delete_agent, find_agent_token, forget_agent_token, get_agent,
    hold_agent, issue_agent_token, list_agents, lock_and_count_agents, touch_agent,
};
pub use heartbeats::{
    HEARTBEAT_PATH, HeartbeatTarget, HeartbeatToken, find as find_heartbeat,
    forget as forget_heartbeat, has_token as has_heartbeat_token, issue as issue_heartbeat,
};
pub use incidents::{Incident, list_incidents, open_incident, open_incidents};
pub use monitors::{
    DEFAULT_CONFIRMATIONS, DEFAULT_INTERVAL_SECONDS, Invalid, MIN_INTERVAL_SECONDS, Monitor,
    MonitorInput, MonitorKind, create, create_with_id, delete, get, list, lock_and_count, update,
};
pub use results::{
    After, CheckResult, MAX_ERROR_CHARS, MonitorStatus, Observation, Ping, Recorded, Tally,
    TimeRange, Transition, has_result, list_results, prune_results, record_ping, record_result,
    tally, tally_all,
};
pub use retention::{Pruned, prune_expired_results};
pub use status_pages::{
    MAX_PAGE_MONITORS, PageSlug, PageSpec, PublicMonitor, PublicPage, Replaced, StatusPage,
    StatusPageError, StatusPageInput, UPTIME_WINDOW, create_page, delete_page, get_page,
    list_pages, public_page, update_page,
};

use tenantry_tenancy::{ControlSchema, MigrationSet, TenantSet};

/// The tenant tables: monitors, check results and incidents, alert channels and deliveries,
/// status pages, agents. Releases before tenant migration sets numbered these 1, 2, 5, 6, 7, 8
/// and 10 of their single tenant set.
pub fn tenant_set() -> TenantSet {
    TenantSet::new(
        "monitoring",
        MigrationSet::from_files(&[
            (
                "monitoring/tenant/0001_monitors.sql",
                include_str!("../migrations/tenant/0001_monitors.sql"),
            ),
            (
                "monitoring/tenant/0002_monitor_fields.sql",
                include_str!("../migrations/tenant/0002_monitor_fields.sql"),
            ),
            (
                "monitoring/tenant/0003_checks.sql",
                include_str!("../migrations/tenant/0003_checks.sql"),
            ),
            (
                "monitoring/tenant/0004_alerts.sql",
                include_str!("../migrations/tenant/0004_alerts.sql"),
            ),
            (
                "monitoring/tenant/0005_status_pages.sql",
                include_str!("../migrations/tenant/0005_status_pages.sql"),
            ),
            (
                "monitoring/tenant/0006_agents.sql",
                include_str!("../migrations/tenant/0006_agents.sql"),
            ),
            (
                "monitoring/tenant/0007_test_alerts.sql",
                include_str!("../migrations/tenant/0007_test_alerts.sql"),
            ),
        ]),
    )
    .adopting(&[1, 2, 5, 6, 7, 8, 10])
}

/// The heartbeat tokens and the schedule, in the control database's `monitoring` schema (after
/// the registry, which `org_id` references).
pub fn control_schema() -> ControlSchema {
    ControlSchema {
        name: "monitoring",
        migrations: MigrationSet::from_files(&[
            (
                "monitoring/0001_heartbeats.sql",
                include_str!("../migrations/0001_heartbeats.sql"),
            ),
            (
                "monitoring/0002_schedule.sql",
                include_str!("../migrations/0002_schedule.sql"),
            ),
            (
                "monitoring/0003_alert_wakeups.sql",
                include_str!("../migrations/0003_alert_wakeups.sql"),
            ),
            (
                "monitoring/0004_agent_tokens.sql",
                include_str!("../migrations/0004_agent_tokens.sql"),
            ),
            (
                "monitoring/0005_owner_only_alert_keys.sql",
                include_str!("../migrations/0005_owner_only_alert_keys.sql"),
            ),
        ]),
    }
}
