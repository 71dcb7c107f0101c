//! No pool ever hands out a dirty connection, however a transaction is cancelled.
//!
//! Every answer of the server is delayed by a proxy, so each round trip of a transaction is an
//! await that stays pending; the operation is then dropped at its first, second, third...
//! pending await (every await point of open, query, commit and rollback), and again at timeouts
//! swept over a range of delays. After each cancellation every connection of every pool is
//! checked: none inside a transaction on the server (`pg_stat_activity`), none carrying a tenant
//! or another setting at session level, and a write that follows commits.

use std::time::Duration;

use futures::StreamExt;
use sqlx::Connection;
use tenantry_tenancy::{Isolation, PoolConfig, Tenancy, TenantCtx, TenantRecord};
use tenantry_testkit::latency::{LatencyProxy, cancel_at_pending};
use tenantry_testkit::superuser_conn;
use uuid::Uuid;

use crate::support::{fresh_config, schema, tenant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Read,
    Write,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Commit,
    Rollback,
}

struct Fixture {
    engine: Tenancy,
    proxy: LatencyProxy,
    tenants: Vec<(TenantRecord, TenantCtx)>,
    /// The role's own `search_path`, which a clean connection has.
    default_search_path: String,
}

/// An engine reaching PostgreSQL through the proxy, with pools of two connections so the same
/// connections serve every iteration, and one tenant per tier.
async fn fixture() -> Fixture {
    let mut config = fresh_config().await;
    let proxy = LatencyProxy::start(&config.owner).await;
    config.owner = proxy.options(config.owner);
    config.pools = PoolConfig {
        runtime_max: 2,
        owner_max: 2,
        tenant_connection_budget: 6,
        per_tenant_max: 2,
        ..PoolConfig::default()
    };
    let engine = Tenancy::open_with(config, schema()).await.unwrap();
    let mut tenants = Vec::new();
    for tier in Isolation::ALL {
        tenants.push(tenant(&engine, *tier).await);
    }
    let mut conn = superuser_conn(engine.control_database()).await;
    let default_search_path: String = sqlx::query_scalar("SELECT current_setting('search_path')")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
    Fixture {
        engine,
        proxy,
        tenants,
        default_search_path,
    }
}

/// One transaction of the tenant: open, a statement, then commit or roll back.
async fn transaction(ctx: &TenantCtx, mode: Mode, ending: Ending) {
    let mut tx = match mode {
        Mode::Read => ctx.begin_read().await.unwrap(),
        Mode::Write => ctx.begin().await.unwrap(),
    };
    match mode {
        Mode::Read => {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM notes")
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        }
        Mode::Write => {
            sqlx::query("INSERT INTO notes (tenant_id, id, name) VALUES ($1, $2, 'cancelled')")
                .bind(ctx.tenant_id().as_uuid())
                .bind(Uuid::now_v7())
                .execute(&mut *tx)
                .await
                .unwrap();
        }
    }
    match ending {
        Ending::Commit => tx.commit().await.unwrap(),
        Ending::Rollback => tx.rollback().await.unwrap(),
    }
}

/// A control-database transaction of the runtime pool, the owner pool's own kind of work.
async fn control_transaction(engine: &Tenancy, ending: Ending) {
    let mut tx = engine.control_db().begin().await.unwrap();
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM control.tenants")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    match ending {
        Ending::Commit => tx.commit().await.unwrap(),
        Ending::Rollback => tx.rollback().await.unwrap(),
    }
}

impl Fixture {
    /// Waits until every connection is back in its pool, then checks all of them.
    async fn assert_every_connection_clean(&self, what: &str) {
        for _ in 0..500 {
            if self.engine.pool_stats().all_idle() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let stats = self.engine.pool_stats();
        assert!(
            stats.all_idle(),
            "{what}: connections never came back: {stats:?}"
        );

        // The server's view: no session of this engine's databases inside a transaction.
        let mut databases = vec![self.engine.control_database().to_string()];
        databases.extend(
            self.tenants
                .iter()
                .filter(|(r, _)| r.isolation == Isolation::Database)
                .map(|(r, _)| r.database_name.clone()),
        );
        let mut admin = superuser_conn("postgres").await;
        let open: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT datname::text, usename::text, state FROM pg_stat_activity
              WHERE datname = ANY($1) AND state LIKE 'idle in transaction%'",
        )
        .bind(&databases)
        .fetch_all(&mut admin)
        .await
        .unwrap();
        admin.close().await.ok();
        assert!(
            open.is_empty(),
            "{what}: sessions left in a transaction: {open:?}"
        );

        // Our view: every idle connection of every pool carries nothing.
        let states = self.engine.inspect_idle_connections().await.unwrap();
        assert!(!states.is_empty());
        for state in &states {
            assert!(
                state.is_clean(&self.default_search_path),
                "{what}: a dirty pooled connection: {state:?}"
            );
        }

        // And a write that follows commits, in every tier, on every connection of each pool.
        for (_, ctx) in &self.tenants {
            let writes = (0..2).map(|_| async {
                let id = Uuid::now_v7();
                let mut tx = ctx.begin().await.unwrap();
                sqlx::query("INSERT INTO notes (tenant_id, id, name) VALUES ($1, $2, 'after')")
                    .bind(ctx.tenant_id().as_uuid())
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("{what}: a write after the cancellation failed: {e}")
                    });
                tx.commit().await.unwrap();
                id
            });
            for id in futures::future::join_all(writes).await {
                let mut tx = ctx.begin_read().await.unwrap();
                let found: i64 = sqlx::query_scalar("SELECT count(*) FROM notes WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                assert_eq!(found, 1, "{what}: a committed write is missing");
            }
        }
    }
}

