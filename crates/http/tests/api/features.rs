//! A plan's features are enforced on every path: creating what the plan excludes is
//! `403 feature_unavailable` naming the feature, and what exists already is kept but stops
//! working.

use reqwest::Method;
use serde_json::{Value, json};
use tenantry_tenancy::Isolation;

use crate::{Answer, TestApp, caller, org_in};

fn refused(response: Answer, feature: &str) {
    let body = response.problem(403);
    assert_eq!(body["code"], "feature_unavailable");
    assert_eq!(body["feature"], feature);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_plan_excludes_is_refused_and_what_exists_stops_working() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = org_in(&app, &ada, "Acme", Isolation::Shared).await;
    let orgs = app.as_(&ada).organizations();
    let slug = orgs.get(&org).await["slug"].as_str().unwrap().to_string();
    let acme = app.as_(&ada).org(&org);

    // The free plan has no agents.
    let agent = acme.agents().try_create(json!({"name": "dc"})).await;
    refused(agent, "agents");

    // With every feature on, everything is made.
    app.set_feature(&org, "agents", true).await;
    let agent = acme.agents().create(json!({"name": "dc"})).await;
    let agent_token = agent["token"].as_str().unwrap().to_string();
    let claims = |token: String| {
        let app = &app;
        async move {
            app.as_(&token)
                .request(Method::POST, "/api/v1/agent/claims")
                .body(json!({"max": 1}))
                .send()
                .await
        }
    };
    assert_eq!(claims(agent_token.clone()).await.status(), 200);
    let monitor = acme
        .monitors()
        .create(json!({"name": "db", "kind": "tcp", "target": "db.example.com:5432"}))
        .await;
    acme.status_pages()
        .create(json!({"slug": "status", "title": "Acme", "monitor_ids": [monitor["id"]], "public": true}))
        .await;
    let public = |path: String| {
        let app = &app;
        async move { app.anonymous().request(Method::GET, path).send().await }
    };
    assert_eq!(public(format!("/status/{slug}/status")).await.status(), 200);

    // The plan loses them: new ones are refused, existing ones stop working (and are kept).
    for feature in [
        "agents",
        "status_pages",
        "webhook_alerts",
        "email_alerts",
        "audit_log",
        "export",
    ] {
        app.set_feature(&org, feature, false).await;
    }
    refused(claims(agent_token).await, "agents");
    assert_eq!(public(format!("/status/{slug}/status")).await.status(), 404);
    let page = acme
        .status_pages()
        .try_create(json!({"slug": "other", "title": "Other", "monitor_ids": [], "public": true}))
        .await;
    refused(page, "status_pages");
    for (kind, body, feature) in [
        (
            "webhook",
            json!({"name": "hook", "kind": "webhook", "url": "https://hooks.example.com/x"}),
            "webhook_alerts",
        ),
        (
            "email",
            json!({"name": "mail", "kind": "email", "email": "ops@example.com"}),
            "email_alerts",
        ),
    ] {
        let channel = acme.alert_channels().try_create(body).await;
        assert_eq!(channel.status(), 403, "{kind}");
        refused(channel, feature);
    }
    refused(orgs.audit_logs(&org).try_list().await, "audit_log");
    refused(orgs.try_export(&org).await, "export");
    // Kept: the agent and the page are still listed.
    let agents = acme.agents().list().await;
    assert_eq!(agents["items"].as_array().unwrap().len(), 1);
    let pages = acme.status_pages().list().await;
    assert_eq!(pages["items"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_feature_key_is_refused() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = org_in(&app, &ada, "Acme", Isolation::Shared).await;
    let mut features = serde_json::Map::new();
    features.insert("agent".to_string(), Value::Bool(true));
    let refused = app
        .orgs
        .change_entitlements(
            org.parse().unwrap(),
            &tenantry_orgs::EntitlementChange {
                features: Some(features),
                ..tenantry_orgs::EntitlementChange::default()
            },
            &tenantry_audit::AuditContext::system(),
        )
        .await;
    assert!(refused.is_err(), "a misspelt feature was accepted");
}
