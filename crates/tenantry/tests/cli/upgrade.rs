//! An installation made by the previous release upgrades with no manual step.
//!
//! `fixtures/previous-release.sql.gz` is `pg_dumpall` of the managed cluster of a data folder
//! that release made: the user ada@example.test, the organizations `shared-org`, `schema-org`
//! and `database-org` (moved to their tiers with `tenant move`), each with an HTTP and a
//! heartbeat monitor, a webhook alert channel, a public status page and the audit entries of
//! all that, and its tenant schemas recorded as that release did: one numbered set at version
//! 10. It is restored into a fresh data folder; this release then serves it.

use std::io::Read;
use std::path::Path;
use std::process::Command;

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tenantry_pg::{ClusterOptions, ManagedCluster, PgBinaries};

use tenantry_tenancy::Quiet;

use crate::support::{Server, data_dir, engine_with, json_of, stdout, tenantry};

const FIXTURE: &[u8] = include_bytes!("../fixtures/previous-release.sql.gz");

const ORGS: [(&str, &str); 3] = [
    ("shared-org", "shared"),
    ("schema-org", "schema"),
    ("database-org", "database"),
];

/// Restores the previous release's cluster into the data folder of `dir`.
fn restore_previous_release(dir: &Path) {
    let mut sql = String::new();
    flate2::read::GzDecoder::new(FIXTURE)
        .read_to_string(&mut sql)
        .unwrap();
    // `\restrict` guards a restore against a dump tampered with on its way; this one is ours,
    // and a psql of an earlier minor release would not know the command.
    let sql: String = sql
        .lines()
        .filter(|line| !line.starts_with("\\restrict ") && !line.starts_with("\\unrestrict "))
        .map(|line| format!("{line}\n"))
        .collect();
    let script = dir.join("previous-release.sql");
    std::fs::write(&script, sql).unwrap();
    let data = std::fs::canonicalize(dir).unwrap().join("tenantry-data");
    let cluster = ManagedCluster::acquire(
        &data,
        &ClusterOptions {
            bindir: None,
            ephemeral: false,
            max_connections: 100,
        },
    )
    .unwrap();
    let psql = PgBinaries::find(None).unwrap().tool("psql");
    let restored = Command::new(psql)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(&script)
        .arg(cluster.superuser_url("postgres"))
        .output()
        .unwrap();
    assert!(
        restored.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&restored.stderr)
    );
    cluster.release().unwrap();
}

/// `tenantry migrate --status --json`, with every tenant and the shared schema at the latest
/// versions of every set and no drift.
fn assert_current(dir: &Path) -> Value {
    let status: Value =
        serde_json::from_str(&stdout(&tenantry(dir, &["migrate", "--status", "--json"]))).unwrap();
    let latest = &status["latest"];
    for set in ["tenancy", "monitoring", "audit"] {
        assert!(latest[set].as_i64().unwrap() >= 1, "{status:#}");
    }
    assert_eq!(status["shared"]["actual_versions"], *latest, "{status:#}");
    assert_eq!(status["shared"]["drift"], json!([]), "{status:#}");
    let tenants = status["tenants"].as_array().unwrap();
    assert_eq!(tenants.len(), 3, "{status:#}");
    for t in tenants {
        assert_eq!(t["registry_versions"], *latest, "{t:#}");
        assert_eq!(t["actual_versions"], *latest, "{t:#}");
        assert_eq!(
            (&t["pending"], &t["drift"]),
            (&json!(0), &json!([])),
            "{t:#}"
        );
    }
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installation_of_the_previous_release_upgrades_without_manual_steps() {
    let dir = data_dir();
    restore_previous_release(dir.path());
    // Read by this release before anything is migrated: the single version means every set.
    assert_current(dir.path());

    let server = Server::start(dir.path());
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", server.base);
    let login = json_of(
        http.post(url("/api/v1/auth/login"))
            .json(&json!({"email": "ada@example.test", "password": "correct horse battery"})),
    )
    .await;
    let token = login["access_token"].as_str().unwrap().to_string();
    let orgs = json_of(http.get(url("/api/v1/organizations")).bearer_auth(&token)).await;
    let orgs = orgs["items"]
        .as_array()
        .unwrap_or_else(|| orgs.as_array().unwrap());
    assert_eq!(orgs.len(), 3, "{orgs:?}");
    for (slug, tier) in ORGS {
        let org = orgs.iter().find(|o| o["slug"] == slug).unwrap();
        assert_eq!(org["isolation"], tier, "{org}");
        let switched = json_of(
            http.post(url(&format!(
                "/api/v1/organizations/{}/switch",
                org["id"].as_str().unwrap()
            )))
            .bearer_auth(&token),
        )
        .await;
        let org_token = switched["access_token"].as_str().unwrap().to_string();
        // What the previous release wrote reads back through the door.
        let monitors = json_of(http.get(url("/api/v1/monitors")).bearer_auth(&org_token)).await;
        let mut names: Vec<&str> = monitors["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["Backup job", "Homepage"], "{slug}");
        let page = http
            .get(url(&format!("/status/{slug}/public")))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "{slug}");
        let page: Value = page.json().await.unwrap();
        assert_eq!(page["title"], format!("{slug} status"));
        // And it takes writes, through the write gate its schema has had since that release.
        let created = http
            .post(url("/api/v1/monitors"))
            .bearer_auth(&org_token)
            .json(&json!({"name": "After the upgrade", "kind": "heartbeat"}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201, "{slug}");
        let text = stdout(&tenantry(dir.path(), &["audit", "verify", slug]));
        assert!(text.ends_with("every entry intact\n"), "{text}");
    }

    // A move after the upgrade: the tenant's new placement is made by this release.
    stdout(&tenantry(
        dir.path(),
        &[
            "tenant",
            "move",
            "schema-org",
            "--to",
            "database",
            "--drain",
            "0",
        ],
    ));
    assert_current(dir.path());

    // The next migration of a set reaches the storage the previous release made, which then
    // records its migrations per set.
    let next = tenantry_app::tenant_schema().with(
        "monitoring",
        "monitoring/tenant/upgrade_note.sql",
        "ALTER TABLE monitors ADD COLUMN upgrade_note text",
    );
    let engine = engine_with(dir.path(), next.clone()).await;
    let report = engine.migrate_fleet(2, &Quiet).await.unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.shared_to, next.latest());
    let status = engine.migration_status(2).await.unwrap();
    for t in &status.tenants {
        assert_eq!(t.actual_versions.as_ref(), Some(&next.latest()), "{t:?}");
        assert!(t.drift.is_empty(), "{t:?}");
    }
    for slug in ["shared-org", "database-org"] {
        let ctx = engine.resolve(slug).await.unwrap();
        let mut tx = ctx.begin().await.unwrap();
        let layout: (bool, bool) = sqlx::query_as(
            "SELECT to_regclass('tenant_migrations') IS NOT NULL,
                    to_regclass('schema_migrations') IS NOT NULL",
        )
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        assert_eq!(layout, (true, false), "{slug}");
        sqlx::query("UPDATE monitors SET upgrade_note = 'upgraded'")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    engine.close().await;
    assert_eq!(server.stop(Signal::SIGTERM).code(), Some(0));
}
