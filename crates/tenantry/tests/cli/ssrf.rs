//! The SSRF guard as a user meets it: `tenantry serve` with no configuration refuses private
//! targets when they are saved, makes checks of names that resolve to them `down` without
//! connecting, and lets a platform admin allow one organization (`tenant set-feature …
//! private_targets on`); `TENANTRY_FORBID_PRIVATE_TARGETS=false` turns it off for everyone.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Server, data_dir, tenantry};

/// A local HTTP service that answers `200 ok` to anything and counts the connections it got.
async fn counting_service() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    (address, connections)
}

struct Org<'a> {
    server: &'a Server,
    token: String,
    slug: String,
    http: reqwest::Client,
}

impl<'a> Org<'a> {
    /// A new organization on the enterprise plan (webhooks, and checks every 10 s) and its
    /// owner.
    async fn new(server: &'a Server) -> Org<'a> {
        let (token, org) = server.owner_of_new_org(&server.dir, "enterprise").await;
        Org {
            server,
            token,
            slug: org["slug"].as_str().unwrap().to_string(),
            http: reqwest::Client::new(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.server.base))
            .bearer_auth(&self.token)
            .header("x-tenant", &self.slug)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.server.base))
            .bearer_auth(&self.token)
            .header("x-tenant", &self.slug)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn monitor(&self, kind: &str, target: &str) -> (u16, Value) {
        let mut body = json!({"name": "Target", "kind": kind, "target": target, "interval_seconds": 10, "timeout_seconds": 2});
        if kind == "keyword" {
            body["keyword"] = json!("ok");
        }
        self.post("/api/v1/monitors", body).await
    }

    async fn webhook(&self, url: &str) -> (u16, Value) {
        self.post(
            "/api/v1/alert-channels",
            json!({"name": "Hook", "kind": "webhook", "url": url}),
        )
        .await
    }

    /// The monitor's first check result, waiting for it.
    async fn first_result(&self, id: &str) -> Value {
        let what = format!("a check of monitor {id}");
        tenantry_testkit::eventually(&what, Duration::from_secs(30), async || {
            let results = self.get(&format!("/api/v1/monitors/{id}/results")).await;
            match results["items"].as_array().and_then(|items| items.first()) {
                Some(first) => Ok(first.clone()),
                None => Err(results.to_string()),
            }
        })
        .await
    }
}

fn assert_refused(answer: &(u16, Value), field: &str, target: &str) {
    let (status, problem) = answer;
    assert_eq!(*status, 422, "{target}: {problem}");
    assert_eq!(problem["code"], "validation_failed", "{target}: {problem}");
    assert_eq!(problem["field"], field, "{target}: {problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("private targets are forbidden"),
        "{target}: {problem}"
    );
}

