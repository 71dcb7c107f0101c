//! Monitoring: monitors, validated and stored through the tenant door (every function takes a
//! `TenantTx`); check results and the state machine they drive (`pending` → `up`/`down`,
//! incidents opened after `confirmations` consecutive failures and resolved by the next
//! success); heartbeat tokens, the one table of this crate in the control database (the
//! `monitoring` schema, [`control_schema`]). No HTTP inside.

pub mod checks;
mod heartbeats;
mod incidents;
mod monitors;
mod results;

pub use heartbeats::{
    HEARTBEAT_PATH, HeartbeatTarget, HeartbeatToken, find as find_heartbeat,
    forget as forget_heartbeat, has_token as has_heartbeat_token, issue as issue_heartbeat,
};
pub use incidents::{Incident, list_incidents, open_incident};
pub use monitors::{
    Cursor, DEFAULT_CONFIRMATIONS, DEFAULT_INTERVAL_SECONDS, Invalid, MIN_INTERVAL_SECONDS,
    Monitor, MonitorInput, create, create_with_id, delete, get, list, lock_and_count, update,
};
pub use results::{
    After, CheckResult, MAX_ERROR_CHARS, MonitorStatus, Observation, Ping, Recorded, TimeRange,
    Transition, list_results, prune_results, record_ping, record_result,
};

use tenantry_tenancy::{ControlSchema, MigrationSet};

/// The heartbeat tokens, in the control database's `monitoring` schema (after the registry,
/// which `org_id` references).
pub fn control_schema() -> ControlSchema {
    ControlSchema {
        name: "monitoring",
        migrations: MigrationSet::from_files(&[(
            "monitoring/0001_heartbeats.sql",
            include_str!("../migrations/0001_heartbeats.sql"),
        )]),
    }
}
