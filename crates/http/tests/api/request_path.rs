//! The request path: no owner-role connection serves a request, and cached authorization data
//! (registry records, keys, roles, limits, sessions) is invalidated at once, on this instance and
//! on another one of the same deployment.

use reqwest::Method;
use serde_json::json;
use tenantry_tenancy::Isolation;

use crate::client::Request;
use crate::{Caller, Spawn, TestApp, caller, org_in, platform_admin};

/// A new API key of `org`: its id and secret.
async fn new_key_with_id(app: &TestApp, owner: &Caller, org: &str, role: &str) -> (String, String) {
    let keys = app.as_(owner).organizations().api_keys(org);
    let created = keys.create(json!({"name": "ci", "role": role})).await;
    (
        created["id"].as_str().unwrap().to_string(),
        created["secret"].as_str().unwrap().to_string(),
    )
}

async fn new_key(app: &TestApp, owner: &Caller, org: &str, role: &str) -> String {
    new_key_with_id(app, owner, org, role).await.1
}

/// Sends every request of `pass`, each of which must succeed; returns those that used an
/// owner-role connection.
async fn run(app: &TestApp, pass: Vec<Request<'_>>) -> Vec<String> {
    let mut owner_used = Vec::new();
    for request in pass {
        let before = app.tenancy.owner_role_uses();
        let response = request.send().await;
        assert!(response.status().is_success(), "{response}");
        if app.tenancy.owner_role_uses() != before {
            owner_used.push(format!("{} {}", response.method(), response.path()));
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
    let as_ada = app.as_(&ada);
    // Warm: what the first request of a process reads once.
    for (org, key) in &orgs {
        let with_key = app.as_(key);
        run(
            &app,
            vec![
                with_key.request(Method::GET, "/api/v1/monitors"),
                as_ada.request(Method::GET, format!("/api/v1/organizations/{org}")),
            ],
        )
        .await;
    }

    let before = app.tenancy.owner_role_uses();
    for (org, key) in &orgs {
        // Tenant data, with an API key and with the user's token.
        let with_key = app.as_(key);
        let monitor = with_key
            .monitors()
            .create(json!({"name": "api", "kind": "http", "target": "https://example.com"}))
            .await;
        let monitor = monitor["id"].as_str().unwrap().to_string();
        let channel = with_key
            .alert_channels()
            .create(json!({"name": "ops", "kind": "email", "email": "ops@example.com"}))
            .await;
        let channel = channel["id"].as_str().unwrap().to_string();
        let page = with_key
            .status_pages()
            .create(json!({"slug": "public", "title": "Status", "monitor_ids": [monitor], "public": true}))
            .await;
        let page = page["id"].as_str().unwrap().to_string();
        let (ada_in_org, bob_in_org) = (as_ada.org(org), app.as_(&bob).org(org));
        let organization = format!("/api/v1/organizations/{org}");
        let used = run(
            &app,
            vec![
                with_key.request(Method::GET, "/api/v1/monitors"),
                with_key.request(Method::GET, format!("/api/v1/monitors/{monitor}")),
                with_key
                    .request(Method::PUT, format!("/api/v1/monitors/{monitor}"))
                    .body(
                        json!({"name": "renamed", "kind": "http", "target": "https://example.com"}),
                    ),
                with_key.request(Method::GET, format!("/api/v1/monitors/{monitor}/results")),
                with_key.request(Method::GET, format!("/api/v1/monitors/{monitor}/incidents")),
                ada_in_org.request(Method::GET, "/api/v1/monitors"),
                ada_in_org.request(Method::GET, format!("/api/v1/monitors/{monitor}")),
                with_key.request(Method::GET, "/api/v1/alert-channels"),
                with_key.request(Method::GET, format!("/api/v1/alert-channels/{channel}")),
                with_key.request(Method::GET, "/api/v1/status-pages"),
                with_key.request(Method::GET, format!("/api/v1/status-pages/{page}")),
                with_key.request(Method::DELETE, format!("/api/v1/status-pages/{page}")),
                with_key.request(Method::DELETE, format!("/api/v1/alert-channels/{channel}")),
                with_key.request(Method::DELETE, format!("/api/v1/monitors/{monitor}")),
                with_key.request(Method::GET, "/api/v1/agents"),
                // The organization, its members, keys, invitations, usage and audit trail.
                as_ada.request(Method::GET, organization.clone()),
                as_ada.request(Method::GET, format!("{organization}/members")),
                as_ada
                    .request(Method::POST, format!("{organization}/members"))
                    .body(json!({"user_id": bob.id, "role": "member"})),
                as_ada
                    .request(Method::PATCH, format!("{organization}/members/{}", bob.id))
                    .body(json!({"role": "viewer"})),
                bob_in_org.request(Method::GET, "/api/v1/monitors"),
                as_ada.request(Method::DELETE, format!("{organization}/members/{}", bob.id)),
                as_ada.request(Method::GET, format!("{organization}/api-keys")),
                as_ada
                    .request(Method::POST, format!("{organization}/invitations"))
                    .body(json!({"email": "carol@example.com", "role": "member"})),
                as_ada.request(Method::GET, format!("{organization}/invitations")),
                as_ada.request(Method::GET, format!("{organization}/usage")),
                as_ada.request(Method::GET, format!("{organization}/audit-logs")),
                as_ada
                    .request(Method::PUT, organization.clone())
                    .body(json!({"billing_email": "billing@example.com"})),
                as_ada.request(Method::POST, format!("{organization}/switch")),
                as_ada.request(Method::GET, "/api/v1/user"),
                as_ada.request(Method::GET, "/api/v1/user/organizations"),
                as_ada.request(Method::GET, "/api/v1/organizations"),
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
    let tenants = app.as_(admin).admin_tenants();
    tenants
        .update(
            org,
            json!({"limits": {"api_requests_per_minute": per_minute}}),
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
    let monitors = app.as_(&key).monitors();
    // The budget is read (and cached) by these.
    for _ in 0..3 {
        let response = monitors.try_list().await;
        assert_eq!(response.status(), 200);
    }
    set_budget(&app, &admin, &org, 2).await;
    let first = monitors.try_list().await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["ratelimit-limit"], "2");
    let statuses = [
        monitors.try_list().await.status(),
        monitors.try_list().await.status(),
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
        let orgs = one.as_(&ada).organizations();
        orgs.members(&org).add(bob.id, "member").await;
        // Both instances have everything cached.
        for app in [&one, &two] {
            for _ in 0..2 {
                for token in [&key, &other_key] {
                    let r = app.as_(token).monitors().try_list().await;
                    assert_eq!(r.status(), 200);
                }
                let r = app.as_(&bob).org(&org).monitors().try_list().await;
                assert_eq!(r.status(), 200);
            }
        }

        // A removed member: refused on the next request, on both.
        orgs.members(&org).remove(bob.id).await;
        for app in [&one, &two] {
            let r = app.as_(&bob).org(&org).monitors().try_list().await;
            assert_eq!(r.status(), 404, "{tier}: a removed member was served");
        }

        // A revoked key.
        orgs.api_keys(&org).revoke(&kid).await;
        for app in [&one, &two] {
            let r = app.as_(&key).monitors().try_list().await;
            assert_eq!(r.status(), 401, "{tier}: a revoked key was served");
        }

        // A suspended organization.
        one.as_(&admin).admin_tenants().suspend(&org).await;
        for app in [&one, &two] {
            let r = app.as_(&other_key).monitors().try_list().await;
            assert_eq!(
                r.status(),
                403,
                "{tier}: a suspended organization was served"
            );
            let r = app.as_(&ada).org(&org).monitors().try_list().await;
            assert_eq!(
                r.status(),
                403,
                "{tier}: a suspended organization was served"
            );
        }
    }
}

/// Another instance may hear of a change later than the instance that made it: here every
/// answer of PostgreSQL to the other instance, its invalidation listener's included, is held
/// 30 ms. The change's response waits until every instance has acknowledged it, so the request
/// that follows it on the other instance is refused all the same, change after change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_instance_refuses_at_once_however_late_it_hears_of_the_change() {
    let one = TestApp::spawn().await;
    let proxy = tenantry_testkit::latency::LatencyProxy::start(&tenantry_testkit::owner()).await;
    let two = TestApp::spawn_with(Spawn {
        control_database: Some(one.tenancy.control_database().to_string()),
        owner: Some(proxy.options(tenantry_testkit::owner())),
        ..Spawn::default()
    })
    .await;
    proxy.set_delay(std::time::Duration::from_millis(30));
    let admin = platform_admin(&one).await;
    let ada = caller(&one, "ada@example.com").await;
    let org = org_in(&one, &ada, "Late", Isolation::Shared).await;
    let key = new_key(&one, &ada, &org, "member").await;
    let mut stale = Vec::new();
    for round in 0..10 {
        // Cached on the other instance.
        assert_eq!(two.as_(&key).monitors().try_list().await.status(), 200);
        one.as_(&admin).admin_tenants().suspend(&org).await;
        let status = two.as_(&key).monitors().try_list().await.status();
        if status != 403 {
            stale.push(format!("round {round}: suspended, served {status}"));
        }
        one.as_(&admin).admin_tenants().activate(&org).await;
        let status = two.as_(&key).monitors().try_list().await.status();
        if status != 200 {
            stale.push(format!("round {round}: active again, answered {status}"));
        }
    }
    assert!(stale.is_empty(), "{}", stale.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logged_out_session_is_refused_at_once_on_every_instance() {
    let one = TestApp::spawn().await;
    let two = one.another_instance(None).await;
    let ada = caller(&one, "ada@example.com").await;
    for app in [&one, &two] {
        let r = app.as_(&ada).user().try_get().await;
        assert_eq!(r.status(), 200);
    }
    one.as_(&ada).auth().logout().await;
    for app in [&one, &two] {
        let r = app.as_(&ada).user().try_get().await;
        assert_eq!(r.status(), 401);
    }
}

/// The statuses of `requests`, sent at once.
async fn statuses(
    requests: impl IntoIterator<Item = impl std::future::Future<Output = crate::Answer>>,
) -> Vec<u16> {
    let answers = futures::future::join_all(requests).await;
    answers.iter().map(|a| a.status().as_u16()).collect()
}

/// More requests at once than the runtime pool has connections: none may hold one of them while
/// it waits for another, or the crowd waits out the acquire timeout and gets `503`. Reading an
/// organization (its plan and overrides), renaming it, and creating organizations whose derived
/// slugs are taken each once did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_larger_than_the_runtime_pool_is_served() {
    let app = TestApp::spawn_with(crate::Spawn {
        runtime_max: Some(2),
        ..crate::Spawn::default()
    })
    .await;
    let ada = caller(&app, "ada@example.com").await;
    let org = crate::new_org(&app, &ada, "Acme").await;
    let orgs = app.as_(&ada).organizations();

    let reads = (0..8).map(|_| orgs.try_get(&org));
    assert_eq!(statuses(reads).await, [200; 8]);

    // The caches forget what they hold after every change, so the renames look the
    // organization up again while their transactions are open.
    let renames = (0..6).map(|i| orgs.try_update(&org, json!({"name": format!("Acme {i}")})));
    assert_eq!(statuses(renames).await, [200; 6]);

    // "Acme" is taken: each creation finds that slug's row before it derives another.
    let creations = (0..6).map(|_| orgs.try_create(json!({"name": "Acme"})));
    let answers = futures::future::join_all(creations).await;
    for answer in &answers {
        assert_eq!(answer.status().as_u16(), 201, "{answer:?}");
    }
    let listed = orgs.list().await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 7, "{listed}");
}
