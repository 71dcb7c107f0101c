//! API keys: shown once, stored as hashes, acting in their own organization only, revocable.

use reqwest::Method;
use serde_json::{Value, json};
use tenantry_tenancy::Isolation;
use uuid::Uuid;

use crate::{Caller, TestApp, caller, org_in, problem, send};

async fn new_key(app: &TestApp, owner: &Caller, org: &str, role: &str) -> Value {
    let response = send(
        app,
        Method::POST,
        &format!("/api/v1/organizations/{org}/api-keys"),
        &owner.token,
        None,
        Some(json!({"name": "ci", "role": role})),
    )
    .await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_shown_once_stored_as_a_hash_and_acts_in_its_organization() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let acme = org_in(&app, &ada, "Acme", Isolation::Shared).await;
    let created = new_key(&app, &ada, &acme, "member").await;
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("tnt_") && secret.len() > 40, "{secret}");
    let listed: Value = send(
        &app,
        Method::GET,
        &format!("/api/v1/organizations/{acme}/api-keys"),
        &ada.token,
        None,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let listed = &listed["items"][0];
    assert!(listed.get("secret").is_none());
    assert_eq!(listed["role"], "member");
    let stored: Vec<u8> = sqlx::query_scalar("SELECT key_hash FROM orgs.api_keys")
        .fetch_one(app.tenancy.owner_pool())
        .await
        .unwrap();
    assert_eq!(stored.len(), 32);

    // No X-Tenant needed: the key's organization is the context.
    let made = send(
        &app,
        Method::POST,
        "/api/v1/monitors",
        secret,
        None,
        Some(json!({"name": "k", "kind": "heartbeat"})),
    )
    .await;
    assert_eq!(made.status(), 201);
    let listed: Value = send(&app, Method::GET, "/api/v1/monitors", secret, None, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    // Keys are not users.
    assert_eq!(
        problem(
            send(&app, Method::GET, "/api/v1/user", secret, None, None).await,
            401
        )
        .await["code"],
        "unauthorized"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_never_reaches_another_organization_in_any_tier() {
    for tier in [Isolation::Shared, Isolation::Schema, Isolation::Database] {
        let app = TestApp::spawn().await;
        let ada = caller(&app, "ada@example.com").await;
        let a = org_in(&app, &ada, "Ada's", tier).await;
        let b = org_in(&app, &ada, "Ada's other", tier).await;
        let key = new_key(&app, &ada, &a, "owner").await;
        let secret = key["secret"].as_str().unwrap();
        let theirs: Value = send(
            &app,
            Method::POST,
            "/api/v1/monitors",
            &ada.token,
            Some(&b),
            Some(json!({"name": "b", "kind": "heartbeat"})),
        )
        .await
        .json()
        .await
        .unwrap();
        let theirs = format!("/api/v1/monitors/{}", theirs["id"].as_str().unwrap());
        let missing = format!("/api/v1/monitors/{}", Uuid::new_v4());
        let by_id = problem(
            send(&app, Method::GET, &theirs, secret, None, None).await,
            404,
        )
        .await;
        assert_eq!(
            by_id,
            problem(
                send(&app, Method::GET, &missing, secret, None, None).await,
                404
            )
            .await,
            "{tier}"
        );
        // Even though its maker belongs to B, the key does not.
        let via_header = send(
            &app,
            Method::GET,
            "/api/v1/monitors",
            secret,
            Some(&b),
            None,
        )
        .await;
        assert_eq!(via_header.status(), 404, "{tier}");
        let own_header = send(
            &app,
            Method::GET,
            "/api/v1/monitors",
            secret,
            Some(&a),
            None,
        )
        .await;
        assert_eq!(own_header.status(), 200, "{tier}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_bound_keys_and_revocation_takes_effect_at_once() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let max = caller(&app, "max@example.com").await;
    let acme = org_in(&app, &ada, "Acme", Isolation::Shared).await;
    let keys = format!("/api/v1/organizations/{acme}/api-keys");
    for (user, role) in [(&max, "member"), (&max, "admin")] {
        sqlx::query("INSERT INTO orgs.memberships (org_id, user_id, role) VALUES ($1, $2, $3) ON CONFLICT (org_id, user_id) DO UPDATE SET role = $3")
            .bind(acme.parse::<Uuid>().unwrap())
            .bind(user.id)
            .bind(role)
            .execute(app.tenancy.owner_pool())
            .await
            .unwrap();
        let wanted = if role == "member" { "viewer" } else { "owner" };
        let refused = send(
            &app,
            Method::POST,
            &keys,
            &max.token,
            None,
            Some(json!({"name": "x", "role": wanted})),
        )
        .await;
        assert_eq!(
            problem(refused, 403).await["code"],
            "forbidden",
            "{role} making a {wanted} key"
        );
    }

    let viewer = new_key(&app, &ada, &acme, "viewer").await;
    let secret = viewer["secret"].as_str().unwrap();
    assert_eq!(
        send(&app, Method::GET, "/api/v1/monitors", secret, None, None)
            .await
            .status(),
        200
    );
    let write = send(
        &app,
        Method::POST,
        "/api/v1/monitors",
        secret,
        None,
        Some(json!({"name": "no", "kind": "heartbeat"})),
    )
    .await;
    assert_eq!(problem(write, 403).await["code"], "forbidden");

    let path = format!("{keys}/{}", viewer["id"].as_str().unwrap());
    assert_eq!(
        send(&app, Method::DELETE, &path, &ada.token, None, None)
            .await
            .status(),
        204
    );
    let after = send(&app, Method::GET, "/api/v1/monitors", secret, None, None).await;
    assert_eq!(problem(after, 401).await["code"], "invalid_token");
    assert_eq!(
        send(&app, Method::DELETE, &path, &ada.token, None, None)
            .await
            .status(),
        404
    );
    let stranger = caller(&app, "eve@example.com").await;
    let elsewhere = org_in(&app, &stranger, "Eve's", Isolation::Shared).await;
    let foreign = format!(
        "/api/v1/organizations/{elsewhere}/api-keys/{}",
        viewer["id"].as_str().unwrap()
    );
    assert_eq!(
        send(&app, Method::DELETE, &foreign, &stranger.token, None, None)
            .await
            .status(),
        404
    );
}
