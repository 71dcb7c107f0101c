//! The platform administration API: invisible (404) to everyone but platform admins; tenants
//! created in every tier with their first admin invited by email; plans and limits merged key
//! by key; suspend, activate, soft delete, restore, hard delete.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{TestApp, caller, platform_admin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_does_not_exist_for_anyone_else() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let root = platform_admin(&app).await;
    let tenants = app.as_(&root).admin_tenants();
    let created = tenants
        .create(json!({"name": "Acme", "slug": "acme", "admin_email": "boss@acme.test"}))
        .await;
    let id = created["id"].as_str().unwrap();
    let unknown_route = app
        .anonymous()
        .request(Method::GET, "/api/v1/nothing-here")
        .send()
        .await
        .problem(404);
    let routes = [
        (Method::GET, "/api/v1/admin/tenants".to_string()),
        (Method::POST, "/api/v1/admin/tenants".to_string()),
        (Method::GET, format!("/api/v1/admin/tenants/{id}")),
        (Method::PUT, format!("/api/v1/admin/tenants/{id}")),
        (Method::DELETE, format!("/api/v1/admin/tenants/{id}")),
        (Method::POST, format!("/api/v1/admin/tenants/{id}/activate")),
        (Method::POST, format!("/api/v1/admin/tenants/{id}/suspend")),
        (Method::POST, format!("/api/v1/admin/tenants/{id}/restore")),
        (Method::POST, format!("/api/v1/admin/tenants/{id}/move")),
        (Method::GET, "/api/v1/admin/servers".to_string()),
    ];
    for (method, path) in routes {
        let body = matches!(method, Method::POST | Method::PUT).then(|| json!({}));
        for who in [app.as_(&ada), app.anonymous()] {
            let answer = who
                .request(method.clone(), &path)
                .body(body.clone())
                .send()
                .await;
            assert_eq!(answer.problem(404), unknown_route, "{method} {path}");
        }
    }
    // Nothing changed.
    let read = tenants.get(id).await;
    assert_eq!(read["status"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_created_in_every_tier_and_their_admin_joins_from_the_email() {
    let app = TestApp::spawn().await;
    let root = platform_admin(&app).await;
    let tenants = app.as_(&root).admin_tenants();
    for tier in ["shared", "schema", "database"] {
        let email = format!("boss-{tier}@acme.test");
        let created = tenants
            .create(json!({
                "name": format!("Acme {tier}"),
                "slug": format!("acme-{tier}"),
                "admin_email": email,
                "plan": "pro",
                "isolation": tier,
            }))
            .await;
        assert_eq!(created["isolation"], tier);
        assert_eq!(created["status"], "active");
        assert_eq!(created["plan"], "pro");
        assert_eq!(created["limits"]["max_users"], 50);
        assert_eq!(created["provisioning"]["step"], "activated");
        assert_eq!(created["invitation"]["email"], email.as_str());
        assert_eq!(created["invitation"]["role"], "owner");
        assert_eq!(created["usage"]["pending_invitations"], 1);

        let token = app.invitation_token(&email, 0).await;
        let accepted = app
            .anonymous()
            .invitation(&token)
            .accept_signing_up("Boss", "boss password")
            .await;
        assert_eq!(accepted["membership"]["role"], "owner");
        let owner = accepted["access_token"].as_str().unwrap();
        let monitor = app
            .as_(owner)
            .monitors()
            .try_create(json!({"name": "Site", "kind": "http", "target": "https://acme.test"}))
            .await;
        assert_eq!(monitor.status(), 201, "{tier}");
    }
    let listed = tenants.list().await;
    let slugs: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["slug"].as_str().unwrap())
        .collect();
    for slug in ["acme-shared", "acme-schema", "acme-database"] {
        assert!(slugs.contains(&slug), "{slugs:?}");
    }

    // Bad input changes nothing.
    let taken = tenants
        .try_create(json!({"name": "Again", "slug": "acme-shared", "admin_email": "x@acme.test"}))
        .await;
    assert_eq!(taken.problem(409)["code"], "conflict");
    for (body, field) in [
        (
            json!({"name": "X", "slug": "x-1", "admin_email": "nope"}),
            "admin_email",
        ),
        (
            json!({"name": "X", "slug": "Bad Slug", "admin_email": "x@acme.test"}),
            "slug",
        ),
        (
            json!({"name": "X", "slug": "x-2", "admin_email": "x@acme.test", "plan": "gold"}),
            "plan",
        ),
    ] {
        let refused = tenants.try_create(body).await;
        assert_eq!(refused.problem(422)["field"], field);
    }
    let tier = tenants
        .try_create(
            json!({"name": "X", "slug": "x-3", "admin_email": "x@acme.test", "isolation": "cloud"}),
        )
        .await;
    assert_eq!(tier.status(), 422);
    let after = tenants.list().await;
    assert_eq!(after["items"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_and_limits_merge_key_by_key() {
    let app = TestApp::spawn().await;
    let root = platform_admin(&app).await;
    let ada = caller(&app, "ada@example.com").await;
    let org = app
        .as_(&ada)
        .organizations()
        .create(json!({"name": "Acme"}))
        .await;
    let id = org["id"].as_str().unwrap();
    let tenants = app.as_(&root).admin_tenants();

    let read = tenants.get(id).await;
    assert_eq!(read["plan"], "free");
    assert_eq!(read["limits"]["max_monitors"], 20);
    assert_eq!(read["usage"]["members"], 1);

    let changed = tenants
        .update(id, json!({"plan": "pro", "limits": {"max_monitors": 3}}))
        .await;
    assert_eq!(changed["plan"], "pro");
    assert_eq!(changed["limits"]["max_monitors"], 3);
    assert_eq!(changed["limits"]["max_users"], 50);
    let changed = tenants
        .update(
            id,
            json!({"limits": {"max_users": null}, "features": {"agents": false}}),
        )
        .await;
    assert_eq!(
        changed["limits"]["max_monitors"], 3,
        "earlier overrides stay"
    );
    assert_eq!(
        changed["limits"]["max_users"],
        Value::Null,
        "null is unlimited"
    );
    assert_eq!(changed["features"]["agents"], false);
    assert_eq!(
        changed["overrides"]["limits"],
        json!({"max_monitors": 3, "max_users": null})
    );

    for (body, field) in [
        (json!({"plan": "gold"}), "plan"),
        (json!({"limits": {"max_everything": 1}}), "limits"),
        (json!({"limits": {"max_users": -1}}), "limits"),
        (json!({"features": {"agents": "yes"}}), "features"),
    ] {
        let refused = tenants.try_update(id, body).await;
        assert_eq!(refused.problem(422)["field"], field);
    }
    let unchanged = tenants.get(id).await;
    assert_eq!(unchanged["limits"], changed["limits"]);
    assert_eq!(unchanged["plan"], "pro");

    // The members see the plan and limits too.
    let seen = app.as_(&ada).organizations().get(id).await;
    assert_eq!(seen["plan"], "pro");
    assert_eq!(seen["limits"]["max_monitors"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_activate_delete_restore_and_purge() {
    let app = TestApp::spawn().await;
    let root = platform_admin(&app).await;
    let ada = caller(&app, "ada@example.com").await;
    let orgs = app.as_(&ada).organizations();
    let org = orgs.create(json!({"name": "Acme"})).await;
    let id = org["id"].as_str().unwrap();
    let tenants = app.as_(&root).admin_tenants();
    let key = orgs
        .api_keys(id)
        .create(json!({"name": "ci", "role": "member"}))
        .await;
    let monitors = app.as_(key["secret"].as_str().unwrap()).monitors();
    assert_eq!(monitors.try_list().await.status(), 200);

    let suspended = tenants.suspend(id).await;
    assert_eq!(suspended["status"], "suspended");
    assert_eq!(
        monitors.try_list().await.problem(403)["code"],
        "tenant_suspended"
    );
    // Its members still see the organization, and that it is suspended.
    let as_member = orgs.get(id).await;
    assert_eq!(as_member["status"], "suspended");
    let activated = tenants.activate(id).await;
    assert_eq!(activated["status"], "active");
    assert_eq!(monitors.try_list().await.status(), 200);

    tenants.delete(id).await;
    assert_eq!(monitors.try_list().await.problem(404)["code"], "not_found");
    let deleted = tenants.get(id).await;
    assert_eq!(deleted["status"], "deleted");
    let restored = tenants.restore(id).await;
    assert_eq!(restored["status"], "active");
    assert_eq!(monitors.try_list().await.status(), 200);

    let wrong = tenants.try_hard_delete(id, "nope").await;
    assert_eq!(wrong.problem(422)["field"], "confirm");
    assert_eq!(monitors.try_list().await.status(), 200);
    tenants.hard_delete(id, org["slug"].clone()).await;
    assert_eq!(tenants.try_get(id).await.problem(404)["code"], "not_found");
    assert_eq!(
        monitors.try_list().await.status(),
        401,
        "the key went with its organization"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soft_deleted_organization_is_gone_for_its_members_but_its_export() {
    let app = TestApp::spawn().await;
    let root = platform_admin(&app).await;
    let ada = crate::caller(&app, "ada@example.com").await;
    let org = crate::new_org(&app, &ada, "Acme").await;
    let orgs = app.as_(&ada).organizations();
    orgs.delete(&org).await;
    let base = format!("/api/v1/organizations/{org}");
    for (method, path) in [
        (Method::GET, base.clone()),
        (Method::PUT, base.clone()),
        (Method::GET, format!("{base}/members")),
        (Method::POST, format!("{base}/leave")),
        (Method::POST, format!("{base}/switch")),
        (Method::GET, format!("{base}/api-keys")),
        (Method::GET, format!("{base}/invitations")),
        (Method::GET, format!("{base}/usage")),
        (Method::GET, format!("{base}/audit-logs")),
        (Method::DELETE, base.clone()),
    ] {
        let body = (method == Method::PUT).then(|| json!({"name": "Renamed"}));
        let response = app
            .as_(&ada)
            .request(method.clone(), &path)
            .body(body)
            .send()
            .await;
        assert_eq!(response.status(), 404, "{method} {path}");
    }
    let monitors = app.as_(&ada).org(&org).monitors().try_list().await;
    assert_eq!(monitors.status(), 404);
    // The export stays for its owners until the purge, and a platform admin can restore it.
    orgs.export(&org).await;
    app.as_(&root).admin_tenants().restore(&org).await;
    orgs.get(&org).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_are_listed_and_a_tenant_is_moved_to_the_database_tier_through_the_api() {
    let app = TestApp::spawn().await;
    let root = platform_admin(&app).await;
    let admin = app.as_(&root);
    let servers = admin
        .request(Method::GET, "/api/v1/admin/servers")
        .send()
        .await
        .expect(200);
    let default = &servers["items"][0];
    assert_eq!(default["name"], "default");
    assert_eq!(default["reachable"], true);
    assert_eq!(default["draining"], false);
    assert!(default["max_connections"].as_u64().unwrap() > 0);

    let tenants = admin.admin_tenants();
    let created = tenants
        .create(json!({"name": "Acme", "slug": "acme", "admin_email": "boss@acme.test"}))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    // A server that does not exist, a server for another tier, a body naming nothing: 422, and
    // the tenant stays where it is.
    for (body, field) in [
        (json!({"server": "nowhere"}), "server"),
        (json!({"to": "schema", "server": "default"}), "server"),
        (json!({}), "to"),
        (json!({"to": "shared"}), "to"),
    ] {
        let refused = admin
            .request(Method::POST, format!("/api/v1/admin/tenants/{id}/move"))
            .body(body.clone())
            .send()
            .await
            .problem(422);
        assert_eq!(refused["field"], field, "{body}");
    }
    let refused = tenants
        .try_create(json!({"name": "B", "slug": "b-1", "admin_email": "b@acme.test", "isolation": "database", "server": "nowhere"}))
        .await;
    assert_eq!(refused.problem(422)["code"], "validation_failed");
    assert_eq!(tenants.get(&id).await["isolation"], "shared");

    let started = admin
        .request(Method::POST, format!("/api/v1/admin/tenants/{id}/move"))
        .body(json!({"to": "database", "server": "default"}))
        .send()
        .await
        .expect(202);
    assert_eq!(started["slug"], "acme");
    let moved = tenantry_testkit::eventually(
        "the tenant in the database tier",
        std::time::Duration::from_secs(60),
        async || {
            let tenant = tenants.get(&id).await;
            match tenant["isolation"].as_str() {
                Some("database") => Ok(tenant),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert_eq!(moved["placement"]["server"], "default");
    let servers = admin
        .request(Method::GET, "/api/v1/admin/servers")
        .send()
        .await
        .expect(200);
    assert_eq!(servers["items"][0]["tenants"]["database"], 1);
}
