//! Plan limits hold under concurrency: N parallel creates against room for K make exactly K,
//! and the rest are `403 limit_exceeded` naming the limit.

use futures::future::join_all;
use serde_json::{Value, json};
use tenantry_tenancy::Isolation;
use uuid::Uuid;

use crate::{Answer, Caller, TestApp, caller, org_in};

/// Checks that exactly `room` of the responses succeeded and the others were refused for `limit`.
fn exactly(responses: Vec<Answer>, room: usize, limit: &str) {
    let mut created = 0;
    for response in responses {
        if response.status().is_success() {
            created += 1;
        } else {
            let body = response.problem(403);
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
    let orgs = app.as_(&ada).organizations();
    let invitations = orgs.invitations(&org);
    let emails: Vec<String> = (0..50).map(|i| format!("user{i}@example.com")).collect();
    let invites = emails
        .iter()
        .map(|email| invitations.try_invite(email, "member"));
    exactly(join_all(invites).await, 5, "max_users");
    let pending = count(
        &app,
        "SELECT count(*) FROM orgs.invitations WHERE org_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL",
        &org,
    )
    .await;
    assert_eq!(pending, 5);

    // Pending invitations count: adding a member is refused too, and revoking one makes room.
    let bob = caller(&app, "bob@example.com").await;
    let members = orgs.members(&org);
    let refused = members.try_add(bob.id, "viewer").await;
    assert_eq!(refused.problem(403)["limit"], "max_users");
    let listed = invitations.list().await;
    let first = listed["items"][0]["id"].as_str().unwrap();
    invitations.revoke(first).await;
    members.add(bob.id, "viewer").await;
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
    let members = app.as_(&ada).organizations().members(&org);
    let adds = users.iter().map(|user| members.try_add(user.id, "member"));
    exactly(join_all(adds).await, 3, "max_users");
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
    let keys = app.as_(&ada).organizations().api_keys(&org);
    let creates =
        (0..50).map(|i| keys.try_create(json!({"name": format!("key {i}"), "role": "viewer"})));
    exactly(join_all(creates).await, 5, "max_api_keys");
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
    let monitors = app.as_(&ada).org(&org).monitors();
    let creates = (0..50).map(|i| {
        monitors.try_create(
            json!({"name": format!("m{i}"), "kind": "tcp", "target": "example.com:443"}),
        )
    });
    exactly(join_all(creates).await, 5, "max_monitors");
    let listed = monitors.list().await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 5);

    // Unlimited again: creates pass.
    app.set_limit(&org, "max_monitors", Value::Null).await;
    monitors
        .create(json!({"name": "more", "kind": "tcp", "target": "example.com:443"}))
        .await;
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
    let monitors = app.as_(&ada).org(&org).monitors();
    // `free` allows 60 s at least.
    let fast = monitors.try_create(monitor(30)).await;
    let body = fast.problem(422);
    assert_eq!(body["field"], "interval_seconds");
    let ok = monitors.create(monitor(60)).await;
    let id = ok["id"].as_str().unwrap().to_string();
    let faster = monitors.try_update(&id, monitor(30)).await;
    assert_eq!(faster.problem(422)["field"], "interval_seconds");

    // An override lowers the floor.
    app.set_limit(&org, "min_check_interval_s", json!(10)).await;
    monitors.update(&id, monitor(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_owns_at_most_the_platforms_cap_of_organizations() {
    let app = TestApp::spawn_with_cap(Some(5)).await;
    let ada = caller(&app, "ada@example.com").await;
    let bodies: Vec<Value> = (0..20)
        .map(|i| json!({"name": format!("Org {i}")}))
        .collect();
    let orgs = app.as_(&ada).organizations();
    let creates = bodies.iter().map(|body| orgs.try_create(body.clone()));
    exactly(join_all(creates).await, 5, "max_organizations_per_user");
    let listed = orgs.list().await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 5);
}

async fn usage_counts(tier: Isolation) {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = org_in(&app, &ada, "Acme", tier).await;
    app.set_limit(&org, "max_monitors", json!(7)).await;
    let bob = caller(&app, "bob@example.com").await;
    // As Ada, naming the organization in `X-Tenant` on every request.
    let in_org = app.as_(&ada).org(&org);
    let orgs = in_org.organizations();
    orgs.members(&org).add(bob.id, "viewer").await;
    orgs.invitations(&org)
        .invite("c@example.com", "member")
        .await;
    orgs.api_keys(&org)
        .create(json!({"name": "ci", "role": "viewer"}))
        .await;
    for i in 0..3 {
        in_org
            .monitors()
            .create(json!({"name": format!("m{i}"), "kind": "tcp", "target": "example.com:443"}))
            .await;
    }
    // Any member reads it.
    let bobs = app.as_(&bob).organizations();
    let usage = bobs.usage(&org).await;
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
    let again = bobs.usage(&org).await;
    assert!(again["usage"]["api_requests"]["used"].as_i64().unwrap() > requests);
    assert!(counts["storage_bytes"].as_i64().unwrap() > 0, "{usage}");

    let stranger = caller(&app, "eve@example.com").await;
    let theirs = app.as_(&stranger).organizations().try_usage(&org).await;
    let nowhere = app
        .as_(&stranger)
        .organizations()
        .try_usage(Uuid::new_v4())
        .await;
    assert_eq!(theirs.problem(404), nowhere.problem(404));
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
