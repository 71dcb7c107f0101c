//! Provisioning runs in recorded steps and resumes after an interruption at any of them.

use tenantry_tenancy::{Isolation, ProvisionStep, TenancyError, TenantStatus, lint};
use tenantry_testkit::superuser_conn;

use crate::support::{insert_note, new_tenant, note_names, per_tier, tenancy};

per_tier!(provisioning_interrupted_at_every_step_is_resumed);
async fn provisioning_interrupted_at_every_step_is_resumed(tier: Isolation) {
    let engine = tenancy().await;
    // For each step: complete the steps before it, do its work without recording it (a crash
    // right after the work), then resume by creating the tenant again with the same slug.
    for (completed, crashed_in) in ProvisionStep::ALL.iter().skip(1).enumerate() {
        let new = new_tenant(tier);
        let registered = engine.register(&new).await.unwrap();
        assert_eq!(registered.status, TenantStatus::Provisioning);
        for _ in 0..completed {
            engine.provision_next_step(registered.id).await.unwrap();
        }
        let before = engine.find(new.slug.as_str()).await.unwrap();
        assert_eq!(before.provision_step.next(), Some(*crashed_in));
        assert!(matches!(
            engine.resolve(new.slug.as_str()).await,
            Err(TenancyError::NotActive {
                status: TenantStatus::Provisioning,
                ..
            })
        ));
        // Activation is one atomic update: a crash leaves it either done or not started.
        if *crashed_in != ProvisionStep::Activated {
            engine
                .perform_step_unrecorded(registered.id, *crashed_in)
                .await
                .unwrap();
        }

        let resumed = engine.create_tenant(&new).await.unwrap();
        assert_eq!(
            resumed.id, registered.id,
            "resuming reuses the registered tenant"
        );
        assert_eq!(resumed.status, TenantStatus::Active);
        assert_eq!(resumed.provision_step, ProvisionStep::Activated);
        assert_eq!(resumed.schema_versions, engine.schema().latest());
        let ctx = engine.resolve(new.slug.as_str()).await.unwrap();
        insert_note(&ctx, "works").await;
        assert_eq!(note_names(&ctx).await, ["works"]);
    }
    let mut conn = superuser_conn(engine.control_database()).await;
    assert!(lint::rls_violations(&mut conn).await.unwrap().is_empty());
}

per_tier!(creating_an_active_tenants_slug_again_is_a_conflict);
async fn creating_an_active_tenants_slug_again_is_a_conflict(tier: Isolation) {
    let engine = tenancy().await;
    let new = new_tenant(tier);
    engine.create_tenant(&new).await.unwrap();
    assert!(matches!(
        engine.create_tenant(&new).await,
        Err(TenancyError::SlugTaken(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_in_another_tier_is_refused() {
    let engine = tenancy().await;
    let mut new = new_tenant(Isolation::Schema);
    engine.register(&new).await.unwrap();
    new.isolation = Isolation::Database;
    assert!(matches!(
        engine.create_tenant(&new).await,
        Err(TenancyError::Invalid(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_start_resumes_every_interrupted_tenant() {
    let engine = tenancy().await;
    let mut ids = Vec::new();
    for tier in Isolation::ALL {
        let record = engine.register(&new_tenant(*tier)).await.unwrap();
        engine.provision_next_step(record.id).await.unwrap();
        engine.provision_next_step(record.id).await.unwrap();
        ids.push(record.id);
    }
    let failures = engine.resume_provisioning().await.unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    for id in ids {
        engine.resolve_id(id).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_is_recorded_and_resumed() {
    let engine = tenancy().await;
    let new = new_tenant(Isolation::Schema);
    let record = engine.register(&new).await.unwrap();
    // Something else holds the tenant's schema name: the storage step cannot take it over.
    let mut conn = superuser_conn(engine.control_database()).await;
    sqlx::raw_sql(&format!(
        "CREATE ROLE \"blocker_{id}\"; CREATE SCHEMA \"{schema}\" AUTHORIZATION \"blocker_{id}\";
         REVOKE ALL ON SCHEMA \"{schema}\" FROM \"{owner}\"",
        id = record.id.simple(),
        schema = record.schema_name,
        owner = engine.owner_role()
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let err = engine.create_tenant(&new).await.unwrap_err();
    assert!(matches!(err, TenancyError::Unexpected(_)), "{err}");
    let failed = engine.find(new.slug.as_str()).await.unwrap();
    assert_eq!(failed.status, TenantStatus::Failed);
    assert!(failed.last_error.is_some());
    assert!(engine.resolve(new.slug.as_str()).await.is_err());

    // Once the obstacle is gone, creating the tenant again finishes it.
    sqlx::raw_sql(&format!(
        "DROP SCHEMA \"{schema}\"; DROP ROLE \"blocker_{id}\"",
        id = record.id.simple(),
        schema = record.schema_name
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let done = engine.create_tenant(&new).await.unwrap();
    assert_eq!(done.status, TenantStatus::Active);
    assert_eq!(done.last_error, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_of_every_tier_can_be_created_concurrently() {
    let engine = tenancy().await;
    let creates = (0..12).map(|i| {
        let engine = engine.clone();
        let tier = Isolation::ALL[i % 3];
        tokio::spawn(async move { engine.create_tenant(&new_tenant(tier)).await })
    });
    for created in futures::future::join_all(creates).await {
        assert_eq!(created.unwrap().unwrap().status, TenantStatus::Active);
    }
    assert_eq!(engine.list().await.unwrap().len(), 12);
}
