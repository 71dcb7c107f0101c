//! Clients that hang up with requests in flight: the scenario (32 connections reading one
//! monitor for 2 s, five times, each run ending with requests in flight, then 12 plain requests),
//! then 1,000 requests over the API's main routes, with an API key and with a user's token, each
//! abandoned at a random moment, then 1,000 whole ones. Nothing may fail on the server's side
//! afterwards, and no connection may be left inside a transaction.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rand::Rng;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::raw::{self, exchange};
use super::{Org, create_monitor, created_id, heartbeat, monitor_ids, no_transaction_left_open};
use crate::support::{Server, data_dir};

/// One request of the mix, and the status it gets when it runs to the end.
struct Call {
    method: &'static str,
    path: String,
    bearer: String,
    tenant: Option<String>,
    body: Option<String>,
    expect: u16,
}

impl Call {
    fn bytes(&self) -> Vec<u8> {
        raw::request(
            self.method,
            &self.path,
            &self.bearer,
            self.tenant.as_deref(),
            self.body.as_deref(),
        )
    }
}

/// The `n`th request of the mix: reads and writes of monitors, the organization's pages, with
/// the API key or the owner's token.
fn call(org: &Org, monitor: &str, n: usize) -> Call {
    let key = |method, path: String, body: Option<String>, expect| Call {
        method,
        path,
        bearer: org.key.clone(),
        tenant: None,
        body,
        expect,
    };
    let user = |method, path: String, body: Option<String>, expect| Call {
        method,
        path,
        bearer: org.token.clone(),
        tenant: Some(org.slug.clone()),
        body,
        expect,
    };
    let new_monitor = || Some(heartbeat(&format!("m{n}")).to_string());
    let (id, m) = (&org.id, monitor);
    match n % 18 {
        0 => key("GET", "/api/v1/monitors".into(), None, 200),
        1 => key("GET", format!("/api/v1/monitors/{m}"), None, 200),
        2 => key("POST", "/api/v1/monitors".into(), new_monitor(), 201),
        3 => key("PUT", format!("/api/v1/monitors/{m}"), new_monitor(), 200),
        4 => key("GET", format!("/api/v1/monitors/{m}/results"), None, 200),
        5 => key("GET", format!("/api/v1/monitors/{m}/incidents"), None, 200),
        6 => key("GET", "/api/v1/alert-channels".into(), None, 200),
        7 => key("GET", "/api/v1/status-pages".into(), None, 200),
        8 => key("GET", "/api/v1/agents".into(), None, 200),
        9 => user("GET", "/api/v1/user".into(), None, 200),
        10 => user("GET", "/api/v1/organizations".into(), None, 200),
        11 => user("GET", format!("/api/v1/organizations/{id}"), None, 200),
        12 => user("GET", format!("/api/v1/monitors/{m}"), None, 200),
        13 => user("POST", "/api/v1/monitors".into(), new_monitor(), 201),
        14 => user(
            "GET",
            format!("/api/v1/organizations/{id}/members"),
            None,
            200,
        ),
        15 => user(
            "GET",
            format!("/api/v1/organizations/{id}/api-keys"),
            None,
            200,
        ),
        16 => user(
            "GET",
            format!("/api/v1/organizations/{id}/audit-logs"),
            None,
            200,
        ),
        _ => user(
            "GET",
            format!("/api/v1/organizations/{id}/usage"),
            None,
            200,
        ),
    }
}

/// 32 connections send `request` back to back for 2 s; each then sends it once more and closes
/// 0 to 3 ms later, as a load tool stopping does. The statuses of the answered ones.
async fn load_and_hang_up(address: SocketAddr, request: Arc<Vec<u8>>) -> Vec<u16> {
    let until = Instant::now() + Duration::from_secs(2);
    let mut connections = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let request = request.clone();
        connections.spawn(async move {
            let mut stream = TcpStream::connect(address).await.unwrap();
            let mut statuses = Vec::new();
            while Instant::now() < until && statuses.len() < 100_000 {
                statuses.push(exchange(&mut stream, &request).await.unwrap());
            }
            stream.write_all(&request).await.unwrap();
            let linger = rand::thread_rng().gen_range(0..3_000);
            tokio::time::sleep(Duration::from_micros(linger)).await;
            statuses
        });
    }
    connections.join_all().await.concat()
}

