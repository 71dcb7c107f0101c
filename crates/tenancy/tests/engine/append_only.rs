//! Append-only tables (a comment starting with `append-only`): the role the server runs as may
//! read and insert their rows, never update, delete or truncate them, in every tier and in the
//! application schemas of the control database; the owner role keeps every right.

use sqlx::PgConnection;
use tenantry_tenancy::{ControlSchema, Isolation, MigrationSet, Quiet, Tenancy, TenantCtx};
use tenantry_testkit::fresh_config;
use uuid::Uuid;

use crate::support::{per_tier, sqlstate, tenant};

/// Inserts an audit entry with the tenant's runtime role, the way the audit crate does (without
/// the hashing, which is not the point here).
async fn insert_entry(ctx: &TenantCtx, seq: i64) {
    let mut tx = ctx.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, seq, id, at, actor_kind, action, target_kind,
             prev_hash, hash)
         VALUES ($1, $2, $3, now(), 'system', 'monitor.created', 'monitor', $4, $4)",
    )
    .bind(ctx.tenant_id().as_uuid())
    .bind(seq)
    .bind(Uuid::now_v7())
    .bind(vec![0u8; 32])
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// UPDATE, DELETE and TRUNCATE of the tenant's audit log, each in a transaction of its own, are
/// refused with 42501.
async fn assert_changes_refused(ctx: &TenantCtx, tier: Isolation) {
    for statement in [
        "UPDATE audit_log SET action = 'monitor.deleted'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
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
    sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(conn)
        .await
        .unwrap()
}

per_tier!(the_tenant_audit_log_is_append_only_for_the_runtime_role);
async fn the_tenant_audit_log_is_append_only_for_the_runtime_role(tier: Isolation) {
    let engine = tenantry_testkit::tenancy().await;
    let (record, ctx) = tenant(&engine, tier).await;
    insert_entry(&ctx, 1).await;
    insert_entry(&ctx, 2).await;
    assert_changes_refused(&ctx, tier).await;
    // Monitors, in the same schema, are still writable.
    let mut tx = ctx.begin().await.unwrap();
    sqlx::query("UPDATE monitors SET name = name")
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
    sqlx::query("DELETE FROM audit_log WHERE seq = 2")
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
async fn tenants_migrated_to_the_audit_log_later_get_it_append_only_too() {
    let config = fresh_config().await;
    let before_audit = MigrationSet::tenant().truncated(2);
    let old = Tenancy::open_with(config.clone(), before_audit)
        .await
        .unwrap();
    let mut tenants = Vec::new();
    for tier in [Isolation::Shared, Isolation::Schema, Isolation::Database] {
        tenants.push((tier, tenant(&old, tier).await.0));
    }
    old.close().await;

    let engine = Tenancy::open_with(config, MigrationSet::tenant())
        .await
        .unwrap();
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
    Tenancy::open_full(config.clone(), MigrationSet::tenant(), &schemas)
        .await
        .unwrap()
        .close()
        .await;
    let engine = Tenancy::open_full(config, MigrationSet::tenant(), &schemas)
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
