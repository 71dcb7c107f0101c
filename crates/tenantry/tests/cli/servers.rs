//! `tenantry server add|list|drain` and `tenant move --server`: a second PostgreSQL server added
//! to a running installation, an organization moved to it and back while it is written through
//! the API, and that server stopped with only its organization affected.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tenantry_testkit::server::SecondServer;

use crate::support::{Server, command, data_dir, json_of, stdout, tenantry, try_json_of};

fn servers(dir: &std::path::Path) -> Value {
    serde_json::from_str(&stdout(&tenantry(dir, &["server", "list", "--json"]))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_organization_moves_to_a_second_server_and_back_and_only_it_feels_that_server_stop() {
    let dir = data_dir();
    let second = SecondServer::start().await;
    // The URL's password (the cluster trusts local connections, so any will do) is never shown.
    let url = second
        .url()
        .replace("postgres://postgres@", "postgres://postgres:pw-3f9a1c@");
    let added = command(dir.path())
        .env("TENANTRY_SERVER_URL", &url)
        .args(["server", "add", "b", "--max-connections", "16"])
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");
    let said = format!(
        "{}{}",
        stdout(&added),
        String::from_utf8_lossy(&added.stderr)
    );
    assert!(said.contains("added server b"), "{said}");
    assert!(!said.contains("pw-3f9a1c"), "{said}");
    let listed = tenantry(dir.path(), &["server", "list"]);
    assert!(!stdout(&listed).contains("pw-3f9a1c"));
    let listed = servers(dir.path());
    assert_eq!(listed[0]["name"], "default");
    assert_eq!(listed[1]["name"], "b");
    assert_eq!(listed[1]["reachable"], true);
    assert_eq!(listed[1]["max_connections"], 16);

    let server = Server::start(dir.path());
    let (token, org) = server.owner_of_new_org(dir.path(), "enterprise").await;
    let slug = org["slug"].as_str().unwrap().to_string();
    let http = reqwest::Client::new();
    let other = json_of(
        http.post(format!("{}/api/v1/organizations", server.base))
            .bearer_auth(&token)
            .json(&json!({"name": "Other"})),
    )
    .await;
    let other_slug = other["slug"].as_str().unwrap().to_string();

    // Monitors are created through the API all along; every one acknowledged must be there
    // after the moves.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (http, base, token, slug, stop) = (
            http.clone(),
            server.base.clone(),
            token.clone(),
            slug.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let (mut created, mut refused) = (Vec::new(), Vec::new());
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let response = http
                    .post(format!("{base}/api/v1/monitors"))
                    .bearer_auth(&token)
                    .header("x-tenant", &slug)
                    .json(&json!({"name": format!("m{n}"), "kind": "tcp", "target": "127.0.0.1:9", "interval_seconds": 3600}))
                    .send()
                    .await
                    .unwrap();
                match response.status().as_u16() {
                    201 => created.push(
                        response.json::<Value>().await.unwrap()["id"]
                            .as_str()
                            .unwrap()
                            .to_string(),
                    ),
                    status => refused.push(status),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (created, refused)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    for to in ["b", "default"] {
        let moved = tenantry(
            dir.path(),
            &[
                "tenant", "move", &slug, "--server", to, "--drain", "1", "--json",
            ],
        );
        assert!(moved.status.success(), "{moved:?}");
        let report: Value = serde_json::from_str(&stdout(&moved)).unwrap();
        assert_eq!(report["to"], "database");
        assert_eq!(report["to_server"], to);
        let shown: Value = serde_json::from_str(&stdout(&tenantry(
            dir.path(),
            &["tenant", "show", &slug, "--json"],
        )))
        .unwrap();
        assert_eq!(shown["server"], to);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (created, refused) = writer.await.unwrap();
    assert!(created.len() > 5, "{} monitors created", created.len());
    // A write that lands in the switch may be told to retry (503 tenant_moving); none fails.
    assert!(refused.iter().all(|s| *s == 503), "{refused:?}");
    let mut ids: Vec<String> = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = json_of(
            http.get(format!("{}/api/v1/monitors?limit=200{cursor}", server.base))
                .bearer_auth(&token)
                .header("x-tenant", &slug),
        )
        .await;
        ids.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    for id in &created {
        assert_eq!(ids.iter().filter(|i| *i == id).count(), 1, "monitor {id}");
    }
    let verified = tenantry(dir.path(), &["audit", "verify", &slug]);
    assert!(verified.status.success(), "{verified:?}");

    // On b again, then b stops: this organization answers 503 tenant_unavailable at once, the
    // other one 200 as usual; once b is back, so is the organization.
    let moved = tenantry(
        dir.path(),
        &["tenant", "move", &slug, "--server", "b", "--drain", "0"],
    );
    assert!(moved.status.success(), "{moved:?}");
    let read = |slug: String| {
        let (http, base, token) = (http.clone(), server.base.clone(), token.clone());
        async move {
            http.get(format!("{base}/api/v1/monitors"))
                .bearer_auth(&token)
                .header("x-tenant", &slug)
                .send()
                .await
                .unwrap()
        }
    };
    tenantry_testkit::eventually(
        "the server reading the moved organization",
        Duration::from_secs(30),
        async || match read(slug.clone()).await.status().as_u16() {
            200 => Ok(()),
            status => Err(status.to_string()),
        },
    )
    .await;
    second.kill();
    for _ in 0..10 {
        let down = read(slug.clone()).await;
        assert_eq!(down.status(), 503);
        assert!(down.headers().contains_key("retry-after"));
        let problem: Value = down.json().await.unwrap();
        assert_eq!(problem["code"], "tenant_unavailable", "{problem}");
        assert_eq!(read(other_slug.clone()).await.status(), 200);
    }
    // The scheduler goes on checking the other organization's monitors.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let monitor = json_of(
        http.post(format!("{}/api/v1/monitors", server.base))
            .bearer_auth(&token)
            .header("x-tenant", &other_slug)
            .json(&json!({"name": "Elsewhere", "kind": "tcp", "target": closed.to_string(), "interval_seconds": 60, "timeout_seconds": 2, "confirmations": 1})),
    )
    .await;
    let monitor_url = format!(
        "{}/api/v1/monitors/{}",
        server.base,
        monitor["id"].as_str().unwrap()
    );
    tenantry_testkit::eventually(
        "the other organization's monitor checked while b is down",
        Duration::from_secs(30),
        async || {
            let read = try_json_of(
                http.get(&monitor_url)
                    .bearer_auth(&token)
                    .header("x-tenant", &other_slug),
            )
            .await?;
            match read["status"].as_str() {
                Some("down") => Ok(()),
                other => Err(format!("status {other:?}")),
            }
        },
    )
    .await;
    let listed = servers(dir.path());
    assert_eq!(listed[1]["reachable"], false);
    assert_eq!(listed[0]["reachable"], true);
    second.restart().await;
    tenantry_testkit::eventually(
        "the organization on the restarted server",
        Duration::from_secs(30),
        async || match read(slug.clone()).await.status().as_u16() {
            200 => Ok(()),
            status => Err(status.to_string()),
        },
    )
    .await;

    // Draining: no new database-tier tenant goes to b, named or not.
    let drained = tenantry(dir.path(), &["server", "drain", "b"]);
    assert!(drained.status.success(), "{drained:?}");
    let refused = tenantry(
        dir.path(),
        &[
            "tenant",
            "create",
            "--name",
            "N",
            "--slug",
            "newco",
            "--isolation",
            "database",
            "--server",
            "b",
        ],
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("draining"));
    let placed = tenantry(
        dir.path(),
        &[
            "tenant",
            "create",
            "--name",
            "N",
            "--slug",
            "newco",
            "--isolation",
            "database",
            "--json",
        ],
    );
    let placed: Value = serde_json::from_str(&stdout(&placed)).unwrap();
    assert_eq!(placed["server"], "default");
    // Moving the organization off b so the data folder's server stops cleanly without it.
    let back = tenantry(
        dir.path(),
        &[
            "tenant", "move", &slug, "--server", "default", "--drain", "0",
        ],
    );
    assert!(back.status.success(), "{back:?}");
}
