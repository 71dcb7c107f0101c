//! Organizations and monitors over HTTP: the tenant context, membership on every request,
//! RBAC, and another organization's resources answered exactly like missing ones, in every tier.

use serde_json::{Value, json};
use tenantry_tenancy::Isolation;
use uuid::Uuid;

use crate::{TestApp, caller, org_in, problem, send};

/// An organization of `tier` owned by `owner`, returning its id.
fn heartbeat(name: &str) -> Value {
    json!({"name": name, "kind": "heartbeat"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_an_organization_makes_the_caller_its_owner() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let created = app
        .post_as(
            "/api/v1/organizations",
            &ada.token,
            &json!({"name": "Acme Corp"}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(
        (created["slug"].as_str(), created["role"].as_str()),
        (Some("acme-corp"), Some("owner"))
    );
    assert_eq!(created["isolation"], "shared");
    let again: Value = app
        .post_as(
            "/api/v1/organizations",
            &ada.token,
            &json!({"name": "Acme Corp"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["slug"], "acme-corp-2");
    let taken = app
        .post_as(
            "/api/v1/organizations",
            &ada.token,
            &json!({"name": "X", "slug": "acme-corp"}),
        )
        .await;
    assert_eq!(problem(taken, 409).await["code"], "conflict");
    let bad = app
        .post_as(
            "/api/v1/organizations",
            &ada.token,
            &json!({"name": "X", "slug": "Not A Slug"}),
        )
        .await;
    assert_eq!(problem(bad, 422).await["field"], "slug");

    let mine: Value = app
        .get_as("/api/v1/organizations", &ada.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["items"].as_array().unwrap().len(), 2);
    let id = created["id"].as_str().unwrap();
    for key in [id, "acme-corp"] {
        let read = app
            .get_as(&format!("/api/v1/organizations/{key}"), &ada.token)
            .await;
        assert_eq!(read.status(), 200);
    }
    // Someone else's organization and a missing one look the same.
    let bob = caller(&app, "bob@example.com").await;
    let theirs = problem(
        app.get_as(&format!("/api/v1/organizations/{id}"), &bob.token)
            .await,
        404,
    )
    .await;
    let missing = problem(
        app.get_as(
            &format!("/api/v1/organizations/{}", Uuid::new_v4()),
            &bob.token,
        )
        .await,
        404,
    )
    .await;
    assert_eq!(theirs, missing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_need_an_organization_in_context() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let response = send(
        &app,
        reqwest::Method::GET,
        "/api/v1/monitors",
        &ada.token,
        None,
        None,
    )
    .await;
    assert_eq!(problem(response, 400).await["code"], "tenant_required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_are_created_read_updated_listed_in_pages_and_deleted() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let acme = org_in(&app, &ada, "Acme", Isolation::Shared).await;
    let t = Some(acme.as_str());
    let created = send(
        &app,
        reqwest::Method::POST,
        "/api/v1/monitors",
        &ada.token,
        t,
        Some(json!({"name": "site", "kind": "http", "target": "https://example.com"})),
    )
    .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(
        (
            created["interval_seconds"].as_i64(),
            created["status"].as_str()
        ),
        (Some(60), Some("pending"))
    );
    let id = created["id"].as_str().unwrap();

    let path = format!("/api/v1/monitors/{id}");
    let updated = send(&app, reqwest::Method::PUT, &path, &ada.token, t,
        Some(json!({"name": "site", "kind": "keyword", "target": "https://example.com", "keyword": "OK", "interval_seconds": 120}))).await;
    assert_eq!(updated.status(), 200);
    let read: Value = send(&app, reqwest::Method::GET, &path, &ada.token, t, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (read["kind"].as_str(), read["keyword"].as_str()),
        (Some("keyword"), Some("OK"))
    );
    let results: Value = send(
        &app,
        reqwest::Method::GET,
        &format!("{path}/results"),
        &ada.token,
        t,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(results, json!({"items": [], "next_cursor": null}));

    for i in 0..4 {
        send(
            &app,
            reqwest::Method::POST,
            "/api/v1/monitors",
            &ada.token,
            t,
            Some(heartbeat(&format!("hb-{i}"))),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("?limit=2&cursor={c}"),
            None => "?limit=2".to_string(),
        };
        let page: Value = send(
            &app,
            reqwest::Method::GET,
            &format!("/api/v1/monitors{query}"),
            &ada.token,
            t,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
        for m in page["items"].as_array().unwrap() {
            seen.push(m["name"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ["site", "hb-0", "hb-1", "hb-2", "hb-3"]);

    let invalid = send(
        &app,
        reqwest::Method::POST,
        "/api/v1/monitors",
        &ada.token,
        t,
        Some(json!({"name": "fast", "kind": "heartbeat", "interval_seconds": 1})),
    )
    .await;
    assert_eq!(problem(invalid, 422).await["field"], "interval_seconds");
    let deleted = send(&app, reqwest::Method::DELETE, &path, &ada.token, t, None).await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        send(&app, reqwest::Method::GET, &path, &ada.token, t, None)
            .await
            .status(),
        404
    );
}

async fn another_organizations_monitor_is_not_found(tier: Isolation) {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let bob = caller(&app, "bob@example.com").await;
    let a = org_in(&app, &ada, "Ada's", tier).await;
    let b = org_in(&app, &bob, "Bob's", tier).await;
    let theirs: Value = send(
        &app,
        reqwest::Method::POST,
        "/api/v1/monitors",
        &bob.token,
        Some(&b),
        Some(heartbeat("bob-1")),
    )
    .await
    .json()
    .await
    .unwrap();
    let theirs = format!("/api/v1/monitors/{}", theirs["id"].as_str().unwrap());
    let missing = format!("/api/v1/monitors/{}", Uuid::new_v4());

    // Ada in her own organization: Bob's monitor is as missing as a made-up id.
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let body = (method == reqwest::Method::PUT).then(|| heartbeat("stolen"));
        let for_theirs = problem(
            send(
                &app,
                method.clone(),
                &theirs,
                &ada.token,
                Some(&a),
                body.clone(),
            )
            .await,
            404,
        )
        .await;
        let for_missing = problem(
            send(&app, method.clone(), &missing, &ada.token, Some(&a), body).await,
            404,
        )
        .await;
        assert_eq!(for_theirs, for_missing, "{method}");
    }
    let listed: Value = send(
        &app,
        reqwest::Method::GET,
        "/api/v1/monitors",
        &ada.token,
        Some(&a),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(listed["items"], json!([]));

    // Ada naming Bob's organization: the same 404 as an organization that does not exist.
    let via_header = problem(
        send(
            &app,
            reqwest::Method::GET,
            &theirs,
            &ada.token,
            Some(&b),
            None,
        )
        .await,
        404,
    )
    .await;
    let nowhere = problem(
        send(
            &app,
            reqwest::Method::GET,
            &theirs,
            &ada.token,
            Some(&Uuid::new_v4().to_string()),
            None,
        )
        .await,
        404,
    )
    .await;
    assert_eq!(via_header, nowhere);
    let listing = problem(
        send(
            &app,
            reqwest::Method::GET,
            "/api/v1/monitors",
            &ada.token,
            Some(&b),
            None,
        )
        .await,
        404,
    )
    .await;
    assert_eq!(listing, nowhere);

    // Bob still has his monitor, unchanged.
    let kept: Value = send(
        &app,
        reqwest::Method::GET,
        &theirs,
        &bob.token,
        Some(&b),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(kept["name"], "bob-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organizations_monitor_is_not_found_shared() {
    another_organizations_monitor_is_not_found(Isolation::Shared).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organizations_monitor_is_not_found_schema() {
    another_organizations_monitor_is_not_found(Isolation::Schema).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organizations_monitor_is_not_found_database() {
    another_organizations_monitor_is_not_found(Isolation::Database).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_read_members_write_and_suspended_organizations_are_refused() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let vic = caller(&app, "vic@example.com").await;
    let acme = org_in(&app, &ada, "Acme", Isolation::Shared).await;
    sqlx::query("INSERT INTO orgs.memberships (org_id, user_id, role) VALUES ($1, $2, 'viewer')")
        .bind(acme.parse::<Uuid>().unwrap())
        .bind(vic.id)
        .execute(tenantry_tenancy::Operator::new(&app.tenancy).control())
        .await
        .unwrap();
    let t = Some(acme.as_str());
    assert_eq!(
        send(
            &app,
            reqwest::Method::GET,
            "/api/v1/monitors",
            &vic.token,
            t,
            None
        )
        .await
        .status(),
        200
    );
    let refused = send(
        &app,
        reqwest::Method::POST,
        "/api/v1/monitors",
        &vic.token,
        t,
        Some(heartbeat("no")),
    )
    .await;
    assert_eq!(problem(refused, 403).await["code"], "forbidden");

    // Removed: refused on the very next request.
    sqlx::query("DELETE FROM orgs.memberships WHERE user_id = $1")
        .bind(vic.id)
        .execute(tenantry_tenancy::Operator::new(&app.tenancy).control())
        .await
        .unwrap();
    assert_eq!(
        send(
            &app,
            reqwest::Method::GET,
            "/api/v1/monitors",
            &vic.token,
            t,
            None
        )
        .await
        .status(),
        404
    );

    app.tenancy.suspend(&acme).await.unwrap();
    let suspended = send(
        &app,
        reqwest::Method::GET,
        "/api/v1/monitors",
        &ada.token,
        t,
        None,
    )
    .await;
    assert_eq!(problem(suspended, 403).await["code"], "tenant_suspended");
}
