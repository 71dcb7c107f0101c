//! Plan limits hold under concurrency: N parallel creates against room for K make exactly K,
//! and the rest are `403 limit_exceeded` naming the limit.

use futures::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};
use tenantry_tenancy::Isolation;
use uuid::Uuid;

use crate::{Caller, TestApp, caller, org_in, problem, send};

/// Checks that exactly `room` of the responses succeeded and the others were refused for `limit`.
async fn exactly(responses: Vec<reqwest::Response>, room: usize, limit: &str) {
    let mut created = 0;
    for response in responses {
        if response.status().is_success() {
            created += 1;
        } else {
            let body = problem(response, 403).await;
            assert_eq!(body["code"], "limit_exceeded");
            assert_eq!(body["limit"], limit);
        }
    }
    assert_eq!(created, room, "{limit}");
}

async fn count(app: &TestApp, sql: &str, org: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(org.parse::<Uuid>().unwrap())
        .fetch_one(tenantry_tenancy::Operator::new(&app.tenancy).control())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_parallel_invitations_against_room_for_five_make_five() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = org_in(&app, &ada, "Acme", Isolation::Shared).await;
    // The owner is one user: room for five more.
    app.set_limit(&org, "max_users", json!(6)).await;
    let path = format!("/api/v1/organizations/{org}/invitations");
    let invites = (0..50).map(|i| {
        send(
            &app,
            Method::POST,
            &path,
            &ada.token,
            None,
            Some(json!({"email": format!("user{i}@example.com"), "role": "member"})),
        )
    });
    exactly(join_all(invites).await, 5, "max_users").await;
    let pending = count(
        &app,
        "SELECT count(*) FROM orgs.invitations WHERE org_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL",
        &org,
    )
    .await;
    assert_eq!(pending, 5);

    // Pending invitations count: adding a member is refused too, and revoking one makes room.
    let bob = caller(&app, "bob@example.com").await;
    let members = format!("/api/v1/organizations/{org}/members");
    let add = json!({"user_id": bob.id, "role": "viewer"});
    let refused = send(
        &app,
        Method::POST,
        &members,
        &ada.token,
        None,
        Some(add.clone()),
    )
    .await;
    assert_eq!(problem(refused, 403).await["limit"], "max_users");
    let listed: Value = send(&app, Method::GET, &path, &ada.token, None, None)
        .await
        .json()
        .await
        .unwrap();
    let first = listed["items"][0]["id"].as_str().unwrap();
    let revoked = send(
        &app,
        Method::DELETE,
        &format!("{path}/{first}"),
        &ada.token,
        None,
        None,
    )
    .await;
    assert_eq!(revoked.status(), 204);
    let added = send(&app, Method::POST, &members, &ada.token, None, Some(add)).await;
    assert_eq!(added.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_member_adds_stop_at_the_limit() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = org_in(&app, &ada, "Acme", Isolation::Shared).await;
    app.set_limit(&org, "max_users", json!(4)).await;
    let mut users: Vec<Caller> = Vec::new();
    for i in 0..16 {
        users.push(caller(&app, &format!("user{i}@example.com")).await);
    }
    let path = format!("/api/v1/organizations/{org}/members");
    let adds = users.iter().map(|user| {
        send(
            &app,
            Method::POST,
            &path,
            &ada.token,
            None,
            Some(json!({"user_id": user.id, "role": "member"})),
        )
    });
    exactly(join_all(adds).await, 3, "max_users").await;
    let members = count(
        &app,
        "SELECT count(*) FROM orgs.memberships WHERE org_id = $1",
        &org,
    )
    .await;
    assert_eq!(members, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_parallel_api_keys_against_room_for_five_make_five() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = org_in(&app, &ada, "Acme", Isolation::Shared).await;
    app.set_limit(&org, "max_api_keys", json!(5)).await;
    let path = format!("/api/v1/organizations/{org}/api-keys");
    let creates = (0..50).map(|i| {
        send(
            &app,
            Method::POST,
            &path,
            &ada.token,
            None,
            Some(json!({"name": format!("key {i}"), "role": "viewer"})),
        )
    });
    exactly(join_all(creates).await, 5, "max_api_keys").await;
    let keys = count(
        &app,
        "SELECT count(*) FROM orgs.api_keys WHERE org_id = $1 AND revoked_at IS NULL",
        &org,
    )
    .await;
    assert_eq!(keys, 5);
}

async fn monitors_stop_at_the_limit(tier: Isolation) {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = org_in(&app, &ada, "Acme", tier).await;
    app.set_limit(&org, "max_monitors", json!(5)).await;
    let creates = (0..50).map(|i| {
        send(
            &app,
            Method::POST,
            "/api/v1/monitors",
            &ada.token,
            Some(&org),
            Some(json!({"name": format!("m{i}"), "kind": "tcp", "target": "example.com:443"})),
        )
    });
    exactly(join_all(creates).await, 5, "max_monitors").await;
    let listed: Value = send(
        &app,
        Method::GET,
        "/api/v1/monitors",
        &ada.token,
        Some(&org),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 5);

    // Unlimited again: creates pass.
    app.set_limit(&org, "max_monitors", Value::Null).await;
    let more = send(
        &app,
        Method::POST,
        "/api/v1/monitors",
        &ada.token,
        Some(&org),
        Some(json!({"name": "more", "kind": "tcp", "target": "example.com:443"})),
    )
    .await;
    assert_eq!(more.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_parallel_monitors_against_room_for_five_make_five_shared() {
    monitors_stop_at_the_limit(Isolation::Shared).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_parallel_monitors_against_room_for_five_make_five_schema() {
    monitors_stop_at_the_limit(Isolation::Schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_parallel_monitors_against_room_for_five_make_five_database() {
    monitors_stop_at_the_limit(Isolation::Database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_interval_may_not_go_below_the_plans_minimum() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = org_in(&app, &ada, "Acme", Isolation::Shared).await;
    let monitor = |interval: i64| json!({"name": "fast", "kind": "tcp", "target": "example.com:443", "interval_seconds": interval});
    // `free` allows 60 s at least.
    let fast = send(
        &app,
        Method::POST,
        "/api/v1/monitors",
        &ada.token,
        Some(&org),
        Some(monitor(30)),
    )
    .await;
    let body = problem(fast, 422).await;
    assert_eq!(body["field"], "interval_seconds");
    let ok = send(
        &app,
        Method::POST,
        "/api/v1/monitors",
        &ada.token,
        Some(&org),
        Some(monitor(60)),
    )
    .await;
    assert_eq!(ok.status(), 201);
    let id = ok.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/v1/monitors/{id}");
    let faster = send(
        &app,
        Method::PUT,
        &path,
        &ada.token,
        Some(&org),
        Some(monitor(30)),
    )
    .await;
    assert_eq!(problem(faster, 422).await["field"], "interval_seconds");

    // An override lowers the floor.
    app.set_limit(&org, "min_check_interval_s", json!(10)).await;
    let faster = send(
        &app,
        Method::PUT,
        &path,
        &ada.token,
        Some(&org),
        Some(monitor(30)),
    )
    .await;
    assert_eq!(faster.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_owns_at_most_the_platforms_cap_of_organizations() {
    let app = TestApp::spawn_with_cap(Some(5)).await;
    let ada = caller(&app, "ada@example.com").await;
    let bodies: Vec<Value> = (0..20)
        .map(|i| json!({"name": format!("Org {i}")}))
        .collect();
    let creates = bodies
        .iter()
        .map(|body| app.post_as("/api/v1/organizations", &ada.token, body));
    exactly(join_all(creates).await, 5, "max_organizations_per_user").await;
    let listed: Value = app
        .get_as("/api/v1/organizations", &ada.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 5);
}

async fn usage_counts(tier: Isolation) {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = org_in(&app, &ada, "Acme", tier).await;
    app.set_limit(&org, "max_monitors", json!(7)).await;
    let bob = caller(&app, "bob@example.com").await;
    let post = |path: String, body: Value| {
        let org = org.clone();
        let token = ada.token.clone();
        let app = &app;
        async move {
            let response = send(app, Method::POST, &path, &token, Some(&org), Some(body)).await;
            assert!(response.status().is_success(), "{path}");
        }
    };
    post(
        format!("/api/v1/organizations/{org}/members"),
        json!({"user_id": bob.id, "role": "viewer"}),
    )
    .await;
    post(
        format!("/api/v1/organizations/{org}/invitations"),
        json!({"email": "c@example.com", "role": "member"}),
    )
    .await;
    post(
        format!("/api/v1/organizations/{org}/api-keys"),
        json!({"name": "ci", "role": "viewer"}),
    )
    .await;
    for i in 0..3 {
        post(
            "/api/v1/monitors".to_string(),
            json!({"name": format!("m{i}"), "kind": "tcp", "target": "example.com:443"}),
        )
        .await;
    }
    let path = format!("/api/v1/organizations/{org}/usage");
    // Any member reads it.
    let usage: Value = send(&app, Method::GET, &path, &bob.token, None, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(usage["plan"], "free");
    assert!(
        usage["period_start"]
            .as_str()
            .unwrap()
            .contains("-01T00:00:00"),
        "{usage}"
    );
    let counts = &usage["usage"];
    assert_eq!(
        counts["users"],
        json!({"used": 3, "limit": 5}),
        "two members and an invitation"
    );
    assert_eq!(counts["monitors"], json!({"used": 3, "limit": 7}));
    assert_eq!(counts["api_keys"], json!({"used": 1, "limit": 2}));
    assert_eq!(counts["agents"], json!({"used": 0, "limit": 1}));
    assert_eq!(counts["api_requests"]["limit"], 600);
    // The member add, the invitation, the key, three monitors: each a request in the
    // organization, counted.
    let requests = counts["api_requests"]["used"].as_i64().unwrap();
    assert!(requests >= 6, "{usage}");
    let again: Value = send(&app, Method::GET, &path, &bob.token, None, None)
        .await
        .json()
        .await
        .unwrap();
    assert!(again["usage"]["api_requests"]["used"].as_i64().unwrap() > requests);
    assert!(counts["storage_bytes"].as_i64().unwrap() > 0, "{usage}");

    let stranger = caller(&app, "eve@example.com").await;
    let theirs = send(&app, Method::GET, &path, &stranger.token, None, None).await;
    let nowhere = send(
        &app,
        Method::GET,
        &format!("/api/v1/organizations/{}/usage", Uuid::new_v4()),
        &stranger.token,
        None,
        None,
    )
    .await;
    assert_eq!(problem(theirs, 404).await, problem(nowhere, 404).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_counts_what_the_organization_uses_shared() {
    usage_counts(Isolation::Shared).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_counts_what_the_organization_uses_schema() {
    usage_counts(Isolation::Schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_counts_what_the_organization_uses_database() {
    usage_counts(Isolation::Database).await;
}
