//! The audit log against a real PostgreSQL, in every tier: entries commit and roll back with
//! their transaction, concurrent appends chain, tampering and removal are named by `verify`, the
//! runtime roles cannot change entries, listing merges both chains, and a hard delete leaves
//! nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod grants;
mod recording;
mod tampering;

use serde_json::json;
use sqlx::PgConnection;
use tenantry_audit::{Actor, AuditContext, Change};
use tenantry_tenancy::{Isolation, NewTenant, Slug, Tenancy, TenantCtx, TenantRecord};
use uuid::Uuid;

pub(crate) use tenantry_testkit::per_tier;

/// An engine with every application schema on a fresh control database.
pub async fn engine() -> Tenancy {
    tenantry_testkit::open(
        tenantry_app::tenant_schema(),
        &tenantry_app::control_schemas(),
    )
    .await
}

/// A provisioned, active tenant of `tier` and its context.
pub async fn tenant(engine: &Tenancy, tier: Isolation) -> (TenantRecord, TenantCtx) {
    let slug = format!("a{}", &Uuid::new_v4().simple().to_string()[..12]);
    let record = engine
        .create_tenant(&NewTenant {
            name: format!("Org {slug}"),
            slug: Slug::parse(&slug).unwrap(),
            isolation: tier,
            plan: None,
            server: None,
        })
        .await
        .unwrap();
    let ctx = engine.resolve(&record.slug).await.unwrap();
    (record, ctx)
}

/// A user acting from a browser.
pub fn user_ctx(user: Uuid) -> AuditContext {
    AuditContext {
        actor: Actor::user(user),
        ip: Some("203.0.113.7".into()),
        user_agent: Some("Mozilla/5.0".into()),
        request_id: Some(format!("req-{}", Uuid::new_v4().simple())),
    }
}

pub fn change(action: &'static str, target_kind: &'static str, n: u32) -> Change {
    Change {
        action: action.parse().unwrap(),
        target_kind,
        target_id: Some(format!("{target_kind}-{n}")),
        before: (n > 1).then(|| json!({"n": n - 1, "name": "old", "nested": {"b": 2, "a": 1.5}})),
        after: Some(json!({
            "n": n, "name": "new ✓", "tags": ["x", "y"],
            "numbers": [0.1, 1e20, 1e-7, 123_456_789_012_345_678_u64, -0.0, 2.5e-300]
        })),
    }
}

/// Records `change` in the organization's control-side chain, committed.
pub async fn record_org(engine: &Tenancy, org: Option<Uuid>, ctx: &AuditContext, change: &Change) {
    let mut tx = engine.control_db().begin().await.unwrap();
    tenantry_audit::record(&mut tx, org, ctx, change)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// Records `change` in the tenant-side chain, committed.
pub async fn record_tenant(ctx: &TenantCtx, audit: &AuditContext, change: &Change) {
    let mut tx = ctx.begin().await.unwrap();
    tenantry_audit::record_in_tenant(&mut tx, audit, change)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// A superuser connection to the database holding the tenant's rows, and the qualified name of
/// its tenant-side audit table.
pub async fn tenant_storage_as_superuser(
    engine: &Tenancy,
    record: &TenantRecord,
) -> (PgConnection, String) {
    let database = match record.isolation {
        Isolation::Database => record.database_name.clone(),
        Isolation::Shared | Isolation::Schema => engine.control_database().to_string(),
    };
    (
        tenantry_testkit::superuser_conn(&database).await,
        format!("\"{}\".audit_log", record.schema_name),
    )
}

/// A superuser connection to the control database.
pub async fn control_as_superuser(engine: &Tenancy) -> PgConnection {
    tenantry_testkit::superuser_conn(engine.control_database()).await
}

pub fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}
