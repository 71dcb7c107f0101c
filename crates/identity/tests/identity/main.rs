//! Identity against a real PostgreSQL: passwords, sessions, refresh rotation and reuse, and the
//! access-token checks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sessions;
mod tokens;
mod users;

use tenantry_identity::{Email, Identity, IdentityConfig};
use tenantry_tenancy::{EngineConfig, Tenancy, TenantSchema};

/// An engine with the identity schema on a fresh control database, and its configuration.
pub async fn engine() -> (Tenancy, EngineConfig) {
    let control = [tenantry_identity::control_schema()];
    let config = tenantry_testkit::fresh_config_for(&TenantSchema::default(), &control).await;
    let engine = Tenancy::open_full(config.clone(), TenantSchema::default(), &control)
        .await
        .unwrap();
    (engine, config)
}

pub async fn identity_with(config: IdentityConfig) -> (Identity, Tenancy) {
    let (engine, _) = engine().await;
    let identity = Identity::open(&engine, &tenantry_tenancy::Operator::new(&engine), config)
        .await
        .unwrap();
    (identity, engine)
}

pub async fn identity() -> (Identity, Tenancy) {
    identity_with(IdentityConfig::default()).await
}

pub fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}
