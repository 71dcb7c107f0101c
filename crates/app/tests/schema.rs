//! The application's tenant schema against a real PostgreSQL: every key of every tenant table
//! begins with `tenant_id` (so the tiers are interchangeable and the shared schema can be
//! distributed by `tenant_id`), and row-level security guards every table, in every tier.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tenantry_tenancy::{Isolation, NewTenant, Slug, lint};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_of_the_tenant_schema_begins_with_tenant_id_in_every_tier() {
    let engine = tenantry_testkit::open(
        tenantry_app::tenant_schema(),
        &tenantry_app::control_schemas(),
    )
    .await;
    let mut placements = vec![(engine.control_database().to_string(), "shared".to_string())];
    for tier in [Isolation::Schema, Isolation::Database] {
        let slug = format!("k{}", &Uuid::new_v4().simple().to_string()[..12]);
        let record = engine
            .create_tenant(&NewTenant {
                name: slug.clone(),
                slug: Slug::parse(&slug).unwrap(),
                isolation: tier,
                plan: None,
                server: None,
            })
            .await
            .unwrap();
        placements.push((record.database_name, record.schema_name));
    }
    for (database, schema) in placements {
        let mut conn = tenantry_testkit::superuser_conn(&database).await;
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_tables t WHERE t.schemaname = $1
               AND EXISTS (SELECT 1 FROM information_schema.columns c
                           WHERE c.table_schema = t.schemaname AND c.table_name = t.tablename
                             AND c.column_name = 'tenant_id')",
        )
        .bind(&schema)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert!(tables >= 10, "{database}.{schema}: {tables} tenant tables");
        let bad = lint::keys_not_led_by_tenant_id(&mut conn, &schema)
            .await
            .unwrap();
        assert!(bad.is_empty(), "{database}.{schema}: {bad:?}");
        let unguarded = lint::rls_violations(&mut conn).await.unwrap();
        assert!(unguarded.is_empty(), "{database}: {unguarded:?}");
    }
    engine.close().await;
}
