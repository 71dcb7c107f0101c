//! Monitoring: for now the monitors themselves, validated and stored through the tenant door
//! (every function takes a `TenantTx`). Checks, the scheduler, incidents and alerts join here.

mod monitors;

pub use monitors::{
    Cursor, DEFAULT_INTERVAL_SECONDS, Invalid, MIN_INTERVAL_SECONDS, Monitor, MonitorInput, create,
    delete, get, list, lock_and_count, update,
};
