//! `tenantry tenant export` and `tenantry tenant import`: a tenant with monitors, a member and
//! both audit chains is exported to a file (progress per table on stderr) and imported into a
//! new tenant of another tier, which then passes `audit verify` and holds the same rows; the
//! errors say what to do next, and a refused import creates nothing.

use std::path::Path;

use nix::sys::signal::Signal;
use tenantry_audit::{Actor, AuditContext, Change};
use tenantry_tenancy::{Tenancy, TenantRecord};

use crate::support::{Server, connect, create_tenant, data_dir, engine, stdout, tenantry};

async fn monitors(engine: &Tenancy, record: &TenantRecord) -> Vec<String> {
    let mut conn = tenantry_tenancy::Operator::new(engine)
        .tenant_storage(record)
        .await
        .unwrap();
    let rows =
        sqlx::query_scalar("SELECT (to_jsonb(m) - 'tenant_id')::text FROM monitors m ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    sqlx::Connection::close(conn).await.unwrap();
    rows
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_exported_to_a_file_imports_into_another_tier() {
    let dir = data_dir();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    create_tenant(dir.path(), "Acme", "acme", "schema");
    stdout(&tenantry(
        dir.path(),
        &[
            "user",
            "create",
            "--email",
            "ada@example.com",
            "--password",
            "a long password",
            "--name",
            "Ada",
        ],
    ));
    let server = Running(Some(Server::start(dir.path())));

    // Data as the application writes it: monitors and audit entries through the door, a member.
    let engine = engine(dir.path()).await;
    let record = engine.find("acme").await.unwrap();
    let ctx = engine.resolve("acme").await.unwrap();
    let who = AuditContext::new(Actor::user(uuid::Uuid::now_v7()));
    for (n, name) in ["Homepage", "Database", "Cron ☕"].iter().enumerate() {
        let mut tx = ctx.begin().await.unwrap();
        sqlx::query(
            "INSERT INTO monitors (tenant_id, id, name, kind, target, interval_seconds)
             VALUES ($1, $2, $3, 'tcp', 'example.com:443', $4)",
        )
        .bind(record.id.as_uuid())
        .bind(uuid::Uuid::now_v7())
        .bind(name)
        .bind(60 + n as i32)
        .execute(&mut *tx)
        .await
        .unwrap();
        let change = Change {
            action: tenantry_audit::AuditAction::MonitorCreated,
            target_kind: "monitor",
            target_id: Some(n.to_string()),
            before: None,
            after: Some(serde_json::json!({"name": name})),
        };
        tenantry_audit::record_in_tenant(&mut tx, &who, &change)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let mut owner = connect(dir.path(), "tenantry_owner", "tenantry")
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO orgs.memberships (org_id, user_id, role)
         SELECT $1, id, 'owner' FROM identity.users WHERE email = 'ada@example.com'",
    )
    .bind(record.id.as_uuid())
    .execute(&mut owner)
    .await
    .unwrap();
    let mut tx = engine.control_db().begin().await.unwrap();
    let added = Change {
        action: tenantry_audit::AuditAction::MemberAdded,
        target_kind: "member",
        target_id: None,
        before: None,
        after: Some(serde_json::json!({"role": "owner"})),
    };
    tenantry_audit::record(&mut tx, Some(record.id.as_uuid()), &who, &added)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // Export: progress per file on stderr, the summary on stdout.
    let archive = path("acme.tar.gz");
    let exported = tenantry(dir.path(), &["tenant", "export", "acme", "--out", &archive]);
    let text = stdout(&exported);
    assert!(
        text.starts_with(&format!("exported acme to {archive}: ")),
        "{text}"
    );
    assert!(text.contains("manifest SHA-256 "), "{text}");
    let progress = stderr(&exported);
    for line in [
        "tenant/monitors.jsonl: 3 rows",
        "tenant/audit_log.jsonl: 3 rows",
        "members.jsonl: 1 rows",
        "audit.jsonl: 1 rows",
    ] {
        assert!(progress.contains(line), "{progress}");
    }
    assert!(!Path::new(&format!("{archive}.partial")).exists());
    let again = tenantry(dir.path(), &["tenant", "export", "acme", "--out", &archive]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("exists: choose another --out"),
        "{}",
        stderr(&again)
    );
    let missing = tenantry(
        dir.path(),
        &["tenant", "export", "nobody", "--out", &path("x.tar.gz")],
    );
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("tenant list"));

    // Import into the database tier.
    let imported = tenantry(
        dir.path(),
        &[
            "tenant",
            "import",
            &archive,
            "--slug",
            "acme-copy",
            "--isolation",
            "database",
        ],
    );
    let text = stdout(&imported);
    assert!(
        text.starts_with(&format!(
            "imported {archive} into tenant acme-copy (database tier"
        )),
        "{text}"
    );
    for table in ["tenant_settings 1", "monitors 3", "audit_log 3"] {
        assert!(text.contains(table), "{text}");
    }
    assert!(text.contains("members restored: ada@example.com"), "{text}");
    assert!(stderr(&imported).contains("comparing every table with the archive"));
    let verified = stdout(&tenantry(dir.path(), &["audit", "verify", "acme-copy"]));
    assert_eq!(
        verified,
        "the audit log of acme-copy: 2 organization entries, 3 tenant entries, every entry intact\n"
    );
    let copy = engine.find("acme-copy").await.unwrap();
    assert_eq!(
        monitors(&engine, &record).await,
        monitors(&engine, &copy).await
    );
    assert_eq!(monitors(&engine, &copy).await.len(), 3);

    // With --json, the report.
    let json: serde_json::Value = serde_json::from_str(&stdout(&tenantry(
        dir.path(),
        &[
            "tenant",
            "import",
            &archive,
            "--slug",
            "acme-json",
            "--isolation",
            "shared",
            "--name",
            "Acme Again",
            "--json",
        ],
    )))
    .unwrap();
    assert_eq!(json["tenant"]["slug"], "acme-json");
    assert_eq!(json["tenant"]["name"], "Acme Again");
    assert_eq!(json["source_tenant_id"], record.id.to_string());

    // Refusals say what to do, and create nothing.
    let taken = tenantry(
        dir.path(),
        &[
            "tenant",
            "import",
            &archive,
            "--slug",
            "acme-copy",
            "--isolation",
            "shared",
        ],
    );
    assert!(!taken.status.success());
    assert!(
        stderr(&taken).contains("choose another --slug"),
        "{}",
        stderr(&taken)
    );
    let garbage = path("garbage.tar.gz");
    std::fs::write(&garbage, b"not an archive at all").unwrap();
    let refused = tenantry(
        dir.path(),
        &[
            "tenant",
            "import",
            &garbage,
            "--slug",
            "other",
            "--isolation",
            "shared",
        ],
    );
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(
        message.contains("the archive cannot be imported"),
        "{message}"
    );
    assert!(message.contains("nothing was created"), "{message}");
    assert!(
        !tenantry(dir.path(), &["tenant", "show", "other"])
            .status
            .success()
    );

    engine.close().await;
    assert!(server.stop().success());
}

/// The server, stopped also when an assertion fails (so it does not outlive its data folder).
struct Running(Option<Server>);

impl Running {
    fn stop(mut self) -> std::process::ExitStatus {
        self.0.take().unwrap().stop(Signal::SIGTERM)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(server) = self.0.take() {
            server.stop(Signal::SIGTERM);
        }
    }
}
