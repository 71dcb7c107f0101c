//! `tenantry serve` with no configuration, and the CLI working beside it.

use nix::sys::signal::Signal;
use tenantry_tenancy::lint;

use crate::support::{Server, connect, data_dir, postgres_processes, stdout, tenantry};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_no_configuration_hosts_tenants_of_every_tier_and_stops_cleanly() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    assert_eq!(server.get("/healthz").await.status(), 200);
    let ready = server.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert!(ready.headers().contains_key("x-request-id"));

    // The CLI shares the running cluster.
    for tier in ["shared", "schema", "database"] {
        let slug = format!("acme-{tier}");
        stdout(&tenantry(
            dir.path(),
            &[
                "tenant",
                "create",
                "--name",
                "Acme",
                "--slug",
                &slug,
                "--isolation",
                tier,
            ],
        ));
    }
    let listed: serde_json::Value = serde_json::from_str(&stdout(&tenantry(
        dir.path(),
        &["tenant", "list", "--json"],
    )))
    .unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|t| t["status"] == "active"), "{listed:?}");

    let metrics = server.metrics().await;
    for tier in ["shared", "schema", "database"] {
        assert!(
            metrics.contains(&format!(
                "tenantry_tenants{{isolation=\"{tier}\",status=\"active\"}} 1"
            )),
            "{metrics}"
        );
    }
    assert!(metrics.contains("tenantry_tenant_connection_budget 64"));
    assert!(metrics.contains(
        "tenantry_http_requests_total{method=\"GET\",route=\"/readyz\",status=\"200\"} 1"
    ));

    // Every database of the cluster: forced RLS on every tenant table, no login role bypassing it.
    let mut owner = connect(dir.path(), "tenantry_owner", "tenantry")
        .await
        .unwrap();
    let databases: Vec<String> =
        sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE datname LIKE 'tenantry%'")
            .fetch_all(&mut owner)
            .await
            .unwrap();
    assert_eq!(databases.len(), 2, "{databases:?}");
    for database in &databases {
        let mut conn = connect(dir.path(), "tenantry_owner", database)
            .await
            .unwrap();
        assert!(
            lint::rls_violations(&mut conn).await.unwrap().is_empty(),
            "{database}"
        );
    }
    assert!(
        lint::login_roles_bypassing_rls(&mut owner)
            .await
            .unwrap()
            .is_empty()
    );

    // The runtime role sees no tenant row without a tenant set.
    let tenant_id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM control.tenants WHERE slug = 'acme-shared'")
            .fetch_one(&mut owner)
            .await
            .unwrap();
    sqlx::raw_sql(&format!(
        "BEGIN; SELECT set_config('app.tenant_id', '{tenant_id}', true);
         INSERT INTO shared.monitors (tenant_id, id, name, kind) VALUES ('{tenant_id}', gen_random_uuid(), 'm', 'heartbeat');
         COMMIT;"
    ))
    .execute(&mut owner)
    .await
    .unwrap();
    let mut runtime = connect(dir.path(), "tenantry_app", "tenantry")
        .await
        .unwrap();
    let visible: i64 = sqlx::query_scalar("SELECT count(*) FROM shared.monitors")
        .fetch_one(&mut runtime)
        .await
        .unwrap();
    assert_eq!(visible, 0);
    drop((owner, runtime));

    let status = server.stop(Signal::SIGINT);
    assert!(status.success(), "{status}");
    assert!(
        postgres_processes(dir.path()).is_empty(),
        "PostgreSQL is still running"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_without_a_server_starts_the_cluster_and_stops_it_afterwards() {
    let dir = data_dir();
    let shown = stdout(&tenantry(
        dir.path(),
        &[
            "tenant",
            "create",
            "--name",
            "Solo",
            "--slug",
            "solo",
            "--isolation",
            "database",
            "--json",
        ],
    ));
    let record: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(record["status"], "active");
    assert_eq!(record["isolation"], "database");
    assert!(postgres_processes(dir.path()).is_empty());

    for (args, status) in [
        (vec!["tenant", "suspend", "solo", "--json"], "suspended"),
        (vec!["tenant", "activate", "solo", "--json"], "active"),
        (vec!["tenant", "delete", "solo", "--json"], "deleted"),
        (vec!["tenant", "restore", "solo", "--json"], "active"),
    ] {
        let record: serde_json::Value =
            serde_json::from_str(&stdout(&tenantry(dir.path(), &args))).unwrap();
        assert_eq!(record["status"], status, "{args:?}");
    }
    let refused = tenantry(
        dir.path(),
        &["tenant", "delete", "solo", "--hard", "--confirm", "other"],
    );
    assert!(!refused.status.success());
    stdout(&tenantry(
        dir.path(),
        &["tenant", "delete", "solo", "--hard", "--confirm", "solo"],
    ));
    let missing = tenantry(dir.path(), &["tenant", "show", "solo"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("tenant list"));

    let noop: serde_json::Value =
        serde_json::from_str(&stdout(&tenantry(dir.path(), &["migrate", "--json"]))).unwrap();
    assert_eq!(noop["noop"], true);
    let status: serde_json::Value = serde_json::from_str(&stdout(&tenantry(
        dir.path(),
        &["migrate", "--status", "--json"],
    )))
    .unwrap();
    assert_eq!(status["shared"]["actual_versions"], status["latest"]);
    assert!(postgres_processes(dir.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_a_clear_message() {
    let dir = data_dir();
    let bad_slug = tenantry(
        dir.path(),
        &[
            "tenant",
            "create",
            "--name",
            "X",
            "--slug",
            "Bad Slug",
            "--isolation",
            "shared",
        ],
    );
    assert!(!bad_slug.status.success());
    assert!(String::from_utf8_lossy(&bad_slug.stderr).contains("lowercase letters"));

    let no_binaries = std::process::Command::new(crate::support::BIN)
        .args(["tenant", "list"])
        .current_dir(dir.path())
        .env("TENANTRY_PG_BINDIR", dir.path())
        .output()
        .unwrap();
    assert!(!no_binaries.status.success());
    assert!(
        String::from_utf8_lossy(&no_binaries.stderr)
            .contains("does not hold initdb, pg_ctl and postgres")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_created_from_the_cli_signs_in_to_the_running_server() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    let created: serde_json::Value = serde_json::from_str(&stdout(&tenantry(
        dir.path(),
        &[
            "user",
            "create",
            "--email",
            "root@example.com",
            "--password",
            "correct horse",
            "--name",
            "Root",
            "--platform-admin",
            "--json",
        ],
    )))
    .unwrap();
    assert_eq!(created["platform_admin"], true);
    let again = tenantry(
        dir.path(),
        &[
            "user",
            "create",
            "--email",
            "root@example.com",
            "--password",
            "correct horse",
            "--name",
            "Root",
        ],
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));

    let client = reqwest::Client::new();
    let login = client
        .post(format!("{}/api/v1/auth/login", server.base))
        .json(&serde_json::json!({"email": "root@example.com", "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let body: serde_json::Value = login.json().await.unwrap();
    assert_eq!(body["user"]["id"], created["id"]);
    let jwks: serde_json::Value = server
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert!(server.stop(Signal::SIGTERM).success());
}
