//! The check runners against real local servers (axum over TCP, a rustls HTTPS server with a
//! self-signed certificate, bare TCP listeners). No database needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tenantry_monitoring::checks::{
    CheckKind, CheckSpec, Checker, CheckerConfig, Outcome, USER_AGENT,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const FORBIDDEN: &str = "and private targets are forbidden";

// ---- servers --------------------------------------------------------------------------------

#[derive(Default)]
struct Seen {
    requests: AtomicUsize,
    active: AtomicUsize,
    max_active: AtomicUsize,
    last: Mutex<Option<(Method, String)>>,
}

type Shared = Arc<Seen>;

fn redirect(to: String) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
}

/// The target service: a handful of behaviours by path. Every request is counted.
fn target_app(seen: Shared) -> Router {
    Router::new()
        .route("/ok", get(|| async { "hello, monitor" }))
        .route("/echo", get(echo))
        .route("/redirect", get(|| async { redirect("/ok".into()) }))
        .route("/chain/{n}", get(chain))
        .route("/loop", get(|| async { redirect("/loop".into()) }))
        .route(
            "/error",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .route("/not-modified", get(|| async { StatusCode::NOT_MODIFIED }))
        .route("/sleepy", get(sleepy))
        .route("/busy", get(busy))
        .route("/big-early", get(|| async { big_body(0) }))
        .route("/big-late", get(|| async { big_body(1536 * 1024) }))
        .layer(axum::middleware::from_fn_with_state(seen.clone(), count))
        .with_state(seen)
}

async fn count(
    State(seen): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    next.run(request).await
}

async fn echo(State(seen): State<Shared>, method: Method, headers: HeaderMap) -> &'static str {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    *seen.last.lock().unwrap() = Some((method, agent));
    "echoed"
}

async fn chain(Path(n): Path<u32>) -> Response {
    if n == 0 {
        "end of chain".into_response()
    } else {
        redirect(format!("/chain/{}", n - 1))
    }
}

async fn sleepy() -> &'static str {
    tokio::time::sleep(Duration::from_secs(5)).await;
    "finally"
}

/// Holds each request 200 ms, recording how many were in progress at once.
async fn busy(State(seen): State<Shared>) -> &'static str {
    let now = seen.active.fetch_add(1, Ordering::SeqCst) + 1;
    seen.max_active.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    seen.active.fetch_sub(1, Ordering::SeqCst);
    "done"
}

/// 2 MiB of filler with `NEEDLE` at `at`.
fn big_body(at: usize) -> Vec<u8> {
    let mut body = vec![b'.'; 2 * 1024 * 1024];
    body[at..at + 6].copy_from_slice(b"NEEDLE");
    body
}

/// Serves the target app on `ip`, port 0; returns its address and request counters.
async fn serve_on(ip: &str) -> (SocketAddr, Shared) {
    let seen = Shared::default();
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = target_app(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

async fn serve() -> (SocketAddr, Shared) {
    serve_on("127.0.0.1").await
}

/// A server on `ip` whose every path redirects to `to`.
async fn serve_redirect_on(ip: &str, to: String) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(move || {
        let to = to.clone();
        async move { redirect(to) }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// An HTTPS server with a fresh self-signed certificate for `localhost`, answering every request
/// with `200 secure`. Returns its port and the certificate (PEM).
async fn serve_self_signed_https() -> (u16, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = certified.cert.pem();
    let cert_der = certified.cert.der().clone();
    let key_der = tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(
        certified.signing_key.serialize_der().into(),
    );
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der], key_der)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let response =
                    "HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nsecure";
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, cert_pem)
}

/// A port nothing listens on (bound, then closed).
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

// ---- checks ---------------------------------------------------------------------------------

fn checker() -> Checker {
    Checker::new(CheckerConfig::default()).unwrap()
}

fn guarded(allowed: &[&str]) -> Checker {
    Checker::new(CheckerConfig {
        forbid_private_targets: true,
        allowed_private_addresses: allowed
            .iter()
            .map(|a| a.parse::<IpAddr>().unwrap())
            .collect(),
        ..CheckerConfig::default()
    })
    .unwrap()
}

fn http(target: impl Into<String>) -> CheckSpec {
    CheckSpec {
        kind: CheckKind::Http,
        target: target.into(),
        keyword: None,
        timeout: Duration::from_secs(5),
    }
}

fn keyword(target: impl Into<String>, keyword: &str) -> CheckSpec {
    CheckSpec {
        kind: CheckKind::Keyword,
        keyword: Some(keyword.into()),
        ..http(target)
    }
}

fn tcp(target: impl Into<String>) -> CheckSpec {
    CheckSpec {
        kind: CheckKind::Tcp,
        ..http(target)
    }
}

#[track_caller]
fn assert_down(outcome: &Outcome, error_contains: &str) {
    assert!(!outcome.ok, "expected down, got {outcome:?}");
    let error = outcome.error.as_deref().unwrap_or_default();
    assert!(
        error.contains(error_contains),
        "expected {error_contains:?} in {outcome:?}"
    );
}

#[track_caller]
fn assert_up(outcome: &Outcome, status: Option<i32>) {
    assert!(outcome.ok, "expected up, got {outcome:?}");
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.status_code, status);
    assert!(outcome.latency_ms >= 0);
}