/// Every address of this machine's interfaces (what the guard also refuses).
fn own_addresses() -> Vec<IpAddr> {
    nix::ifaddrs::getifaddrs()
        .unwrap()
        .filter_map(|i| {
            let a = i.address?;
            a.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_is_on_by_default_and_one_organization_can_be_allowed_private_targets() {
    let dir = data_dir();
    let server = Server::start_with_defaults(dir.path());
    let org = Org::new(&server).await;
    let (service, connections) = counting_service().await;
    let port = service.port();

    // Literal forbidden targets are refused when saved: every kind of range, every spelling.
    let mut literals: Vec<String> = [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "192.0.2.10",
        "198.51.100.1",
        "203.0.113.9",
        "198.18.0.1",
        "192.0.0.1",
        "224.0.0.1",
        "255.255.255.255",
        "240.0.0.1",
        "[::1]",
        "[::]",
        "[fd00::1]",
        "[fe80::1]",
        "[ff02::1]",
        "[2001:db8::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:10.0.0.1]",
        "[64:ff9b::a9fe:a9fe]",
        "[2002:7f00:1::1]",
        "2130706433",
        "0x7f.1",
    ]
    .iter()
    .map(|host| host.to_string())
    .collect();
    // And this server's own addresses, whatever their range.
    for ip in own_addresses() {
        literals.push(match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => continue,
            IpAddr::V6(v6) => format!("[{v6}]"),
        });
    }
    for host in &literals {
        let url = format!("http://{host}:{port}/health");
        assert_refused(&org.monitor("http", &url).await, "target", &url);
        assert_refused(&org.monitor("keyword", &url).await, "target", &url);
        assert_refused(&org.webhook(&url).await, "url", &url);
        if !host.starts_with("0x") && !host.chars().all(|c| c.is_ascii_digit()) {
            let target = format!("{host}:{port}");
            assert_refused(&org.monitor("tcp", &target).await, "target", &target);
        }
    }

    // A name is judged when the check connects: `localhost` is saved, and its check is down
    // with the guard named, without a connection.
    let named = format!("http://localhost:{port}/health");
    let (status, monitor) = org.monitor("http", &named).await;
    assert_eq!(status, 201, "{monitor}");
    let result = org.first_result(monitor["id"].as_str().unwrap()).await;
    assert_eq!(result["ok"], false, "{result}");
    assert!(
        result["error"]
            .as_str()
            .unwrap()
            .contains("private targets are forbidden"),
        "{result}"
    );
    let (status, tcp) = org.monitor("tcp", &format!("localhost:{port}")).await;
    assert_eq!(status, 201, "{tcp}");
    let result = org.first_result(tcp["id"].as_str().unwrap()).await;
    assert_eq!(result["ok"], false, "{result}");
    assert!(
        result["error"]
            .as_str()
            .unwrap()
            .contains("loopback and private targets are forbidden"),
        "{result}"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 0, "the guard connected");

    // A platform admin allows this organization private targets.
    let allowed = tenantry(
        dir.path(),
        &["tenant", "set-feature", &org.slug, "private_targets", "on"],
    );
    assert!(allowed.status.success(), "{allowed:?}");
    let literal = format!("http://127.0.0.1:{port}/health");
    // Changed by another process: the server hears of it on its invalidation channel, at once
    // when idle, a moment later under load. Until then the creation is refused and changes
    // nothing.
    let monitor = tenantry_testkit::eventually(
        "the server allowing this organization private targets",
        Duration::from_secs(30),
        async || match org.monitor("http", &literal).await {
            (201, monitor) => Ok(monitor),
            (status, refused) => Err(format!("{status} {refused}")),
        },
    )
    .await;
    let (status, channel) = org.webhook(&format!("http://10.1.2.3:{port}/hooks")).await;
    assert_eq!(status, 201, "{channel}");
    let result = org.first_result(monitor["id"].as_str().unwrap()).await;
    assert_eq!(result["ok"], true, "{result}");
    assert!(connections.load(Ordering::SeqCst) >= 1);

    // An unknown feature is refused, naming what exists.
    let bogus = tenantry(
        dir.path(),
        &["tenant", "set-feature", &org.slug, "private_target", "on"],
    );
    assert!(!bogus.status.success());
    assert!(
        String::from_utf8_lossy(&bogus.stderr).contains("private_targets"),
        "{bogus:?}"
    );

    assert!(server.stop(Signal::SIGTERM).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbid_private_targets_false_lets_a_self_hoster_watch_their_own_network() {
    let dir = data_dir();
    // `Server::start` sets TENANTRY_FORBID_PRIVATE_TARGETS=false.
    let server = Server::start(dir.path());
    let org = Org::new(&server).await;
    let (service, _) = counting_service().await;
    let (status, monitor) = org
        .monitor("http", &format!("http://{service}/health"))
        .await;
    assert_eq!(status, 201, "{monitor}");
    let result = org.first_result(monitor["id"].as_str().unwrap()).await;
    assert_eq!(result["ok"], true, "{result}");
    let (status, channel) = org.webhook("http://10.1.2.3/hooks").await;
    assert_eq!(status, 201, "{channel}");
    assert!(server.stop(Signal::SIGTERM).success());
}
