//! One tenant's transactions can neither see nor change another tenant's rows, in every tier.

use std::time::Duration;

use tenantry_tenancy::{Isolation, PoolConfig, Tenancy, lint};
use tenantry_testkit::superuser_conn;

use crate::support::{
    connect_as, databases_of, fresh_config, insert_note, note_names, notes_table, per_tier, schema,
    sqlstate, tenancy, tenant,
};

per_tier!(a_tenant_cannot_read_update_or_delete_another_tenants_rows);
async fn a_tenant_cannot_read_update_or_delete_another_tenants_rows(tier: Isolation) {
    let engine = tenancy().await;
    let (_, a) = tenant(&engine, tier).await;
    let (b_record, b) = tenant(&engine, tier).await;
    insert_note(&a, "a-1").await;
    let b_note = insert_note(&b, "b-1").await;

    let mut tx = a.begin().await.unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM notes WHERE id = $1")
        .bind(b_note)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(seen, 0);
    let updated = sqlx::query("UPDATE notes SET name = 'stolen' WHERE id = $1")
        .bind(b_note)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 0);
    let deleted = sqlx::query("DELETE FROM notes WHERE id = $1")
        .bind(b_note)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), 0);
    if tier != Isolation::Database {
        // Naming B's table outright still shows nothing: row-level security filters it.
        let qualified: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {} WHERE tenant_id = $1",
            notes_table(&b_record)
        ))
        .bind(b.tenant_id().as_uuid())
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        assert_eq!(qualified, 0);
        let changed = sqlx::query(&format!(
            "DELETE FROM {} WHERE tenant_id = $1",
            notes_table(&b_record)
        ))
        .bind(b.tenant_id().as_uuid())
        .execute(&mut *tx)
        .await
        .unwrap();
        assert_eq!(changed.rows_affected(), 0);
    }
    tx.commit().await.unwrap();

    assert_eq!(note_names(&a).await, ["a-1"]);
    assert_eq!(note_names(&b).await, ["b-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_write_its_own_rows_into_another_tenants_schema() {
    let engine = tenancy().await;
    let (a_record, _) = tenant(&engine, Isolation::Schema).await;
    let (_, b) = tenant(&engine, Isolation::Schema).await;
    let mut tx = b.begin().await.unwrap();
    let err = sqlx::query(&format!(
        "INSERT INTO \"{}\".notes (tenant_id, id, name) VALUES ($1, $2, 'planted')",
        a_record.schema_name
    ))
    .bind(b.tenant_id().as_uuid())
    .bind(uuid::Uuid::now_v7())
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
}

per_tier!(an_insert_carrying_another_tenants_id_is_refused);
async fn an_insert_carrying_another_tenants_id_is_refused(tier: Isolation) {
    let engine = tenancy().await;
    let (_, a) = tenant(&engine, tier).await;
    let (_, b) = tenant(&engine, tier).await;
    let mut tx = a.begin().await.unwrap();
    let err = sqlx::query("INSERT INTO notes (tenant_id, id, name) VALUES ($1, $2, 'forged')")
        .bind(b.tenant_id().as_uuid())
        .bind(uuid::Uuid::now_v7())
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
    drop(tx);
    // Moving one of A's rows to B is refused the same way.
    insert_note(&a, "a-1").await;
    let mut tx = a.begin().await.unwrap();
    let err = sqlx::query("UPDATE notes SET tenant_id = $1")
        .bind(b.tenant_id().as_uuid())
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
    drop(tx);
    assert!(note_names(&b).await.is_empty());
}

per_tier!(the_runtime_role_sees_no_rows_without_a_tenant);
async fn the_runtime_role_sees_no_rows_without_a_tenant(tier: Isolation) {
    let engine = tenancy().await;
    let (record, a) = tenant(&engine, tier).await;
    insert_note(&a, "a-1").await;
    let (role, database) = match tier {
        Isolation::Database => (
            engine.naming().tenant_role(record.id),
            record.database_name.clone(),
        ),
        _ => (
            engine.naming().runtime_role(),
            engine.control_database().to_string(),
        ),
    };
    let mut conn = connect_as(&role, &database).await.unwrap();
    for sql in [
        format!("SELECT count(*) FROM {}", notes_table(&record)),
        format!(
            "SELECT count(*) FROM \"{}\".tenant_settings",
            record.schema_name
        ),
    ] {
        let n: i64 = sqlx::query_scalar(&sql).fetch_one(&mut conn).await.unwrap();
        assert_eq!(n, 0, "{sql}");
    }
    // The owner, subject to forced RLS too, also sees nothing without a tenant.
    let mut owner = connect_as(engine.owner_role(), &database).await.unwrap();
    let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", notes_table(&record)))
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

/// An engine whose pools hold one connection, so consecutive transactions share it.
async fn single_connection_engine() -> Tenancy {
    let mut config = fresh_config().await;
    config.pools = PoolConfig {
        runtime_max: 1,
        per_tenant_max: 1,
        ..PoolConfig::default()
    };
    Tenancy::open_with(config, schema()).await.unwrap()
}

per_tier!(a_pooled_connection_carries_nothing_into_the_next_transaction);
async fn a_pooled_connection_carries_nothing_into_the_next_transaction(tier: Isolation) {
    let engine = single_connection_engine().await;
    let (a_record, a) = tenant(&engine, tier).await;
    let (_, b) = tenant(&engine, tier).await;
    insert_note(&a, "a-1").await;

    let mut tx = b.begin().await.unwrap();
    let (who, db, names): (String, String, Vec<String>) = (
        sqlx::query_scalar("SELECT current_user::text")
            .fetch_one(&mut *tx)
            .await
            .unwrap(),
        sqlx::query_scalar("SELECT current_database()::text")
            .fetch_one(&mut *tx)
            .await
            .unwrap(),
        sqlx::query_scalar("SELECT name FROM notes")
            .fetch_all(&mut *tx)
            .await
            .unwrap(),
    );
    let setting: String = sqlx::query_scalar("SELECT current_setting('app.tenant_id')")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(names.is_empty(), "B saw {names:?}");
    assert_eq!(setting, b.tenant_id().to_string());
    if tier == Isolation::Database {
        // Database-tier tenants never share a connection: B's runs as B's role in B's database.
        assert_eq!(who, engine.naming().tenant_role(b.tenant_id()));
        assert_ne!(db, a_record.database_name);
    } else {
        // The one pooled connection, back from two tenant transactions, carries neither tenant.
        let mut conn = engine.control_db().acquire().await.unwrap();
        let (tenant_setting, search_path): (Option<String>, String) = sqlx::query_as(
            "SELECT nullif(current_setting('app.tenant_id', true), ''), current_setting('search_path')",
        )
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        assert_eq!(tenant_setting, None);
        assert!(!search_path.contains("t_"), "{search_path}");
        assert!(!search_path.contains("shared"), "{search_path}");
        let visible: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM {}", notes_table(&a_record)))
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        assert_eq!(visible, 0);
    }
}

per_tier!(a_cancelled_tenant_transaction_leaves_nothing_on_the_pooled_connection);
async fn a_cancelled_tenant_transaction_leaves_nothing_on_the_pooled_connection(tier: Isolation) {
    let engine = single_connection_engine().await;
    let (record, a) = tenant(&engine, tier).await;
    insert_note(&a, "a-1").await;

    // Dropped while a statement of the transaction runs on the server.
    let cancelled = tokio::time::timeout(Duration::from_millis(200), async {
        let mut tx = a.begin().await.unwrap();
        sqlx::query("INSERT INTO notes (tenant_id, id, name) VALUES ($1, $2, 'never')")
            .bind(a.tenant_id().as_uuid())
            .bind(uuid::Uuid::now_v7())
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query("SELECT pg_sleep(2)")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    })
    .await;
    assert!(
        cancelled.is_err(),
        "the transaction should have been cancelled"
    );

    // The next transaction on the same single connection starts clean and sees no trace.
    let mut tx = a.begin().await.unwrap();
    assert_eq!(
        sqlx::query_scalar::<_, String>("SELECT name FROM notes")
            .fetch_all(&mut *tx)
            .await
            .unwrap(),
        ["a-1"]
    );
    tx.commit().await.unwrap();

    // No session of the engine is left inside a transaction.
    let mut admin = superuser_conn("postgres").await;
    let database = match tier {
        Isolation::Database => record.database_name.clone(),
        _ => engine.control_database().to_string(),
    };
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state LIKE 'idle in transaction%'",
    )
    .bind(&database)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(open, 0);
    if tier != Isolation::Database {
        let mut conn = engine.control_db().acquire().await.unwrap();
        let setting: Option<String> =
            sqlx::query_scalar("SELECT nullif(current_setting('app.tenant_id', true), '')")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        assert_eq!(setting, None);
        // SAVEPOINT outside a transaction block fails with 25P01: no transaction is left open.
        let err = sqlx::raw_sql("SAVEPOINT probe")
            .execute(&mut *conn)
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&err).as_deref(), Some("25P01"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tenant_table_in_every_database_has_forced_rls() {
    let engine = tenancy().await;
    for tier in Isolation::ALL {
        tenant(&engine, *tier).await;
    }
    for database in databases_of(&engine).await {
        let mut conn = superuser_conn(&database).await;
        let violations = lint::rls_violations(&mut conn).await.unwrap();
        assert!(violations.is_empty(), "{database}: {violations:?}");
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_attribute WHERE attname = 'tenant_id' AND attrelid IN (SELECT oid FROM pg_class WHERE relkind = 'r')",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert!(tables >= 2, "{database} has no tenant tables");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_begins_with_tenant_id_and_the_lint_catches_one_that_does_not() {
    let engine = tenancy().await;
    let (record, _) = tenant(&engine, Isolation::Schema).await;
    let mut conn = superuser_conn(engine.control_database()).await;
    for schema in ["shared", record.schema_name.as_str()] {
        let bad = lint::keys_not_led_by_tenant_id(&mut conn, schema)
            .await
            .unwrap();
        assert!(bad.is_empty(), "{schema}: {bad:?}");
    }
    sqlx::raw_sql(
        "CREATE TABLE shared.by_id (id uuid PRIMARY KEY, tenant_id uuid NOT NULL);
         CREATE TABLE shared.refers (tenant_id uuid NOT NULL, note uuid NOT NULL,
             PRIMARY KEY (tenant_id, note), UNIQUE (note, tenant_id),
             FOREIGN KEY (note) REFERENCES shared.by_id (id));",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let bad = lint::keys_not_led_by_tenant_id(&mut conn, "shared")
        .await
        .unwrap();
    assert_eq!(bad.len(), 3, "{bad:?}");
    assert!(
        bad[0].starts_with("shared.by_id: PRIMARY KEY (id)"),
        "{bad:?}"
    );
    assert!(
        bad.iter().any(|b| b.contains("FOREIGN KEY (note)")),
        "{bad:?}"
    );
    assert!(
        bad.iter().any(|b| b.contains("UNIQUE (note, tenant_id)")),
        "{bad:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_lint_catches_a_table_without_forced_rls() {
    let engine = tenancy().await;
    let mut conn = superuser_conn(engine.control_database()).await;
    sqlx::raw_sql(
        "CREATE TABLE shared.leaky (tenant_id uuid NOT NULL, secret text);
         CREATE TABLE shared.half (tenant_id uuid NOT NULL);
         ALTER TABLE shared.half ENABLE ROW LEVEL SECURITY;
         CREATE POLICY everyone ON shared.notes USING (true);",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let violations = lint::rls_violations(&mut conn).await.unwrap();
    assert_eq!(violations.len(), 3, "{violations:?}");
    assert!(violations[0].starts_with("shared.half: row-level security is not forced"));
    assert!(violations[1].starts_with("shared.leaky: row-level security is not enabled"));
    assert!(violations[2].starts_with("shared.notes: 2 permissive policies"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_engine_role_bypasses_rls_or_owns_a_table() {
    let engine = tenancy().await;
    let (record, _) = tenant(&engine, Isolation::Database).await;
    let mut conn = superuser_conn(engine.control_database()).await;
    let bypassing = lint::login_roles_bypassing_rls(&mut conn).await.unwrap();
    let ours: Vec<_> = bypassing.iter().filter(|r| r.starts_with("tt_")).collect();
    assert!(ours.is_empty(), "{ours:?}");
    let runtime = engine.naming().runtime_role();
    assert!(
        lint::relations_owned_by(&mut conn, &runtime)
            .await
            .unwrap()
            .is_empty()
    );
    let mut tenant_db = superuser_conn(&record.database_name).await;
    let tenant_role = engine.naming().tenant_role(record.id);
    assert!(
        lint::relations_owned_by(&mut tenant_db, &tenant_role)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_tier_role_connects_to_its_own_database_only() {
    let engine = tenancy().await;
    let (a, _) = tenant(&engine, Isolation::Database).await;
    let (b, _) = tenant(&engine, Isolation::Database).await;
    let a_role = engine.naming().tenant_role(a.id);
    connect_as(&a_role, &a.database_name).await.unwrap();
    for other in [
        b.database_name.as_str(),
        engine.control_database(),
        "postgres",
    ] {
        let err = connect_as(&a_role, other).await.unwrap_err();
        assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{other}: {err}");
    }
    // The runtime role cannot reach a tenant database either.
    let err = connect_as(&engine.naming().runtime_role(), &a.database_name)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"));
}
