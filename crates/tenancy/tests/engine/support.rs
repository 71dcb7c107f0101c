//! Helpers shared by the engine tests.

use sqlx::{Connection, PgConnection};
use tenantry_tenancy::{Isolation, NewTenant, Slug, Tenancy, TenantCtx, TenantRecord};
use uuid::Uuid;

pub(crate) use tenantry_testkit::per_tier;

pub fn new_tenant(tier: Isolation) -> NewTenant {
    let slug = format!("t{}", &Uuid::new_v4().simple().to_string()[..12]);
    NewTenant {
        name: format!("Tenant {slug}"),
        slug: Slug::parse(&slug).unwrap(),
        isolation: tier,
        plan: None,
    }
}

/// A provisioned, active tenant of `tier` and its context.
pub async fn tenant(engine: &Tenancy, tier: Isolation) -> (TenantRecord, TenantCtx) {
    let record = engine.create_tenant(&new_tenant(tier)).await.unwrap();
    let ctx = engine.resolve(&record.slug).await.unwrap();
    (record, ctx)
}

/// Inserts a monitor for the context's tenant and returns its id.
pub async fn insert_monitor(ctx: &TenantCtx, name: &str) -> Uuid {
    let mut tx = ctx.begin().await.unwrap();
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO monitors (tenant_id, id, name, kind, target) VALUES ($1, $2, $3, 'http', 'https://example.test')")
        .bind(ctx.tenant_id().as_uuid())
        .bind(id)
        .bind(name)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

/// The names of the monitors the tenant's transaction sees.
pub async fn monitor_names(ctx: &TenantCtx) -> Vec<String> {
    let mut tx = ctx.begin().await.unwrap();
    let names = sqlx::query_scalar("SELECT name FROM monitors ORDER BY name")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    names
}

/// A connection to `database` as `role` (the test cluster trusts local connections).
pub async fn connect_as(role: &str, database: &str) -> Result<PgConnection, sqlx::Error> {
    PgConnection::connect_with(
        &tenantry_testkit::superuser()
            .username(role)
            .database(database),
    )
    .await
}

/// The fully qualified monitors table of a tenant, as seen from its own database.
pub fn monitors_table(record: &TenantRecord) -> String {
    format!("\"{}\".monitors", record.schema_name)
}

pub fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Every database of this engine: its control database and its tenants' databases.
pub async fn databases_of(engine: &Tenancy) -> Vec<String> {
    let mut dbs = vec![engine.control_database().to_string()];
    for t in engine.list().await.unwrap() {
        if t.isolation == Isolation::Database {
            dbs.push(t.database_name);
        }
    }
    dbs
}
