//! `tenantry tenant move`: a tenant moved to another tier from the command line, with a report of
//! its tables and write pause, an audit entry, and errors that say what to do.

use crate::support::{create_tenant, data_dir, stdout, tenantry};

#[test]
fn a_tenant_moves_to_another_tier_from_the_cli() {
    let dir = data_dir();
    create_tenant(dir.path(), "Acme", "acme", "shared");

    let moved = tenantry(
        dir.path(),
        &[
            "tenant", "move", "acme", "--to", "database", "--drain", "0", "--json",
        ],
    );
    assert!(moved.status.success(), "{moved:?}");
    let report: serde_json::Value = serde_json::from_str(&stdout(&moved)).unwrap();
    assert_eq!(report["from"], "shared");
    assert_eq!(report["to"], "database");
    assert!(report["write_pause_ms"].as_f64().unwrap() > 0.0);
    let settings = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "tenant_settings")
        .unwrap();
    assert_eq!(settings["rows"], 1);
    let progress = String::from_utf8_lossy(&moved.stderr);
    assert!(progress.contains("copied monitors"), "{progress}");
    assert!(progress.contains("switched; writes paused"), "{progress}");

    let shown = tenantry(dir.path(), &["tenant", "show", "acme", "--json"]);
    let shown: serde_json::Value = serde_json::from_str(&stdout(&shown)).unwrap();
    assert_eq!(shown["isolation"], "database");
    assert_eq!(shown["status"], "active");

    let verified = tenantry(dir.path(), &["audit", "verify", "acme"]);
    assert!(verified.status.success(), "{verified:?}");

    let again = tenantry(dir.path(), &["tenant", "move", "acme", "--to", "database"]);
    assert!(!again.status.success());
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(said.contains("already in the database tier"), "{said}");

    let elsewhere = tenantry(
        dir.path(),
        &[
            "tenant", "move", "acme", "--to", "schema", "--server", "other",
        ],
    );
    assert!(!elsewhere.status.success());
    let said = String::from_utf8_lossy(&elsewhere.stderr);
    assert!(
        said.contains("name a server for the database tier only"),
        "{said}"
    );
}
