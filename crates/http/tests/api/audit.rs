//! The audit trail over HTTP: every change leaves an entry with who, what, from where and the
//! request id; refused changes leave none; the trail is filtered and paged, for admins only, and
//! another organization's is a 404. The chains verify.

use std::collections::BTreeSet;

use serde_json::json;
use tenantry_tenancy::Isolation;
use uuid::Uuid;

use crate::{Client, TestApp, caller, org_in};

/// `who`, sending request id `request_id` and a user agent.
fn acting<'a>(who: &Client<'a>, request_id: &str) -> Client<'a> {
    who.header("X-Request-Id", request_id)
        .header("User-Agent", "audit-test/1.0")
}

async fn trail_of(app: &TestApp, tier: Isolation) {
    let ada = caller(app, "ada@example.com").await;
    let bob = caller(app, "bob@example.com").await;
    let org = org_in(app, &ada, "Acme", tier).await;
    let ada_in_org = app.as_(&ada).org(&org);
    let a = |request_id: &str| acting(&ada_in_org, request_id);

    let members_as = |request_id: &str| a(request_id).organizations().members(&org);
    members_as("r-add").add(bob.id, "member").await;
    // Refused: no entry.
    let twice = members_as("r-twice").try_add(bob.id, "member").await;
    assert_eq!(twice.status(), 409);
    members_as("r-role").change_role(bob.id, "viewer").await;
    let invitation = a("r-invite")
        .organizations()
        .invitations(&org)
        .invite("c@example.com", "member")
        .await;
    let iid = invitation["id"].as_str().unwrap();
    a("r-revoke-inv")
        .organizations()
        .invitations(&org)
        .revoke(iid)
        .await;
    a("r-profile")
        .organizations()
        .update(&org, json!({"name": "Acme Corp"}))
        .await;
    let key = a("r-key")
        .organizations()
        .api_keys(&org)
        .create(json!({"name": "ci", "role": "member"}))
        .await;
    let secret = key["secret"].as_str().unwrap().to_string();
    let key_id = key["id"].as_str().unwrap().to_string();
    // Monitors through the key: the actor is the key.
    let with_key = app.as_(&secret);
    let monitor = acting(&with_key, "r-mon")
        .monitors()
        .create(json!({"name": "site", "kind": "tcp", "target": "example.com:443"}))
        .await;
    let mid = monitor["id"].as_str().unwrap();
    acting(&with_key, "r-mon-up")
        .monitors()
        .update(
            mid,
            json!({"name": "site 2", "kind": "tcp", "target": "example.com:443"}),
        )
        .await;
    a("r-mon-del").monitors().delete(mid).await;
    a("r-key-revoke")
        .organizations()
        .api_keys(&org)
        .revoke(&key_id)
        .await;
    members_as("r-remove").remove(bob.id).await;

    let trail_as = |request_id: &str| a(request_id).organizations().audit_logs(&org);
    let trail = trail_as("r-read").list_with("limit=200").await;
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
    let members = trail_as("r").list_with("action=member.").await;
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
    let by_key = trail_as("r").list_with(&format!("actor={key_id}")).await;
    assert_eq!(by_key["items"].as_array().unwrap().len(), 2);
    let future = trail_as("r").list_with("since=2999-01-01T00:00:00Z").await;
    assert_eq!(future["items"], json!([]));
    let mut seen = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("limit=5&cursor={c}"),
            None => "limit=5".to_string(),
        };
        let page = trail_as("r").list_with(&query).await;
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
    let bad = trail_as("r").try_list_with("cursor=nonsense").await;
    assert_eq!(bad.problem(422)["field"], "cursor");

    // Admins only; another organization's trail is a 404 like a missing one.
    let carol = caller(app, "carol@example.com").await;
    a("r")
        .organizations()
        .members(&org)
        .add(carol.id, "member")
        .await;
    let as_member = acting(&app.as_(&carol), "r")
        .organizations()
        .audit_logs(&org)
        .try_list()
        .await;
    assert_eq!(as_member.problem(403)["code"], "forbidden");
    let eve = caller(app, "eve@example.com").await;
    let eve = acting(&app.as_(&eve), "r").organizations();
    let theirs = eve.audit_logs(&org).try_list().await;
    let nowhere = eve.audit_logs(Uuid::new_v4()).try_list().await;
    assert_eq!(theirs.problem(404), nowhere.problem(404));

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
