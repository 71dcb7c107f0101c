//! The request path: no owner-role connection serves a request, and cached authorization data
//! (registry records, keys, roles, limits, sessions) is invalidated at once, on this instance and
//! on another one of the same deployment.

use reqwest::Method;
use serde_json::{Value, json};
use tenantry_tenancy::Isolation;

use crate::{Caller, TestApp, caller, org_in, platform_admin, send, success_json};

/// A new API key of `org`: its id and secret.
async fn new_key_with_id(app: &TestApp, owner: &Caller, org: &str, role: &str) -> (String, String) {
    let created = success_json(
        send(
            app,
            Method::POST,
            &format!("/api/v1/organizations/{org}/api-keys"),
            &owner.token,
            None,
            Some(json!({"name": "ci", "role": role})),
        )
        .await,
    )
    .await;
    (
        created["id"].as_str().unwrap().to_string(),
        created["secret"].as_str().unwrap().to_string(),
    )
}

async fn new_key(app: &TestApp, owner: &Caller, org: &str, role: &str) -> String {
    new_key_with_id(app, owner, org, role).await.1
}

type Step<'a> = (Method, String, String, Option<&'a str>, Option<Value>);

/// Sends every request of `pass`, each of which must succeed; returns those that used an
/// owner-role connection.
async fn run(app: &TestApp, pass: &[Step<'_>]) -> Vec<String> {
    let mut owner_used = Vec::new();
    for (method, path, token, tenant, body) in pass {
        let before = app.tenancy.owner_role_uses();
        let response = send(app, method.clone(), path, token, *tenant, body.clone()).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        if app.tenancy.owner_role_uses() != before {
            owner_used.push(format!("{method} {path}"));
        }
    }
    owner_used
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_owner_role_connection_serves_a_request() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let bob = caller(&app, "bob@example.com").await;
    let mut orgs = Vec::new();
    for tier in Isolation::ALL {
        let org = org_in(&app, &ada, &format!("Org {tier}"), *tier).await;
        let key = new_key(&app, &ada, &org, "admin").await;
        orgs.push((org, key));
    }
    // Warm: what the first request of a process reads once.
    for (org, key) in &orgs {
        run(
            &app,
            &[
                (
                    Method::GET,
                    "/api/v1/monitors".into(),
                    key.clone(),
                    None,
                    None,
                ),
                (
                    Method::GET,
                    format!("/api/v1/organizations/{org}"),
                    ada.token.clone(),
                    None,
                    None,
                ),
            ],
        )
        .await;
    }

    let before = app.tenancy.owner_role_uses();
    for (org, key) in &orgs {
        // Tenant data, with an API key and with the user's token.
        let monitor = success_json(
            send(
                &app,
                Method::POST,
                "/api/v1/monitors",
                key,
                None,
                Some(json!({"name": "api", "kind": "http", "target": "https://example.com"})),
            )
            .await,
        )
        .await;
        let monitor = monitor["id"].as_str().unwrap().to_string();
        let channel = success_json(
            send(
                &app,
                Method::POST,
                "/api/v1/alert-channels",
                key,
                None,
                Some(json!({"name": "ops", "kind": "email", "email": "ops@example.com"})),
            )
            .await,
        )
        .await;
        let channel = channel["id"].as_str().unwrap().to_string();
        let page = success_json(
            send(
                &app,
                Method::POST,
                "/api/v1/status-pages",
                key,
                None,
                Some(json!({"slug": "public", "title": "Status", "monitor_ids": [monitor], "public": true})),
            )
            .await,
        )
        .await;
        let page = page["id"].as_str().unwrap().to_string();
        let user = Some(org.as_str());
        let used = run(
            &app,
            &[
                (
                    Method::GET,
                    "/api/v1/monitors".into(),
                    key.clone(),
                    None,
                    None,
                ),
                (
                    Method::GET,
                    format!("/api/v1/monitors/{monitor}"),
                    key.clone(),
                    None,
                    None,
                ),
                (
                    Method::PUT,
                    format!("/api/v1/monitors/{monitor}"),
                    key.clone(),
                    None,
                    Some(
                        json!({"name": "renamed", "kind": "http", "target": "https://example.com"}),
                    ),
                ),
                (
                    Method::GET,
                    format!("/api/v1/monitors/{monitor}/results"),
                    key.clone(),
                    None,
                    None,
                ),
                (
                    Method::GET,
                    format!("/api/v1/monitors/{monitor}/incidents"),
                    key.clone(),
                    None,
                    None,
                ),
                (
                    Method::GET,
                    "/api/v1/monitors".into(),
                    ada.token.clone(),
                    user,
                    None,
                ),
                (
                    Method::GET,
                    format!("/api/v1/monitors/{monitor}"),
                    ada.token.clone(),
                    user,
                    None,
                ),
                (
                    Method::GET,
                    "/api/v1/alert-channels".into(),
                    key.clone(),
                    None,
                    None,
                ),
                (
                    Method::GET,
                    format!("/api/v1/alert-channels/{channel}"),
                    key.clone(),
                    None,
                    None,
                ),
                (
                    Method::GET,
                    "/api/v1/status-pages".into(),
                    key.clone(),
                    None,
                    None,
                ),
                (
                    Method::GET,
                    format!("/api/v1/status-pages/{page}"),
                    key.clone(),
                    None,
                    None,
                ),
                (
                    Method::DELETE,
                    format!("/api/v1/status-pages/{page}"),
                    key.clone(),
                    None,
                    None,
                ),
                (
                    Method::DELETE,
                    format!("/api/v1/alert-channels/{channel}"),
                    key.clone(),
                    None,
                    None,
                ),
                (
                    Method::DELETE,
                    format!("/api/v1/monitors/{monitor}"),
                    key.clone(),
                    None,
                    None,
                ),
                (
                    Method::GET,
                    "/api/v1/agents".into(),
                    key.clone(),
                    None,
                    None,
                ),
                // The organization, its members, keys, invitations, usage and audit trail.
                (
                    Method::GET,
                    format!("/api/v1/organizations/{org}"),
                    ada.token.clone(),
                    None,
                    None,
                ),
                (
                    Method::GET,
                    format!("/api/v1/organizations/{org}/members"),
                    ada.token.clone(),
                    None,
                    None,
                ),
                (
                    Method::POST,
                    format!("/api/v1/organizations/{org}/members"),
                    ada.token.clone(),
                    None,
                    Some(json!({"user_id": bob.id, "role": "member"})),
                ),
                (
                    Method::PATCH,
                    format!("/api/v1/organizations/{org}/members/{}", bob.id),
                    ada.token.clone(),
                    None,
                    Some(json!({"role": "viewer"})),
                ),
                (
                    Method::GET,
                    "/api/v1/monitors".into(),
                    bob.token.clone(),
                    user,
                    None,
                ),
                (
                    Method::DELETE,
                    format!("/api/v1/organizations/{org}/members/{}", bob.id),
                    ada.token.clone(),
                    None,
                    None,
                ),
                (
                    Method::GET,
                    format!("/api/v1/organizations/{org}/api-keys"),
                    ada.token.clone(),
                    None,
                    None,
                ),
                (
                    Method::POST,
                    format!("/api/v1/organizations/{org}/invitations"),
                    ada.token.clone(),
                    None,
                    Some(json!({"email": "carol@example.com", "role": "member"})),
                ),
                (
                    Method::GET,
                    format!("/api/v1/organizations/{org}/invitations"),
                    ada.token.clone(),
                    None,
                    None,
                ),
                (
                    Method::GET,
                    format!("/api/v1/organizations/{org}/usage"),
                    ada.token.clone(),
                    None,
                    None,
                ),
                (
                    Method::GET,
                    format!("/api/v1/organizations/{org}/audit-logs"),
                    ada.token.clone(),
                    None,
                    None,
                ),
                (
                    Method::PUT,
                    format!("/api/v1/organizations/{org}"),
                    ada.token.clone(),
                    None,
                    Some(json!({"billing_email": "billing@example.com"})),
                ),
                (
                    Method::POST,
                    format!("/api/v1/organizations/{org}/switch"),
                    ada.token.clone(),
                    None,
                    None,
                ),
                (
                    Method::GET,
                    "/api/v1/user".into(),
                    ada.token.clone(),
                    None,
                    None,
                ),
                (
                    Method::GET,
                    "/api/v1/user/organizations".into(),
                    ada.token.clone(),
                    None,
                    None,
                ),
                (
                    Method::GET,
                    "/api/v1/organizations".into(),
                    ada.token.clone(),
                    None,
                    None,
                ),
            ],
        )
        .await;
        assert!(used.is_empty(), "served with the owner role: {used:?}");
    }
    let after = app.tenancy.owner_role_uses();
    assert_eq!(
        after,
        before,
        "{} owner-role connections were used to serve requests",
        after - before
    );
}

/// The organization's row as the admin API shows it, with a new `api_requests_per_minute`.
async fn set_budget(app: &TestApp, admin: &str, org: &str, per_minute: u32) {
    success_json(
        send(
            app,
            Method::PUT,
            &format!("/api/v1/admin/tenants/{org}"),
            admin,
            None,
            Some(json!({"limits": {"api_requests_per_minute": per_minute}})),
        )
        .await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lowered_budget_counts_from_the_very_next_request() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app).await;
    let ada = caller(&app, "ada@example.com").await;
    let org = org_in(&app, &ada, "Acme", Isolation::Shared).await;
    let key = new_key(&app, &ada, &org, "member").await;
    // The budget is read (and cached) by these.
    for _ in 0..3 {
        let response = send(&app, Method::GET, "/api/v1/monitors", &key, None, None).await;
        assert_eq!(response.status(), 200);
    }
    set_budget(&app, &admin, &org, 2).await;
    let first = send(&app, Method::GET, "/api/v1/monitors", &key, None, None).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["ratelimit-limit"], "2");
    let statuses = [
        send(&app, Method::GET, "/api/v1/monitors", &key, None, None)
            .await
            .status(),
        send(&app, Method::GET, "/api/v1/monitors", &key, None, None)
            .await
            .status(),
    ];
    assert!(
        statuses.contains(&reqwest::StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_members_revoked_keys_and_suspended_organizations_are_refused_at_once_on_every_instance()
 {
    let one = TestApp::spawn().await;
    let two = one.another_instance(None).await;
    let admin = platform_admin(&one).await;
    let ada = caller(&one, "ada@example.com").await;
    let bob = caller(&one, "bob@example.com").await;
    for tier in Isolation::ALL {
        let org = org_in(&one, &ada, &format!("Org {tier}"), *tier).await;
        let (kid, key) = new_key_with_id(&one, &ada, &org, "member").await;
        let other_key = new_key(&one, &ada, &org, "member").await;
        success_json(
            send(
                &one,
                Method::POST,
                &format!("/api/v1/organizations/{org}/members"),
                &ada.token,
                None,
                Some(json!({"user_id": bob.id, "role": "member"})),
            )
            .await,
        )
        .await;
        // Both instances have everything cached.
        for app in [&one, &two] {
            for _ in 0..2 {
                for token in [&key, &other_key] {
                    let r = send(app, Method::GET, "/api/v1/monitors", token, None, None).await;
                    assert_eq!(r.status(), 200);
                }
                let r = send(
                    app,
                    Method::GET,
                    "/api/v1/monitors",
                    &bob.token,
                    Some(&org),
                    None,
                )
                .await;
                assert_eq!(r.status(), 200);
            }
        }

        // A removed member: refused on the next request, on both.
        let removed = send(
            &one,
            Method::DELETE,
            &format!("/api/v1/organizations/{org}/members/{}", bob.id),
            &ada.token,
            None,
            None,
        )
        .await;
        assert_eq!(removed.status(), 204);
        for app in [&one, &two] {
            let r = send(
                app,
                Method::GET,
                "/api/v1/monitors",
                &bob.token,
                Some(&org),
                None,
            )
            .await;
            assert_eq!(r.status(), 404, "{tier}: a removed member was served");
        }

        // A revoked key.
        let revoked = send(
            &one,
            Method::DELETE,
            &format!("/api/v1/organizations/{org}/api-keys/{kid}"),
            &ada.token,
            None,
            None,
        )
        .await;
        assert_eq!(revoked.status(), 204);
        for app in [&one, &two] {
            let r = send(app, Method::GET, "/api/v1/monitors", &key, None, None).await;
            assert_eq!(r.status(), 401, "{tier}: a revoked key was served");
        }

        // A suspended organization.
        success_json(
            send(
                &one,
                Method::POST,
                &format!("/api/v1/admin/tenants/{org}/suspend"),
                &admin,
                None,
                None,
            )
            .await,
        )
        .await;
        for app in [&one, &two] {
            let r = send(app, Method::GET, "/api/v1/monitors", &other_key, None, None).await;
            assert_eq!(
                r.status(),
                403,
                "{tier}: a suspended organization was served"
            );
            let r = send(
                app,
                Method::GET,
                "/api/v1/monitors",
                &ada.token,
                Some(&org),
                None,
            )
            .await;
            assert_eq!(
                r.status(),
                403,
                "{tier}: a suspended organization was served"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logged_out_session_is_refused_at_once_on_every_instance() {
    let one = TestApp::spawn().await;
    let two = one.another_instance(None).await;
    let ada = caller(&one, "ada@example.com").await;
    for app in [&one, &two] {
        let r = send(app, Method::GET, "/api/v1/user", &ada.token, None, None).await;
        assert_eq!(r.status(), 200);
    }
    let out = send(
        &one,
        Method::POST,
        "/api/v1/auth/logout",
        &ada.token,
        None,
        None,
    )
    .await;
    assert_eq!(out.status(), 204);
    for app in [&one, &two] {
        let r = send(app, Method::GET, "/api/v1/user", &ada.token, None, None).await;
        assert_eq!(r.status(), 401);
    }
}
