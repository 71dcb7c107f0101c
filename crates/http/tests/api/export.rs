//! `GET /api/v1/organizations/{id}/export`: the owner downloads a `.tar.gz` of everything the
//! organization owns, with no secret in it and nothing of another organization; also while the
//! organization is soft-deleted; the export is audited; the archive imports into a new tenant.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tenantry_tenancy::Isolation;

use crate::{Answer, TestApp, caller, new_org};

/// The archive's files by path, and their order.
fn unpack(bytes: &[u8]) -> (BTreeMap<String, Vec<u8>>, Vec<String>) {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut files = BTreeMap::new();
    let mut order = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_str().unwrap().to_string();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        order.push(path.clone());
        files.insert(path, content);
    }
    (files, order)
}

fn text(files: &BTreeMap<String, Vec<u8>>, path: &str) -> String {
    String::from_utf8(files[path].clone()).unwrap()
}

async fn download(app: &TestApp, org: &str, token: &str) -> Answer {
    app.as_(token).organizations().try_export(org).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_downloads_everything_the_organization_owns_and_no_secret() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let bob = caller(&app, "bob@example.com").await;
    let org = new_org(&app, &ada, "Ada Labs").await;
    let other = new_org(&app, &bob, "Bob Zebra Works").await;
    let as_ada = app.as_(&ada).org(&org);
    let orgs = as_ada.organizations();
    as_ada
        .monitors()
        .create(json!({"name": "Homepage ☕", "kind": "http", "target": "https://example.com"}))
        .await;
    orgs.members(&org).add(bob.id, "viewer").await;
    let key = orgs
        .api_keys(&org)
        .create(json!({"name": "ci", "role": "member"}))
        .await;
    let secret = key["secret"].as_str().unwrap().to_string();
    orgs.invitations(&org)
        .invite("carol@example.com", "member")
        .await;
    let invitation = app.invitation_token("carol@example.com", 0).await;
    app.as_(&bob)
        .org(&other)
        .monitors()
        .create(json!({"name": "zebra-monitor", "kind": "tcp", "target": "zebra.example.com:1"}))
        .await;

    let response = download(&app, &org, &ada.token).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/gzip");
    let slug = orgs.get(&org).await["slug"].as_str().unwrap().to_string();
    assert_eq!(
        response.headers()["content-disposition"],
        format!(
            "attachment; filename=\"{slug}-{}.tar.gz\"",
            chrono::Utc::now().format("%Y-%m-%d")
        )
        .as_str()
    );
    let bytes = response.bytes();
    let (files, order) = unpack(bytes);
    assert_eq!(order.last().map(String::as_str), Some("manifest.json"));
    for path in [
        "organization.json",
        "plan_overrides.json",
        "members.jsonl",
        "invitations.jsonl",
        "api_keys.jsonl",
        "api_usage.jsonl",
        "audit.jsonl",
        "tenant/tenant_settings.jsonl",
        "tenant/monitors.jsonl",
        "tenant/audit_log.jsonl",
    ] {
        assert!(files.contains_key(path), "{path} is missing: {order:?}");
    }
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(manifest["format_version"], 1);
    assert_eq!(manifest["source"]["tenant_id"], org.as_str());
    for file in manifest["files"].as_array().unwrap() {
        let content = &files[file["path"].as_str().unwrap()];
        assert_eq!(
            file["sha256"],
            hex::encode(Sha256::digest(content)),
            "{file}"
        );
        assert_eq!(
            file["rows"],
            content.iter().filter(|b| **b == b'\n').count(),
            "{file}"
        );
    }
    assert!(text(&files, "tenant/monitors.jsonl").contains("Homepage ☕"));
    let members = text(&files, "members.jsonl");
    assert!(members.contains("ada@example.com") && members.contains("bob@example.com"));
    assert!(text(&files, "api_keys.jsonl").contains("\"name\": \"ci\""));
    assert!(text(&files, "invitations.jsonl").contains("carol@example.com"));

    // No secret and no secret's hash; nothing of Bob's own organization.
    let everything = String::from_utf8_lossy(&bytes_of(&files)).into_owned();
    let mut secrets = vec![
        secret.clone(),
        hex::encode(Sha256::digest(secret.as_bytes())),
        invitation.clone(),
        hex::encode(Sha256::digest(invitation.as_bytes())),
    ];
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT password_hash FROM identity.users
         UNION ALL SELECT encode(key_hash, 'hex') FROM orgs.api_keys
         UNION ALL SELECT encode(token_hash, 'hex') FROM orgs.invitations",
    )
    .fetch_all(tenantry_tenancy::Operator::new(&app.tenancy).control())
    .await
    .unwrap();
    assert_eq!(stored.len(), 4);
    secrets.extend(stored);
    for secret in &secrets {
        assert!(
            !everything.contains(secret.as_str()),
            "a secret is in the archive"
        );
    }
    for trace in [other.as_str(), "Zebra", "zebra"] {
        assert!(!everything.contains(trace), "{trace} is in the archive");
    }

    // The export is in the trail, with the archive's manifest checksum.
    let trail = app
        .as_(&ada)
        .organizations()
        .audit_logs(&org)
        .list_with("action=organization.exported")
        .await;
    let entry = &trail["items"][0];
    assert_eq!(entry["action"], "organization.exported");
    assert_eq!(entry["actor_id"], ada.id.to_string());
    assert_eq!(
        entry["after"]["manifest_sha256"],
        hex::encode(Sha256::digest(&files["manifest.json"]))
    );

    // What the route gives, `tenantry tenant import` restores.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ada.tar.gz");
    std::fs::write(&file, bytes).unwrap();
    let report = tenantry_archive::import(
        &app.tenancy,
        &file,
        &tenantry_archive::ImportOptions {
            slug: "ada-restored".into(),
            isolation: Isolation::Database,
            name: None,
        },
        &tenantry_archive::Quiet,
    )
    .await
    .unwrap();
    assert_eq!(report.members_restored.len(), 2);
    let copy = app.as_(&ada).org("ada-restored").monitors().list().await;
    assert_eq!(copy["items"][0]["name"], "Homepage ☕");
}

