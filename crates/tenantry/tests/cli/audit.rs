//! `tenantry audit verify`: a clean audit log passes (exit 0); after someone with the owner role
//! rewrote entries in either chain, it fails (non-zero) and names them.

use nix::sys::signal::Signal;
use tenantry_audit::{Actor, AuditContext, Change};

use crate::support::{Server, connect, create_tenant, data_dir, engine, stdout, tenantry};

fn change(action: &'static str, n: u32) -> Change {
    Change {
        action: action.parse().unwrap(),
        target_kind: action.split('.').next().unwrap(),
        target_id: Some(n.to_string()),
        before: None,
        after: Some(serde_json::json!({"n": n})),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_passes_a_clean_log_and_names_tampered_entries() {
    let dir = data_dir();
    create_tenant(dir.path(), "Acme", "acme", "database");
    let server = Server::start(dir.path());

    // Entries written as the application writes them: the runtime role, in transactions.
    let engine = engine(dir.path()).await;
    let record = engine.find("acme").await.unwrap();
    let ctx = engine.resolve("acme").await.unwrap();
    let who = AuditContext::new(Actor::user(uuid::Uuid::now_v7()));
    for n in 1..=3 {
        let mut tx = engine.control_db().begin().await.unwrap();
        tenantry_audit::record(
            &mut tx,
            Some(record.id.as_uuid()),
            &who,
            &change("member.added", n),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let mut tx = ctx.begin().await.unwrap();
        tenantry_audit::record_in_tenant(&mut tx, &who, &change("monitor.created", n))
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let mut tx = engine.control_db().begin().await.unwrap();
    tenantry_audit::record(
        &mut tx,
        None,
        &AuditContext::system(),
        &change("tenant.created", 1),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let text = stdout(&tenantry(dir.path(), &["audit", "verify", "acme"]));
    assert_eq!(
        text,
        "the audit log of acme: 3 organization entries, 3 tenant entries, every entry intact\n"
    );
    let json: serde_json::Value = serde_json::from_str(&stdout(&tenantry(
        dir.path(),
        &["audit", "verify", "acme", "--json"],
    )))
    .unwrap();
    assert_eq!(json["problems"], serde_json::json!([]));
    let platform = stdout(&tenantry(dir.path(), &["audit", "verify", "--platform"]));
    assert_eq!(
        platform,
        "the platform audit log: 1 entry, every entry intact\n"
    );

    // Rewritten by someone with the owner role (the superuser has no login in a managed
    // cluster; the owner owns the tables): one entry in each chain.
    let mut owner = connect(dir.path(), "tenantry_owner", "tenantry")
        .await
        .unwrap();
    sqlx::query("UPDATE audit.entries SET action = 'member.removed' WHERE org_id = $1 AND seq = 2")
        .bind(record.id.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();
    let mut storage = tenantry_tenancy::Operator::new(&engine)
        .tenant_storage(&record)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET after = '{\"n\": 30}' WHERE seq = 3")
        .execute(&mut storage)
        .await
        .unwrap();
    engine.close().await;

    let output = tenantry(dir.path(), &["audit", "verify", "acme"]);
    assert!(!output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        text.contains(
            "  - organization chain: entry 2 was altered\n  - tenant chain: entry 3 was altered\n"
        ),
        "{text}"
    );
    assert!(text.contains("restore the audit tables"), "{text}");
    assert!(
        stderr.contains("the audit log of acme failed verification (2 problems)"),
        "{stderr}"
    );
    let output = tenantry(dir.path(), &["audit", "verify", "acme", "--json"]);
    assert!(!output.status.success());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        json["problems"],
        serde_json::json!([
            "organization chain: entry 2 was altered",
            "tenant chain: entry 3 was altered"
        ])
    );

    let unknown = tenantry(dir.path(), &["audit", "verify", "nobody"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("tenant list"));
    assert!(server.stop(Signal::SIGTERM).success());
}
