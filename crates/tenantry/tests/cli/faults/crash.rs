//! `kill -9` of `serve` while monitors are being created, each checked at once against a port
//! that refuses (so each opens an incident, announced by webhook): after a restart on the same
//! data folder, every acknowledged monitor is there, no check slot is recorded twice, and no
//! event reached the webhook under two delivery ids.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

use super::{Org, create_monitor, created_id, monitor_ids};
use crate::support::{Server, data_dir, engine};

/// Every webhook received: (delivery id, event, incident id).
type Hooks = Arc<Mutex<Vec<(String, String, String)>>>;

async fn receiver() -> (SocketAddr, Hooks) {
    let hooks = Hooks::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = Router::new()
        .route(
            "/hooks",
            post(
                |State(hooks): State<Hooks>, headers: HeaderMap, body: Bytes| async move {
                    let payload: Value = serde_json::from_slice(&body).unwrap();
                    hooks.lock().unwrap().push((
                        headers["tenantry-delivery"].to_str().unwrap().to_string(),
                        payload["event"].as_str().unwrap().to_string(),
                        payload["incident"]["id"].as_str().unwrap().to_string(),
                    ));
                    "thanks"
                },
            ),
        )
        .with_state(hooks.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, hooks)
}

/// Creates monitors of a refused port from 3 writers until `stop` monitors were acknowledged (or
/// the server is gone); the acknowledged ids.
async fn write(base: &str, key: &str, target: &str, stop: usize, tag: &str) -> Vec<String> {
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..3 {
        let (base, key, target) = (base.to_string(), key.to_string(), target.to_string());
        let (acknowledged, tag) = (acknowledged.clone(), tag.to_string());
        writers.spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap();
            for n in 0..1_000 {
                if acknowledged.lock().unwrap().len() >= stop {
                    return;
                }
                let body = json!({"name": format!("{tag}{writer}-{n}"), "kind": "tcp",
                                  "target": target, "interval_seconds": 10, "timeout_seconds": 2});
                match create_monitor(&http, &base, &key, &body).await {
                    Ok(response) if response.status() == 201 => {
                        let id = created_id(response).await;
                        acknowledged.lock().unwrap().push(id);
                    }
                    Ok(response) => panic!("{}", response.status()),
                    // The server was killed under this request.
                    Err(_) => return,
                }
            }
        });
    }
    writers.join_all().await;
    acknowledged.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_under_writes_loses_no_acknowledged_write_and_repeats_no_check_or_alert() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    let org = Org::new(&server, dir.path()).await;
    let (hooks_at, hooks) = receiver().await;
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let channel = reqwest::Client::new()
        .post(format!("{}/api/v1/alert-channels", server.base))
        .bearer_auth(&org.key)
        .json(&json!({"name": "On call", "kind": "webhook", "url": format!("http://{hooks_at}/hooks")}))
        .send()
        .await
        .unwrap();
    assert_eq!(channel.status(), 201);

    // Killed while the writers are at it: the requests in flight die with it.
    let (base, key) = (server.base.clone(), org.key.clone());
    let target = refused.clone();
    let before = tokio::spawn(async move { write(&base, &key, &target, usize::MAX, "a").await });
    tenantry_testkit::eventually(
        "10 webhooks before the kill",
        Duration::from_secs(30),
        async || match hooks.lock().unwrap().len() {
            received if received >= 10 => Ok(()),
            received => Err(format!("{received} received")),
        },
    )
    .await;
    assert!(!server.stop(Signal::SIGKILL).success());
    let mut acknowledged = before.await.unwrap();
    assert!(!acknowledged.is_empty());

    let server = Server::start(dir.path());
    let after = write(&server.base, &org.key, &refused, 20, "b").await;
    assert!(after.len() >= 20);
    acknowledged.extend(after.iter().cloned());

    // The monitors made after the restart are checked, fail, and their incidents are announced:
    // within a minute or so, as the killed server's lease on the organization's alerts (60 s)
    // must run out first.
    let engine = engine(dir.path()).await;
    let ctx = engine
        .resolve_id(org.id.parse::<uuid::Uuid>().unwrap().into())
        .await
        .unwrap();
    let incidents_of = |ids: Vec<String>| {
        let ctx = ctx.clone();
        async move {
            let mut tx = ctx.begin_read().await.unwrap();
            let ids: Vec<uuid::Uuid> = ids.iter().map(|id| id.parse().unwrap()).collect();
            let incidents: Vec<uuid::Uuid> =
                sqlx::query_scalar("SELECT id FROM incidents WHERE monitor_id = ANY($1)")
                    .bind(&ids)
                    .fetch_all(&mut *tx)
                    .await
                    .unwrap();
            tx.commit().await.unwrap();
            incidents
                .into_iter()
                .map(|id| id.to_string())
                .collect::<HashSet<_>>()
        }
    };
    tenantry_testkit::eventually(
        "an announced incident of every monitor made after the restart",
        Duration::from_secs(120),
        async || {
            let incidents = incidents_of(after.clone()).await;
            let announced: HashSet<String> = hooks
                .lock()
                .unwrap()
                .iter()
                .map(|(_, _, incident)| incident.clone())
                .collect();
            if incidents.len() == after.len() && incidents.is_subset(&announced) {
                Ok(())
            } else {
                Err(format!(
                    "{} incidents, {} of {} announced",
                    incidents.len(),
                    incidents.intersection(&announced).count(),
                    after.len()
                ))
            }
        },
    )
    .await;

    let stored = monitor_ids(dir.path(), &org.id).await;
    for id in &acknowledged {
        assert!(
            stored.contains(id),
            "the acknowledged monitor {id} is missing"
        );
    }
    let mut tx = ctx.begin_read().await.unwrap();
    let repeated: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT monitor_id, due_at FROM check_results
                               GROUP BY monitor_id, due_at HAVING count(*) > 1) AS twice",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(repeated, 0, "check slots recorded twice");
    let mut deliveries: HashMap<(String, String), HashSet<String>> = HashMap::new();
    for (delivery, event, incident) in hooks.lock().unwrap().iter() {
        deliveries
            .entry((event.clone(), incident.clone()))
            .or_default()
            .insert(delivery.clone());
    }
    let twice: Vec<_> = deliveries.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "events delivered under two ids: {twice:?}"
    );
    engine.close().await;
    assert!(server.stop(Signal::SIGTERM).success());
}
