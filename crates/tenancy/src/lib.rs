//! The tenancy engine: the tenant registry, the three isolation tiers (shared schema with
//! row-level security, a schema per tenant, a database per tenant), the one door to tenant data
//! ([`TenantCtx`] → [`TenantTx`]), provisioning, lifecycle and fleet migrations.
//!
//! It knows nothing of HTTP. Open it once with [`Tenancy::open`]; everything else hangs off the
//! returned handle.

mod bootstrap;
pub mod cache;
mod config;
mod door;
mod engine;
mod error;
mod fleet;
mod handles;
mod ids;
mod lifecycle;
pub mod lint;
mod migrations;
mod naming;
mod pools;
mod provision;
mod registry;
mod relocate;
mod rows;
mod schema;
mod secrets;
mod sql;
mod storage;

pub use bootstrap::managed_owner;
pub use cache::{Cache, Caches};
pub use config::{EngineConfig, PoolConfig};
pub use door::{ControlConn, TenantCtx, TenantTx};
pub use engine::{ControlSchema, Tenancy};
pub use error::TenancyError;
pub use fleet::{
    FleetStatus, MigrateProgress, MigrateReport, Quiet, ScopeStatus, TenantSchemaStatus,
};
pub use handles::{ControlDb, Operator};
pub use ids::{Isolation, ProvisionStep, Slug, SlugError, TenantId, TenantStatus};
pub use lifecycle::RegistryTx;
pub use migrations::{Migration, MigrationSet};
pub use naming::{CONTROL_SCHEMA, DATABASE_TIER_SCHEMA, Naming, SHARED_SCHEMA, quote_ident};
pub use pools::{ConnectionState, PoolStats};
pub use provision::NewTenant;
pub use registry::TenantRecord;
pub use relocate::{MoveOptions, MoveProgress, MoveReport};
pub use rows::{TableChecksum, TenantTable, table_checksum, upsert_json_rows};
pub use schema::{BASE_SET, SchemaVersions, TenantSchema, TenantSet};

pub use sqlx::postgres::PgConnectOptions;
#[cfg(test)]
mod send_check;
