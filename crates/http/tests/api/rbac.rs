//! Every organization and tenant-scoped route, tried by each role: allowed from the least role
//! the permission matrix names, `403 forbidden` below it. Each try runs in a fresh organization,
//! so one role's success never changes what the next role meets.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{Caller, TestApp, caller};

const ROLES: [&str; 4] = ["viewer", "member", "admin", "owner"];

/// One route: the least role allowed, and how to call it in a fixture.
struct Route {
    name: &'static str,
    least: &'static str,
    call: fn(&Fixture) -> (Method, String, Option<Value>),
}

/// A fresh organization with the acting user in it, and one of each resource to act on.
struct Fixture {
    org: String,
    slug: String,
    target: String,
    newcomer: String,
    invitation: String,
    key: String,
    monitor: String,
    status_page: String,
    alert_channel: String,
    agent: String,
}

fn routes() -> Vec<Route> {
    vec![
        Route {
            name: "read organization",
            least: "viewer",
            call: |f| {
                (
                    Method::GET,
                    format!("/api/v1/organizations/{}", f.org),
                    None,
                )
            },
        },
        Route {
            name: "update organization",
            least: "admin",
            call: |f| {
                (
                    Method::PUT,
                    format!("/api/v1/organizations/{}", f.org),
                    Some(json!({"name": "Renamed"})),
                )
            },
        },
        Route {
            name: "soft delete organization",
            least: "owner",
            call: |f| {
                (
                    Method::DELETE,
                    format!("/api/v1/organizations/{}", f.org),
                    None,
                )
            },
        },
        Route {
            name: "hard delete organization",
            least: "owner",
            call: |f| {
                (
                    Method::DELETE,
                    format!("/api/v1/organizations/{}?hard=true", f.org),
                    Some(json!({"confirm": f.slug})),
                )
            },
        },
        Route {
            name: "export organization",
            least: "owner",
            call: |f| {
                (
                    Method::GET,
                    format!("/api/v1/organizations/{}/export", f.org),
                    None,
                )
            },
        },
        Route {
            name: "switch",
            least: "viewer",
            call: |f| {
                (
                    Method::POST,
                    format!("/api/v1/organizations/{}/switch", f.org),
                    None,
                )
            },
        },
        Route {
            name: "leave",
            least: "viewer",
            call: |f| {
                (
                    Method::POST,
                    format!("/api/v1/organizations/{}/leave", f.org),
                    None,
                )
            },
        },
        Route {
            name: "default organization",
            least: "viewer",
            call: |f| {
                (
                    Method::PUT,
                    "/api/v1/user/default-organization".to_string(),
                    Some(json!({"org_id": f.org})),
                )
            },
        },
        Route {
            name: "list members",
            least: "viewer",
            call: |f| {
                (
                    Method::GET,
                    format!("/api/v1/organizations/{}/members", f.org),
                    None,
                )
            },
        },
        Route {
            name: "add member",
            least: "admin",
            call: |f| {
                (
                    Method::POST,
                    format!("/api/v1/organizations/{}/members", f.org),
                    Some(json!({"user_id": f.newcomer, "role": "member"})),
                )
            },
        },
        Route {
            name: "change role",
            least: "admin",
            call: |f| {
                (
                    Method::PATCH,
                    format!("/api/v1/organizations/{}/members/{}", f.org, f.target),
                    Some(json!({"role": "viewer"})),
                )
            },
        },
        Route {
            name: "remove member",
            least: "admin",
            call: |f| {
                (
                    Method::DELETE,
                    format!("/api/v1/organizations/{}/members/{}", f.org, f.target),
                    None,
                )
            },
        },
        Route {
            name: "invite",
            least: "admin",
            call: |f| {
                (
                    Method::POST,
                    format!("/api/v1/organizations/{}/invitations", f.org),
                    Some(json!({"email": "someone@example.com", "role": "member"})),
                )
            },
        },
        Route {
            name: "list invitations",
            least: "admin",
            call: |f| {
                (
                    Method::GET,
                    format!("/api/v1/organizations/{}/invitations", f.org),
                    None,
                )
            },
        },
        Route {
            name: "revoke invitation",
            least: "admin",
            call: |f| {
                (
                    Method::DELETE,
                    format!(
                        "/api/v1/organizations/{}/invitations/{}",
                        f.org, f.invitation
                    ),
                    None,
                )
            },
        },
        Route {
            name: "resend invitation",
            least: "admin",
            call: |f| {
                (
                    Method::POST,
                    format!(
                        "/api/v1/organizations/{}/invitations/{}/resend",
                        f.org, f.invitation
                    ),
                    None,
                )
            },
        },
        Route {
            name: "list API keys",
            least: "admin",
            call: |f| {
                (
                    Method::GET,
                    format!("/api/v1/organizations/{}/api-keys", f.org),
                    None,
                )
            },
        },
        Route {
            name: "create API key",
            least: "admin",
            call: |f| {
                (
                    Method::POST,
                    format!("/api/v1/organizations/{}/api-keys", f.org),
                    Some(json!({"name": "k", "role": "viewer"})),
                )
            },
        },
        Route {
            name: "revoke API key",
            least: "admin",
            call: |f| {
                (
                    Method::DELETE,
                    format!("/api/v1/organizations/{}/api-keys/{}", f.org, f.key),
                    None,
                )
            },
        },
        Route {
            name: "list monitors",
            least: "viewer",
            call: |_| (Method::GET, "/api/v1/monitors".to_string(), None),
        },
        Route {
            name: "create monitor",
            least: "member",
            call: |_| {
                (
                    Method::POST,
                    "/api/v1/monitors".to_string(),
                    Some(json!({"name": "New", "kind": "tcp", "target": "example.com:443"})),
                )
            },
        },
        Route {
            name: "read monitor",
            least: "viewer",
            call: |f| (Method::GET, format!("/api/v1/monitors/{}", f.monitor), None),
        },
        Route {
            name: "update monitor",
            least: "member",
            call: |f| {
                (
                    Method::PUT,
                    format!("/api/v1/monitors/{}", f.monitor),
                    Some(json!({"name": "Changed", "kind": "tcp", "target": "example.com:443"})),
                )
            },
        },
        Route {
            name: "delete monitor",
            least: "member",
            call: |f| {
                (
                    Method::DELETE,
                    format!("/api/v1/monitors/{}", f.monitor),
                    None,
                )
            },
        },
        Route {
            name: "monitor results",
            least: "viewer",
            call: |f| {
                (
                    Method::GET,
                    format!("/api/v1/monitors/{}/results", f.monitor),
                    None,
                )
            },
        },
        Route {
            name: "monitor incidents",
            least: "viewer",
            call: |f| {
                (
                    Method::GET,
                    format!("/api/v1/monitors/{}/incidents", f.monitor),
                    None,
                )
            },
        },
        Route {
            name: "list status pages",
            least: "viewer",
            call: |_| (Method::GET, "/api/v1/status-pages".to_string(), None),
        },
        Route {
            name: "create status page",
            least: "member",
            call: |f| {
                (
                    Method::POST,
                    "/api/v1/status-pages".to_string(),
                    Some(json!({"slug": "new", "title": "New", "monitor_ids": [f.monitor]})),
                )
            },
        },
        Route {
            name: "read status page",
            least: "viewer",
            call: |f| {
                (
                    Method::GET,
                    format!("/api/v1/status-pages/{}", f.status_page),
                    None,
                )
            },
        },
        Route {
            name: "update status page",
            least: "member",
            call: |f| {
                (
                    Method::PUT,
                    format!("/api/v1/status-pages/{}", f.status_page),
                    Some(json!({"slug": "changed", "title": "Changed", "public": true})),
                )
            },
        },
        Route {
            name: "delete status page",
            least: "member",
            call: |f| {
                (
                    Method::DELETE,
                    format!("/api/v1/status-pages/{}", f.status_page),
                    None,
                )
            },
        },
        Route {
            name: "list agents",
            least: "viewer",
            call: |_| (Method::GET, "/api/v1/agents".to_string(), None),
        },
        Route {
            name: "register agent",
            least: "admin",
            call: |_| {
                (
                    Method::POST,
                    "/api/v1/agents".to_string(),
                    Some(json!({"name": "New"})),
                )
            },
        },
        Route {
            name: "read agent",
            least: "viewer",
            call: |f| (Method::GET, format!("/api/v1/agents/{}", f.agent), None),
        },
        Route {
            name: "delete agent",
            least: "admin",
            call: |f| (Method::DELETE, format!("/api/v1/agents/{}", f.agent), None),
        },
        Route {
            name: "list alert channels",
            least: "viewer",
            call: |_| (Method::GET, "/api/v1/alert-channels".to_string(), None),
        },
        Route {
            name: "create alert channel",
            least: "member",
            call: |f| {
                (
                    Method::POST,
                    "/api/v1/alert-channels".to_string(),
                    Some(json!({"name": "New", "kind": "webhook",
                                "url": "https://hooks.example.com/new", "monitor_ids": [f.monitor]})),
                )
            },
        },
        Route {
            name: "read alert channel",
            least: "viewer",
            call: |f| {
                (
                    Method::GET,
                    format!("/api/v1/alert-channels/{}", f.alert_channel),
                    None,
                )
            },
        },
        Route {
            name: "update alert channel",
            least: "member",
            call: |f| {
                (
                    Method::PUT,
                    format!("/api/v1/alert-channels/{}", f.alert_channel),
                    Some(json!({"name": "Changed", "kind": "email", "email": "ops@example.com"})),
                )
            },
        },
        Route {
            name: "delete alert channel",
            least: "member",
            call: |f| {
                (
                    Method::DELETE,
                    format!("/api/v1/alert-channels/{}", f.alert_channel),
                    None,
                )
            },
        },
    ]
}

