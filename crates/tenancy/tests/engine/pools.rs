//! Database-tier pools stay within the connection budget.

use tenantry_tenancy::{Isolation, PoolConfig, Tenancy};

use crate::support::{fresh_config, insert_note, note_names, schema, tenant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_pools_are_evicted_to_stay_within_the_budget() {
    let mut config = fresh_config().await;
    config.pools = PoolConfig {
        tenant_connection_budget: 2,
        per_tenant_max: 1,
        ..PoolConfig::default()
    };
    let engine = Tenancy::open_with(config, schema()).await.unwrap();
    let mut ctxs = Vec::new();
    for _ in 0..3 {
        ctxs.push(tenant(&engine, Isolation::Database).await.1);
    }
    for (i, ctx) in ctxs.iter().enumerate() {
        insert_note(ctx, &format!("m{i}")).await;
        let stats = engine.pool_stats();
        assert!(stats.tenant_pools <= 2, "{stats:?}");
        assert!(
            stats.tenant_connections <= stats.tenant_connection_budget,
            "{stats:?}"
        );
    }
    let stats = engine.pool_stats();
    assert_eq!(stats.tenant_pool_capacity, 2);
    assert!(stats.tenant_pools_evicted >= 1, "{stats:?}");
    // The evicted tenant's pool is opened again on demand.
    assert_eq!(note_names(&ctxs[0]).await, ["m0"]);
}

/// Door transactions of the control database have connections of their own (`runtime_tx_max`):
/// past them a transaction waits, and is refused at the acquire timeout, while lookups and other
/// statements of the runtime role are served; a transaction given up while it waits takes
/// nothing with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn door_transactions_of_the_control_database_take_turns() {
    use std::time::Duration;

    let mut config = fresh_config().await;
    config.pools = PoolConfig {
        runtime_max: 3,
        runtime_tx_max: 1,
        acquire_timeout: Duration::from_millis(500),
        ..PoolConfig::default()
    };
    let engine = Tenancy::open_with(config, schema()).await.unwrap();
    let (_, shared) = tenant(&engine, Isolation::Shared).await;
    let (schema_record, schema_tenant) = tenant(&engine, Isolation::Schema).await;
    let (_, database) = tenant(&engine, Isolation::Database).await;

    let open = shared.begin().await.unwrap();
    // Another tenant of the control database waits for a connection, and is refused at the
    // acquire timeout.
    let waited = schema_tenant.begin_read().await.unwrap_err();
    assert!(
        format!("{waited:?}").contains("pool timed out"),
        "expected a pool timeout, got {waited:?}"
    );
    // Given up while waiting: nothing is held afterwards.
    assert!(
        tokio::time::timeout(Duration::from_millis(50), schema_tenant.begin())
            .await
            .is_err()
    );
    // The pool still serves the control database's lookups and other statements meanwhile,
    // and the database tier's own pools are not counted.
    engine.caches().flush();
    assert_eq!(
        engine.find(&schema_record.slug).await.unwrap().id,
        schema_record.id
    );
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(engine.control_db())
        .await
        .unwrap();
    assert_eq!(one, 1);
    insert_note(&database, "beside").await;
    open.commit().await.unwrap();

    // One after another once the first connection is back.
    for i in 0..3 {
        insert_note(&schema_tenant, &format!("n{i}")).await;
    }
    assert_eq!(note_names(&schema_tenant).await, ["n0", "n1", "n2"]);
}

/// The cache invalidation listener holds a connection of its own while the engine is open, and
/// closing the engine ends it: the caches stop serving, and the listener neither reconnects nor
/// takes the end of its connection for a loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_engine_ends_its_invalidation_listener() {
    use std::time::Duration;

    use sqlx::Connection as _;

    let engine = Tenancy::open_with(fresh_config().await, schema())
        .await
        .unwrap();
    let database = engine.control_database().to_string();
    let mut admin = sqlx::PgConnection::connect_with(&tenantry_testkit::superuser())
        .await
        .unwrap();
    let listening = async |admin: &mut sqlx::PgConnection| -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
        )
        .bind(&database)
        .bind(tenantry_tenancy::cache::LISTENER_NAME)
        .fetch_one(admin)
        .await
        .unwrap()
    };
    engine.start_cache_listener();
    for _ in 0..200 {
        if engine.caches().is_live() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(engine.caches().is_live());
    assert_eq!(listening(&mut admin).await, 1);

    engine.close().await;
    assert!(!engine.caches().is_live());
    let mut left = 1;
    for _ in 0..200 {
        left = listening(&mut admin).await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, 0, "the listener's connection outlived the engine");
    // Past the listener's reconnection delay, it has not come back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(listening(&mut admin).await, 0);
    assert!(!engine.caches().is_live());
}

/// Closing the engine closes every pool of the runtime and owner roles, the door
/// transactions' included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_engine_closes_its_pools() {
    let engine = Tenancy::open_with(fresh_config().await, schema())
        .await
        .unwrap();
    let (_, ctx) = tenant(&engine, Isolation::Shared).await;
    insert_note(&ctx, "before closing").await;
    let stats = engine.pool_stats();
    assert!(stats.runtime_connections > 0, "{stats:?}");
    engine.close().await;
    let stats = engine.pool_stats();
    assert_eq!(stats.runtime_connections, 0, "{stats:?}");
    assert_eq!(stats.owner_connections, 0, "{stats:?}");
}
