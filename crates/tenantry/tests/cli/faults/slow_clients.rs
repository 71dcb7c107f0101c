//! 200 clients sending their request headers a byte a second, and one its body: normal requests
//! are served meanwhile, and the server closes the slow connections (header and body read
//! timeouts) long before their requests could complete.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::raw::{self, exchange};
use super::{Org, create_monitor, created_id, heartbeat, no_transaction_left_open};
use crate::support::{Server, data_dir};

const SLOW_CLIENTS: usize = 200;
/// A slow client gives up after this many bytes, a byte a second; its request needs more.
const MOST_BYTES: usize = 60;

/// Sends `bytes` one a second until the server ends the connection, or until [`MOST_BYTES`] are
/// sent. The server's answer (empty when it just closed), or `None` if it never ended it.
async fn dribble(mut stream: TcpStream, bytes: Vec<u8>) -> Option<String> {
    for byte in bytes.iter().take(MOST_BYTES) {
        if stream.write_all(&[*byte]).await.is_err() {
            return Some(String::new());
        }
        let mut answer = Vec::new();
        match tokio::time::timeout(Duration::from_secs(1), stream.read_to_end(&mut answer)).await {
            Ok(_) => return Some(String::from_utf8_lossy(&answer).into_owned()),
            Err(_) if answer.is_empty() => {}
            // Part of an answer, then nothing for a second: the server is not closing.
            Err(_) => return None,
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_sending_a_byte_a_second_do_not_hold_up_others_and_are_cut_off() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    let org = Org::new(&server, dir.path()).await;
    let http = reqwest::Client::new();
    let created = create_monitor(&http, &server.base, &org.key, &heartbeat("watched"))
        .await
        .unwrap();
    let monitor = created_id(created).await;
    let address = raw::address(&server.base);
    let read = raw::request(
        "GET",
        &format!("/api/v1/monitors/{monitor}"),
        &org.key,
        None,
        None,
    );

    let connected = Arc::new(AtomicUsize::new(0));
    let mut slow = tokio::task::JoinSet::new();
    for _ in 0..SLOW_CLIENTS {
        let (connected, read) = (connected.clone(), read.clone());
        slow.spawn(async move {
            let stream = TcpStream::connect(address).await.unwrap();
            connected.fetch_add(1, Ordering::Relaxed);
            dribble(stream, read).await
        });
    }
    // Headers whole, then the body a byte a second.
    let body = heartbeat("slowly").to_string();
    let mut upload = raw::request("POST", "/api/v1/monitors", &org.key, None, Some(&body));
    let body_starts = upload.len() - body.len();
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(&upload[..body_starts]).await.unwrap();
    let slow_body = tokio::spawn(dribble(stream, upload.split_off(body_starts)));
    tenantry_testkit::eventually(
        "every slow client connected",
        Duration::from_secs(10),
        async || match connected.load(Ordering::Relaxed) {
            SLOW_CLIENTS => Ok(()),
            done => Err(format!("{done} of {SLOW_CLIENTS} connected")),
        },
    )
    .await;

    // Served meanwhile, on fresh connections and on one kept alive.
    let mut kept = TcpStream::connect(address).await.unwrap();
    for n in 0..50 {
        let status = if n % 2 == 0 {
            exchange(&mut kept, &read).await.unwrap()
        } else {
            let mut fresh = TcpStream::connect(address).await.unwrap();
            exchange(&mut fresh, &read).await.unwrap()
        };
        assert_eq!(status, 200, "request {n}");
    }

    let cut_off = slow.join_all().await;
    assert!(
        cut_off.iter().all(Option::is_some),
        "{} slow clients were never cut off",
        cut_off.iter().filter(|c| c.is_none()).count()
    );
    let answer = slow_body.await.unwrap().expect("the slow body was cut off");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    no_transaction_left_open(dir.path()).await;
    assert!(server.stop(Signal::SIGTERM).success());
}
