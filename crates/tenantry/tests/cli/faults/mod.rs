//! The load-and-fault suite: real `tenantry serve` processes under load while clients hang up
//! mid-request, PostgreSQL is killed or runs out of connection slots, the server itself is
//! killed, Redis goes away, or clients send their headers a byte a second. Each case asserts on
//! what clients saw and on the database afterwards. Loops are bounded in count and time; no
//! assertion is on elapsed time.

mod crash;
mod disconnects;
mod postgres;
mod raw;
mod redis;
mod slow_clients;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Server, connect};

/// An organization on the enterprise plan (a budget no test spends), its owner's access token
/// and an admin API key.
pub struct Org {
    pub id: String,
    pub slug: String,
    pub token: String,
    pub key: String,
}

impl Org {
    pub async fn new(server: &Server, dir: &Path) -> Org {
        let (token, org) = server.owner_of_new_org(dir, "enterprise").await;
        let id = org["id"].as_str().unwrap().to_string();
        let created = reqwest::Client::new()
            .post(format!(
                "{}/api/v1/organizations/{id}/api-keys",
                server.base
            ))
            .bearer_auth(&token)
            .json(&json!({"name": "load", "role": "admin"}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let key: Value = created.json().await.unwrap();
        Org {
            id,
            slug: org["slug"].as_str().unwrap().to_string(),
            token,
            key: key["secret"].as_str().unwrap().to_string(),
        }
    }
}

/// The body of a heartbeat monitor: no check runs for it, so a test's writes are its only load.
pub fn heartbeat(name: &str) -> Value {
    json!({"name": name, "kind": "heartbeat", "interval_seconds": 3600})
}

/// `POST /api/v1/monitors` with the API key.
pub async fn create_monitor(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    body: &Value,
) -> reqwest::Result<reqwest::Response> {
    http.post(format!("{base}/api/v1/monitors"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
}

/// The created monitor's id, from a `201`.
pub async fn created_id(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_string()
}

/// What a client is told while the database cannot serve it: `503` problem JSON with
/// `Retry-After`. Returns the problem's `code`.
pub async fn unavailable(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 503);
    assert!(
        response.headers().contains_key("retry-after"),
        "503 without Retry-After"
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    problem["code"].as_str().unwrap().to_string()
}

/// Writes `tenantry.toml` in `dir`, read by `serve` and the CLI run there.
pub fn configure(dir: &Path, settings: &str) {
    std::fs::write(dir.join("tenantry.toml"), settings).unwrap();
}

/// Waits until no backend of the cluster but this one is inside a transaction (every
/// transaction holds its `virtualxid` lock, visible to any role), a few seconds at most: the
/// server's own work finishes within milliseconds, a connection left inside a transaction never.
pub async fn no_transaction_left_open(dir: &Path) {
    let mut owner = connect(dir, "tenantry_owner", "tenantry").await.unwrap();
    tenantry_testkit::eventually(
        "no backend left inside a transaction",
        Duration::from_secs(10),
        async || {
            let open = sqlx::query_scalar::<_, i32>(
                "SELECT pid FROM pg_locks WHERE locktype = 'virtualxid' AND pid <> pg_backend_pid()",
            )
            .fetch_all(&mut owner)
            .await
            .unwrap();
            if open.is_empty() {
                Ok(())
            } else {
                Err(format!("backends {open:?} inside a transaction"))
            }
        },
    )
    .await;
}

/// Every monitor id of the organization, read in the database.
pub async fn monitor_ids(dir: &Path, org: &str) -> std::collections::HashSet<String> {
    let engine = crate::support::engine(dir).await;
    let ctx = engine
        .resolve_id(org.parse::<uuid::Uuid>().unwrap().into())
        .await
        .unwrap();
    let mut tx = ctx.begin_read().await.unwrap();
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM monitors")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    engine.close().await;
    ids.into_iter().map(|id| id.to_string()).collect()
}
