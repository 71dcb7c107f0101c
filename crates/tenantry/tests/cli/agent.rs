//! `tenantry agent` as a process: registered through the API of a running `tenantry serve`, it
//! runs the checks of the monitor assigned to it against a local service, and stops cleanly on
//! SIGINT, saying what it did.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::support::{BIN, Server, data_dir, wait_with_deadline};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_process_runs_its_monitors_checks_and_stops_on_sigint() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    let http = reqwest::Client::new();
    let api = |path: &str| format!("{}{path}", server.base);
    // Checks every 10 s need the enterprise plan's minimum interval.
    let (token, org) = server.owner_of_new_org(dir.path(), "enterprise").await;
    let slug = org["slug"].as_str().unwrap().to_string();
    let send = |path: &str, body: Value| {
        http.post(api(path))
            .bearer_auth(&token)
            .header("x-tenant", &slug)
            .json(&body)
            .send()
    };
    let agent = send("/api/v1/agents", json!({"name": "intranet"}))
        .await
        .unwrap();
    assert_eq!(agent.status(), 201);
    let agent: Value = agent.json().await.unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let service = Router::new().route("/health", get(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });
    let monitor = send(
        "/api/v1/monitors",
        json!({"name": "Intranet", "kind": "http", "target": format!("http://{address}/health"),
               "interval_seconds": 10, "timeout_seconds": 2, "agent_id": agent["id"]}),
    )
    .await
    .unwrap();
    assert_eq!(monitor.status(), 201);
    let monitor: Value = monitor.json().await.unwrap();
    let id = monitor["id"].as_str().unwrap().to_string();

    let mut process = Command::new(BIN)
        .current_dir(dir.path())
        .args([
            "agent",
            "--server",
            &server.base,
            "--token",
            agent["token"].as_str().unwrap(),
            "--workers",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(process.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("agent running checks for"), "{line:?}");

    let read = |path: String| {
        let http = http.clone();
        let (token, slug) = (token.clone(), slug.clone());
        async move {
            http.get(path)
                .bearer_auth(token)
                .header("x-tenant", slug)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    tenantry_testkit::eventually(
        "the agent's check bringing the monitor up",
        Duration::from_secs(60),
        async || {
            let monitor = read(api(&format!("/api/v1/monitors/{id}"))).await;
            if monitor["status"] == "up" {
                Ok(())
            } else {
                Err(format!("status {}", monitor["status"]))
            }
        },
    )
    .await;
    let seen = read(api(&format!(
        "/api/v1/agents/{}",
        agent["id"].as_str().unwrap()
    )))
    .await;
    assert!(seen["last_seen_at"].is_string(), "{seen}");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(process.id() as i32),
        Signal::SIGINT,
    )
    .unwrap();
    let status = wait_with_deadline(&mut process, Duration::from_secs(60));
    assert!(status.success(), "{status}");
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("agent stopped:"), "{rest:?}");
    assert!(!rest.contains(" 0 checks run"), "{rest:?}");
    assert!(rest.contains(", 0 not posted"), "{rest:?}");

    assert!(server.stop(Signal::SIGTERM).success());
}
