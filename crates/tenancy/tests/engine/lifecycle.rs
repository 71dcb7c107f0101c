//! Suspend, activate, soft delete, restore, and a hard delete that leaves nothing behind.

use sqlx::PgConnection;
use tenantry_tenancy::{Isolation, TenancyError, TenantId, TenantStatus};
use tenantry_testkit::superuser_conn;
use uuid::Uuid;

use crate::support::{insert_note, note_names, per_tier, tenancy, tenant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_door_admits_active_tenants_only() {
    let engine = tenancy().await;
    let (record, _) = tenant(&engine, Isolation::Shared).await;
    let slug = record.slug.as_str();

    assert_eq!(
        engine.suspend(slug).await.unwrap().status,
        TenantStatus::Suspended
    );
    assert!(matches!(
        engine.resolve(slug).await,
        Err(TenancyError::NotActive {
            status: TenantStatus::Suspended,
            ..
        })
    ));
    assert!(matches!(
        engine.suspend(slug).await,
        Err(TenancyError::InvalidState {
            action: "suspend",
            ..
        })
    ));
    assert_eq!(
        engine.activate(slug).await.unwrap().status,
        TenantStatus::Active
    );
    engine.resolve(slug).await.unwrap();

    let deleted = engine.soft_delete(slug).await.unwrap();
    assert_eq!(deleted.status, TenantStatus::Deleted);
    assert!(deleted.deleted_at.is_some());
    assert!(engine.resolve(slug).await.is_err());
    assert!(matches!(
        engine.activate(slug).await,
        Err(TenancyError::InvalidState { .. })
    ));
    let restored = engine.restore(slug).await.unwrap();
    assert_eq!(restored.status, TenantStatus::Active);
    assert_eq!(restored.deleted_at, None);
    engine.resolve(slug).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_brings_back_the_status_before_deletion_and_the_rows() {
    let engine = tenancy().await;
    let (record, ctx) = tenant(&engine, Isolation::Schema).await;
    insert_note(&ctx, "kept").await;
    engine.suspend(&record.slug).await.unwrap();
    engine.soft_delete(&record.slug).await.unwrap();
    assert_eq!(
        engine.restore(&record.slug).await.unwrap().status,
        TenantStatus::Suspended
    );
    engine.activate(&record.slug).await.unwrap();
    let ctx = engine.resolve(&record.slug).await.unwrap();
    assert_eq!(note_names(&ctx).await, ["kept"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tenants_are_not_found() {
    let engine = tenancy().await;
    for key in ["nobody", &Uuid::new_v4().to_string()] {
        assert!(matches!(
            engine.resolve(key).await,
            Err(TenancyError::NotFound(_))
        ));
        assert!(matches!(
            engine.suspend(key).await,
            Err(TenancyError::NotFound(_))
        ));
    }
}

per_tier!(hard_delete_leaves_no_trace);
async fn hard_delete_leaves_no_trace(tier: Isolation) {
    let engine = tenancy().await;
    let (doomed, doomed_ctx) = tenant(&engine, tier).await;
    let (kept, kept_ctx) = tenant(&engine, tier).await;
    insert_note(&doomed_ctx, "doomed-1").await;
    insert_note(&doomed_ctx, "doomed-2").await;
    insert_note(&kept_ctx, "kept-1").await;
    drop(doomed_ctx);

    assert!(matches!(
        engine.hard_delete(&doomed.slug, "not-the-slug").await,
        Err(TenancyError::ConfirmationMismatch { .. })
    ));
    engine.find(&doomed.slug).await.unwrap();

    engine
        .hard_delete(&doomed.slug, &doomed.slug)
        .await
        .unwrap();

    assert!(matches!(
        engine.find(&doomed.slug).await,
        Err(TenancyError::NotFound(_))
    ));
    let mut admin = superuser_conn(engine.control_database()).await;
    assert_no_trace(
        &mut admin,
        doomed.id,
        &engine.naming().tenant_role(doomed.id),
    )
    .await;
    if tier == Isolation::Database {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&doomed.database_name)
                .fetch_one(&mut admin)
                .await
                .unwrap();
        assert!(!exists, "the tenant database remains");
    }
    let mut kept_db = superuser_conn(&kept.database_name).await;
    assert_no_trace(&mut kept_db, doomed.id, "").await;
    assert_eq!(note_names(&kept_ctx).await, ["kept-1"]);
}

/// No row in any table of the connected database holds `id` in any uuid column, and no schema
/// or role is named after it.
async fn assert_no_trace(conn: &mut PgConnection, id: TenantId, role: &str) {
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text, column_name::text
         FROM information_schema.columns c
         JOIN information_schema.tables t USING (table_schema, table_name)
         WHERE c.data_type = 'uuid' AND t.table_type = 'BASE TABLE'
           AND table_schema NOT IN ('pg_catalog', 'information_schema')",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    assert!(!columns.is_empty());
    // Read as the superuser with the tenant's id set, so row-level security hides nothing of it.
    sqlx::query("SELECT set_config('app.tenant_id', $1, false)")
        .bind(id.to_string())
        .execute(&mut *conn)
        .await
        .unwrap();
    for (schema, table, column) in columns {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM \"{schema}\".\"{table}\" WHERE \"{column}\" = $1"
        ))
        .bind(id.as_uuid())
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        assert_eq!(n, 0, "{schema}.{table}.{column} still holds the tenant");
    }
    let schemas: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE '%' || $1 || '%'")
            .bind(id.simple())
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(schemas, 0);
    if !role.is_empty() {
        let roles: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE rolname = $1")
            .bind(role)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(roles, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_hard_delete_is_finished_at_start() {
    let engine = tenancy().await;
    let (record, ctx) = tenant(&engine, Isolation::Database).await;
    insert_note(&ctx, "gone").await;
    drop(ctx);
    // The purge flag is set first, as a hard delete does before it removes anything.
    sqlx::query("UPDATE control.tenants SET purging = true, status = 'deleted', deleted_at = now() WHERE id = $1")
        .bind(record.id.as_uuid())
        .execute(tenantry_tenancy::Operator::new(&engine).control())
        .await
        .unwrap();
    assert!(engine.resolve(&record.slug).await.is_err());
    assert!(engine.restore(&record.slug).await.is_err());
    let (finished, failed) = engine.resume_purges().await.unwrap();
    assert_eq!((finished, failed), (vec![record.slug.clone()], vec![]));
    assert!(matches!(
        engine.find(&record.slug).await,
        Err(TenancyError::NotFound(_))
    ));
    let mut admin = superuser_conn(engine.control_database()).await;
    assert_no_trace(
        &mut admin,
        record.id,
        &engine.naming().tenant_role(record.id),
    )
    .await;
}

/// Soft-deleted tenants past the retention window are hard-deleted once, however many workers
/// (server instances) run the purge at the same time; younger ones and live ones stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_purge_deletes_expired_tenants_once() {
    let engine = tenancy().await;
    let day = std::time::Duration::from_secs(24 * 3600);
    let mut expired = Vec::new();
    for tier in [Isolation::Shared, Isolation::Schema, Isolation::Database] {
        let (record, ctx) = tenant(&engine, tier).await;
        insert_note(&ctx, "old").await;
        drop(ctx);
        engine.soft_delete(&record.slug).await.unwrap();
        expired.push(record);
    }
    let (recent, _) = tenant(&engine, Isolation::Shared).await;
    engine.soft_delete(&recent.slug).await.unwrap();
    let (live, live_ctx) = tenant(&engine, Isolation::Shared).await;
    insert_note(&live_ctx, "live").await;
    for record in &expired {
        sqlx::query(
            "UPDATE control.tenants SET deleted_at = now() - interval '31 days' WHERE id = $1",
        )
        .bind(record.id.as_uuid())
        .execute(tenantry_tenancy::Operator::new(&engine).control())
        .await
        .unwrap();
    }

    let workers = (0..4).map(|_| engine.purge_expired(30 * day));
    let mut purged: Vec<String> = futures::future::join_all(workers)
        .await
        .into_iter()
        .flat_map(Result::unwrap)
        .collect();
    purged.sort();
    let mut wanted: Vec<String> = expired.iter().map(|r| r.slug.clone()).collect();
    wanted.sort();
    assert_eq!(purged, wanted, "each expired tenant purged exactly once");

    let mut admin = superuser_conn(engine.control_database()).await;
    for record in &expired {
        assert!(matches!(
            engine.find(&record.slug).await,
            Err(TenancyError::NotFound(_))
        ));
        assert_no_trace(
            &mut admin,
            record.id,
            &engine.naming().tenant_role(record.id),
        )
        .await;
    }
    assert_eq!(
        engine.find(&recent.slug).await.unwrap().status,
        TenantStatus::Deleted
    );
    assert_eq!(note_names(&live_ctx).await, ["live"]);
    assert_eq!(
        engine.find(&live.slug).await.unwrap().status,
        TenantStatus::Active
    );
    assert!(engine.purge_expired(30 * day).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lifecycle_change_commits_with_its_registry_transaction_or_not_at_all() {
    let engine = tenancy().await;
    let (record, _) = tenant(&engine, Isolation::Shared).await;
    let (other, _) = tenant(&engine, Isolation::Shared).await;

    // Rolled back (dropped): nothing changed.
    let mut tx = engine.begin_registry().await.unwrap();
    let suspended = engine.suspend_in(&mut tx, &record.slug).await.unwrap();
    assert_eq!(suspended.status, TenantStatus::Suspended);
    drop(tx);
    assert_eq!(
        engine.find(&record.slug).await.unwrap().status,
        TenantStatus::Active
    );

    // A refused change leaves the transaction usable for the rest of the work.
    let mut tx = engine.begin_registry().await.unwrap();
    let taken = tenantry_tenancy::Slug::parse(&other.slug).unwrap();
    assert!(matches!(
        engine
            .update_profile_in(&mut tx, &record.slug, None, Some(&taken), None)
            .await,
        Err(TenancyError::SlugTaken(_))
    ));
    engine
        .set_plan_in(&mut tx, &record.slug, "pro")
        .await
        .unwrap();
    let marker: i32 = sqlx::query_scalar("SELECT 7")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(marker, 7);
    tx.commit().await.unwrap();
    let after = engine.find(&record.slug).await.unwrap();
    assert_eq!((after.plan.as_str(), after.slug), ("pro", record.slug));
}
