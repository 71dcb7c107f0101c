//! A request answered without its body being read — refused before the handler (no credentials,
//! an unknown path, a body past the limit) — still gets its answer, and the client's next request
//! on the same pooled connection is served: the server reads what is left of a body it may
//! accept, or answers with `Connection: close` and lets the client finish sending before it
//! closes. Swept over body sizes from empty to past the limit, with and without a declared
//! length, many times over, because the moment the server closes decides what the client sees.

use reqwest::{Method, StatusCode};

use crate::TestApp;

/// Body sizes tried: nothing, a little, around socket buffer sizes, around the 1 MiB limit.
const SIZES: &[usize] = &[
    0, 1, 1_000, 16_384, 65_536, 100_000, 262_144, 1_048_576, 1_048_577, 2_000_000,
];

/// The bytes of a body `size` long.
fn body(size: usize) -> Vec<u8> {
    vec![b'x'; size]
}

/// The same body without a declared length: sent chunked, in pieces of 16 KiB.
fn chunked(size: usize) -> reqwest::Body {
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
        body(size).chunks(16_384).map(|c| Ok(c.to_vec())).collect();
    reqwest::Body::wrap_stream(futures::stream::iter(pieces))
}

/// One client keeping one connection, so every request after the first reuses it.
fn one_connection_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .http1_only()
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_left_unread_neither_loses_its_answer_nor_breaks_the_next_request() {
    let app = TestApp::spawn().await;
    let client = one_connection_client();
    let mut failures = Vec::new();
    let mut exchanges = 0;
    for round in 0..20 {
        for &size in SIZES {
            for declared in [true, false] {
                // Refused before any handler: no credentials, a path nothing serves.
                for (method, path, refused) in [
                    (Method::POST, "/api/v1/monitors", StatusCode::UNAUTHORIZED),
                    (Method::PUT, "/api/v1/nothing-here", StatusCode::NOT_FOUND),
                ] {
                    let request = client
                        .request(method.clone(), format!("{}{path}", app.base))
                        .header("content-type", "application/json");
                    let request = if declared {
                        request.body(body(size))
                    } else {
                        request.body(chunked(size))
                    };
                    let what = format!(
                        "round {round}: {method} {path} with {size} bytes{}",
                        if declared { "" } else { " chunked" }
                    );
                    exchanges += 1;
                    match request.send().await {
                        Ok(response) => {
                            let status = response.status();
                            // Past the limit, a declared length is refused as too large before
                            // anything else is looked at.
                            let expected = if declared && size > 1_048_576 {
                                StatusCode::PAYLOAD_TOO_LARGE
                            } else {
                                refused
                            };
                            let problem = response.text().await;
                            if status != expected && status != refused {
                                failures.push(format!("{what}: {status}"));
                            } else if let Err(error) = problem {
                                failures.push(format!("{what}: body cut short: {error:?}"));
                            }
                        }
                        Err(error) => failures.push(format!("{what}: no answer: {error:?}")),
                    }
                    // The next request on the pooled connection.
                    exchanges += 1;
                    match client.get(format!("{}/healthz", app.base)).send().await {
                        Ok(response) if response.status() == StatusCode::OK => {}
                        Ok(response) => {
                            failures.push(format!("after {what}: {}", response.status()))
                        }
                        Err(error) => failures.push(format!("after {what}: {error:?}")),
                    }
                }
            }
        }
    }
    println!("{exchanges} exchanges, {} failed", failures.len());
    assert!(
        failures.is_empty(),
        "{} of {exchanges} exchanges failed:\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_waiting_to_be_asked_for_its_body_is_refused_without_being_asked() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let app = TestApp::spawn().await;
    let address = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(
            b"POST /api/v1/monitors HTTP/1.1\r\nHost: tenantry.test\r\n\
              Content-Type: application/json\r\nContent-Length: 5000\r\n\
              Expect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
    // The answer, then the end of the connection: the body was never asked for.
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("the server closes the connection")
    .unwrap();
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 401 "), "{answer}");
    assert!(!answer.contains("100 continue"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
}
