//! The tenancy engine: one PostgreSQL-backed registry of tenants, each living in one of three
//! isolation tiers — the shared schema with row-level security, a schema of its own, or a
//! database of its own — behind one door ([`TenantCtx`] → [`TenantTx`]), with resumable
//! provisioning, lifecycle, fleet migrations and online moves between tiers. It knows nothing of
//! HTTP, and nothing of the application it serves: the application registers its tables.
//!
//! # A guide, from the example
//!
//! `crates/tenancy/examples/notes.rs` is a complete program on this crate alone
//! (`cargo run -p tenantry-tenancy --example notes -- postgres://me@localhost/postgres`). Its
//! steps are the whole API a typical application needs.
//!
//! **1. Register the tenant tables.** An application's tenant tables are one or more
//! [`TenantSet`]s: ordered SQL migrations, applied after the engine's own set ([`BASE_SET`]:
//! `tenant_settings` and the write gate of moves). Every tenant table carries `tenant_id` first
//! in its keys, refers to `tenant_settings`, and has row-level security enabled, forced and keyed
//! on `app.tenant_id` ([`lint::tables_without_rls`] checks the text, [`lint::rls_violations`] a
//! live database). The same text builds every tier.
//!
//! ```no_run
//! # use tenantry_tenancy::{MigrationSet, TenantSchema, TenantSet};
//! let schema = TenantSchema::new([TenantSet::new(
//!     "notes",
//!     MigrationSet::from_files(&[("notes/0001_notes.sql", "CREATE TABLE notes (...);")]),
//! )]);
//! ```
//!
//! **2. Open the engine** with [`Tenancy::open_with`] (or [`Tenancy::open_full`], adding
//! [`ControlSchema`]s: the application's own tables in the control database, such as users). It
//! needs the URL of a role with CREATEDB and CREATEROLE (the owner); it creates the control
//! database, a runtime role that is neither superuser nor BYPASSRLS, and the shared schema.
//! Open it once per process; the handle is cheap to clone.
//!
//! **3. Create tenants** with [`Tenancy::create_tenant`], naming the tier. Provisioning is a
//! sequence of recorded steps ([`ProvisionStep`]); one cut off anywhere resumes
//! ([`Tenancy::resume_provisioning`]).
//!
//! **4. Read and write through the door.** [`Tenancy::resolve`] turns a slug or id into a
//! [`TenantCtx`] after checking that the tenant is active; [`TenantCtx::begin`] (writes) and
//! [`TenantCtx::begin_read`] open a [`TenantTx`] on the tenant's storage with `app.tenant_id`
//! and `search_path` set for that transaction only. There is no other way to a tenant's rows:
//! the pools are private, and the application reaches the control database through
//! [`ControlDb`] (runtime role) or [`Operator`] (owner role, for the CLI and jobs).
//!
//! **5. Move a tenant between tiers** while it is used, with [`Tenancy::move_tenant`]: a
//! verified copy, writes paused for the switch only, resumable after a cut, the old copy removed
//! after a drain. Writers holding an old context are sent to the new placement.
//!
//! **6. Ship a migration** by appending to a set, then [`Tenancy::migrate_fleet`]: the shared
//! schema once, then every other tenant's storage several at a time, each tenant's versions
//! ([`SchemaVersions`], one per set) recorded in the registry; [`Tenancy::migration_status`]
//! compares the registry, the storage and the sets.
//!
//! **7. Lifecycle**: [`Tenancy::suspend`], [`Tenancy::activate`], [`Tenancy::soft_delete`],
//! [`Tenancy::restore`], [`Tenancy::hard_delete`] (rows, schema or database, and role removed).

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
mod servers;
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
pub use ids::{Isolation, MovePhase, ProvisionStep, Slug, SlugError, TenantId, TenantStatus};
pub use lifecycle::RegistryTx;
pub use migrations::{Migration, MigrationSet};
pub use naming::{CONTROL_SCHEMA, DATABASE_TIER_SCHEMA, Naming, SHARED_SCHEMA, quote_ident};
pub use pools::{ConnectionState, PoolStats};
pub use provision::NewTenant;
pub use registry::TenantRecord;
pub use relocate::{MoveOptions, MoveProgress, MoveReport};
pub use rows::{TableChecksum, TenantTable, table_checksum, upsert_json_rows};
pub use schema::{BASE_SET, SchemaVersions, TenantSchema, TenantSet};
pub use servers::{DEFAULT_SERVER, NewServer, ServerInfo};

pub use sqlx::postgres::PgConnectOptions;
#[cfg(test)]
mod send_check;
