//! The test harness. `cargo xtask test` starts one throwaway PostgreSQL cluster for the whole run
//! and passes its superuser URL in `TENANTRY_TEST_DATABASE_URL`; every test then gets a fresh
//! control database cloned from a migrated template, so tests run in parallel without sharing
//! state. Roles are cluster-wide and shared by the tests (`tt_owner`, `tt_app`); tenant
//! databases and roles carry the tenant's unique id.

// A harness for tests only: failing loudly at the first broken step is what a test wants.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod eventually;
pub mod latency;
pub mod server;
pub mod smtp;

pub use eventually::eventually;

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use std::collections::BTreeSet;

use tenantry_tenancy::{
    ControlSchema, EngineConfig, MigrationSet, PoolConfig, Tenancy, TenantSchema,
};
use tokio::sync::Mutex;

/// Runs the async test body `async fn NAME(tier: Isolation)` once per isolation tier, as the three
/// tests `NAME::shared`, `NAME::schema` and `NAME::database`.
#[macro_export]
macro_rules! per_tier {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn shared() {
                super::$name(tenantry_tenancy::Isolation::Shared).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn schema() {
                super::$name(tenantry_tenancy::Isolation::Schema).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn database() {
                super::$name(tenantry_tenancy::Isolation::Database).await
            }
        }
    };
}

pub const PREFIX: &str = "tt";
pub const URL_VAR: &str = "TENANTRY_TEST_DATABASE_URL";

/// The superuser of the test cluster.
pub fn superuser() -> PgConnectOptions {
    let url = std::env::var(URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{URL_VAR} is not set: run the tests with `cargo xtask test`, which starts a throwaway \
             PostgreSQL, or set it to a superuser URL of a PostgreSQL you can spare"
        )
    });
    PgConnectOptions::from_str(&url)
        .unwrap_or_else(|e| panic!("{URL_VAR} is not a PostgreSQL URL: {e}"))
        .disable_statement_logging()
}

/// A connection to `database` as the test cluster's superuser.
pub async fn superuser_conn(database: &str) -> PgConnection {
    superuser()
        .database(database)
        .connect()
        .await
        .expect("connect to the test cluster as superuser")
}

/// The owner role's options on the maintenance database.
pub fn owner() -> PgConnectOptions {
    superuser().username("tt_owner").database("postgres")
}

/// The templates this process has made sure of, by name.
static TEMPLATES: Mutex<BTreeSet<String>> = Mutex::const_new(BTreeSet::new());

/// An engine configuration pointing at a fresh control database of its own, made by the engine
/// with its own tenant tables alone.
pub async fn fresh_config() -> EngineConfig {
    fresh_config_for(&TenantSchema::default(), &[]).await
}

/// An engine configuration pointing at a fresh control database of its own, cloned from a
/// template the engine made with `schema` and `control` (built once per cluster and set of
/// migrations), so opening the engine with them finds nothing left to migrate.
pub async fn fresh_config_for(schema: &TenantSchema, control: &[ControlSchema]) -> EngineConfig {
    let template = {
        let mut ready = TEMPLATES.lock().await;
        let name = format!("tt_template_{}", fingerprint(schema, control));
        if !ready.contains(&name) {
            prepare_template(&name, schema, control).await;
            ready.insert(name.clone());
        }
        name
    };
    let name = format!("tt_{}", uuid::Uuid::new_v4().simple());
    let mut conn = owner().connect().await.expect("connect as tt_owner");
    sqlx::raw_sql(&format!(
        "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
    ))
    .execute(&mut conn)
    .await
    .expect("clone the template database");
    conn.close().await.ok();
    config_for(name)
}

fn config_for(control_database: String) -> EngineConfig {
    EngineConfig {
        owner: owner(),
        control_database,
        prefix: PREFIX.to_string(),
        pools: PoolConfig::default(),
    }
}

/// A fresh engine with its own tenant tables alone.
pub async fn tenancy() -> Tenancy {
    Tenancy::open(fresh_config().await)
        .await
        .expect("open the engine")
}

/// A fresh engine with `schema` as its tenant schema.
pub async fn tenancy_with(schema: TenantSchema) -> Tenancy {
    open(schema, &[]).await
}

/// A fresh engine with `schema` as its tenant schema and `control` as the application's control
/// schemas.
pub async fn open(schema: TenantSchema, control: &[ControlSchema]) -> Tenancy {
    let config = fresh_config_for(&schema, control).await;
    Tenancy::open_full(config, schema, control)
        .await
        .expect("open the engine")
}

/// Creates the owner role and the template `name` once per cluster (several test processes may
/// race; an advisory lock in the maintenance database orders them). A template left half-built
/// is built again.
async fn prepare_template(name: &str, schema: &TenantSchema, control: &[ControlSchema]) {
    let mut conn = superuser_conn("postgres").await;
    sqlx::query("SELECT pg_advisory_lock(hashtext('tenantry.testkit'))")
        .execute(&mut conn)
        .await
        .expect("lock the test cluster");
    let owner_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tt_owner')")
            .fetch_one(&mut conn)
            .await
            .expect("look up tt_owner");
    if !owner_exists {
        // As in a managed cluster: only the owner may connect to the maintenance databases.
        sqlx::raw_sql(
            "CREATE ROLE tt_owner LOGIN CREATEDB CREATEROLE;
             GRANT pg_signal_backend TO tt_owner;
             REVOKE CONNECT ON DATABASE postgres, template1 FROM PUBLIC;
             GRANT CONNECT ON DATABASE postgres TO tt_owner;",
        )
        .execute(&mut conn)
        .await
        .expect("create tt_owner");
    }
    let current: Option<Option<String>> = sqlx::query_scalar(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
    )
    .bind(name)
    .fetch_optional(&mut conn)
    .await
    .expect("look up the template");
    match current {
        Some(Some(marker)) if marker == BUILT => {}
        found => {
            if found.is_some() {
                sqlx::raw_sql(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .expect("drop the half-built template");
            }
            let engine = Tenancy::open_full(config_for(name.to_string()), schema.clone(), control)
                .await
                .expect("build the template");
            engine.close().await;
            sqlx::raw_sql(&format!("COMMENT ON DATABASE \"{name}\" IS '{BUILT}'"))
                .execute(&mut conn)
                .await
                .expect("mark the template");
        }
    }
    sqlx::query("SELECT pg_advisory_unlock(hashtext('tenantry.testkit'))")
        .execute(&mut conn)
        .await
        .expect("unlock the test cluster");
    conn.close().await.ok();
}

/// The comment of a template that was built to the end.
const BUILT: &str = "built";

/// Identifies the migrations a template is built from.
fn fingerprint(schema: &TenantSchema, control: &[ControlSchema]) -> String {
    let mut text = String::new();
    let sets = std::iter::once(("control", MigrationSet::control()))
        .chain(control.iter().map(|c| (c.name, c.migrations.clone())))
        .chain(
            schema
                .sets()
                .iter()
                .map(|s| (s.name(), s.migrations().clone())),
        );
    for (name, set) in sets {
        text.push_str(name);
        for m in set.items() {
            text.push_str(&m.checksum());
        }
    }
    format!("{:016x}", fnv1a(&text))
}

/// A stable 64-bit FNV-1a hash; enough to notice changed migrations.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}
