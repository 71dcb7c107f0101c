//! Two `tenantry serve` processes on one database share the checks of 200 monitors: every slot
//! is run exactly once, by one of them. Then one is killed (SIGKILL, leases held): the other
//! takes its slots over once the leases expire, and none of the slots it held is lost.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use chrono::{DateTime, TimeDelta, Utc};
use nix::sys::signal::Signal;
use serde_json::json;
use uuid::Uuid;

use crate::support::{Server, data_dir, engine};

const MONITORS: usize = 200;
const INTERVAL: i64 = 10;

type Hits = Arc<Mutex<HashMap<String, u64>>>;

/// A target answering every path, counting requests per monitor name.
async fn target() -> (std::net::SocketAddr, Hits) {
    let hits = Hits::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = Router::new()
        .route(
            "/m/{name}",
            get(
                |State(hits): State<Hits>, Path(name): Path<String>| async move {
                    *hits.lock().unwrap().entry(name).or_default() += 1;
                    "ok"
                },
            ),
        )
        .with_state(hits.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, hits)
}

/// Every recorded slot per monitor, oldest first.
async fn slots(ctx: &tenantry_tenancy::TenantCtx) -> BTreeMap<Uuid, Vec<DateTime<Utc>>> {
    let mut tx = ctx.begin_read().await.unwrap();
    let rows: Vec<(Uuid, DateTime<Utc>)> =
        sqlx::query_as("SELECT monitor_id, due_at FROM check_results ORDER BY due_at")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    let mut by_monitor: BTreeMap<Uuid, Vec<DateTime<Utc>>> = BTreeMap::new();
    for (monitor, due) in rows {
        by_monitor.entry(monitor).or_default().push(due);
    }
    by_monitor
}

/// Checks handled by the server behind `base`, from its `/metrics`.
async fn handled(server: &Server) -> f64 {
    let text = server.metrics().await;
    text.lines()
        .filter(|line| line.starts_with("tenantry_scheduled_checks_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_run_each_slot_once_and_a_killed_one_s_slots_are_taken_over() {
    let dir = data_dir();
    let a = Server::start(dir.path());
    // The second joins the PostgreSQL the first started in the same data folder.
    let b = Server::start(dir.path());
    let (token, org) = a.owner_of_new_org(dir.path(), "enterprise").await;
    let slug = org["slug"].as_str().unwrap().to_string();
    let (address, hits) = target().await;
    let http = reqwest::Client::new();
    let mut names = HashMap::new();
    for n in 0..MONITORS {
        // Half through each server: either writes the schedule both claim from.
        let base = if n % 2 == 0 { &a.base } else { &b.base };
        let name = format!("m{n}");
        let created = http
            .post(format!("{base}/api/v1/monitors"))
            .bearer_auth(&token)
            .header("x-tenant", &slug)
            .json(&json!({"name": name, "kind": "http", "target": format!("http://{address}/m/{name}"),
                          "interval_seconds": INTERVAL, "timeout_seconds": 2}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let created: serde_json::Value = created.json().await.unwrap();
        names.insert(
            created["id"].as_str().unwrap().parse::<Uuid>().unwrap(),
            name,
        );
    }
    let engine = engine(dir.path()).await;
    let ctx = engine
        .resolve_id(org["id"].as_str().unwrap().parse::<Uuid>().unwrap().into())
        .await
        .unwrap();

    // Three slots of every monitor, then a moment with no check in flight: as many requests as
    // results, and no new result meanwhile.
    tenantry_testkit::eventually(
        "three slots of every monitor recorded",
        Duration::from_secs(120),
        async || {
            let recorded = slots(&ctx).await;
            let done = recorded.values().filter(|s| s.len() >= 3).count();
            if done == MONITORS {
                Ok(())
            } else {
                Err(format!("{done} of {MONITORS} monitors have three slots"))
            }
        },
    )
    .await;
    let mut quiet = None;
    for _ in 0..200 {
        let before = slots(&ctx).await;
        let count: usize = before.values().map(Vec::len).sum();
        let requests = hits.lock().unwrap().clone();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let after: usize = slots(&ctx).await.values().map(Vec::len).sum();
        let again = hits.lock().unwrap().clone();
        if requests.values().sum::<u64>() == count as u64 && after == count && again == requests {
            quiet = Some((before, requests));
            break;
        }
    }
    let (recorded, requests) = quiet.expect("a moment with no check in flight");
    let (ran_a, ran_b) = (handled(&a).await, handled(&b).await);
    assert!(
        ran_a > 0.0 && ran_b > 0.0,
        "both ran checks: {ran_a}, {ran_b}"
    );
    assert_eq!(recorded.len(), MONITORS);
    {
        for (id, slots) in &recorded {
            let name = &names[id];
            assert!(slots.len() >= 3, "{name}: {slots:?}");
            // Each slot once, none skipped...
            for pair in slots.windows(2) {
                assert_eq!(
                    pair[1] - pair[0],
                    TimeDelta::seconds(INTERVAL),
                    "{name}: {slots:?}"
                );
            }
            // ...and run once: the target saw one request per recorded slot.
            assert_eq!(requests[name], slots.len() as u64, "{name}");
        }
    }

    // Killed with whatever it holds; every slot leased at that moment must still be recorded.
    let leased: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(
        "SELECT monitor_id, next_due_at FROM monitoring.schedule WHERE lease_owner IS NOT NULL",
    )
    .fetch_all(engine.control_db())
    .await
    .unwrap();
    let killed_at = Utc::now();
    assert!(!b.stop(Signal::SIGKILL).success());

    // Taken over once the leases (2 × 2 s + 30 s) expire, then checked every interval again.
    let after = tenantry_testkit::eventually(
        "the killed server's leased slots recorded and every monitor checked again",
        Duration::from_secs(90),
        async || {
            let after = slots(&ctx).await;
            let leased_done = leased
                .iter()
                .filter(|(id, due)| after.get(id).is_some_and(|s| s.contains(due)))
                .count();
            let resumed = after
                .values()
                .filter(|s| {
                    s.iter()
                        .filter(|due| **due > killed_at + TimeDelta::seconds(35))
                        .count()
                        >= 2
                })
                .count();
            if leased_done == leased.len() && resumed == after.len() {
                Ok(after)
            } else {
                Err(format!(
                    "{leased_done} of {} leased slots recorded, {resumed} of {} monitors \
                     checked twice after the kill",
                    leased.len(),
                    after.len()
                ))
            }
        },
    )
    .await;
    for (id, due) in &leased {
        assert!(
            after.get(id).is_some_and(|s| s.contains(due)),
            "{}: the slot {due} leased at the kill was never recorded",
            names[id]
        );
    }
    let hits = hits.lock().unwrap().clone();
    for (id, slots) in &after {
        let name = &names[id];
        let late: Vec<_> = slots
            .iter()
            .filter(|due| **due > killed_at + TimeDelta::seconds(35))
            .collect();
        assert!(
            late.len() >= 2,
            "{name} was not checked after the kill: {slots:?}"
        );
        // Slots stay on the monitor's grid (a takeover may skip some, never shift them).
        for pair in slots.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= TimeDelta::seconds(INTERVAL)
                    && gap.num_milliseconds() % (INTERVAL * 1000) == 0,
                "{name}: {slots:?}"
            );
        }
        // A check the killed server had started may run again; never fewer runs than results.
        assert!(hits[name] >= slots.len() as u64, "{name}");
    }
    assert!(a.stop(Signal::SIGTERM).success());
}
