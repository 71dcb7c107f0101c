//! API keys: shown once, stored as hashes, acting in their own organization only, revocable.

use serde_json::{Value, json};
use tenantry_tenancy::Isolation;
use uuid::Uuid;

use crate::{Caller, TestApp, caller, org_in};

async fn new_key(app: &TestApp, owner: &Caller, org: &str, role: &str) -> Value {
    let keys = app.as_(owner).organizations().api_keys(org);
    keys.create(json!({"name": "ci", "role": role})).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_shown_once_stored_as_a_hash_and_acts_in_its_organization() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let acme = org_in(&app, &ada, "Acme", Isolation::Shared).await;
    let created = new_key(&app, &ada, &acme, "member").await;
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("tnt_") && secret.len() > 40, "{secret}");
    let listed = app.as_(&ada).organizations().api_keys(&acme).list().await;
    let listed = &listed["items"][0];
    assert!(listed.get("secret").is_none());
    assert_eq!(listed["role"], "member");
    let stored: Vec<u8> = sqlx::query_scalar("SELECT key_hash FROM orgs.api_keys")
        .fetch_one(tenantry_tenancy::Operator::new(&app.tenancy).control())
        .await
        .unwrap();
    assert_eq!(stored.len(), 32);

    // No X-Tenant needed: the key's organization is the context.
    let monitors = app.as_(secret).monitors();
    monitors
        .create(json!({"name": "k", "kind": "heartbeat"}))
        .await;
    let listed = monitors.list().await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    // Keys are not users.
    let user = app.as_(secret).user().try_get().await;
    assert_eq!(user.problem(401)["code"], "unauthorized");
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
        let theirs = app
            .as_(&ada)
            .org(&b)
            .monitors()
            .create(json!({"name": "b", "kind": "heartbeat"}))
            .await;
        let theirs = theirs["id"].as_str().unwrap();
        let with_key = app.as_(secret);
        let by_id = with_key.monitors().try_get(theirs).await.problem(404);
        let missing = with_key.monitors().try_get(Uuid::new_v4()).await;
        assert_eq!(by_id, missing.problem(404), "{tier}");
        // Even though its maker belongs to B, the key does not.
        let via_header = with_key.org(&b).monitors().try_list().await;
        assert_eq!(via_header.status(), 404, "{tier}");
        let own_header = with_key.org(&a).monitors().try_list().await;
        assert_eq!(own_header.status(), 200, "{tier}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_bound_keys_and_revocation_takes_effect_at_once() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let max = caller(&app, "max@example.com").await;
    let acme = org_in(&app, &ada, "Acme", Isolation::Shared).await;
    for (user, role) in [(&max, "member"), (&max, "admin")] {
        sqlx::query("INSERT INTO orgs.memberships (org_id, user_id, role) VALUES ($1, $2, $3) ON CONFLICT (org_id, user_id) DO UPDATE SET role = $3")
            .bind(acme.parse::<Uuid>().unwrap())
            .bind(user.id)
            .bind(role)
            .execute(tenantry_tenancy::Operator::new(&app.tenancy).control())
            .await
            .unwrap();
        let wanted = if role == "member" { "viewer" } else { "owner" };
        let refused = app
            .as_(&max)
            .organizations()
            .api_keys(&acme)
            .try_create(json!({"name": "x", "role": wanted}))
            .await;
        assert_eq!(
            refused.problem(403)["code"],
            "forbidden",
            "{role} making a {wanted} key"
        );
    }

    let viewer = new_key(&app, &ada, &acme, "viewer").await;
    let secret = viewer["secret"].as_str().unwrap();
    let monitors = app.as_(secret).monitors();
    assert_eq!(monitors.try_list().await.status(), 200);
    let write = monitors
        .try_create(json!({"name": "no", "kind": "heartbeat"}))
        .await;
    assert_eq!(write.problem(403)["code"], "forbidden");

    let keys = app.as_(&ada).organizations().api_keys(&acme);
    let id = viewer["id"].as_str().unwrap();
    keys.revoke(id).await;
    let after = monitors.try_list().await;
    assert_eq!(after.problem(401)["code"], "invalid_token");
    assert_eq!(keys.try_revoke(id).await.status(), 404);
    let stranger = caller(&app, "eve@example.com").await;
    let elsewhere = org_in(&app, &stranger, "Eve's", Isolation::Shared).await;
    let foreign = app.as_(&stranger).organizations().api_keys(&elsewhere);
    assert_eq!(foreign.try_revoke(id).await.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_may_have_a_rate_limit_of_its_own_set_at_creation_and_audited() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let acme = org_in(&app, &ada, "Acme", Isolation::Shared).await;
    let mut limits = serde_json::Map::new();
    limits.insert("max_api_keys".to_string(), Value::Null);
    app.orgs
        .change_entitlements(
            acme.parse().unwrap(),
            &tenantry_orgs::EntitlementChange {
                limits: Some(limits),
                ..Default::default()
            },
            &tenantry_audit::AuditContext::system(),
        )
        .await
        .unwrap();
    let orgs = app.as_(&ada).organizations();
    let keys = orgs.api_keys(&acme);
    let limited = keys
        .create(json!({"name": "limited", "role": "member", "requests_per_minute": 30}))
        .await;
    assert_eq!(limited["requests_per_minute"], 30);
    // Absent or null: the organization's budget only.
    let plain = new_key(&app, &ada, &acme, "member").await;
    assert_eq!(plain["requests_per_minute"], Value::Null);
    let explicit_null = keys
        .create(json!({"name": "null", "role": "viewer", "requests_per_minute": null}))
        .await;
    assert_eq!(explicit_null["requests_per_minute"], Value::Null);

    let listed = keys.list().await;
    let budgets: Vec<&Value> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["requests_per_minute"])
        .collect();
    assert_eq!(budgets, [&json!(30), &Value::Null, &Value::Null]);

    // The audit entry of the creation records the limit.
    let trail = orgs
        .audit_logs(&acme)
        .list_with("action=api_key.created")
        .await;
    let entry = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["target_id"] == limited["id"])
        .unwrap();
    assert_eq!(entry["after"]["requests_per_minute"], 30);
    assert_eq!(entry["after"]["name"], "limited");

    // Anything but a whole number from 1 is refused, naming the field, and makes no key.
    for bad in [
        json!(0),
        json!(-5),
        json!(1.5),
        json!("ten"),
        json!(true),
        json!(2_147_483_648_i64),
        json!(u64::MAX),
    ] {
        let refused = keys
            .try_create(json!({"name": "bad", "role": "member", "requests_per_minute": bad}))
            .await;
        let body = refused.problem(422);
        assert_eq!(body["code"], "validation_failed", "{bad}");
        assert_eq!(body["field"], "requests_per_minute", "{bad}");
    }
    let listed = keys.list().await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_die_with_their_creators_access() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let bob = caller(&app, "bob@example.com").await;
    let carl = caller(&app, "carl@example.com").await;
    for tier in Isolation::ALL {
        let org = org_in(&app, &ada, &format!("Org {tier}"), *tier).await;
        app.set_limit(&org, "max_api_keys", Value::Null).await;
        app.set_limit(&org, "max_users", Value::Null).await;
        let orgs = app.as_(&ada).organizations();
        let members = orgs.members(&org);
        for who in [&bob, &carl] {
            members.add(who.id, "admin").await;
        }
        let bobs = new_key(&app, &bob, &org, "admin").await;
        let carls = new_key(&app, &carl, &org, "member").await;
        let adas = new_key(&app, &ada, &org, "member").await;
        let monitors_with = |key: &Value| app.as_(key["secret"].as_str().unwrap()).monitors();
        for key in [&bobs, &carls, &adas] {
            let r = monitors_with(key).try_list().await;
            assert_eq!(r.status(), 200);
        }

        // Bob demoted below the role that makes keys: his key stops at once.
        members.change_role(bob.id, "member").await;
        let r = monitors_with(&bobs).try_list().await;
        assert_eq!(
            r.status(),
            401,
            "{tier}: a demoted creator's key still works"
        );

        // Carl removed: his key stops too; Ada's goes on.
        members.remove(carl.id).await;
        let r = monitors_with(&carls).try_list().await;
        assert_eq!(
            r.status(),
            401,
            "{tier}: a removed creator's key still works"
        );
        let r = monitors_with(&adas).try_list().await;
        assert_eq!(r.status(), 200);

        // The list shows only Ada's key, and the log says why the others went.
        let listed = orgs.api_keys(&org).list().await;
        let ids: Vec<&str> = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [adas["id"].as_str().unwrap()]);
        let log = orgs
            .audit_logs(&org)
            .list_with("action=api_key.revoked")
            .await;
        let reasons: Vec<String> = log["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                e["after"]["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        assert!(reasons.contains(&"member_demoted".to_string()), "{log}");
        assert!(reasons.contains(&"member_removed".to_string()), "{log}");
    }
}
