//! A user's first outage, end to end: `tenantry serve` with no configuration, an HTTP monitor of
//! a real local service and a webhook channel; the service stops and a signed
//! `incident.opened` arrives; it comes back and `incident.resolved` follows.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::support::{Server, data_dir};

/// The monitored service: answers until its task is aborted (then the port refuses).
async fn service(address: SocketAddr) -> tokio::task::JoinHandle<()> {
    let listener = loop {
        // Rebinding the port the previous run released.
        match tokio::net::TcpListener::bind(address).await {
            Ok(listener) => break listener,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let app = Router::new().route("/health", get(|| async { "ok" }));
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    })
}

/// A webhook receiver: every request's headers and raw body.
async fn receiver() -> (SocketAddr, mpsc::UnboundedReceiver<(HeaderMap, Bytes)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = Router::new()
        .route(
            "/hooks",
            post(
                |State(tx): State<mpsc::UnboundedSender<(HeaderMap, Bytes)>>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let _ = tx.send((headers, body));
                    "thanks"
                },
            ),
        )
        .with_state(tx);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, rx)
}

/// The next webhook, checked: signature valid with `secret`, event as expected.
async fn next_event(
    hooks: &mut mpsc::UnboundedReceiver<(HeaderMap, Bytes)>,
    secret: &str,
    event: &str,
) -> Value {
    let (headers, body) = tokio::time::timeout(Duration::from_secs(90), hooks.recv())
        .await
        .unwrap_or_else(|_| panic!("no {event} webhook within 90 s"))
        .unwrap();
    let signature = headers["tenantry-signature"].to_str().unwrap();
    let (t, v1) = signature
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
        .unwrap_or_else(|| panic!("malformed signature {signature:?}"));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&body);
    mac.verify_slice(&hex::decode(v1).unwrap())
        .expect("the signature verifies with the channel's secret");
    uuid::Uuid::parse_str(headers["tenantry-delivery"].to_str().unwrap()).unwrap();
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload["event"], event, "{payload}");
    payload
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_service_sends_a_signed_incident_opened_and_its_return_incident_resolved() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    let http = reqwest::Client::new();
    let api = |path: &str| format!("{}{path}", server.base);

    // Checks every 10 s need the enterprise plan's minimum interval.
    let (token, org) = server.owner_of_new_org(dir.path(), "enterprise").await;
    let slug = org["slug"].as_str().unwrap();

    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let running = service(address).await;
    let (hooks_at, mut hooks) = receiver().await;
    let secret = "whsec_end-to-end-test-secret";
    let send = |path: &str, body: Value| {
        http.post(api(path))
            .bearer_auth(&token)
            .header("x-tenant", slug)
            .json(&body)
            .send()
    };
    let channel = send(
        "/api/v1/alert-channels",
        json!({"name": "On call", "kind": "webhook", "url": format!("http://{hooks_at}/hooks"), "secret": secret}),
    )
    .await
    .unwrap();
    assert_eq!(channel.status(), 201, "{:?}", channel.text().await);
    let monitor = send(
        "/api/v1/monitors",
        json!({"name": "Service", "kind": "http", "target": format!("http://{address}/health"), "interval_seconds": 10, "timeout_seconds": 2}),
    )
    .await
    .unwrap();
    assert_eq!(monitor.status(), 201);
    let monitor: Value = monitor.json().await.unwrap();
    let id = monitor["id"].as_str().unwrap().to_string();

    // Up first (checked at once).
    let status = || async {
        let read: Value = http
            .get(api(&format!("/api/v1/monitors/{id}")))
            .bearer_auth(&token)
            .header("x-tenant", slug)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        read["status"].as_str().unwrap().to_string()
    };
    tenantry_testkit::eventually("the monitor up", Duration::from_secs(30), async || {
        let status = status().await;
        if status == "up" {
            Ok(())
        } else {
            Err(format!("status {status}"))
        }
    })
    .await;
    // The check's lag is on /metrics, under the organization's slug and plan.
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(&format!(
            "tenantry_check_lag_seconds_count{{tenant=\"{slug}\",plan=\"enterprise\"}}"
        )),
        "{metrics}"
    );

    running.abort();
    let _ = running.await;
    let opened = next_event(&mut hooks, secret, "incident.opened").await;
    assert_eq!(opened["organization"]["slug"], slug);
    assert_eq!(opened["organization"]["id"], org["id"]);
    assert_eq!(opened["monitor"]["id"], id.as_str());
    assert_eq!(opened["incident"]["monitor_id"], id.as_str());
    assert!(opened["incident"]["resolved_at"].is_null());
    assert_eq!(status().await, "down");

    let _back = service(address).await;
    let resolved = next_event(&mut hooks, secret, "incident.resolved").await;
    assert_eq!(resolved["incident"]["id"], opened["incident"]["id"]);
    assert!(resolved["incident"]["resolved_at"].is_string());
    assert_eq!(status().await, "up");

    assert!(server.stop(Signal::SIGTERM).success());
}

