//! PostgreSQL failing under the server: the managed postmaster killed with SIGKILL while monitors
//! are being created (started again by `serve`, every acknowledged write kept, nothing but
//! `201` once ready), and its connection slots taken by another client (`503` with
//! `Retry-After`, then recovery once they are given back).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sqlx::PgConnection;

use super::{
    Org, configure, create_monitor, created_id, heartbeat, monitor_ids, no_transaction_left_open,
    unavailable,
};
use crate::support::{Server, connect, data_dir, postgres_processes};

/// The pid of the postmaster of the cluster in `data_dir`, from its `postmaster.pid`.
fn postmaster(data_dir: &Path) -> i32 {
    let text = std::fs::read_to_string(data_dir.join("pg/postmaster.pid")).unwrap();
    text.lines().next().unwrap().trim().parse().unwrap()
}

/// A client with a bound on every request: an answer that does not come is a hang, a failure.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

const BEFORE: u8 = 0;
const DOWN: u8 = 1;
const READY: u8 = 2;

/// What a writer saw: the phase when it sent the request, and the answer.
#[derive(Debug)]
enum Seen {
    Created(String),
    Unavailable(u8, String),
    Other(u8, String),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_postgres_is_started_again_and_keeps_every_acknowledged_write() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    let org = Org::new(&server, dir.path()).await;
    let phase = Arc::new(AtomicU8::new(BEFORE));
    let (created, created_when_ready) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let until = Instant::now() + Duration::from_secs(120);
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..4 {
        let (phase, created, when_ready) =
            (phase.clone(), created.clone(), created_when_ready.clone());
        let (base, key) = (server.base.clone(), org.key.clone());
        writers.spawn(async move {
            let http = client();
            let mut seen = Vec::new();
            for n in 0..10_000 {
                if when_ready.load(Ordering::Relaxed) >= 40 || Instant::now() > until {
                    break;
                }
                let at = phase.load(Ordering::SeqCst);
                let body = heartbeat(&format!("w{writer}-{n}"));
                seen.push(match create_monitor(&http, &base, &key, &body).await {
                    Ok(response) if response.status() == 201 => {
                        created.fetch_add(1, Ordering::Relaxed);
                        if at == READY {
                            when_ready.fetch_add(1, Ordering::Relaxed);
                        }
                        Seen::Created(created_id(response).await)
                    }
                    Ok(response) if response.status() == 503 => {
                        Seen::Unavailable(at, unavailable(response).await)
                    }
                    Ok(response) => Seen::Other(at, response.status().to_string()),
                    Err(e) => Seen::Other(at, e.to_string()),
                });
            }
            seen
        });
    }
    tenantry_testkit::eventually(
        "20 monitors created before the kill",
        Duration::from_secs(30),
        async || match created.load(Ordering::Relaxed) {
            done if done >= 20 => Ok(()),
            done => Err(format!("{done} created")),
        },
    )
    .await;
    let killed = postmaster(&dir.path().join("tenantry-data"));
    kill(Pid::from_raw(killed), Signal::SIGKILL).unwrap();
    phase.store(DOWN, Ordering::SeqCst);

    // Ready again within 30 s, answering /readyz all along.
    let http = client();
    tenantry_testkit::eventually(
        "ready again after the kill",
        Duration::from_secs(30),
        async || {
            let ready = http
                .get(format!("{}/readyz", server.base))
                .send()
                .await
                .unwrap();
            if ready.status() == 200 {
                return Ok(());
            }
            let code = unavailable(ready).await;
            assert_eq!(code, "not_ready");
            Err(format!("503 {code}"))
        },
    )
    .await;
    phase.store(READY, Ordering::SeqCst);
    let seen: Vec<Seen> = writers.join_all().await.into_iter().flatten().collect();
    assert_ne!(postmaster(&dir.path().join("tenantry-data")), killed);

    let odd: Vec<String> = seen
        .iter()
        .filter_map(|s| match s {
            Seen::Created(_) => None,
            Seen::Unavailable(at, code) if *at != READY && code == "database_unavailable" => None,
            Seen::Unavailable(at, code) => Some(format!("phase {at}: 503 {code}")),
            Seen::Other(at, what) => Some(format!("phase {at}: {what}")),
        })
        .collect();
    assert!(odd.is_empty(), "{odd:?}");
    assert!(created_when_ready.load(Ordering::Relaxed) >= 40);
    let stored = monitor_ids(dir.path(), &org.id).await;
    for s in &seen {
        if let Seen::Created(id) = s {
            assert!(
                stored.contains(id),
                "the acknowledged monitor {id} is missing"
            );
        }
    }
    assert!(server.stop(Signal::SIGTERM).success());
    assert!(
        postgres_processes(dir.path()).is_empty(),
        "PostgreSQL outlived the server"
    );
}