/// `total` requests of the mix, 32 at a time, each on a new connection closed 0 to 5 ms after
/// the request was written (most before the answer).
async fn abandon(address: SocketAddr, org: &Arc<Org>, monitor: &str, total: usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (next, org, monitor) = (next.clone(), org.clone(), monitor.to_string());
        workers.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return;
                }
                let mut stream = TcpStream::connect(address).await.unwrap();
                stream
                    .write_all(&call(&org, &monitor, n).bytes())
                    .await
                    .unwrap();
                let after = rand::thread_rng().gen_range(0..5_000);
                tokio::time::sleep(Duration::from_micros(after)).await;
            }
        });
    }
    workers.join_all().await;
}

/// `total` requests of the mix run to the end, 16 at a time: each one's call number, status and
/// (for a create) the new monitor's id.
async fn complete(
    base: &str,
    org: &Arc<Org>,
    monitor: &str,
    from: usize,
    total: usize,
) -> Vec<(usize, u16, Option<String>)> {
    let http = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(from));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (next, org, monitor) = (next.clone(), org.clone(), monitor.to_string());
        let (http, base) = (http.clone(), base.to_string());
        workers.spawn(async move {
            let mut seen = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= from + total {
                    return seen;
                }
                let call = call(&org, &monitor, n);
                let mut request = http
                    .request(call.method.parse().unwrap(), format!("{base}{}", call.path))
                    .bearer_auth(&call.bearer);
                if let Some(tenant) = &call.tenant {
                    request = request.header("x-tenant", tenant);
                }
                if let Some(body) = call.body {
                    request = request
                        .header("content-type", "application/json")
                        .body(body);
                }
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                let id = if status == 201 {
                    Some(created_id(response).await)
                } else {
                    None
                };
                seen.push((n, status, id));
            }
        });
    }
    workers.join_all().await.concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_cut_off_by_clients_leave_every_later_request_whole() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    let org = Arc::new(Org::new(&server, dir.path()).await);
    let http = reqwest::Client::new();
    let created = create_monitor(&http, &server.base, &org.key, &heartbeat("watched"))
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let monitor = created_id(created).await;
    let address = raw::address(&server.base);
    let read = Arc::new(raw::request(
        "GET",
        &format!("/api/v1/monitors/{monitor}"),
        &org.key,
        None,
        None,
    ));

    for run in 1..=5 {
        let statuses = load_and_hang_up(address, read.clone()).await;
        assert!(
            statuses.iter().all(|s| *s == 200),
            "run {run}: {} of {} not 200: {:?}",
            statuses.iter().filter(|s| **s != 200).count(),
            statuses.len(),
            statuses
                .iter()
                .filter(|s| **s != 200)
                .take(10)
                .collect::<Vec<_>>()
        );
        let mut stream = TcpStream::connect(address).await.unwrap();
        let mut plain = Vec::new();
        for _ in 0..12 {
            plain.push(exchange(&mut stream, &read).await.unwrap());
        }
        assert_eq!(plain, [200; 12], "after run {run}");
    }

    abandon(address, &org, &monitor, 1_000).await;
    let seen = complete(&server.base, &org, &monitor, 1_000, 1_000).await;
    assert_eq!(seen.len(), 1_000);
    let wrong: Vec<_> = seen
        .iter()
        .filter(|(n, status, _)| *status != call(&org, &monitor, *n).expect)
        .map(|(n, status, _)| (call(&org, &monitor, *n).path, *status))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} answers not as expected: {wrong:?}",
        wrong.len()
    );

    // In the database: nothing left inside a transaction, every acknowledged create kept.
    no_transaction_left_open(dir.path()).await;
    let stored = monitor_ids(dir.path(), &org.id).await;
    for (_, _, id) in &seen {
        if let Some(id) = id {
            assert!(
                stored.contains(id),
                "the acknowledged monitor {id} is missing"
            );
        }
    }
    assert!(server.stop(Signal::SIGTERM).success());
}