/// A plan change that removes `webhook_alerts` keeps the organization's webhook channel but
/// stops its deliveries: the incident is recorded, the delivery notes why nothing was sent, and
/// the receiver gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_whose_feature_the_plan_lost_sends_nothing() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    let http = reqwest::Client::new();
    let (token, org) = server.owner_of_new_org(dir.path(), "enterprise").await;
    let slug = org["slug"].as_str().unwrap().to_string();
    let (hooks_at, mut hooks) = receiver().await;
    let send = |path: &str, body: Value| {
        http.post(format!("{}{path}", server.base))
            .bearer_auth(&token)
            .header("x-tenant", &slug)
            .json(&body)
            .send()
    };
    let channel = send(
        "/api/v1/alert-channels",
        json!({"name": "On call", "kind": "webhook", "url": format!("http://{hooks_at}/hooks")}),
    )
    .await
    .unwrap();
    assert_eq!(channel.status(), 201);
    // The plan loses webhooks after the channel was made.
    let lost = crate::support::tenantry(
        dir.path(),
        &["tenant", "set-feature", &slug, "webhook_alerts", "off"],
    );
    assert!(lost.status.success(), "{lost:?}");
    // Nothing listens there: the monitor goes down at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let monitor = send(
        "/api/v1/monitors",
        json!({"name": "Gone", "kind": "tcp", "target": closed.to_string(), "interval_seconds": 10, "timeout_seconds": 2, "confirmations": 1}),
    )
    .await
    .unwrap();
    assert_eq!(monitor.status(), 201);

    // The delivery is attempted and notes the plan; the channel is kept.
    let engine = crate::support::engine(dir.path()).await;
    let record = engine.find(&slug).await.unwrap();
    let operator = tenantry_tenancy::Operator::new(&engine);
    let noted = tenantry_testkit::eventually(
        "a delivery attempt noted",
        Duration::from_secs(60),
        async || {
            let mut conn = operator.tenant_storage(&record).await.unwrap();
            let error: Option<String> = sqlx::query_scalar(
                "SELECT last_error FROM alert_deliveries WHERE last_error IS NOT NULL LIMIT 1",
            )
            .fetch_optional(&mut conn)
            .await
            .unwrap()
            .flatten();
            let seen = match error {
                Some(error) => Ok(error),
                None => {
                    let rows: Vec<String> = sqlx::query_scalar(
                        "SELECT row_to_json(d)::text FROM alert_deliveries d
                         UNION ALL SELECT row_to_json(i)::text FROM incidents i
                         UNION ALL SELECT row_to_json(m)::text FROM monitors m",
                    )
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
                    Err(format!("{rows:#?}"))
                }
            };
            sqlx::Connection::close(conn).await.unwrap();
            seen
        },
    )
    .await;
    assert!(noted.contains("does not include webhook_alerts"), "{noted}");
    assert!(hooks.try_recv().is_err(), "a webhook was sent");
    let channels: Value = http
        .get(format!("{}/api/v1/alert-channels", server.base))
        .bearer_auth(&token)
        .header("x-tenant", &slug)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(channels["items"].as_array().unwrap().len(), 1);
    engine.close().await;
    assert!(server.stop(Signal::SIGTERM).success());
}
