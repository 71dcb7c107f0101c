//! The audit trail over HTTP: every change leaves an entry with who, what, from where and the
//! request id; refused changes leave none; the trail is filtered and paged, for admins only, and
//! another organization's is a 404. The chains verify.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};
use tenantry_tenancy::Isolation;
use uuid::Uuid;

use crate::{TestApp, caller, org_in, problem, success_json};

/// A request as `token`, with a request id, a user agent and `X-Tenant` when given.
async fn act(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    tenant: Option<&str>,
    body: Option<Value>,
    request_id: &str,
) -> reqwest::Response {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(token)
        .header("X-Request-Id", request_id)
        .header("User-Agent", "audit-test/1.0");
    if let Some(tenant) = tenant {
        request = request.header("X-Tenant", tenant);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn trail_of(app: &TestApp, tier: Isolation) {
    let ada = caller(app, "ada@example.com").await;
    let bob = caller(app, "bob@example.com").await;
    let org = org_in(app, &ada, "Acme", tier).await;
    let base = format!("/api/v1/organizations/{org}");
    let (token, org_ref) = (ada.token.as_str(), org.as_str());
    let a = move |m: Method, p: String, b: Option<Value>, id: &'static str| async move {
        act(app, m, &p, token, Some(org_ref), b, id).await
    };

    success_json(
        a(
            Method::POST,
            format!("{base}/members"),
            Some(json!({"user_id": bob.id, "role": "member"})),
            "r-add",
        )
        .await,
    )
    .await;
    // Refused: no entry.
    let twice = a(
        Method::POST,
        format!("{base}/members"),
        Some(json!({"user_id": bob.id, "role": "member"})),
        "r-twice",
    )
    .await;
    assert_eq!(twice.status(), 409);
    success_json(
        a(
            Method::PATCH,
            format!("{base}/members/{}", bob.id),
            Some(json!({"role": "viewer"})),
            "r-role",
        )
        .await,
    )
    .await;
    let invitation = success_json(
        a(
            Method::POST,
            format!("{base}/invitations"),
            Some(json!({"email": "c@example.com", "role": "member"})),
            "r-invite",
        )
        .await,
    )
    .await;
    let iid = invitation["id"].as_str().unwrap();
    success_json(
        a(
            Method::DELETE,
            format!("{base}/invitations/{iid}"),
            None,
            "r-revoke-inv",
        )
        .await,
    )
    .await;
    success_json(
        a(
            Method::PUT,
            base.clone(),
            Some(json!({"name": "Acme Corp"})),
            "r-profile",
        )
        .await,
    )
    .await;
    let key = success_json(
        a(
            Method::POST,
            format!("{base}/api-keys"),
            Some(json!({"name": "ci", "role": "member"})),
            "r-key",
        )
        .await,
    )
    .await;
    let secret = key["secret"].as_str().unwrap().to_string();
    let key_id = key["id"].as_str().unwrap().to_string();
    // Monitors through the key: the actor is the key.
    let monitor = success_json(
        act(
            app,
            Method::POST,
            "/api/v1/monitors",
            &secret,
            None,
            Some(json!({"name": "site", "kind": "tcp", "target": "example.com:443"})),
            "r-mon",
        )
        .await,
    )
    .await;
    let mid = monitor["id"].as_str().unwrap();
    success_json(
        act(
            app,
            Method::PUT,
            &format!("/api/v1/monitors/{mid}"),
            &secret,
            None,
            Some(json!({"name": "site 2", "kind": "tcp", "target": "example.com:443"})),
            "r-mon-up",
        )
        .await,
    )
    .await;
    success_json(
        a(
            Method::DELETE,
            format!("/api/v1/monitors/{mid}"),
            None,
            "r-mon-del",
        )
        .await,
    )
    .await;
    success_json(
        a(
            Method::DELETE,
            format!("{base}/api-keys/{key_id}"),
            None,
            "r-key-revoke",
        )
        .await,
    )
    .await;
    success_json(
        a(
            Method::DELETE,
            format!("{base}/members/{}", bob.id),
            None,
            "r-remove",
        )
        .await,
    )
    .await;

    let trail = success_json(
        a(
            Method::GET,
            format!("{base}/audit-logs?limit=200"),
            None,
            "r-read",
        )
        .await,
    )
    .await;
    let items = trail["items"].as_array().unwrap();
    let actions: Vec<&str> = items
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    let expected = [
        "member.removed",
        "api_key.revoked",
        "monitor.deleted",
        "monitor.updated",
        "monitor.created",
        "api_key.created",
        "organization.updated",
        "invitation.revoked",
        "invitation.created",
        "member.role_changed",
        "member.added",
        "organization.created",
    ];
    assert_eq!(actions, expected, "newest first, one per change");
    let by_action = |action: &str| items.iter().find(|e| e["action"] == action).unwrap();
    let added = by_action("member.added");
    assert_eq!(added["actor_kind"], "user");
    assert_eq!(added["actor_id"], ada.id.to_string());
    assert_eq!(added["target_id"], bob.id.to_string());
    assert_eq!(added["after"], json!({"role": "member"}));
    assert_eq!(added["request_id"], "r-add");
    assert_eq!(added["ip"], "127.0.0.1");
    assert_eq!(added["user_agent"], "audit-test/1.0");
    assert_eq!(added["source"], "organization");
    let changed = by_action("member.role_changed");
    assert_eq!(
        (&changed["before"], &changed["after"]),
        (&json!({"role": "member"}), &json!({"role": "viewer"}))
    );
    let created = by_action("monitor.created");
    assert_eq!(created["actor_kind"], "api_key");
    assert_eq!(created["actor_id"], key_id.as_str());
    assert_eq!(created["source"], "tenant");
    assert_eq!(created["after"]["name"], "site");
    assert_eq!(by_action("monitor.updated")["before"]["name"], "site");
    assert_eq!(
        by_action("organization.updated")["after"]["name"],
        "Acme Corp"
    );
    assert!(
        !trail.to_string().contains(&secret),
        "no secret in the trail"
    );

    // Filters and pages.
    let members = success_json(
        a(
            Method::GET,
            format!("{base}/audit-logs?action=member."),
            None,
            "r",
        )
        .await,
    )
    .await;
    let member_actions: Vec<&str> = members["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        member_actions,
        ["member.removed", "member.role_changed", "member.added"]
    );
    let by_key = success_json(
        a(
            Method::GET,
            format!("{base}/audit-logs?actor={key_id}"),
            None,
            "r",
        )
        .await,
    )
    .await;
    assert_eq!(by_key["items"].as_array().unwrap().len(), 2);
    let future = success_json(
        a(
            Method::GET,
            format!("{base}/audit-logs?since=2999-01-01T00:00:00Z"),
            None,
            "r",
        )
        .await,
    )
    .await;
    assert_eq!(future["items"], json!([]));
    let mut seen = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("{base}/audit-logs?limit=5&cursor={c}"),
            None => format!("{base}/audit-logs?limit=5"),
        };
        let page = success_json(a(Method::GET, path, None, "r").await).await;
        for e in page["items"].as_array().unwrap() {
            assert!(
                seen.insert(e["id"].as_str().unwrap().to_string()),
                "no entry twice"
            );
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), expected.len());
    let bad = a(
        Method::GET,
        format!("{base}/audit-logs?cursor=nonsense"),
        None,
        "r",
    )
    .await;
    assert_eq!(problem(bad, 422).await["field"], "cursor");

    // Admins only; another organization's trail is a 404 like a missing one.
    let carol = caller(app, "carol@example.com").await;
    success_json(
        a(
            Method::POST,
            format!("{base}/members"),
            Some(json!({"user_id": carol.id, "role": "member"})),
            "r",
        )
        .await,
    )
    .await;
    let as_member = act(
        app,
        Method::GET,
        &format!("{base}/audit-logs"),
        &carol.token,
        None,
        None,
        "r",
    )
    .await;
    assert_eq!(problem(as_member, 403).await["code"], "forbidden");
    let eve = caller(app, "eve@example.com").await;
    let theirs = act(
        app,
        Method::GET,
        &format!("{base}/audit-logs"),
        &eve.token,
        None,
        None,
        "r",
    )
    .await;
    let nowhere = act(
        app,
        Method::GET,
        &format!("/api/v1/organizations/{}/audit-logs", Uuid::new_v4()),
        &eve.token,
        None,
        None,
        "r",
    )
    .await;
    assert_eq!(problem(theirs, 404).await, problem(nowhere, 404).await);

    // Both chains verify.
    let record = app.tenancy.find(&org).await.unwrap();
    let verification = tenantry_audit::verify(&app.tenancy, &record).await.unwrap();
    assert!(
        verification.problems.is_empty(),
        "{:?}",
        verification.problems
    );
    assert_eq!(verification.tenant_entries, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_leaves_one_entry_shared() {
    trail_of(&TestApp::spawn().await, Isolation::Shared).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_leaves_one_entry_schema() {
    trail_of(&TestApp::spawn().await, Isolation::Schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_leaves_one_entry_database() {
    trail_of(&TestApp::spawn().await, Isolation::Database).await;
}