fn rank(role: &str) -> usize {
    ROLES.iter().position(|r| *r == role).unwrap()
}

async fn fixture(
    app: &TestApp,
    owner: &Caller,
    actor: &Caller,
    role: &str,
    others: &[&Caller; 2],
    n: usize,
) -> Fixture {
    let [target, newcomer] = others;
    let created = app
        .as_(owner)
        .organizations()
        .create(json!({"name": format!("Org {n}")}))
        .await;
    let org = created["id"].as_str().unwrap().to_string();
    app.allow(&org, "agents").await;
    let in_org = app.as_(owner).org(&org);
    let orgs = in_org.organizations();
    let members = orgs.members(&org);
    // Owners are made by promotion.
    members.add(actor.id, "member").await;
    members.change_role(actor.id, role).await;
    members.add(target.id, "member").await;
    let invitation = orgs
        .invitations(&org)
        .invite(&format!("invitee-{n}@example.com"), "member")
        .await;
    let key = orgs
        .api_keys(&org)
        .create(json!({"name": "fixture", "role": "viewer"}))
        .await;
    let monitor = in_org
        .monitors()
        .create(json!({"name": "Fixture", "kind": "tcp", "target": "example.com:443"}))
        .await;
    let status_page = in_org
        .status_pages()
        .create(json!({"slug": "fixture", "title": "Fixture", "monitor_ids": [monitor["id"]]}))
        .await;
    let alert_channel = in_org
        .alert_channels()
        .create(json!({"name": "Fixture", "kind": "webhook", "url": "https://hooks.example.com/f"}))
        .await;
    // Room for the fixture's agent and one more (the free plan allows one).
    app.orgs
        .change_entitlements(
            org.parse().unwrap(),
            &tenantry_orgs::EntitlementChange {
                limits: Some(serde_json::Map::from_iter([(
                    "max_agents".to_string(),
                    json!(2),
                )])),
                ..tenantry_orgs::EntitlementChange::default()
            },
            &tenantry_audit::AuditContext::system(),
        )
        .await
        .unwrap();
    let agent = in_org.agents().create(json!({"name": "Fixture"})).await;
    Fixture {
        agent: agent["id"].as_str().unwrap().to_string(),
        slug: created["slug"].as_str().unwrap().to_string(),
        org,
        target: target.id.to_string(),
        newcomer: newcomer.id.to_string(),
        invitation: invitation["id"].as_str().unwrap().to_string(),
        key: key["id"].as_str().unwrap().to_string(),
        monitor: monitor["id"].as_str().unwrap().to_string(),
        status_page: status_page["id"].as_str().unwrap().to_string(),
        alert_channel: alert_channel["id"].as_str().unwrap().to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_by_every_role() {
    let app = TestApp::spawn().await;
    let owner = caller(&app, "owner@example.com").await;
    let target = caller(&app, "target@example.com").await;
    let newcomer = caller(&app, "newcomer@example.com").await;
    let mut actors = Vec::new();
    for role in ROLES {
        actors.push((role, caller(&app, &format!("as-{role}@example.com")).await));
    }
    let mut n = 0;
    let mut failures = Vec::new();
    for route in routes() {
        for (role, actor) in &actors {
            n += 1;
            let f = fixture(&app, &owner, actor, role, &[&target, &newcomer], n).await;
            let (method, path, body) = (route.call)(&f);
            let response = app
                .as_(actor)
                .org(&f.org)
                .request(method, path)
                .body(body)
                .send()
                .await;
            let status = response.status().as_u16();
            let allowed = rank(role) >= rank(route.least);
            if allowed {
                if !(200..300).contains(&status) {
                    failures.push(format!(
                        "{} as {role}: {status}, expected success",
                        route.name
                    ));
                }
            } else if status != 403 {
                failures.push(format!("{} as {role}: {status}, expected 403", route.name));
            } else {
                let body = response.problem(403);
                if body["code"] != "forbidden" {
                    failures.push(format!("{} as {role}: {body}", route.name));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
