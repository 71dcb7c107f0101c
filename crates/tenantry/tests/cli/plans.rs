//! `tenantry tenant set-plan` and `set-limit`: a tenant's plan and its overrides, merged key by
//! key, with errors that say what is accepted.

use crate::support::{create_tenant, data_dir, stdout, tenantry};

#[test]
fn plans_and_limits_are_set_from_the_cli() {
    let dir = data_dir();
    create_tenant(dir.path(), "Acme", "acme", "shared");

    let json = |args: &[&str]| -> serde_json::Value {
        let output = tenantry(dir.path(), args);
        assert!(output.status.success(), "{output:?}");
        serde_json::from_str(&stdout(&output)).unwrap()
    };
    let pro = json(&["tenant", "set-plan", "acme", "pro", "--json"]);
    assert_eq!(pro["entitlements"]["plan"], "pro");
    assert_eq!(pro["entitlements"]["limits"]["max_users"], 50);
    let limited = json(&["tenant", "set-limit", "acme", "max_monitors", "3", "--json"]);
    assert_eq!(limited["entitlements"]["limits"]["max_monitors"], 3);
    assert_eq!(limited["entitlements"]["limits"]["max_users"], 50);
    let unlimited = json(&[
        "tenant",
        "set-limit",
        "acme",
        "max_users",
        "unlimited",
        "--json",
    ]);
    assert_eq!(
        unlimited["entitlements"]["limits"]["max_users"],
        serde_json::Value::Null
    );
    assert_eq!(unlimited["entitlements"]["limits"]["max_monitors"], 3);

    let text = stdout(&tenantry(
        dir.path(),
        &["tenant", "set-plan", "acme", "enterprise"],
    ));
    assert!(
        text.contains("max_monitors             3  (override)"),
        "{text}"
    );

    for (args, says) in [
        (
            vec!["tenant", "set-plan", "acme", "gold"],
            "free, pro, enterprise",
        ),
        (
            vec!["tenant", "set-limit", "acme", "max_everything", "1"],
            "max_users",
        ),
        (
            vec!["tenant", "set-limit", "acme", "max_users", "many"],
            "unlimited",
        ),
        (vec!["tenant", "set-plan", "nobody", "pro"], "tenant list"),
    ] {
        let output = tenantry(dir.path(), &args);
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
