//! Helpers shared by the engine tests.

use sqlx::{Connection, PgConnection};
use tenantry_tenancy::{
    EngineConfig, Isolation, MigrationSet, NewTenant, Slug, Tenancy, TenantCtx, TenantRecord,
    TenantSchema, TenantSet,
};
use uuid::Uuid;

pub(crate) use tenantry_testkit::per_tier;

/// The toy application of the engine's example: a `notes` table and an append-only `ledger`.
pub fn notes_set() -> TenantSet {
    TenantSet::new(
        "notes",
        MigrationSet::from_files(&[
            (
                "notes/0001_notes.sql",
                include_str!("../../examples/notes/0001_notes.sql"),
            ),
            (
                "notes/0002_ledger.sql",
                include_str!("../../examples/notes/0002_ledger.sql"),
            ),
        ]),
    )
}

/// The engine's tenant tables and the toy application's.
pub fn schema() -> TenantSchema {
    TenantSchema::new([notes_set()])
}

/// A fresh control database, made with [`schema`].
pub async fn fresh_config() -> EngineConfig {
    tenantry_testkit::fresh_config_for(&schema(), &[]).await
}

/// A fresh engine with [`schema`].
pub async fn tenancy() -> Tenancy {
    tenantry_testkit::tenancy_with(schema()).await
}

pub fn new_tenant(tier: Isolation) -> NewTenant {
    let slug = format!("t{}", &Uuid::new_v4().simple().to_string()[..12]);
    NewTenant {
        name: format!("Tenant {slug}"),
        slug: Slug::parse(&slug).unwrap(),
        isolation: tier,
        plan: None,
        server: None,
    }
}

/// A provisioned, active tenant of `tier` and its context.
pub async fn tenant(engine: &Tenancy, tier: Isolation) -> (TenantRecord, TenantCtx) {
    let record = engine.create_tenant(&new_tenant(tier)).await.unwrap();
    let ctx = engine.resolve(&record.slug).await.unwrap();
    (record, ctx)
}

/// Inserts a note for the context's tenant and returns its id.
pub async fn insert_note(ctx: &TenantCtx, name: &str) -> Uuid {
    let mut tx = ctx.begin().await.unwrap();
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO notes (tenant_id, id, name, body) VALUES ($1, $2, $3, 'a note')")
        .bind(ctx.tenant_id().as_uuid())
        .bind(id)
        .bind(name)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

/// The names of the notes the tenant's transaction sees.
pub async fn note_names(ctx: &TenantCtx) -> Vec<String> {
    let mut tx = ctx.begin().await.unwrap();
    let names = sqlx::query_scalar("SELECT name FROM notes ORDER BY name")
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

/// The fully qualified notes table of a tenant, as seen from its own database.
pub fn notes_table(record: &TenantRecord) -> String {
    format!("\"{}\".notes", record.schema_name)
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
