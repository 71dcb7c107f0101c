//! Secrets the serving role cannot reach: the keys signing access tokens and sealing email
//! bodies and webhook secrets are owner-only tables (a statement a request runs, an injection
//! included, cannot read them); webhook URLs, which often carry a credential in their path, are
//! shown in full to admins and owners only.

use serde_json::{Value, json};

use crate::{TestApp, caller, new_org};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serving_role_cannot_read_signing_or_sealing_keys() {
    let app = TestApp::spawn().await;
    // The server signs and seals all the same: keys were loaded by the owner role at start.
    let ada = caller(&app, "ada@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;
    app.as_(&ada)
        .org(&org)
        .alert_channels()
        .create(json!({"name": "Hook", "kind": "webhook", "url": "https://hooks.example.com/t"}))
        .await;

    for table in [
        "identity.signing_keys",
        "mail.keys",
        "monitoring.alert_keys",
    ] {
        let read = sqlx::query(&format!("SELECT * FROM {table}"))
            .fetch_all(app.tenancy.control_db())
            .await;
        let error = read.expect_err(table).to_string();
        assert!(error.contains("permission denied"), "{table}: {error}");
    }
    // Nor can it grant itself the table.
    let grant = sqlx::query("GRANT SELECT ON identity.signing_keys TO CURRENT_USER")
        .execute(app.tenancy.control_db())
        .await;
    assert!(grant.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_urls_are_shown_in_full_to_admins_only() {
    let app = TestApp::spawn().await;
    let owner = caller(&app, "owner@example.com").await;
    let org = new_org(&app, &owner, "Acme").await;
    let url = "https://hooks.example.com:8443/services/T000/B000/XXXXSECRETXXXX?token=abc";
    let channels = app.as_(&owner).org(&org).alert_channels();
    let created = channels
        .create(json!({"name": "Hook", "kind": "webhook", "url": url}))
        .await;
    let id = created["id"].as_str().unwrap();

    for role in ["viewer", "member", "admin"] {
        let someone = caller(&app, &format!("{role}@example.com")).await;
        let members = app.as_(&owner).organizations().members(&org);
        let added = members.try_add(someone.id, role).await;
        assert_eq!(added.status(), 201, "{role}");
        let theirs = app.as_(&someone).org(&org).alert_channels();
        let read = theirs.get(id).await;
        let listed = theirs.list().await;
        let listed: &Value = &listed["items"][0];
        let expected = if role == "admin" {
            url
        } else {
            "https://hooks.example.com:8443/…"
        };
        assert_eq!(read["url"], expected, "{role}");
        assert_eq!(listed["url"], expected, "{role}");
        assert!(!read.to_string().contains("XXXXSECRETXXXX") || role == "admin");
    }
    let read = channels.get(id).await;
    assert_eq!(read["url"], url);
}