fn bytes_of(files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    files.values().flatten().copied().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_organization_is_exported_for_its_owners_only_until_purged() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let bob = caller(&app, "bob@example.com").await;
    let org = new_org(&app, &ada, "Ada Labs").await;
    let orgs = app.as_(&ada).organizations();
    orgs.members(&org).add(bob.id, "admin").await;
    let forbidden = download(&app, &org, &bob.token).await.problem(403);
    assert_eq!(forbidden["code"], "forbidden");

    orgs.delete(&org).await;
    // The organization is gone for the other organization routes, and for the admin.
    orgs.members(&org).try_list().await.problem(404);
    let missing = download(&app, &org, &bob.token).await.problem(404);
    // Its owner can still take the archive.
    let response = download(&app, &org, &ada.token).await;
    assert_eq!(response.status(), 200);
    let (files, _) = unpack(response.bytes());
    assert!(files.contains_key("manifest.json"));

    // Suspended organizations refuse everyone, as on every other route.
    let other = new_org(&app, &ada, "Suspended One").await;
    app.tenancy.suspend(&other).await.unwrap();
    let suspended = download(&app, &other, &ada.token).await.problem(403);
    assert_eq!(suspended["code"], "tenant_suspended");

    // Purged: the same 404 as an organization that never existed.
    let record = app.tenancy.find(&org).await.unwrap();
    app.tenancy.hard_delete(&org, &record.slug).await.unwrap();
    let purged = download(&app, &org, &ada.token).await.problem(404);
    assert_eq!(purged, missing);
    let nowhere = download(&app, &uuid::Uuid::new_v4().to_string(), &ada.token)
        .await
        .problem(404);
    assert_eq!(purged, nowhere);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_past_the_servers_slots_are_refused_until_one_ends() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;
    // Every slot streaming another export.
    let held = app
        .export_slots
        .clone()
        .acquire_many_owned(tenantry_http::EXPORT_SLOTS as u32)
        .await
        .unwrap();
    let refused = download(&app, &org, &ada.token).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "30");
    assert_eq!(refused.problem(503)["code"], "export_busy");
    // One ends: the next export goes through, and gives its slot back when it is done.
    drop(held);
    let done = download(&app, &org, &ada.token).await;
    assert_eq!(done.status(), 200);
    assert!(!done.bytes().is_empty());
    tenantry_testkit::eventually(
        "the export's slot given back once its archive is written",
        Duration::from_secs(30),
        async || {
            let free = app.export_slots.available_permits();
            if free >= tenantry_http::EXPORT_SLOTS {
                Ok(())
            } else {
                Err(format!(
                    "{free} of {} slots free",
                    tenantry_http::EXPORT_SLOTS
                ))
            }
        },
    )
    .await;
}