const MODES: [Mode; 2] = [Mode::Read, Mode::Write];
const ENDINGS: [Ending; 2] = [Ending::Commit, Ending::Rollback];

/// Drops each kind of transaction at every pending await, in turn, until one completes, with
/// the server's answers delayed by `delay`; checks every connection after each drop. Returns
/// how many cancellations it made.
async fn sweep_await_points(fx: &Fixture, delay: Duration) -> usize {
    fx.proxy.set_delay(delay);
    let mut cancellations = 0;
    for (record, ctx) in &fx.tenants {
        for mode in MODES {
            for ending in ENDINGS {
                let mut point = 0;
                while cancel_at_pending(point, transaction(ctx, mode, ending))
                    .await
                    .is_none()
                {
                    cancellations += 1;
                    fx.assert_every_connection_clean(&format!(
                        "{} {mode:?} {ending:?} dropped at await {point} ({delay:?})",
                        record.isolation
                    ))
                    .await;
                    point += 1;
                    assert!(point < 1000, "the transaction never completed");
                }
                // With the answers delayed, open, statement and end each wait on the server;
                // without a delay an answer can already be there when it is first polled.
                assert!(
                    delay.is_zero() || point >= 3,
                    "open, statement and end each wait on the server"
                );
            }
        }
    }
    for ending in ENDINGS {
        let mut point = 0;
        while cancel_at_pending(point, control_transaction(&fx.engine, ending))
            .await
            .is_none()
        {
            cancellations += 1;
            fx.assert_every_connection_clean(&format!("control {ending:?} at await {point}"))
                .await;
            point += 1;
        }
    }
    cancellations
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_dropped_at_every_await_point_leave_every_pool_clean() {
    let fx = fixture().await;
    let mut cancellations = 0;
    for delay in [
        Duration::ZERO,
        Duration::from_micros(300),
        Duration::from_millis(2),
    ] {
        cancellations += sweep_await_points(&fx, delay).await;
    }
    println!("cancelled at {cancellations} await points");
    assert!(cancellations >= 100, "{cancellations}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_timed_out_over_a_range_of_delays_leave_every_pool_clean() {
    let fx = fixture().await;
    fx.proxy.set_delay(Duration::from_millis(1));
    let mut cancelled = 0;
    let mut completed = 0;
    // Thousands of transactions, four at a time over pools of two connections, each given a
    // timeout swept from 0 to 15 ms in 250 µs steps (the proxy holds each answer 1 ms, so the
    // timeouts fall on every round trip, and on waits for a connection).
    for round in 0..4 {
        let mut runs = Vec::new();
        for step in 0..60u64 {
            for (_, ctx) in &fx.tenants {
                for mode in MODES {
                    for ending in ENDINGS {
                        let limit = Duration::from_micros(step * 250 + round * 62);
                        runs.push(async move {
                            tokio::time::timeout(limit, transaction(ctx, mode, ending))
                                .await
                                .is_ok()
                        });
                    }
                }
            }
        }
        let mut outcomes = futures::stream::iter(runs).buffer_unordered(4);
        while let Some(done) = outcomes.next().await {
            if done {
                completed += 1;
            } else {
                cancelled += 1;
            }
        }
        fx.assert_every_connection_clean(&format!("timeouts, round {round}"))
            .await;
    }
    println!("{cancelled} transactions timed out, {completed} completed");
    assert!(cancelled >= 1000, "{cancelled} cancelled");
    assert!(completed >= 100, "{completed} completed");
}
