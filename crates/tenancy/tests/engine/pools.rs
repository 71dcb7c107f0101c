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
