//! The scheduler against a real PostgreSQL and local targets: every kind of check up and down
//! through it; two instances sharing 200 monitors run each slot exactly once; an instance killed
//! mid-check has its slots taken over; claims are fair across organizations, weighted by plan,
//! skip suspended organizations and keep their reserve for organizations below the busiest;
//! the schedule is reconciled with the monitors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use chrono::{DateTime, TimeDelta, Utc};
use tenantry_monitoring::checks::{Checker, CheckerConfig};
use tenantry_monitoring::scheduler::{
    self, Ask, Claimant, Scheduler, SchedulerConfig, SchedulerMetrics,
};
use tenantry_monitoring::{self as monitoring, MonitorInput};
use tenantry_tenancy::{EngineConfig, Isolation, NewTenant, Slug, Tenancy, TenantCtx};
use tokio::sync::oneshot;
use uuid::Uuid;

async fn engine() -> Tenancy {
    open(fresh_config().await).await
}

async fn fresh_config() -> EngineConfig {
    tenantry_testkit::fresh_config_for(
        &tenantry_app::tenant_schema(),
        &tenantry_app::control_schemas(),
    )
    .await
}

async fn open(config: EngineConfig) -> Tenancy {
    Tenancy::open_full(
        config,
        tenantry_app::tenant_schema(),
        &tenantry_app::control_schemas(),
    )
    .await
    .unwrap()
}

async fn tenant(engine: &Tenancy, tier: Isolation, plan: &str) -> TenantCtx {
    let slug = format!("s{}", &Uuid::new_v4().simple().to_string()[..12]);
    let record = engine
        .create_tenant(&NewTenant {
            name: format!("Tenant {slug}"),
            slug: Slug::parse(&slug).unwrap(),
            isolation: tier,
            plan: Some(plan.to_string()),
            server: None,
        })
        .await
        .unwrap();
    engine.resolve_id(record.id).await.unwrap()
}

fn input(kind: &str, target: Option<String>, interval: i32) -> MonitorInput {
    MonitorInput {
        name: format!("{kind} {}", target.as_deref().unwrap_or("push")),
        kind: kind.to_string(),
        target,
        interval_seconds: Some(interval),
        timeout_seconds: Some(2),
        keyword: None,
        enabled: None,
        confirmations: None,
        agent_id: None,
    }
}

/// Creates the monitor and schedules it, the way the API does.
async fn create(engine: &Tenancy, ctx: &TenantCtx, input: &MonitorInput) -> Uuid {
    input.validate().unwrap();
    create_unchecked(engine, ctx, input).await
}

/// [`create`] without the API's validation (for intervals shorter than it allows).
async fn create_unchecked(engine: &Tenancy, ctx: &TenantCtx, input: &MonitorInput) -> Uuid {
    let mut tx = ctx.begin().await.unwrap();
    let monitor = monitoring::create(&mut tx, input).await.unwrap();
    scheduler::plan(
        engine.control_db(),
        ctx.tenant_id().as_uuid(),
        &monitor,
        None,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    monitor.id
}

/// Requests per path, and how long each answer takes.
#[derive(Clone, Default)]
struct Target {
    hits: Arc<Mutex<HashMap<String, u64>>>,
    delay: Duration,
}

async fn hit(State(target): State<Target>, Path(name): Path<String>) -> (StatusCode, String) {
    *target.hits.lock().unwrap().entry(name.clone()).or_default() += 1;
    tokio::time::sleep(target.delay).await;
    if name.starts_with("fail") {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "down for maintenance".into(),
        )
    } else {
        (StatusCode::OK, format!("{name} is healthy"))
    }
}

async fn serve(target: Target) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/m/{name}", get(hit))
        .with_state(target);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

fn config(workers: usize) -> SchedulerConfig {
    SchedulerConfig {
        workers,
        prefetch: workers / 2,
        poll: Duration::from_millis(200),
        lease_slack: Duration::from_secs(2),
        ..SchedulerConfig::default()
    }
}

/// A running scheduler and the way to stop it.
struct Instance {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    metrics: SchedulerMetrics,
}

