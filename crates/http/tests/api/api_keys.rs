//! API keys: shown once, stored as hashes, acting in their own organization only, revocable.

use reqwest::Method;
use serde_json::{Value, json};
use tenantry_tenancy::Isolation;
use uuid::Uuid;

use crate::{Caller, TestApp, caller, org_in, problem, send, success_json};

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
        .fetch_one(tenantry_tenancy::Operator::new(&app.tenancy).control())
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
            .execute(tenantry_tenancy::Operator::new(&app.tenancy).control())
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
    let keys = format!("/api/v1/organizations/{acme}/api-keys");
    let limited = success_json(
        send(
            &app,
            Method::POST,
            &keys,
            &ada.token,
            None,
            Some(json!({"name": "limited", "role": "member", "requests_per_minute": 30})),
        )
        .await,
    )
    .await;
    assert_eq!(limited["requests_per_minute"], 30);
    // Absent or null: the organization's budget only.
    let plain = new_key(&app, &ada, &acme, "member").await;
    assert_eq!(plain["requests_per_minute"], Value::Null);
    let explicit_null = success_json(
        send(
            &app,
            Method::POST,
            &keys,
            &ada.token,
            None,
            Some(json!({"name": "null", "role": "viewer", "requests_per_minute": null})),
        )
        .await,
    )
    .await;
    assert_eq!(explicit_null["requests_per_minute"], Value::Null);

    let listed = success_json(send(&app, Method::GET, &keys, &ada.token, None, None).await).await;
    let budgets: Vec<&Value> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["requests_per_minute"])
        .collect();
    assert_eq!(budgets, [&json!(30), &Value::Null, &Value::Null]);

    // The audit entry of the creation records the limit.
    let trail = success_json(
        send(
            &app,
            Method::GET,
            &format!("/api/v1/organizations/{acme}/audit-logs?action=api_key.created"),
            &ada.token,
            None,
            None,
        )
        .await,
    )
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
        let refused = send(
            &app,
            Method::POST,
            &keys,
            &ada.token,
            None,
            Some(json!({"name": "bad", "role": "member", "requests_per_minute": bad})),
        )
        .await;
        let body = problem(refused, 422).await;
        assert_eq!(body["code"], "validation_failed", "{bad}");
        assert_eq!(body["field"], "requests_per_minute", "{bad}");
    }
    let listed = success_json(send(&app, Method::GET, &keys, &ada.token, None, None).await).await;
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
        let members = format!("/api/v1/organizations/{org}/members");
        for who in [&bob, &carl] {
            let added = send(
                &app,
                Method::POST,
                &members,
                &ada.token,
                None,
                Some(json!({"user_id": who.id, "role": "admin"})),
            )
            .await;
            assert_eq!(added.status(), 201);
        }
        let bobs = new_key(&app, &bob, &org, "admin").await;
        let carls = new_key(&app, &carl, &org, "member").await;
        let adas = new_key(&app, &ada, &org, "member").await;
        for key in [&bobs, &carls, &adas] {
            let secret = key["secret"].as_str().unwrap();
            let r = send(&app, Method::GET, "/api/v1/monitors", secret, None, None).await;
            assert_eq!(r.status(), 200);
        }

        // Bob demoted below the role that makes keys: his key stops at once.
        let demoted = send(
            &app,
            Method::PATCH,
            &format!("{members}/{}", bob.id),
            &ada.token,
            None,
            Some(json!({"role": "member"})),
        )
        .await;
        assert_eq!(demoted.status(), 200);
        let r = send(
            &app,
            Method::GET,
            "/api/v1/monitors",
            bobs["secret"].as_str().unwrap(),
            None,
            None,
        )
        .await;
        assert_eq!(
            r.status(),
            401,
            "{tier}: a demoted creator's key still works"
        );

        // Carl removed: his key stops too; Ada's goes on.
        let removed = send(
            &app,
            Method::DELETE,
            &format!("{members}/{}", carl.id),
            &ada.token,
            None,
            None,
        )
        .await;
        assert_eq!(removed.status(), 204);
        let r = send(
            &app,
            Method::GET,
            "/api/v1/monitors",
            carls["secret"].as_str().unwrap(),
            None,
            None,
        )
        .await;
        assert_eq!(
            r.status(),
            401,
            "{tier}: a removed creator's key still works"
        );
        let r = send(
            &app,
            Method::GET,
            "/api/v1/monitors",
            adas["secret"].as_str().unwrap(),
            None,
            None,
        )
        .await;
        assert_eq!(r.status(), 200);

        // The list shows only Ada's key, and the log says why the others went.
        let listed = success_json(
            send(
                &app,
                Method::GET,
                &format!("/api/v1/organizations/{org}/api-keys"),
                &ada.token,
                None,
                None,
            )
            .await,
        )
        .await;
        let ids: Vec<&str> = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [adas["id"].as_str().unwrap()]);
        let log = success_json(
            send(
                &app,
                Method::GET,
                &format!("/api/v1/organizations/{org}/audit-logs?action=api_key.revoked"),
                &ada.token,
                None,
                None,
            )
            .await,
        )
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
