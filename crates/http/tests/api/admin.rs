//! The platform administration API: invisible (404) to everyone but platform admins; tenants
//! created in every tier with their first admin invited by email; plans and limits merged key
//! by key; suspend, activate, soft delete, restore, hard delete.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{TestApp, caller, platform_admin, problem, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_does_not_exist_for_anyone_else() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let root = platform_admin(&app).await;
    let created: Value = send(
        &app,
        Method::POST,
        "/api/v1/admin/tenants",
        &root,
        None,
        Some(json!({"name": "Acme", "slug": "acme", "admin_email": "boss@acme.test"})),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = created["id"].as_str().unwrap();
    let unknown_route = problem(app.get("/api/v1/nothing-here").await, 404).await;
    let routes = [
        (Method::GET, "/api/v1/admin/tenants".to_string()),
        (Method::POST, "/api/v1/admin/tenants".to_string()),
        (Method::GET, format!("/api/v1/admin/tenants/{id}")),
        (Method::PUT, format!("/api/v1/admin/tenants/{id}")),
        (Method::DELETE, format!("/api/v1/admin/tenants/{id}")),
        (Method::POST, format!("/api/v1/admin/tenants/{id}/activate")),
        (Method::POST, format!("/api/v1/admin/tenants/{id}/suspend")),
        (Method::POST, format!("/api/v1/admin/tenants/{id}/restore")),
    ];
    for (method, path) in routes {
        let body = matches!(method, Method::POST | Method::PUT).then(|| json!({}));
        let as_user = send(&app, method.clone(), &path, &ada.token, None, body.clone()).await;
        assert_eq!(
            problem(as_user, 404).await,
            unknown_route,
            "{method} {path}"
        );
        let mut anonymous = app
            .client
            .request(method.clone(), format!("{}{path}", app.base));
        if let Some(body) = &body {
            anonymous = anonymous.json(body);
        }
        let anonymous = anonymous.send().await.unwrap();
        assert_eq!(
            problem(anonymous, 404).await,
            unknown_route,
            "{method} {path}"
        );
    }
    // Nothing changed.
    let read: Value = send(
        &app,
        Method::GET,
        &format!("/api/v1/admin/tenants/{id}"),
        &root,
        None,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(read["status"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_created_in_every_tier_and_their_admin_joins_from_the_email() {
    let app = TestApp::spawn().await;
    let root = platform_admin(&app).await;
    for tier in ["shared", "schema", "database"] {
        let email = format!("boss-{tier}@acme.test");
        let created = send(
            &app,
            Method::POST,
            "/api/v1/admin/tenants",
            &root,
            None,
            Some(json!({
                "name": format!("Acme {tier}"),
                "slug": format!("acme-{tier}"),
                "admin_email": email,
                "plan": "pro",
                "isolation": tier,
            })),
        )
        .await;
        assert_eq!(created.status(), 201);
        let created: Value = created.json().await.unwrap();
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
            .post(
                &format!("/api/v1/invitations/{token}/accept"),
                &json!({"name": "Boss", "password": "boss password"}),
            )
            .await;
        assert_eq!(accepted.status(), 200);
        let accepted: Value = accepted.json().await.unwrap();
        assert_eq!(accepted["membership"]["role"], "owner");
        let owner = accepted["access_token"].as_str().unwrap();
        let monitor = send(
            &app,
            Method::POST,
            "/api/v1/monitors",
            owner,
            None,
            Some(json!({"name": "Site", "kind": "http", "target": "https://acme.test"})),
        )
        .await;
        assert_eq!(monitor.status(), 201, "{tier}");
    }
    let listed: Value = send(
        &app,
        Method::GET,
        "/api/v1/admin/tenants",
        &root,
        None,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
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
    let taken = send(
        &app,
        Method::POST,
        "/api/v1/admin/tenants",
        &root,
        None,
        Some(json!({"name": "Again", "slug": "acme-shared", "admin_email": "x@acme.test"})),
    )
    .await;
    assert_eq!(problem(taken, 409).await["code"], "conflict");
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
        let refused = send(
            &app,
            Method::POST,
            "/api/v1/admin/tenants",
            &root,
            None,
            Some(body),
        )
        .await;
        assert_eq!(problem(refused, 422).await["field"], field);
    }
    let tier = send(
        &app,
        Method::POST,
        "/api/v1/admin/tenants",
        &root,
        None,
        Some(
            json!({"name": "X", "slug": "x-3", "admin_email": "x@acme.test", "isolation": "cloud"}),
        ),
    )
    .await;
    assert_eq!(tier.status(), 422);
    let after: Value = send(
        &app,
        Method::GET,
        "/api/v1/admin/tenants",
        &root,
        None,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(after["items"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_and_limits_merge_key_by_key() {
    let app = TestApp::spawn().await;
    let root = platform_admin(&app).await;
    let ada = caller(&app, "ada@example.com").await;
    let org: Value = app
        .post_as(
            "/api/v1/organizations",
            &ada.token,
            &json!({"name": "Acme"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/api/v1/admin/tenants/{}", org["id"].as_str().unwrap());

    let read: Value = send(&app, Method::GET, &path, &root, None, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["plan"], "free");
    assert_eq!(read["limits"]["max_monitors"], 20);
    assert_eq!(read["usage"]["members"], 1);

    let put = |body: Value| send(&app, Method::PUT, &path, &root, None, Some(body));
    let changed: Value = put(json!({"plan": "pro", "limits": {"max_monitors": 3}}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(changed["plan"], "pro");
    assert_eq!(changed["limits"]["max_monitors"], 3);
    assert_eq!(changed["limits"]["max_users"], 50);
    let changed: Value = put(json!({"limits": {"max_users": null}, "features": {"agents": false}}))
        .await
        .json()
        .await
        .unwrap();
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
        assert_eq!(problem(put(body).await, 422).await["field"], field);
    }
    let unchanged: Value = send(&app, Method::GET, &path, &root, None, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(unchanged["limits"], changed["limits"]);
    assert_eq!(unchanged["plan"], "pro");

    // The members see the plan and limits too.
    let seen: Value = send(
        &app,
        Method::GET,
        &format!("/api/v1/organizations/{}", org["id"].as_str().unwrap()),
        &ada.token,
        None,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(seen["plan"], "pro");
    assert_eq!(seen["limits"]["max_monitors"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_activate_delete_restore_and_purge() {
    let app = TestApp::spawn().await;
    let root = platform_admin(&app).await;
    let ada = caller(&app, "ada@example.com").await;
    let org: Value = app
        .post_as(
            "/api/v1/organizations",
            &ada.token,
            &json!({"name": "Acme"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = org["id"].as_str().unwrap();
    let admin = format!("/api/v1/admin/tenants/{id}");
    let key: Value = send(
        &app,
        Method::POST,
        &format!("/api/v1/organizations/{id}/api-keys"),
        &ada.token,
        None,
        Some(json!({"name": "ci", "role": "member"})),
    )
    .await
    .json()
    .await
    .unwrap();
    let key = key["secret"].as_str().unwrap();
    let monitors = || send(&app, Method::GET, "/api/v1/monitors", key, None, None);
    assert_eq!(monitors().await.status(), 200);

    let suspended: Value = send(
        &app,
        Method::POST,
        &format!("{admin}/suspend"),
        &root,
        None,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(suspended["status"], "suspended");
    assert_eq!(
        problem(monitors().await, 403).await["code"],
        "tenant_suspended"
    );
    // Its members still see the organization, and that it is suspended.
    let as_member: Value = send(
        &app,
        Method::GET,
        &format!("/api/v1/organizations/{id}"),
        &ada.token,
        None,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(as_member["status"], "suspended");
    let activated: Value = send(
        &app,
        Method::POST,
        &format!("{admin}/activate"),
        &root,
        None,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(activated["status"], "active");
    assert_eq!(monitors().await.status(), 200);

    assert_eq!(
        send(&app, Method::DELETE, &admin, &root, None, None)
            .await
            .status(),
        204
    );
    assert_eq!(problem(monitors().await, 404).await["code"], "not_found");
    let deleted: Value = send(&app, Method::GET, &admin, &root, None, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(deleted["status"], "deleted");
    let restored: Value = send(
        &app,
        Method::POST,
        &format!("{admin}/restore"),
        &root,
        None,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(restored["status"], "active");
    assert_eq!(monitors().await.status(), 200);

    let wrong = send(
        &app,
        Method::DELETE,
        &format!("{admin}?hard=true"),
        &root,
        None,
        Some(json!({"confirm": "nope"})),
    )
    .await;
    assert_eq!(problem(wrong, 422).await["field"], "confirm");
    assert_eq!(monitors().await.status(), 200);
    let purged = send(
        &app,
        Method::DELETE,
        &format!("{admin}?hard=true"),
        &root,
        None,
        Some(json!({"confirm": org["slug"]})),
    )
    .await;
    assert_eq!(purged.status(), 204);
    assert_eq!(
        problem(
            send(&app, Method::GET, &admin, &root, None, None).await,
            404
        )
        .await["code"],
        "not_found"
    );
    assert_eq!(
        monitors().await.status(),
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
    let deleted = send(
        &app,
        Method::DELETE,
        &format!("/api/v1/organizations/{org}"),
        &ada.token,
        None,
        None,
    )
    .await;
    assert_eq!(deleted.status(), 204);
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
        let response = send(&app, method.clone(), &path, &ada.token, None, body).await;
        assert_eq!(response.status(), 404, "{method} {path}");
    }
    let monitors = send(
        &app,
        Method::GET,
        "/api/v1/monitors",
        &ada.token,
        Some(&org),
        None,
    )
    .await;
    assert_eq!(monitors.status(), 404);
    // The export stays for its owners until the purge, and a platform admin can restore it.
    let export = send(
        &app,
        Method::GET,
        &format!("{base}/export"),
        &ada.token,
        None,
        None,
    )
    .await;
    assert_eq!(export.status(), 200);
    let restored = send(
        &app,
        Method::POST,
        &format!("/api/v1/admin/tenants/{org}/restore"),
        &root,
        None,
        None,
    )
    .await;
    assert_eq!(restored.status(), 200);
    let back = send(&app, Method::GET, &base, &ada.token, None, None).await;
    assert_eq!(back.status(), 200);
}