fn start(engine: &Tenancy, config: SchedulerConfig) -> Instance {
    let metrics = SchedulerMetrics::new();
    let scheduler = Scheduler::new(
        engine.clone(),
        Checker::new(CheckerConfig::default()).unwrap(),
        config,
        metrics.clone(),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(scheduler.run(async {
        let _ = stopped.await;
    }));
    Instance {
        stop,
        task,
        metrics,
    }
}

impl Instance {
    async fn stop(self) -> u64 {
        let _ = self.stop.send(());
        self.task.await.unwrap();
        self.metrics.totals().0
    }
}

/// Every result's slot (`due_at`) and whether it passed, per monitor, oldest first.
async fn slots(ctx: &TenantCtx) -> BTreeMap<Uuid, Vec<(DateTime<Utc>, bool)>> {
    let mut tx = ctx.begin_read().await.unwrap();
    let rows: Vec<(Uuid, DateTime<Utc>, bool)> =
        sqlx::query_as("SELECT monitor_id, due_at, ok FROM check_results ORDER BY due_at")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    let mut by_monitor: BTreeMap<Uuid, Vec<(DateTime<Utc>, bool)>> = BTreeMap::new();
    for (monitor, due, ok) in rows {
        by_monitor.entry(monitor).or_default().push((due, ok));
    }
    by_monitor
}

async fn status(ctx: &TenantCtx, id: Uuid) -> String {
    let mut tx = ctx.begin_read().await.unwrap();
    let monitor = monitoring::get(&mut tx, id).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    monitor.status
}

/// Waits (up to a minute) until every monitor of `ctx` in `ids` has at least `n` results.
async fn until_checked(ctx: &TenantCtx, ids: &[Uuid], n: usize) {
    tenantry_testkit::eventually(
        &format!("every monitor checked {n} times"),
        Duration::from_secs(60),
        async || {
            let done = slots(ctx).await;
            let behind = ids
                .iter()
                .filter(|id| done.get(id).is_none_or(|s| s.len() < n))
                .count();
            if behind == 0 {
                Ok(())
            } else {
                Err(format!("{behind} monitors checked fewer times"))
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_kind_of_check_is_up_or_down_through_the_scheduler() {
    let engine = engine().await;
    let ctx = tenant(&engine, Isolation::Schema, "free").await;
    let address = serve(Target::default()).await;
    let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open_port = open.local_addr().unwrap().port();
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = |name: &str| Some(format!("http://{address}/m/{name}"));
    let keyword = |name: &str, word: &str| MonitorInput {
        keyword: Some(word.to_string()),
        ..input("keyword", url(name), 60)
    };
    let expected = [
        (
            create(&engine, &ctx, &input("http", url("web"), 60)).await,
            "up",
        ),
        (
            create(&engine, &ctx, &input("http", url("fail-web"), 60)).await,
            "down",
        ),
        (create(&engine, &ctx, &keyword("kw", "healthy")).await, "up"),
        (
            create(&engine, &ctx, &keyword("kw2", "missing")).await,
            "down",
        ),
        (
            create(
                &engine,
                &ctx,
                &input("tcp", Some(format!("127.0.0.1:{open_port}")), 60),
            )
            .await,
            "up",
        ),
        (
            create(
                &engine,
                &ctx,
                &input("tcp", Some(format!("127.0.0.1:{closed_port}")), 60),
            )
            .await,
            "down",
        ),
    ];
    // Heartbeats: one pinged just now, one created ten minutes ago and never pinged (late).
    let pinged = create(&engine, &ctx, &input("heartbeat", None, 60)).await;
    let late = create(&engine, &ctx, &input("heartbeat", None, 60)).await;
    let mut tx = ctx.begin().await.unwrap();
    monitoring::record_ping(&mut tx, pinged, Utc::now())
        .await
        .unwrap();
    sqlx::query("UPDATE monitors SET created_at = now() - interval '10 minutes' WHERE id = $1")
        .bind(late)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // Driven one step at a time: the first runs every monitor's first slot, due at its creation.
    let mut scheduler = Scheduler::new(
        engine.clone(),
        Checker::new(CheckerConfig::default()).unwrap(),
        config(8),
        SchedulerMetrics::new(),
    );
    assert_eq!(scheduler.tick().await.unwrap(), 8);
    assert_eq!(
        scheduler.tick().await.unwrap(),
        0,
        "nothing else is due yet"
    );
    // Every slot was moved on to the next one, its lease released.
    let moved: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM monitoring.schedule
         WHERE lease_owner IS NULL AND next_due_at > now() + interval '50 seconds'",
    )
    .fetch_one(engine.control_db())
    .await
    .unwrap();
    assert_eq!(moved, 8);
    let checked = slots(&ctx).await;
    for id in expected.iter().map(|e| e.0).chain([late]) {
        assert_eq!(checked[&id].len(), 1, "monitor {id}");
    }

    for (id, want) in expected {
        assert_eq!(status(&ctx, id).await, want, "monitor {id}");
    }
    assert_eq!(status(&ctx, pinged).await, "up");
    assert_eq!(status(&ctx, late).await, "down");
    let mut tx = ctx.begin_read().await.unwrap();
    let incident = monitoring::list_incidents(&mut tx, late, 10, None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(incident.len(), 1);
    assert!(
        incident[0]
            .cause
            .contains("no ping since the monitor was created"),
        "{}",
        incident[0].cause
    );
    drop(open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_run_every_slot_of_200_monitors_exactly_once() {
    let engine = engine().await;
    let target = Target::default();
    let address = serve(target.clone()).await;
    let mut tenants = Vec::new();
    for (i, tier) in [
        Isolation::Shared,
        Isolation::Schema,
        Isolation::Database,
        Isolation::Shared,
    ]
    .into_iter()
    .enumerate()
    {
        let ctx = tenant(&engine, tier, ["free", "pro", "enterprise", "free"][i]).await;
        let mut ids = Vec::new();
        for n in 0..50 {
            let name = format!("t{i}-{n}");
            // Every 5 s, below what the API allows (10 s): the slots come twice as fast, and the
            // schedule's arithmetic is the same.
            let id = create_unchecked(
                &engine,
                &ctx,
                &input("http", Some(format!("http://{address}/m/{name}")), 5),
            )
            .await;
            ids.push((id, name));
        }
        tenants.push((ctx, ids));
    }
    let interval = TimeDelta::seconds(5);
    let a = start(&engine, config(8));
    let b = start(&engine, config(8));
    // Until every monitor has three slots recorded.
    for (ctx, ids) in &tenants {
        let ids: Vec<Uuid> = ids.iter().map(|(id, _)| *id).collect();
        until_checked(ctx, &ids, 3).await;
    }
    let (ran_a, ran_b) = (a.stop().await, b.stop().await);
    assert!(
        ran_a > 0 && ran_b > 0,
        "both instances ran checks: {ran_a} and {ran_b}"
    );

    let hits = target.hits.lock().unwrap().clone();
    let mut checks = 0;
    for (ctx, ids) in &tenants {
        let recorded = slots(ctx).await;
        for (id, name) in ids {
            let slots = &recorded[id];
            assert!(slots.len() >= 3, "{name}: {} slots", slots.len());
            // Each slot once (the table is unique per slot), none skipped or lost...
            for pair in slots.windows(2) {
                assert_eq!(pair[1].0 - pair[0].0, interval, "{name}: {slots:?}");
            }
            // ...and each run once: the target saw exactly one request per recorded slot.
            assert_eq!(hits[name], slots.len() as u64, "{name}");
            assert!(slots.iter().all(|s| s.1));
            checks += slots.len();
        }
    }
    assert_eq!(checks as u64, ran_a + ran_b);
}

#[test]
fn a_killed_instance_s_checks_are_taken_over() {
    let outer = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (engine_config, engine, ctx, ids, target) = outer.block_on(async {
        let config = fresh_config().await;
        let engine = open(config.clone()).await;
        let ctx = tenant(&engine, Isolation::Shared, "free").await;
        // Answers take a second, so the instance has checks in flight much of the time.
        let target = Target {
            delay: Duration::from_secs(1),
            ..Target::default()
        };
        let address = serve(target.clone()).await;
        let mut ids = Vec::new();
        for n in 0..40 {
            ids.push(
                create(
                    &engine,
                    &ctx,
                    &input("http", Some(format!("http://{address}/m/k{n}")), 10),
                )
                .await,
            );
        }
        (config, engine, ctx, ids, target)
    });
    // The first instance: an engine and a runtime of its own, shut down mid-flight, so its
    // tasks and database connections vanish as a killed process's would.
    let doomed = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let owner = doomed.block_on(async {
        let scheduler = Scheduler::new(
            open(engine_config).await,
            Checker::new(CheckerConfig::default()).unwrap(),
            config(8),
            SchedulerMetrics::new(),
        );
        let owner = scheduler.owner();
        tokio::spawn(scheduler.run(std::future::pending::<()>()));
        owner
    });
    let (held, first_slot) = outer.block_on(async {
        until_checked(&ctx, &ids, 1).await;
        // Killed while it holds leases on checks in flight.
        for _ in 0..1500 {
            let held: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM monitoring.schedule
                 WHERE lease_owner = $1 AND lease_until > now()",
            )
            .bind(owner)
            .fetch_one(engine.control_db())
            .await
            .unwrap();
            if held > 0 {
                return (held, slots(&ctx).await);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the instance never held a lease");
    });
    doomed.shutdown_background();
    assert!(held > 0);

    outer.block_on(async {
        let survivor = start(&engine, config(8));
        // Every monitor gets its next slots from the survivor, the killed instance's once their
        // leases (2 × 2 s + 2 s) expire: well within the 10 s interval, so no slot is skipped.
        until_checked(&ctx, &ids, 4).await;
        assert!(survivor.stop().await > 0);
        let recorded = slots(&ctx).await;
        for id in &ids {
            let slots = &recorded[id];
            assert_eq!(slots[0], first_slot[id][0]);
            for pair in slots.windows(2) {
                assert_eq!(pair[1].0 - pair[0].0, TimeDelta::seconds(10), "{slots:?}");
            }
        }
        // Checks the killed instance started and never recorded ran again: as many requests
        // as results or more, never fewer.
        let requests: u64 = target.hits.lock().unwrap().values().sum();
        let results: usize = recorded.values().map(Vec::len).sum();
        assert!(requests >= results as u64);
    });
}

#[tokio::test]
async fn claims_are_fair_across_organizations_weighted_by_plan_and_skip_suspended_ones() {
    let engine = engine().await;
    let pool = engine.control_db();
    let noisy = tenant(&engine, Isolation::Shared, "free").await;
    let mut small = Vec::new();
    for _ in 0..5 {
        small.push(tenant(&engine, Isolation::Shared, "free").await);
    }
    let big = tenant(&engine, Isolation::Schema, "enterprise").await;
    let paused = tenant(&engine, Isolation::Shared, "pro").await;
    let url = Some("http://127.0.0.1:9/".to_string());
    for _ in 0..100 {
        create(&engine, &noisy, &input("http", url.clone(), 60)).await;
    }
    for ctx in &small {
        for _ in 0..2 {
            create(&engine, ctx, &input("http", url.clone(), 60)).await;
        }
    }
    for _ in 0..10 {
        create(&engine, &big, &input("http", url.clone(), 60)).await;
    }
    create(&engine, &paused, &input("http", url.clone(), 60)).await;
    engine.suspend(paused.slug()).await.unwrap();

    let first = scheduler::claim(
        pool,
        Claimant::Instances,
        Uuid::now_v7(),
        14,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(first.len(), 14);
    let count = |claims: &[scheduler::Claim], ctx: &TenantCtx| {
        claims
            .iter()
            .filter(|c| c.org_id == ctx.tenant_id().as_uuid())
            .count()
    };
    // Round one: every organization's first check, four of the enterprise plan's.
    for ctx in &small {
        assert!(count(&first, ctx) >= 1);
    }
    assert!(count(&first, &big) >= 4, "{first:?}");
    assert!(count(&first, &noisy) <= 2, "{first:?}");
    assert_eq!(count(&first, &paused), 0);

    // A second claimer gets the rest, none of the first's; then nothing is left but the
    // suspended organization's check.
    let rest = scheduler::claim(
        pool,
        Claimant::Instances,
        Uuid::now_v7(),
        1000,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(first.len() + rest.len(), 100 + 10 + 10);
    let firsts: HashSet<Uuid> = first.iter().map(|c| c.monitor_id).collect();
    assert!(rest.iter().all(|c| !firsts.contains(&c.monitor_id)));
    assert!(
        scheduler::claim(
            pool,
            Claimant::Instances,
            Uuid::now_v7(),
            10,
            Duration::from_secs(30)
        )
        .await
        .unwrap()
        .is_empty()
    );
    engine.activate(paused.slug()).await.unwrap();
    let resumed = scheduler::claim(
        pool,
        Claimant::Instances,
        Uuid::now_v7(),
        10,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].org_id, paused.tenant_id().as_uuid());
}

#[tokio::test]
async fn reconciling_schedules_unscheduled_monitors_and_drops_rows_of_deleted_ones() {
    let engine = engine().await;
    let pool = engine.control_db();
    let ctx = tenant(&engine, Isolation::Database, "free").await;
    let org = ctx.tenant_id().as_uuid();
    // A monitor that never got its row (restored from an archive, say), one disabled, and a
    // row whose monitor is gone (old enough not to be a commit in progress).
    let mut tx = ctx.begin().await.unwrap();
    let unscheduled = monitoring::create(&mut tx, &input("tcp", Some("127.0.0.1:9".into()), 60))
        .await
        .unwrap();
    let disabled = monitoring::create(
        &mut tx,
        &MonitorInput {
            enabled: Some(false),
            ..input("tcp", Some("127.0.0.1:9".into()), 60)
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let orphan = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO monitoring.schedule
             (org_id, monitor_id, interval_seconds, timeout_seconds, next_due_at, planned_at)
         VALUES ($1, $2, 60, 5, now(), now() - interval '5 minutes')",
    )
    .bind(org)
    .bind(orphan)
    .execute(pool)
    .await
    .unwrap();

    let done = scheduler::reconcile(&engine).await.unwrap();
    assert_eq!((done.added, done.removed), (1, 1));
    let rows: Vec<Uuid> =
        sqlx::query_scalar("SELECT monitor_id FROM monitoring.schedule WHERE org_id = $1")
            .bind(org)
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(rows, vec![unscheduled.id]);
    assert!(!rows.contains(&disabled.id));
    let again = scheduler::reconcile(&engine).await.unwrap();
    assert_eq!((again.added, again.removed), (0, 0));
}

#[tokio::test]
async fn an_organization_s_running_checks_count_against_its_next_claims() {
    let engine = engine().await;
    let pool = engine.control_db();
    let busy = tenant(&engine, Isolation::Shared, "free").await;
    let quiet = tenant(&engine, Isolation::Shared, "free").await;
    let url = Some("http://127.0.0.1:9/".to_string());
    for _ in 0..10 {
        create(&engine, &busy, &input("http", url.clone(), 60)).await;
    }
    let lease = Duration::from_secs(30);
    // Another instance runs three of the busy organization's checks.
    let running = scheduler::claim(pool, Claimant::Instances, Uuid::now_v7(), 3, lease)
        .await
        .unwrap();
    assert!(
        running
            .iter()
            .all(|c| c.org_id == busy.tenant_id().as_uuid())
    );
    // The quiet organization's check falls due after every one of the busy one's...
    create(&engine, &quiet, &input("http", url.clone(), 60)).await;
    // ...and still comes first: the busy one has its share running.
    let next = scheduler::claim(pool, Claimant::Instances, Uuid::now_v7(), 1, lease)
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].org_id, quiet.tenant_id().as_uuid());
}

#[tokio::test]
async fn the_reserved_part_of_a_claim_is_only_for_organizations_below_the_busiest() {
    let engine = engine().await;
    let pool = engine.control_db();
    let busy = tenant(&engine, Isolation::Shared, "free").await;
    let quiet = tenant(&engine, Isolation::Schema, "free").await;
    let url = Some("http://127.0.0.1:9/".to_string());
    for _ in 0..10 {
        create(&engine, &busy, &input("http", url.clone(), 60)).await;
    }
    let lease = Duration::from_secs(30);
    // The busy organization runs four checks somewhere.
    let running = scheduler::claim(pool, Claimant::Instances, Uuid::now_v7(), 4, lease)
        .await
        .unwrap();
    assert_eq!(running.len(), 4);
    // Room for five, of which only one for anyone: the busy organization's checks fill no
    // more than that one.
    let owner = Uuid::now_v7();
    let reserving = Ask {
        due: 5,
        unreserved: 1,
        ..Ask::due(5)
    };
    let only_busy = scheduler::claim_ahead(pool, Claimant::Instances, owner, &reserving, lease)
        .await
        .unwrap();
    assert_eq!(only_busy.len(), 1, "{only_busy:?}");
    // With three checks of the quiet organization due, the reserve takes them as well.
    for _ in 0..3 {
        create(&engine, &quiet, &input("http", url.clone(), 60)).await;
    }
    let claimed = scheduler::claim_ahead(pool, Claimant::Instances, owner, &reserving, lease)
        .await
        .unwrap();
    let quiet_id = quiet.tenant_id().as_uuid();
    assert_eq!(claimed.len(), 3, "{claimed:?}");
    assert!(claimed.iter().all(|c| c.org_id == quiet_id), "{claimed:?}");
    // Nothing of anyone's is left out of a plain claim: the rest of the busy organization's.
    let rest = scheduler::claim(pool, Claimant::Instances, owner, 100, lease)
        .await
        .unwrap();
    assert_eq!(rest.len(), 5);
}

#[tokio::test]
async fn checks_coming_due_are_claimed_within_the_lookahead_soonest_first() {
    let engine = engine().await;
    let pool = engine.control_db();
    let ctx = tenant(&engine, Isolation::Shared, "free").await;
    let org = ctx.tenant_id().as_uuid();
    let url = Some("http://127.0.0.1:9/".to_string());
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(create(&engine, &ctx, &input("http", url.clone(), 60)).await);
    }
    // Due in 1, 2, 30 and 60 seconds.
    for (id, seconds) in ids.iter().zip([1, 2, 30, 60]) {
        sqlx::query(
            "UPDATE monitoring.schedule SET next_due_at = now() + make_interval(secs => $2)
             WHERE monitor_id = $1",
        )
        .bind(id)
        .bind(seconds as f64)
        .execute(pool)
        .await
        .unwrap();
    }
    let lease = Duration::from_secs(30);
    let owner = Uuid::now_v7();
    // Nothing is due: a plain claim gets nothing.
    let due = scheduler::claim(pool, Claimant::Instances, owner, 10, lease)
        .await
        .unwrap();
    assert!(due.is_empty(), "{due:?}");
    // Within 5 s, room for one: the soonest.
    let ask = Ask {
        ahead: 1,
        ahead_unreserved: 1,
        horizon: Duration::from_secs(5),
        ..Ask::due(10)
    };
    let first = scheduler::claim_ahead(pool, Claimant::Instances, owner, &ask, lease)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].monitor_id, ids[0]);
    assert!(first[0].due_at > Utc::now());
    // Room for ten: only the other one within 5 s.
    let rest = scheduler::claim_ahead(
        pool,
        Claimant::Instances,
        owner,
        &Ask {
            ahead: 10,
            ahead_unreserved: 10,
            ..ask
        },
        lease,
    )
    .await
    .unwrap();
    assert_eq!(
        rest.iter().map(|c| c.monitor_id).collect::<Vec<_>>(),
        vec![ids[1]]
    );
    // The next one comes within the lookahead in about 25 s.
    let wait = scheduler::seconds_to_next_due(pool, Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert!((20.0..30.0).contains(&wait), "{wait}");
    assert!(rest.iter().all(|c| c.org_id == org));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_arriving_after_the_claim_keeps_a_heartbeat_monitor_up() {
    let engine = engine().await;
    let pool = engine.control_db();
    let ctx = tenant(&engine, Isolation::Shared, "free").await;
    let id = create(&engine, &ctx, &input("heartbeat", None, 60)).await;
    // Up, its last ping an hour ago (its deadline long past), its next look in a moment.
    let mut tx = ctx.begin().await.unwrap();
    sqlx::query(
        "UPDATE monitors SET created_at = now() - interval '2 hours',
                             last_ping_at = now() - interval '1 hour', status = 'up'
         WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    sqlx::query(
        "UPDATE monitoring.schedule SET next_due_at = now() + interval '900 milliseconds'
         WHERE monitor_id = $1",
    )
    .bind(id)
    .execute(pool)
    .await
    .unwrap();
    let instance = start(&engine, config(2));
    // Claimed ahead of its due time (and its monitor read then)...
    let mut leased = false;
    for _ in 0..400 {
        leased = sqlx::query_scalar(
            "SELECT lease_owner IS NOT NULL FROM monitoring.schedule WHERE monitor_id = $1",
        )
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap();
        if leased {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(leased, "the check was claimed ahead");
    // ...then the job pings before the check falls due (on an up monitor a ping only notes
    // the time: the check records the slot).
    let mut tx = ctx.begin().await.unwrap();
    let ping = monitoring::record_ping(&mut tx, id, Utc::now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ping, monitoring::Ping::Noted);
    until_checked(&ctx, &[id], 1).await;
    instance.stop().await;
    let recorded = slots(&ctx).await;
    assert_eq!(recorded[&id].len(), 1);
    assert!(recorded[&id][0].1, "the ping counted: {:?}", recorded[&id]);
    assert_eq!(status(&ctx, id).await, "up");
}
