//! Moving tenants between tiers while they are read and written: every tier pair, every row
//! there exactly once afterwards, the old copy gone; interrupted moves resumed or abandoned.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::PgConnection;
use tenantry_tenancy::{
    Isolation, MoveOptions, MoveProgress, Tenancy, TenantCtx, TenantRecord, TenantStatus,
};
use tenantry_testkit::superuser_conn;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::support::{insert_note, note_names, tenancy, tenant};

macro_rules! per_pair {
    ($($name:ident: $from:ident -> $to:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                move_under_load(Isolation::$from, Isolation::$to).await
            }
        )*
    };
}

per_pair! {
    shared_to_schema: Shared -> Schema,
    shared_to_database: Shared -> Database,
    schema_to_shared: Schema -> Shared,
    schema_to_database: Schema -> Database,
    database_to_shared: Database -> Shared,
    database_to_schema: Database -> Schema,
}

fn options() -> MoveOptions {
    MoveOptions {
        drain: Duration::from_millis(500),
        gate_timeout: Duration::from_secs(30),
    }
}

/// Inserts `n` notes in one statement.
async fn seed(ctx: &TenantCtx, n: i64) {
    let mut tx = ctx.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO notes (tenant_id, id, name, body, pinned, priority, status)
         SELECT $1, gen_random_uuid(), 'seeded ' || i, 'body ' || i, i % 2 = 0, 30 + i % 60, 'done'
         FROM generate_series(1, $2) AS i",
    )
    .bind(ctx.tenant_id().as_uuid())
    .bind(n)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("UPDATE tenant_settings SET timezone = 'Europe/Paris', data = '{\"a\": [1, 2]}'")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn note_ids(ctx: &TenantCtx) -> Vec<Uuid> {
    let mut tx = ctx.begin_read().await.unwrap();
    let ids = sqlx::query_scalar("SELECT id FROM notes ORDER BY id")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    ids
}

/// Whether the placement `record` names still holds anything of the tenant.
async fn placement_exists(conn: &mut PgConnection, record: &TenantRecord) -> bool {
    match record.isolation {
        Isolation::Database => {
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&record.database_name)
                .fetch_one(&mut *conn)
                .await
                .unwrap()
        }
        Isolation::Schema => {
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(&record.schema_name)
                .fetch_one(&mut *conn)
                .await
                .unwrap()
        }
        Isolation::Shared => {
            let rows: i64 = sqlx::query_scalar(
                "SELECT (SELECT count(*) FROM shared.notes WHERE tenant_id = $1)
                      + (SELECT count(*) FROM shared.tenant_settings WHERE tenant_id = $1)
                      + (SELECT count(*) FROM shared.ledger WHERE tenant_id = $1)",
            )
            .bind(record.id.as_uuid())
            .fetch_one(&mut *conn)
            .await
            .unwrap();
            rows > 0
        }
    }
}

async fn role_exists(conn: &mut PgConnection, engine: &Tenancy, record: &TenantRecord) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
        .bind(engine.naming().tenant_role(record.id))
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

