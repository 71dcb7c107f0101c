//! Organizations and monitors over HTTP: the tenant context, membership on every request,
//! RBAC, and another organization's resources answered exactly like missing ones, in every tier.

use serde_json::{Value, json};
use tenantry_tenancy::Isolation;
use uuid::Uuid;

use crate::{TestApp, caller, org_in};

/// The body of a heartbeat monitor named `name`.
fn heartbeat(name: &str) -> Value {
    json!({"name": name, "kind": "heartbeat"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_an_organization_makes_the_caller_its_owner() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let orgs = app.as_(&ada).organizations();
    let created = orgs.create(json!({"name": "Acme Corp"})).await;
    assert_eq!(
        (created["slug"].as_str(), created["role"].as_str()),
        (Some("acme-corp"), Some("owner"))
    );
    assert_eq!(created["isolation"], "shared");
    let again = orgs.create(json!({"name": "Acme Corp"})).await;
    assert_eq!(again["slug"], "acme-corp-2");
    let taken = orgs
        .try_create(json!({"name": "X", "slug": "acme-corp"}))
        .await;
    assert_eq!(taken.problem(409)["code"], "conflict");
    let bad = orgs
        .try_create(json!({"name": "X", "slug": "Not A Slug"}))
        .await;
    assert_eq!(bad.problem(422)["field"], "slug");

    let mine = orgs.list().await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 2);
    let id = created["id"].as_str().unwrap();
    for key in [id, "acme-corp"] {
        let read = orgs.try_get(key).await;
        assert_eq!(read.status(), 200);
    }
    // Someone else's organization and a missing one look the same.
    let bob = caller(&app, "bob@example.com").await;
    let bobs = app.as_(&bob).organizations();
    let theirs = bobs.try_get(id).await.problem(404);
    let missing = bobs.try_get(Uuid::new_v4()).await.problem(404);
    assert_eq!(theirs, missing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_need_an_organization_in_context() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let response = app.as_(&ada).monitors().try_list().await;
    assert_eq!(response.problem(400)["code"], "tenant_required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_are_created_read_updated_listed_in_pages_and_deleted() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let acme = org_in(&app, &ada, "Acme", Isolation::Shared).await;
    let monitors = app.as_(&ada).org(&acme).monitors();
    let created = monitors
        .create(json!({"name": "site", "kind": "http", "target": "https://example.com"}))
        .await;
    assert_eq!(
        (
            created["interval_seconds"].as_i64(),
            created["status"].as_str()
        ),
        (Some(60), Some("pending"))
    );
    let id = created["id"].as_str().unwrap();

    monitors.update(id, json!({"name": "site", "kind": "keyword", "target": "https://example.com", "keyword": "OK", "interval_seconds": 120})).await;
    let read = monitors.get(id).await;
    assert_eq!(
        (read["kind"].as_str(), read["keyword"].as_str()),
        (Some("keyword"), Some("OK"))
    );
    let results = monitors.results(id).list().await;
    assert_eq!(results, json!({"items": [], "next_cursor": null}));

    for i in 0..4 {
        monitors.create(heartbeat(&format!("hb-{i}"))).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("limit=2&cursor={c}"),
            None => "limit=2".to_string(),
        };
        let page = monitors.list_with(&query).await;
        for m in page["items"].as_array().unwrap() {
            seen.push(m["name"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ["site", "hb-0", "hb-1", "hb-2", "hb-3"]);

    let invalid = monitors
        .try_create(json!({"name": "fast", "kind": "heartbeat", "interval_seconds": 1}))
        .await;
    assert_eq!(invalid.problem(422)["field"], "interval_seconds");
    monitors.delete(id).await;
    assert_eq!(monitors.try_get(id).await.status(), 404);
}

async fn another_organizations_monitor_is_not_found(tier: Isolation) {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let bob = caller(&app, "bob@example.com").await;
    let a = org_in(&app, &ada, "Ada's", tier).await;
    let b = org_in(&app, &bob, "Bob's", tier).await;
    let bobs = app.as_(&bob).org(&b).monitors();
    let theirs = bobs.create(heartbeat("bob-1")).await;
    let theirs = theirs["id"].as_str().unwrap();
    let missing = Uuid::new_v4();

    // Ada in her own organization: Bob's monitor is as missing as a made-up id.
    let adas = app.as_(&ada).org(&a).monitors();
    let attempts = [
        (
            "GET",
            adas.try_get(theirs).await,
            adas.try_get(missing).await,
        ),
        (
            "PUT",
            adas.try_update(theirs, heartbeat("stolen")).await,
            adas.try_update(missing, heartbeat("stolen")).await,
        ),
        (
            "DELETE",
            adas.try_delete(theirs).await,
            adas.try_delete(missing).await,
        ),
    ];
    for (method, for_theirs, for_missing) in attempts {
        assert_eq!(
            for_theirs.problem(404),
            for_missing.problem(404),
            "{method}"
        );
    }
    let listed = adas.list().await;
    assert_eq!(listed["items"], json!([]));

    // Ada naming Bob's organization: the same 404 as an organization that does not exist.
    let via_header = app.as_(&ada).org(&b).monitors();
    let nowhere = app.as_(&ada).org(&Uuid::new_v4().to_string()).monitors();
    let via_header_read = via_header.try_get(theirs).await.problem(404);
    let nowhere = nowhere.try_get(theirs).await.problem(404);
    assert_eq!(via_header_read, nowhere);
    let listing = via_header.try_list().await.problem(404);
    assert_eq!(listing, nowhere);

    // Bob still has his monitor, unchanged.
    let kept = bobs.get(theirs).await;
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
    let by_vic = app.as_(&vic).org(&acme).monitors();
    assert_eq!(by_vic.try_list().await.status(), 200);
    let refused = by_vic.try_create(heartbeat("no")).await;
    assert_eq!(refused.problem(403)["code"], "forbidden");

    // Removed by an admin: refused on the very next request.
    app.as_(&ada)
        .organizations()
        .members(&acme)
        .remove(vic.id)
        .await;
    assert_eq!(by_vic.try_list().await.status(), 404);

    app.tenancy.suspend(&acme).await.unwrap();
    let suspended = app.as_(&ada).org(&acme).monitors().try_list().await;
    assert_eq!(suspended.problem(403)["code"], "tenant_suspended");
}
