//! A plan's features are enforced on every path: creating what the plan excludes is
//! `403 feature_unavailable` naming the feature, and what exists already is kept but stops
//! working.

use reqwest::Method;
use serde_json::{Value, json};
use tenantry_tenancy::Isolation;

use crate::{TestApp, caller, org_in, problem, send, success_json};

async fn refused(response: reqwest::Response, feature: &str) {
    let body = problem(response, 403).await;
    assert_eq!(body["code"], "feature_unavailable");
    assert_eq!(body["feature"], feature);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_plan_excludes_is_refused_and_what_exists_stops_working() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = org_in(&app, &ada, "Acme", Isolation::Shared).await;
    let slug = success_json(
        send(
            &app,
            Method::GET,
            &format!("/api/v1/organizations/{org}"),
            &ada.token,
            None,
            None,
        )
        .await,
    )
    .await["slug"]
        .as_str()
        .unwrap()
        .to_string();

    // The free plan has no agents.
    let agent = send(
        &app,
        Method::POST,
        "/api/v1/agents",
        &ada.token,
        Some(&org),
        Some(json!({"name": "dc"})),
    )
    .await;
    refused(agent, "agents").await;

    // With every feature on, everything is made.
    app.set_feature(&org, "agents", true).await;
    let agent = success_json(
        send(
            &app,
            Method::POST,
            "/api/v1/agents",
            &ada.token,
            Some(&org),
            Some(json!({"name": "dc"})),
        )
        .await,
    )
    .await;
    let agent_token = agent["token"].as_str().unwrap().to_string();
    let claims = |token: String| {
        let app = &app;
        async move {
            app.client
                .post(format!("{}/api/v1/agent/claims", app.base))
                .bearer_auth(token)
                .json(&json!({"max": 1}))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(claims(agent_token.clone()).await.status(), 200);
    let monitor = success_json(
        send(
            &app,
            Method::POST,
            "/api/v1/monitors",
            &ada.token,
            Some(&org),
            Some(json!({"name": "db", "kind": "tcp", "target": "db.example.com:5432"})),
        )
        .await,
    )
    .await;
    let page = send(
        &app,
        Method::POST,
        "/api/v1/status-pages",
        &ada.token,
        Some(&org),
        Some(json!({"slug": "status", "title": "Acme", "monitor_ids": [monitor["id"]], "public": true})),
    )
    .await;
    assert_eq!(page.status(), 201);
    let public = |path: String| {
        let app = &app;
        async move {
            app.client
                .get(format!("{}{path}", app.base))
                .send()
                .await
                .unwrap()
        }
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
    refused(claims(agent_token).await, "agents").await;
    assert_eq!(public(format!("/status/{slug}/status")).await.status(), 404);
    let page = send(
        &app,
        Method::POST,
        "/api/v1/status-pages",
        &ada.token,
        Some(&org),
        Some(json!({"slug": "other", "title": "Other", "monitor_ids": [], "public": true})),
    )
    .await;
    refused(page, "status_pages").await;
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
        let channel = send(
            &app,
            Method::POST,
            "/api/v1/alert-channels",
            &ada.token,
            Some(&org),
            Some(body),
        )
        .await;
        assert_eq!(channel.status(), 403, "{kind}");
        refused(channel, feature).await;
    }
    refused(
        send(
            &app,
            Method::GET,
            &format!("/api/v1/organizations/{org}/audit-logs"),
            &ada.token,
            None,
            None,
        )
        .await,
        "audit_log",
    )
    .await;
    refused(
        send(
            &app,
            Method::GET,
            &format!("/api/v1/organizations/{org}/export"),
            &ada.token,
            None,
            None,
        )
        .await,
        "export",
    )
    .await;
    // Kept: the agent and the page are still listed.
    let agents = success_json(
        send(
            &app,
            Method::GET,
            "/api/v1/agents",
            &ada.token,
            Some(&org),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(agents["items"].as_array().unwrap().len(), 1);
    let pages = success_json(
        send(
            &app,
            Method::GET,
            "/api/v1/status-pages",
            &ada.token,
            Some(&org),
            None,
        )
        .await,
    )
    .await;
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