/// Opens owner connections until PostgreSQL refuses one for want of slots (`53300`).
async fn take_every_slot(dir: &Path, held: &mut Vec<PgConnection>) {
    for _ in 0..200 {
        match connect(dir, "tenantry_owner", "tenantry").await {
            Ok(conn) => held.push(conn),
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("53300") => return,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("PostgreSQL never ran out of connection slots");
}

/// 32 reads of the monitor at once, with the API key: their statuses, each `503` checked.
async fn burst(http: &reqwest::Client, base: &str, key: &str, monitor: &str) -> Vec<u16> {
    let reads = (0..32).map(|_| async {
        let response = http
            .get(format!("{base}/api/v1/monitors/{monitor}"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        if status == 503 {
            assert_eq!(unavailable(response).await, "database_unavailable");
        }
        status
    });
    futures::future::join_all(reads).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_slots_taken_by_another_client_give_503_then_recover() {
    let dir = data_dir();
    configure(dir.path(), "pg_max_connections = 40\n");
    let server = Server::start(dir.path());
    let org = Org::new(&server, dir.path()).await;
    let http = client();
    let created = create_monitor(&http, &server.base, &org.key, &heartbeat("watched"))
        .await
        .unwrap();
    let monitor = created_id(created).await;
    assert!(
        burst(&http, &server.base, &org.key, &monitor)
            .await
            .iter()
            .all(|s| *s == 200)
    );

    // Every slot taken; then the server's own connections are ended, and their slots taken too.
    let mut held = Vec::new();
    take_every_slot(dir.path(), &mut held).await;
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'tenantry_app'",
    )
    .fetch_all(&mut held[0])
    .await
    .unwrap();
    assert!(!ended.is_empty());
    take_every_slot(dir.path(), &mut held).await;
    let statuses = burst(&http, &server.base, &org.key, &monitor).await;
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert!(statuses.contains(&503), "{statuses:?}");

    // Given back: the server recovers by itself.
    drop(held);
    let mut recovered = false;
    for _ in 0..30 {
        if burst(&http, &server.base, &org.key, &monitor)
            .await
            .iter()
            .all(|s| *s == 200)
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "the server did not recover once slots were free");
    no_transaction_left_open(dir.path()).await;
    assert!(server.stop(Signal::SIGTERM).success());
}

/// A PostgreSQL of the test's own, released (stopped by its last user) however the test ends.
struct External(Option<tenantry_pg::ManagedCluster>);

impl External {
    async fn start(dir: &Path) -> External {
        let dir = dir.to_path_buf();
        // Not ephemeral: with `synchronous_commit = off`, a kill loses acknowledged commits.
        let options = tenantry_pg::ClusterOptions::default();
        let cluster = tokio::task::spawn_blocking(move || {
            tenantry_pg::ManagedCluster::acquire(&dir, &options).unwrap()
        });
        External(Some(cluster.await.unwrap()))
    }
}

impl Drop for External {
    fn drop(&mut self) {
        if let Some(cluster) = self.0.take() {
            let _ = cluster.release();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_postgres_that_restarts_is_reconnected_to() {
    // A PostgreSQL of its own, given to `serve` as its database URL.
    let external = data_dir();
    let cluster = External::start(external.path()).await;
    let url = cluster.0.as_ref().unwrap().superuser_url("postgres");
    let dir = data_dir();
    configure(dir.path(), &format!("database_url = \"{url}\"\n"));
    let server = Server::start(dir.path());
    let org = Org::new(&server, dir.path()).await;
    let http = client();
    let created = create_monitor(&http, &server.base, &org.key, &heartbeat("watched"))
        .await
        .unwrap();
    let monitor = created_id(created).await;
    let read = || {
        http.get(format!("{}/api/v1/monitors/{monitor}", server.base))
            .bearer_auth(&org.key)
            .send()
    };
    let readyz = || http.get(format!("{}/readyz", server.base)).send();

    // The whole server goes down, backends included, as with its machine.
    for pid in tenantry_pg::ManagedCluster::processes(external.path()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    tenantry_testkit::eventually(
        "every PostgreSQL process gone",
        Duration::from_secs(10),
        async || match tenantry_pg::ManagedCluster::processes(external.path()) {
            left if left.is_empty() => Ok(()),
            left => Err(format!("processes {left:?}")),
        },
    )
    .await;
    assert_eq!(unavailable(readyz().await.unwrap()).await, "not_ready");
    assert_eq!(
        unavailable(read().await.unwrap()).await,
        "database_unavailable"
    );

    // Started again by its operator: the server reconnects by itself.
    let _again = External::start(external.path()).await;
    tenantry_testkit::eventually(
        "ready again once PostgreSQL is back",
        Duration::from_secs(30),
        async || match readyz().await.unwrap().status() {
            reqwest::StatusCode::OK => Ok(()),
            status => Err(format!("status {status}")),
        },
    )
    .await;
    assert_eq!(read().await.unwrap().status(), 200);
    let created = create_monitor(&http, &server.base, &org.key, &heartbeat("after"))
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert!(server.stop(Signal::SIGTERM).success());
}