// ---- http -----------------------------------------------------------------------------------

#[tokio::test]
async fn http_200_is_up() {
    let (addr, _) = serve().await;
    assert_up(
        &checker().run(&http(format!("http://{addr}/ok"))).await,
        Some(200),
    );
}

#[tokio::test]
async fn http_sends_get_with_the_tenantry_user_agent() {
    let (addr, seen) = serve().await;
    assert_up(
        &checker().run(&http(format!("http://{addr}/echo"))).await,
        Some(200),
    );
    let (method, agent) = seen.last.lock().unwrap().clone().unwrap();
    assert_eq!(method, Method::GET);
    assert_eq!(agent, USER_AGENT);
    assert!(agent.starts_with("Tenantry/") && agent.ends_with(" (uptime check)"));
}

#[tokio::test]
async fn a_redirect_is_followed_to_the_final_status() {
    let (addr, seen) = serve().await;
    assert_up(
        &checker()
            .run(&http(format!("http://{addr}/redirect")))
            .await,
        Some(200),
    );
    assert_eq!(seen.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn five_redirects_are_followed_and_a_sixth_is_not() {
    let (addr, _) = serve().await;
    let checker = checker();
    assert_up(
        &checker.run(&http(format!("http://{addr}/chain/5"))).await,
        Some(200),
    );
    let six = checker.run(&http(format!("http://{addr}/chain/6"))).await;
    assert_down(&six, "redirect limit (5) exceeded");
    assert_eq!(six.status_code, None);
}

#[tokio::test]
async fn a_redirect_loop_is_down_with_the_redirect_limit() {
    let (addr, seen) = serve().await;
    let outcome = checker().run(&http(format!("http://{addr}/loop"))).await;
    assert_eq!(
        outcome.error.as_deref(),
        Some("redirect limit (5) exceeded")
    );
    assert!(!outcome.ok);
    assert_eq!(
        seen.requests.load(Ordering::SeqCst),
        6,
        "the first request and 5 redirects"
    );
}

#[tokio::test]
async fn a_final_3xx_is_up() {
    let (addr, _) = serve().await;
    assert_up(
        &checker()
            .run(&http(format!("http://{addr}/not-modified")))
            .await,
        Some(304),
    );
}

#[tokio::test]
async fn http_500_is_down_with_its_status() {
    let (addr, _) = serve().await;
    let outcome = checker().run(&http(format!("http://{addr}/error"))).await;
    assert_eq!(outcome.error.as_deref(), Some("status 500"));
    assert_eq!(outcome.status_code, Some(500));
    assert!(!outcome.ok);
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let (addr, _) = serve().await;
    let spec = CheckSpec {
        timeout: Duration::from_millis(300),
        ..http(format!("http://{addr}/sleepy"))
    };
    let outcome = checker().run(&spec).await;
    assert_eq!(outcome.error.as_deref(), Some("timed out after 300 ms"));
    assert_eq!(outcome.status_code, None);
}

#[tokio::test]
async fn a_refused_connection_is_down() {
    let port = closed_port().await;
    let outcome = checker()
        .run(&http(format!("http://127.0.0.1:{port}/")))
        .await;
    assert_eq!(outcome.error.as_deref(), Some("connection refused"));
}

#[tokio::test]
async fn an_invalid_url_is_down_without_a_request() {
    let checker = checker();
    assert_down(&checker.run(&http("not a url")).await, "invalid URL");
    assert_down(
        &checker.run(&http("ftp://example.com/")).await,
        "unsupported URL scheme",
    );
}

#[tokio::test]
async fn outcomes_serialize_with_the_check_result_fields() {
    let (addr, _) = serve().await;
    let outcome = checker().run(&http(format!("http://{addr}/error"))).await;
    let json = serde_json::to_value(&outcome).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(json["status_code"], 500);
    assert_eq!(json["error"], "status 500");
    assert!(json["latency_ms"].is_i64());
}

// ---- keyword --------------------------------------------------------------------------------

#[tokio::test]
async fn keyword_present_is_up_and_absent_is_down() {
    let (addr, _) = serve().await;
    let checker = checker();
    assert_up(
        &checker
            .run(&keyword(format!("http://{addr}/ok"), "monitor"))
            .await,
        Some(200),
    );
    let absent = checker
        .run(&keyword(format!("http://{addr}/ok"), "Monitor"))
        .await;
    assert_eq!(absent.error.as_deref(), Some("keyword not found"));
    assert_eq!(absent.status_code, Some(200));
}

#[tokio::test]
async fn keyword_is_looked_for_after_redirects_and_only_on_success() {
    let (addr, _) = serve().await;
    let checker = checker();
    assert_up(
        &checker
            .run(&keyword(format!("http://{addr}/redirect"), "hello"))
            .await,
        Some(200),
    );
    let error = checker
        .run(&keyword(format!("http://{addr}/error"), "anything"))
        .await;
    assert_eq!(error.error.as_deref(), Some("status 500"));
}

#[tokio::test]
async fn keyword_must_be_in_the_first_mebibyte() {
    let (addr, _) = serve().await;
    let checker = checker();
    assert_up(
        &checker
            .run(&keyword(format!("http://{addr}/big-early"), "NEEDLE"))
            .await,
        Some(200),
    );
    let late = checker
        .run(&keyword(format!("http://{addr}/big-late"), "NEEDLE"))
        .await;
    assert_eq!(
        late.error.as_deref(),
        Some("keyword not found in the first 1 MiB")
    );
    assert_eq!(late.status_code, Some(200));
}

#[tokio::test]
async fn a_keyword_check_needs_a_keyword() {
    let (addr, seen) = serve().await;
    let spec = CheckSpec {
        keyword: None,
        ..keyword(format!("http://{addr}/ok"), "x")
    };
    assert_down(
        &checker().run(&spec).await,
        "keyword check without a keyword",
    );
    assert_eq!(seen.requests.load(Ordering::SeqCst), 0);
}

// ---- TLS ------------------------------------------------------------------------------------

#[tokio::test]
async fn a_self_signed_certificate_is_not_trusted() {
    let (port, _) = serve_self_signed_https().await;
    let outcome = checker()
        .run(&http(format!("https://localhost:{port}/")))
        .await;
    assert_eq!(
        outcome.error.as_deref(),
        Some("TLS: certificate not trusted")
    );
    assert_eq!(outcome.status_code, None);
}

#[tokio::test]
async fn the_same_server_is_up_once_its_certificate_is_trusted() {
    let (port, cert_pem) = serve_self_signed_https().await;
    let checker = Checker::new(CheckerConfig {
        extra_root_certificates: vec![cert_pem],
        ..CheckerConfig::default()
    })
    .unwrap();
    assert_up(
        &checker
            .run(&http(format!("https://localhost:{port}/")))
            .await,
        Some(200),
    );
    // Trusted, but not issued for that name: still verified.
    let other_name = checker
        .run(&http(format!("https://127.0.0.1:{port}/")))
        .await;
    assert_eq!(
        other_name.error.as_deref(),
        Some("TLS: certificate not valid for 127.0.0.1")
    );
}

// ---- tcp ------------------------------------------------------------------------------------

#[tokio::test]
async fn tcp_is_up_when_a_connection_is_accepted() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let outcome = checker().run(&tcp(addr.to_string())).await;
    assert_up(&outcome, None);
    assert!(
        listener.accept().await.is_ok(),
        "the check really connected"
    );
}

#[tokio::test]
async fn tcp_is_down_when_refused() {
    let port = closed_port().await;
    let outcome = checker().run(&tcp(format!("127.0.0.1:{port}"))).await;
    assert_eq!(outcome.error.as_deref(), Some("connection refused"));
}

#[tokio::test]
async fn tcp_needs_host_and_port() {
    assert_down(
        &checker().run(&tcp("127.0.0.1")).await,
        "expected host:port",
    );
}

// ---- SSRF guard -----------------------------------------------------------------------------

#[tokio::test]
async fn guard_off_allows_localhost() {
    let (addr, _) = serve().await;
    let checker = checker();
    assert_up(
        &checker
            .run(&http(format!("http://localhost:{}/ok", addr.port())))
            .await,
        Some(200),
    );
    assert_up(
        &checker
            .run(&tcp(format!("localhost:{}", addr.port())))
            .await,
        None,
    );
}

#[tokio::test]
async fn guard_on_refuses_a_loopback_address_before_connecting() {
    let (addr, seen) = serve().await;
    let checker = guarded(&[]);
    let outcome = checker.run(&http(format!("http://{addr}/ok"))).await;
    assert_eq!(
        outcome.error.as_deref(),
        Some("target address 127.0.0.1 is loopback and private targets are forbidden")
    );
    let outcome = checker.run(&tcp(addr.to_string())).await;
    assert_eq!(
        outcome.error.as_deref(),
        Some("target address 127.0.0.1 is loopback and private targets are forbidden")
    );
    assert_eq!(seen.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn guard_on_refuses_a_name_resolving_to_loopback() {
    let (addr, seen) = serve().await;
    let checker = guarded(&[]);
    let outcome = checker
        .run(&http(format!("http://localhost:{}/ok", addr.port())))
        .await;
    assert_down(&outcome, FORBIDDEN);
    assert_down(&outcome, "is loopback");
    assert_down(
        &checker
            .run(&tcp(format!("localhost:{}", addr.port())))
            .await,
        FORBIDDEN,
    );
    assert_eq!(seen.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn guard_on_lets_allowed_addresses_through() {
    let (addr, _) = serve_on("127.0.0.2").await;
    let outcome = guarded(&["127.0.0.2"])
        .run(&http(format!("http://{addr}/ok")))
        .await;
    assert_up(&outcome, Some(200));
}

#[tokio::test]
async fn guard_on_refuses_a_redirect_to_a_private_address() {
    let (inside, seen) = serve().await;
    // The allowed first hop (127.0.0.2) redirects to a forbidden address (127.0.0.1).
    let hop = serve_redirect_on("127.0.0.2", format!("http://{inside}/ok")).await;
    let outcome = checker().run(&http(format!("http://{hop}/"))).await;
    assert_up(&outcome, Some(200));
    assert_eq!(
        seen.requests.load(Ordering::SeqCst),
        1,
        "without the guard the chain works"
    );

    let outcome = guarded(&["127.0.0.2"])
        .run(&http(format!("http://{hop}/")))
        .await;
    assert_eq!(
        outcome.error.as_deref(),
        Some("target address 127.0.0.1 is loopback and private targets are forbidden")
    );
    assert_eq!(
        seen.requests.load(Ordering::SeqCst),
        1,
        "the guarded redirect never arrived"
    );
}

#[tokio::test]
async fn guard_on_refuses_a_redirect_to_a_name_resolving_to_a_private_address() {
    let (inside, seen) = serve().await;
    let hop = serve_redirect_on(
        "127.0.0.2",
        format!("http://localhost:{}/ok", inside.port()),
    )
    .await;
    let outcome = guarded(&["127.0.0.2"])
        .run(&http(format!("http://{hop}/")))
        .await;
    assert_down(&outcome, FORBIDDEN);
    assert_eq!(seen.requests.load(Ordering::SeqCst), 0);
}

// ---- shared limits --------------------------------------------------------------------------

#[tokio::test]
async fn no_more_than_max_in_flight_checks_run_at_once() {
    let (addr, seen) = serve().await;
    let checker = Checker::new(CheckerConfig {
        max_in_flight: 5,
        ..CheckerConfig::default()
    })
    .unwrap();
    let mut checks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let checker = checker.clone();
        let spec = CheckSpec {
            timeout: Duration::from_secs(30),
            ..http(format!("http://{addr}/busy"))
        };
        checks.spawn(async move { checker.run(&spec).await });
    }
    while let Some(outcome) = checks.join_next().await {
        assert_up(&outcome.unwrap(), Some(200));
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 20);
    let max = seen.max_active.load(Ordering::SeqCst);
    assert!(max <= 5, "{max} requests at once with max_in_flight 5");
    assert!(max >= 2, "checks did run concurrently (max {max})");
}

#[test]
fn max_in_flight_of_zero_is_refused() {
    let config = CheckerConfig {
        max_in_flight: 0,
        ..CheckerConfig::default()
    };
    assert!(Checker::new(config).is_err());
}
