//! Append-only tables (a comment starting with `append-only`): the role the server runs as may
//! read and insert their rows, never update, delete or truncate them, in every tier and in the
//! application schemas of the control database; the owner role keeps every right.

use sqlx::PgConnection;
use tenantry_tenancy::{ControlSchema, Isolation, MigrationSet, Quiet, Tenancy, TenantCtx};

use crate::support::{fresh_config, per_tier, schema, sqlstate, tenancy, tenant};

/// Inserts a ledger entry with the tenant's runtime role.
async fn insert_entry(ctx: &TenantCtx, seq: i64) {
    let mut tx = ctx.begin().await.unwrap();
    sqlx::query("INSERT INTO ledger (tenant_id, seq, entry) VALUES ($1, $2, 'note created')")
        .bind(ctx.tenant_id().as_uuid())
        .bind(seq)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// UPDATE, DELETE and TRUNCATE of the tenant's ledger, each in a transaction of its own, are
/// refused with 42501.
async fn assert_changes_refused(ctx: &TenantCtx, tier: Isolation) {
    for statement in [
        "UPDATE ledger SET entry = 'rewritten'",
        "DELETE FROM ledger",
        "TRUNCATE ledger",
    ] {
        let mut tx = ctx.begin().await.unwrap();
        let err = sqlx::query(statement).execute(&mut *tx).await.unwrap_err();
        assert_eq!(
            sqlstate(&err).as_deref(),
            Some("42501"),
            "{tier:?}: {statement}: {err}"
        );
    }
}

async fn count_as_owner(conn: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM ledger")
        .fetch_one(conn)
        .await
        .unwrap()
}

per_tier!(a_tenant_append_only_table_is_append_only_for_the_runtime_role);
async fn a_tenant_append_only_table_is_append_only_for_the_runtime_role(tier: Isolation) {
    let engine = tenancy().await;
    let (record, ctx) = tenant(&engine, tier).await;
    insert_entry(&ctx, 1).await;
    insert_entry(&ctx, 2).await;
    assert_changes_refused(&ctx, tier).await;
    // Notes, in the same schema, are still writable.
    let mut tx = ctx.begin().await.unwrap();
    sqlx::query("UPDATE notes SET name = name")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // The owner is unaffected: it sees the tenant's rows and may remove them.
    let mut owner = tenantry_tenancy::Operator::new(&engine)
        .tenant_storage(&record)
        .await
        .unwrap();
    assert_eq!(count_as_owner(&mut owner).await, 2);
    sqlx::query("DELETE FROM ledger WHERE seq = 2")
        .execute(&mut owner)
        .await
        .unwrap();
    assert_eq!(count_as_owner(&mut owner).await, 1);
    let (user, search_path): (String, String) =
        sqlx::query_as("SELECT current_user::text, current_setting('search_path')")
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert_eq!(user, engine.owner_role());
    assert_eq!(search_path.trim_matches('"'), record.schema_name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_migrated_to_an_append_only_table_later_get_it_append_only_too() {
    let before_ledger = schema().truncated("notes", 1);
    let config = tenantry_testkit::fresh_config_for(&before_ledger, &[]).await;
    let old = Tenancy::open_with(config.clone(), before_ledger)
        .await
        .unwrap();
    let mut tenants = Vec::new();
    for tier in [Isolation::Shared, Isolation::Schema, Isolation::Database] {
        tenants.push((tier, tenant(&old, tier).await.0));
    }
    old.close().await;

    let engine = Tenancy::open_with(config, schema()).await.unwrap();
    let report = engine.migrate_fleet(2, &Quiet).await.unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    for (tier, record) in &tenants {
        let ctx = engine.resolve(&record.slug).await.unwrap();
        insert_entry(&ctx, 1).await;
        assert_changes_refused(&ctx, *tier).await;
    }
}

const LEDGER: &str = "CREATE TABLE entries (id bigint PRIMARY KEY, note text NOT NULL);
COMMENT ON TABLE entries IS 'append-only: a test ledger';
CREATE TABLE notes (id bigint PRIMARY KEY, note text NOT NULL);
COMMENT ON TABLE notes IS 'not append-only, whatever this comment says later';";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_schemas_append_only_tables_refuse_changes() {
    let config = fresh_config().await;
    let schemas = [ControlSchema {
        name: "ledger",
        migrations: MigrationSet::from_files(&[("ledger/0001.sql", LEDGER)]),
    }];
    // Opened twice: the grants run at every start and must not give the rights back.
    Tenancy::open_full(config.clone(), schema(), &schemas)
        .await
        .unwrap()
        .close()
        .await;
    let engine = Tenancy::open_full(config, schema(), &schemas)
        .await
        .unwrap();
    let runtime = engine.control_db();
    for table in ["entries", "notes"] {
        sqlx::query(&format!(
            "INSERT INTO ledger.{table} (id, note) VALUES (1, 'a')"
        ))
        .execute(runtime)
        .await
        .unwrap();
    }
    for statement in [
        "UPDATE ledger.entries SET note = 'b'",
        "DELETE FROM ledger.entries",
        "TRUNCATE ledger.entries",
    ] {
        let err = sqlx::query(statement).execute(runtime).await.unwrap_err();
        assert_eq!(
            sqlstate(&err).as_deref(),
            Some("42501"),
            "{statement}: {err}"
        );
    }
    sqlx::query("UPDATE ledger.notes SET note = 'b'")
        .execute(runtime)
        .await
        .unwrap();
    sqlx::query("DELETE FROM ledger.notes")
        .execute(runtime)
        .await
        .unwrap();
    // The owner still may.
    sqlx::query("DELETE FROM ledger.entries")
        .execute(tenantry_tenancy::Operator::new(&engine).control())
        .await
        .unwrap();
}
