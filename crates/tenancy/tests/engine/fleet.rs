//! Fleet migrations: applied everywhere, resumable after interruption, a no-op decided from the
//! registry, drift reported.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tenantry_tenancy::{Isolation, MigrateProgress, Quiet, SchemaVersions, Tenancy, TenantSchema};
use tenantry_testkit::superuser_conn;
use tokio::sync::Notify;

use crate::support::{fresh_config, insert_note, schema, tenant};

const ADD_LABEL: &str = "ALTER TABLE notes ADD COLUMN label text;
CREATE INDEX notes_label_idx ON notes (tenant_id, label);";

fn next_version() -> TenantSchema {
    schema().with("notes", "notes/0003_label.sql", ADD_LABEL)
}

/// Counts finished tenants and wakes the test after `stop_after` of them.
struct StopAfter {
    done: AtomicUsize,
    stop_after: usize,
    notify: Notify,
    slugs: Mutex<Vec<String>>,
}

impl MigrateProgress for StopAfter {
    fn finished(&self, slug: &str, result: &Result<SchemaVersions, String>) {
        assert!(result.is_ok(), "{slug}: {result:?}");
        self.slugs.lock().unwrap().push(slug.to_string());
        if self.done.fetch_add(1, Ordering::SeqCst) + 1 >= self.stop_after {
            self.notify.notify_one();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_resumes_after_interruption_and_then_has_nothing_to_do() {
    let config = fresh_config().await;
    let old = Tenancy::open_with(config.clone(), schema()).await.unwrap();
    let mut tenants = Vec::new();
    for tier in [
        Isolation::Shared,
        Isolation::Schema,
        Isolation::Schema,
        Isolation::Schema,
        Isolation::Schema,
        Isolation::Database,
        Isolation::Database,
    ] {
        tenants.push(tenant(&old, tier).await.0);
    }
    old.close().await;

    let new = Tenancy::open_with(config, next_version()).await.unwrap();
    let (old_version, new_version) = (schema().latest(), next_version().latest());
    let status = new.migration_status(4).await.unwrap();
    assert_eq!(status.latest, new_version);
    assert_eq!(status.shared.actual_versions, old_version);
    assert!(status.tenants.iter().all(|t| t.pending == 1), "{status:?}");

    let progress = StopAfter {
        done: AtomicUsize::new(0),
        stop_after: 2,
        notify: Notify::new(),
        slugs: Mutex::new(Vec::new()),
    };
    tokio::select! {
        report = new.migrate_fleet(1, &progress) => panic!("not interrupted: {report:?}"),
        _ = progress.notify.notified() => {}
    }
    let status = new.migration_status(4).await.unwrap();
    assert_eq!(
        status.shared.actual_versions, new_version,
        "the shared schema goes first"
    );
    let migrated = status
        .tenants
        .iter()
        .filter(|t| {
            t.isolation != Isolation::Shared && t.actual_versions == Some(new_version.clone())
        })
        .count();
    assert!(
        (2..6).contains(&migrated),
        "{migrated} of 6 migrated before the interruption"
    );

    let report = new.migrate_fleet(2, &Quiet).await.unwrap();
    assert!(!report.noop);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    // The interruption drops the run wherever it is: a tenant whose schema had just been migrated
    // but whose registry row was not yet updated is finished by the second run, which applies
    // nothing to it (its schema has the migration) and records it. So the second run reports the
    // tenants left over, plus at most that one.
    let left = 6 - migrated;
    assert!(
        (left..=left + 1).contains(&report.migrated.len()),
        "{migrated} migrated before, then: {report:?}"
    );

    let status = new.migration_status(4).await.unwrap();
    for t in &status.tenants {
        assert_eq!(
            (&t.registry_versions, t.actual_versions.as_ref(), t.pending),
            (&new_version, Some(&new_version), 0),
            "{t:?}"
        );
        assert!(t.drift.is_empty(), "{t:?}");
    }
    assert!(status.shared.drift.is_empty());

    let again = new.migrate_fleet(2, &Quiet).await.unwrap();
    assert!(again.noop);

    // The new column is there in every tier, through the door.
    for record in &tenants {
        let ctx = new.resolve(&record.slug).await.unwrap();
        insert_note(&ctx, "before-note").await;
        let mut tx = ctx.begin().await.unwrap();
        sqlx::query("UPDATE notes SET label = 'migrated'")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    // A tenant created now starts at the current version.
    let fresh = tenant(&new, Isolation::Database).await.0;
    assert_eq!(fresh.schema_versions, new_version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_noop_migrate_connects_to_no_tenant() {
    let config = fresh_config().await;
    let engine = Tenancy::open_with(config, schema()).await.unwrap();
    let (record, _) = tenant(&engine, Isolation::Database).await;
    // Were migrate to connect to the tenant database, this would make it fail.
    let mut admin = superuser_conn("postgres").await;
    sqlx::raw_sql(&format!(
        "ALTER DATABASE \"{}\" ALLOW_CONNECTIONS false",
        record.database_name
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    let report = engine.migrate_fleet(4, &Quiet).await.unwrap();
    assert!(report.noop);
    sqlx::raw_sql(&format!(
        "ALTER DATABASE \"{}\" ALLOW_CONNECTIONS true",
        record.database_name
    ))
    .execute(&mut admin)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_an_edited_migration_and_a_registry_mismatch() {
    let engine = Tenancy::open_with(fresh_config().await, schema())
        .await
        .unwrap();
    let (edited, _) = tenant(&engine, Isolation::Schema).await;
    let (mismatched, _) = tenant(&engine, Isolation::Schema).await;
    let mut admin = superuser_conn(engine.control_database()).await;
    sqlx::query(&format!(
        "UPDATE \"{}\".tenant_migrations SET checksum = 'edited' WHERE set_name = 'notes'",
        edited.schema_name
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    sqlx::query("UPDATE control.tenants SET schema_versions = '{}' WHERE id = $1")
        .bind(mismatched.id.as_uuid())
        .execute(&mut admin)
        .await
        .unwrap();
    let status = engine.migration_status(2).await.unwrap();
    let of = |slug: &str| {
        status
            .tenants
            .iter()
            .find(|t| t.slug == slug)
            .unwrap()
            .clone()
    };
    assert!(
        of(&edited.slug)
            .drift
            .iter()
            .any(|d| d.contains("changed after it ran"))
    );
    assert!(
        of(&mismatched.slug)
            .drift
            .iter()
            .any(|d| d.contains("registry says versions none"))
    );
}