async fn move_under_load(from: Isolation, to: Isolation) {
    let engine = tenancy().await;
    let (record, ctx) = tenant(&engine, from).await;
    let (_, neighbour) = tenant(&engine, from).await;
    seed(&ctx, 2_000).await;
    insert_note(&neighbour, "neighbour's").await;
    let before = note_ids(&ctx).await;

    // Writers keep inserting through the context they resolved before the move; readers look
    // the tenant up for every read, as requests do.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for w in 0..3 {
        let (ctx, stop, written) = (ctx.clone(), stop.clone(), written.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let id = Uuid::now_v7();
                let mut tx = ctx.begin().await.unwrap();
                sqlx::query(
                    "INSERT INTO notes (tenant_id, id, name, body) VALUES ($1, $2, $3, 'written')",
                )
                .bind(ctx.tenant_id().as_uuid())
                .bind(id)
                .bind(format!("writer {w} #{n}"))
                .execute(&mut *tx)
                .await
                .unwrap();
                tx.commit().await.unwrap();
                written.lock().await.push(id);
            }
        }));
    }
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (engine, slug, stop) = (engine.clone(), record.slug.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let mut seen = 0;
            let mut reads = 0;
            while !stop.load(Ordering::Relaxed) {
                let ctx = engine.resolve(&slug).await.unwrap();
                let mut tx = ctx.begin_read().await.unwrap();
                let count: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                assert!(
                    count >= seen,
                    "a read went back from {seen} to {count} notes"
                );
                seen = count;
                reads += 1;
            }
            reads
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    // There and back: on the way back, the writers' context names the placement being filled,
    // which must turn them away until the switch.
    let report = engine
        .move_tenant(&record.slug, to, &options(), &|_| {})
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let back = engine
        .move_tenant(&record.slug, from, &options(), &|_| {})
        .await
        .unwrap();
    assert_eq!((back.from, back.to), (to, from));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let report = engine
        .move_tenant(&record.slug, to, &options(), &|_| {})
        .await
        .map(|again| {
            assert_eq!((again.from, again.to), (from, to));
            report
        })
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    for reader in readers {
        assert!(reader.await.unwrap() > 0);
    }

    assert_eq!((report.from, report.to), (from, to));
    assert!(report.write_pause_ms > 0.0);
    let moved = engine.find(&record.slug).await.unwrap();
    assert_eq!(moved.isolation, to);
    assert_eq!(moved.status, TenantStatus::Active);

    // Every row written before and during the move is there, once.
    let written = written.lock().await.clone();
    assert!(!written.is_empty());
    let fresh = engine.resolve(&record.slug).await.unwrap();
    let after = note_ids(&fresh).await;
    let mut expected: Vec<Uuid> = before.iter().chain(&written).copied().collect();
    expected.sort();
    assert_eq!(after, expected);
    let mut tx = fresh.begin_read().await.unwrap();
    let (timezone, keyword_rows): (String, i64) = sqlx::query_as(
        "SELECT (SELECT timezone FROM tenant_settings),
                (SELECT count(*) FROM notes WHERE status = 'done')",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!((timezone.as_str(), keyword_rows), ("Europe/Paris", 2_000));
    let notes = report.tables.iter().find(|t| t.table == "notes").unwrap();
    assert!(notes.rows >= 2_000);

    // The old context still writes: the door follows the tenant.
    insert_note(&ctx, "after the move").await;
    assert!(
        note_names(&fresh)
            .await
            .contains(&"after the move".to_string())
    );

    // The neighbour is untouched; the old copy, its role and the move record are gone.
    assert_eq!(note_names(&neighbour).await, vec!["neighbour's"]);
    let mut su = superuser_conn(engine.control_database()).await;
    assert!(!placement_exists(&mut su, &record).await);
    assert!(placement_exists(&mut su, &moved).await);
    assert_eq!(
        role_exists(&mut su, &engine, &record).await,
        to == Isolation::Database
    );
    let moves: i64 = sqlx::query_scalar("SELECT count(*) FROM control.tenant_moves")
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(moves, 0);
}

/// Runs a move until `stop_at` reports it, then drops it there, as a process killed at that
/// point would.
async fn interrupt_move(
    engine: &Tenancy,
    slug: &str,
    to: Isolation,
    stop_at: fn(&MoveProgress) -> bool,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (engine2, slug2) = (engine.clone(), slug.to_string());
    let task = tokio::spawn(async move {
        let progress = move |p: MoveProgress| {
            if stop_at(&p) {
                tx.send(()).ok();
                // Hold here until the task is aborted.
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        engine2.move_tenant(&slug2, to, &options(), &progress).await
    });
    rx.recv()
        .await
        .expect("the move reached the interruption point");
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_cut_off_while_copying_resumes_and_loses_nothing() {
    let engine = tenancy().await;
    let (record, ctx) = tenant(&engine, Isolation::Schema).await;
    seed(&ctx, 500).await;
    interrupt_move(&engine, &record.slug, Isolation::Database, |p| {
        matches!(p, MoveProgress::Copied { .. })
    })
    .await;

    // Still served from where it was, and writable.
    assert_eq!(
        engine.find(&record.slug).await.unwrap().isolation,
        Isolation::Schema
    );
    insert_note(&ctx, "written between the attempts").await;

    // A move elsewhere is refused until this one is finished or abandoned.
    let refused = engine
        .move_tenant(&record.slug, Isolation::Shared, &options(), &|_| {})
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("--to database"), "{refused}");

    let report = engine
        .move_tenant(&record.slug, Isolation::Database, &options(), &|_| {})
        .await
        .unwrap();
    assert!(report.resumed);
    let fresh = engine.resolve(&record.slug).await.unwrap();
    assert_eq!(fresh.isolation(), Isolation::Database);
    let names = note_names(&fresh).await;
    assert_eq!(names.len(), 501);
    assert!(names.contains(&"written between the attempts".to_string()));
    let mut su = superuser_conn(engine.control_database()).await;
    assert!(!placement_exists(&mut su, &record).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_cut_off_after_its_switch_finishes_by_removing_the_old_copy() {
    let engine = tenancy().await;
    let (record, ctx) = tenant(&engine, Isolation::Database).await;
    seed(&ctx, 100).await;
    interrupt_move(&engine, &record.slug, Isolation::Shared, |p| {
        matches!(p, MoveProgress::Switched { .. })
    })
    .await;
    // Switched: served from the new placement already, through the old context too.
    assert_eq!(
        engine.find(&record.slug).await.unwrap().isolation,
        Isolation::Shared
    );
    insert_note(&ctx, "after the switch").await;
    let mut su = superuser_conn(engine.control_database()).await;
    assert!(placement_exists(&mut su, &record).await);

    let report = engine
        .move_tenant(&record.slug, Isolation::Shared, &options(), &|_| {})
        .await
        .unwrap();
    assert!(report.resumed);
    assert!(!placement_exists(&mut su, &record).await);
    assert!(!role_exists(&mut su, &engine, &record).await);
    assert_eq!(note_names(&ctx).await.len(), 101);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_move_leaves_the_tenant_where_it_was() {
    let engine = tenancy().await;
    let (record, ctx) = tenant(&engine, Isolation::Shared).await;
    seed(&ctx, 300).await;
    interrupt_move(&engine, &record.slug, Isolation::Schema, |p| {
        matches!(p, MoveProgress::Copied { .. })
    })
    .await;
    let target = TenantRecord {
        isolation: Isolation::Schema,
        schema_name: engine.naming().tenant_schema(record.id),
        ..record.clone()
    };
    let mut su = superuser_conn(engine.control_database()).await;
    assert!(placement_exists(&mut su, &target).await);

    assert_eq!(
        engine.abort_move(&record.slug).await.unwrap(),
        Some(Isolation::Schema)
    );
    assert!(!placement_exists(&mut su, &target).await);
    assert_eq!(engine.abort_move(&record.slug).await.unwrap(), None);
    insert_note(&ctx, "still here").await;
    assert_eq!(note_names(&ctx).await.len(), 301);
    assert_eq!(
        engine.find(&record.slug).await.unwrap().isolation,
        Isolation::Shared
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_delete_during_an_interrupted_move_removes_both_copies() {
    let engine = tenancy().await;
    let (record, ctx) = tenant(&engine, Isolation::Schema).await;
    seed(&ctx, 50).await;
    interrupt_move(&engine, &record.slug, Isolation::Database, |p| {
        matches!(p, MoveProgress::Copied { .. })
    })
    .await;
    engine
        .hard_delete(&record.slug, &record.slug)
        .await
        .unwrap();
    let target = TenantRecord {
        isolation: Isolation::Database,
        database_name: engine.naming().tenant_database(record.id),
        schema_name: "tenant".into(),
        ..record.clone()
    };
    let mut su = superuser_conn(engine.control_database()).await;
    assert!(!placement_exists(&mut su, &record).await);
    assert!(!placement_exists(&mut su, &target).await);
    assert!(!role_exists(&mut su, &engine, &record).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_to_the_same_tier_or_an_unknown_tenant_is_refused() {
    let engine = tenancy().await;
    let (record, _) = tenant(&engine, Isolation::Shared).await;
    let same = engine
        .move_tenant(&record.slug, Isolation::Shared, &options(), &|_| {})
        .await
        .unwrap_err();
    assert!(
        same.to_string().contains("already in the shared tier"),
        "{same}"
    );
    assert!(
        engine
            .move_tenant("no-such-tenant", Isolation::Schema, &options(), &|_| {})
            .await
            .is_err()
    );
}