/// A client that asks for an export and then reads nothing: the server cuts it after 30 s
/// (`SEND_TIMEOUT`), and meanwhile its organization's other exports are `409` while another
/// organization exports as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_download_holds_only_its_own_organization_and_is_cut() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;
    let other = new_org(&app, &ada, "Beta").await;
    // An archive of several megabytes, far more than the sockets buffer.
    let ctx = app.tenancy.resolve(&org).await.unwrap();
    let mut tx = ctx.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO monitors (tenant_id, id, name, kind)
         SELECT $1, gen_random_uuid(), md5(i::text) || md5((i + 1)::text) || md5((i + 2)::text),
                'heartbeat'
         FROM generate_series(1, 60000) i",
    )
    .bind(ctx.tenant_id().as_uuid())
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // Connections in use before: the mail sender's listener, and whatever else is under way.
    let in_use = |stats: tenantry_tenancy::PoolStats| {
        (
            stats.runtime_connections - stats.runtime_idle,
            stats.owner_connections - stats.owner_idle,
            stats.tenant_connections - stats.tenant_idle,
        )
    };
    let before = in_use(app.tenancy.pool_stats());

    // The stalled client: a small receive window, the answer's first line read, then nothing.
    let address: std::net::SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(address).await.unwrap();
    stalled
        .write_all(
            format!(
                "GET /api/v1/organizations/{org}/export HTTP/1.1\r\nHost: tenantry.test\r\n\
                 Authorization: Bearer {}\r\n\r\n",
                ada.token
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut head = [0u8; 12];
    stalled.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");

    // Its organization's next exports wait for it; another organization's do not.
    for _ in 0..3 {
        let refused = download(&app, &org, &ada.token).await;
        assert_eq!(refused.status(), 409);
        assert_eq!(refused.problem(409)["code"], "export_in_progress");
    }
    let beta = download(&app, &other, &ada.token).await;
    assert_eq!(beta.status(), 200);
    let (files, _) = unpack(beta.bytes());
    assert!(files.contains_key("manifest.json"));

    // Cut after 30 s without progress: the organization exports again, in full.
    let exported = tenantry_testkit::eventually(
        "the stalled export cut and the next one through",
        Duration::from_secs(90),
        async || {
            let response = download(&app, &org, &ada.token).await;
            if response.status() == 200 {
                return Ok(response.bytes().to_vec());
            }
            assert_eq!(response.status(), 409, "{response}");
            Err(response.to_string())
        },
    )
    .await;
    let (files, _) = unpack(&exported);
    assert_eq!(text(&files, "tenant/monitors.jsonl").lines().count(), 60000);
    // The stalled client got part of the archive, then the connection closed.
    let mut received = Vec::new();
    let _ = stalled.read_to_end(&mut received).await;
    assert!(
        received.len() < exported.len(),
        "{} of {} bytes",
        received.len(),
        exported.len()
    );
    // No connection stays in the export's transaction: no more in use than before it (the
    // mail sender and the cache listener hold theirs, briefly, at any time).
    tenantry_testkit::eventually(
        "the export's connections given back",
        Duration::from_secs(10),
        async || {
            let stats = app.tenancy.pool_stats();
            let now = in_use(stats.clone());
            if now.0 <= before.0 && now.1 <= before.1 && now.2 <= before.2 {
                Ok(())
            } else {
                Err(format!("{now:?} in use, {before:?} before: {stats:?}"))
            }
        },
    )
    .await;
}
