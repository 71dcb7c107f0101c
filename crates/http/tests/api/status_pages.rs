//! Status pages over HTTP: their CRUD in the organization in context (validated, audited,
//! unique slugs), and the public page at `/status/{org}/{page}` (JSON and HTML) showing exactly
//! the page's own monitors, with uptime from recorded results; hidden pages, unknown pages and
//! unavailable organizations all the same 404; another organization's pages out of reach in
//! every tier.

use chrono::{TimeDelta, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use tenantry_monitoring::Observation;
use tenantry_tenancy::Isolation;
use uuid::Uuid;

use crate::results::record;
use crate::{Answer, Caller, TestApp, caller, org_in};

/// An organization of `tier` owned by `owner`: its id and slug.
async fn org(app: &TestApp, owner: &Caller, name: &str, tier: Isolation) -> (String, String) {
    let id = org_in(app, owner, name, tier).await;
    let shown = app.as_(owner).organizations().get(&id).await;
    (id, shown["slug"].as_str().unwrap().to_string())
}

/// A TCP monitor named `name` in `org`; returns its id.
async fn monitor(app: &TestApp, who: &Caller, org: &str, name: &str) -> String {
    let created = app
        .as_(who)
        .org(org)
        .monitors()
        .create(json!({"name": name, "kind": "tcp", "target": "db.internal:5432"}))
        .await;
    created["id"].as_str().unwrap().to_string()
}

/// Creates a status page in `org`; returns the 201 body.
async fn create_page(app: &TestApp, who: &Caller, org: &str, body: Value) -> Value {
    app.as_(who).org(org).status_pages().create(body).await
}

/// Every status page of `org`, as its owner lists them.
async fn pages(app: &TestApp, who: &Caller, org: &str) -> Vec<Value> {
    let listed = app.as_(who).org(org).status_pages().list().await;
    listed["items"].as_array().unwrap().clone()
}

/// `GET /status/{org}/{page}` without authentication, asking for JSON or not.
async fn public(app: &TestApp, org_slug: &str, page_slug: &str, json: bool) -> Answer {
    let mut request = app
        .anonymous()
        .request(Method::GET, format!("/status/{org_slug}/{page_slug}"));
    if json {
        request = request.header("Accept", "application/json");
    }
    request.send().await
}

/// The public page's JSON, after checking the answer's headers.
async fn public_json(app: &TestApp, org_slug: &str, page_slug: &str) -> Value {
    let response = public(app, org_slug, page_slug, true).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["cache-control"], "public, max-age=30");
    response.json()
}

/// The 404 body of the public route: problem JSON (`json`) or the HTML page.
async fn public_404(app: &TestApp, org_slug: &str, page_slug: &str, json: bool) -> String {
    let response = public(app, org_slug, page_slug, json).await;
    assert_eq!(response.status(), 404, "/status/{org_slug}/{page_slug}");
    let expected = if json {
        "application/problem+json"
    } else {
        "text/html; charset=utf-8"
    };
    assert_eq!(response.headers()["content-type"], expected);
    response.text()
}

/// The names of the audit entries of `org` whose action starts with `status_page.`.
async fn page_audit(app: &TestApp, who: &Caller, org: &str) -> Vec<String> {
    let trail = app
        .as_(who)
        .organizations()
        .audit_logs(org)
        .list_with("action=status_page.")
        .await;
    trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_pages_are_created_read_listed_replaced_and_deleted() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let (acme, _) = org(&app, &ada, "Acme", Isolation::Shared).await;
    let a = monitor(&app, &ada, &acme, "api").await;
    let b = monitor(&app, &ada, &acme, "web").await;
    let pages_of_acme = app.as_(&ada).org(&acme).status_pages();

    let created = create_page(
        &app,
        &ada,
        &acme,
        json!({"slug": "main", "title": "  Acme status ", "monitor_ids": [b, a]}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["slug"], "main");
    assert_eq!(created["title"], "Acme status");
    assert_eq!(created["monitor_ids"], json!([b, a]));
    assert_eq!(created["public"], false);
    assert!(created["created_at"].is_string());

    let read = pages_of_acme.get(&id).await;
    assert_eq!(read, created);
    let second = create_page(
        &app,
        &ada,
        &acme,
        json!({"slug": "internal", "title": "Ops"}),
    )
    .await;
    assert_eq!(second["monitor_ids"], json!([]));
    assert_eq!(
        pages(&app, &ada, &acme).await,
        vec![created.clone(), second.clone()]
    );
    // Pages of one: the cursor leads to the second.
    let first = pages_of_acme.list_with("limit=1").await;
    assert_eq!(first["items"], json!([created]));
    let next = first["next_cursor"].as_str().unwrap();
    let rest = pages_of_acme
        .list_with(&format!("limit=1&cursor={next}"))
        .await;
    assert_eq!(rest["items"], json!([second]));
    assert_eq!(rest["next_cursor"], Value::Null);

    let replaced = pages_of_acme
        .update(
            &id,
            json!({"slug": "public", "title": "Acme", "monitor_ids": [a], "public": true}),
        )
        .await;
    assert_eq!(
        (
            &replaced["slug"],
            &replaced["title"],
            &replaced["monitor_ids"],
            &replaced["public"]
        ),
        (&json!("public"), &json!("Acme"), &json!([a]), &json!(true))
    );
    assert_eq!(replaced["created_at"], created["created_at"]);

    pages_of_acme.delete(&id).await;
    pages_of_acme.try_get(&id).await.problem(404);
    pages_of_acme.try_delete(&id).await.problem(404);
    assert_eq!(pages(&app, &ada, &acme).await, vec![second]);
    assert_eq!(
        page_audit(&app, &ada, &acme).await,
        [
            "status_page.deleted",
            "status_page.updated",
            "status_page.created",
            "status_page.created"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let bob = caller(&app, "bob@example.com").await;
    let (acme, _) = org(&app, &ada, "Acme", Isolation::Shared).await;
    let (globex, _) = org(&app, &bob, "Globex", Isolation::Shared).await;
    let ours = monitor(&app, &ada, &acme, "api").await;
    let theirs = monitor(&app, &bob, &globex, "theirs").await;
    let page = create_page(
        &app,
        &ada,
        &acme,
        json!({"slug": "main", "title": "Acme", "monitor_ids": [ours]}),
    )
    .await;
    let id = page["id"].as_str().unwrap();
    let unknown = Uuid::now_v7().to_string();
    let long = "x".repeat(201);
    let cases = [
        (json!({"slug": "Main Page", "title": "t"}), "slug"),
        (json!({"slug": "-main", "title": "t"}), "slug"),
        (json!({"slug": "m", "title": "t"}), "slug"),
        (json!({"slug": "ok-slug", "title": "   "}), "title"),
        (json!({"slug": "ok-slug", "title": long}), "title"),
        (
            json!({"slug": "ok-slug", "title": "t", "monitor_ids": [unknown]}),
            "monitor_ids",
        ),
        (
            json!({"slug": "ok-slug", "title": "t", "monitor_ids": [ours, theirs]}),
            "monitor_ids",
        ),
        (
            json!({"slug": "ok-slug", "title": "t", "monitor_ids": [ours, ours]}),
            "monitor_ids",
        ),
        (
            json!({"slug": "ok-slug", "title": "t", "monitor_ids": ["not-an-id"]}),
            "monitor_ids",
        ),
        (json!({"title": "t"}), "slug"),
        (
            json!({"slug": "ok-slug", "title": "t", "colour": "red"}),
            "colour",
        ),
    ];
    let pages_of_acme = app.as_(&ada).org(&acme).status_pages();
    for (body, field) in cases {
        let created = pages_of_acme.try_create(body.clone()).await;
        let replaced = pages_of_acme.try_update(id, body.clone()).await;
        for (method, refused) in [(Method::POST, created), (Method::PUT, replaced)] {
            let refused = refused.problem(422);
            assert_eq!(refused["code"], "validation_failed", "{method} {body}");
            assert_eq!(refused["field"], field, "{method} {body}");
        }
    }
    // Another organization's monitor is simply unknown: the detail says no more.
    let refused = pages_of_acme
        .try_create(json!({"slug": "ok-slug", "title": "t", "monitor_ids": [theirs]}))
        .await
        .problem(422);
    assert_eq!(
        refused["detail"],
        format!("monitor_ids: {theirs} is not a monitor of this organization")
    );
    assert_eq!(pages(&app, &ada, &acme).await, vec![page]);
    assert_eq!(page_audit(&app, &ada, &acme).await, ["status_page.created"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slug_is_unique_within_its_organization() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let (acme, _) = org(&app, &ada, "Acme", Isolation::Shared).await;
    let (globex, _) = org(&app, &ada, "Globex", Isolation::Shared).await;
    let main = create_page(&app, &ada, &acme, json!({"slug": "main", "title": "Main"})).await;
    let other = create_page(
        &app,
        &ada,
        &acme,
        json!({"slug": "other", "title": "Other"}),
    )
    .await;
    let pages_of_acme = app.as_(&ada).org(&acme).status_pages();
    let taken = pages_of_acme
        .try_create(json!({"slug": "main", "title": "Again"}))
        .await;
    assert_eq!(taken.problem(409)["code"], "conflict");
    let renamed = pages_of_acme
        .try_update(
            other["id"].as_str().unwrap(),
            json!({"slug": "main", "title": "Renamed"}),
        )
        .await;
    assert_eq!(renamed.problem(409)["code"], "conflict");
    assert_eq!(pages(&app, &ada, &acme).await, vec![main, other]);
    // A page keeps its own slug, and another organization may use it.
    create_page(
        &app,
        &ada,
        &globex,
        json!({"slug": "main", "title": "Globex"}),
    )
    .await;
}

/// Records, for monitor `id` of `org`, a passed (`true`) or failed check per entry of `story`,
/// a minute apart, ending within the last hour.
async fn checks(app: &TestApp, org: &str, id: &str, story: &[bool]) {
    let start = Utc::now() - TimeDelta::hours(1);
    for (n, ok) in story.iter().enumerate() {
        let at = start + TimeDelta::minutes(n as i64);
        let seen = if *ok {
            Observation::up(at, Some(5))
        } else {
            Observation::down(at, "connection refused")
        };
        record(app, org, id, at, seen).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_page_shows_its_own_monitors_in_order_with_their_uptime() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let bob = caller(&app, "bob@example.com").await;
    let (acme, acme_slug) = org(&app, &ada, "Acme", Isolation::Shared).await;
    let (globex, globex_slug) = org(&app, &bob, "Globex", Isolation::Shared).await;
    let api = monitor(&app, &ada, &acme, "api").await;
    let web = monitor(&app, &ada, &acme, "web").await;
    let queue = monitor(&app, &ada, &acme, "queue").await;
    let unlisted = monitor(&app, &ada, &acme, "unlisted").await;
    let theirs = monitor(&app, &bob, &globex, "globex-db").await;
    // A failure of yesterday does not count; then 3 passed and 1 failed: 75 %, down.
    let yesterday = Utc::now() - TimeDelta::hours(25);
    record(
        &app,
        &acme,
        &api,
        yesterday,
        Observation::down(yesterday, "timeout"),
    )
    .await;
    checks(&app, &acme, &api, &[true, true, true, false]).await;
    checks(&app, &acme, &web, &[false, true, true]).await;
    checks(&app, &acme, &unlisted, &[false]).await;
    checks(&app, &globex, &theirs, &[true]).await;
    create_page(
        &app,
        &ada,
        &acme,
        json!({"slug": "main", "title": "Acme", "public": true, "monitor_ids": [queue, web, api]}),
    )
    .await;
    create_page(
        &app,
        &bob,
        &globex,
        json!({"slug": "main", "title": "Globex", "public": true, "monitor_ids": [theirs]}),
    )
    .await;

    assert_eq!(
        public_json(&app, &acme_slug, "main").await,
        json!({"title": "Acme", "monitors": [
            {"name": "queue", "status": "pending", "uptime_24h": null},
            {"name": "web", "status": "up", "uptime_24h": 66.67},
            {"name": "api", "status": "down", "uptime_24h": 75.0},
        ]})
    );
    assert_eq!(
        public_json(&app, &globex_slug, "main").await,
        json!({"title": "Globex", "monitors": [
            {"name": "globex-db", "status": "up", "uptime_24h": 100.0},
        ]})
    );

    // The HTML shows the same, and nothing of the unlisted monitor.
    let response = public(&app, &acme_slug, "main", false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    let html = response.text();
    for shown in ["queue", "web", "api", "66.67%", "75.00%", "1 of 3 down"] {
        assert!(html.contains(shown), "{shown} is not on the page");
    }
    assert!(!html.contains("unlisted") && !html.contains("globex"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_pages_unknown_pages_and_unavailable_organizations_are_the_same_404() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let (acme, acme_slug) = org(&app, &ada, "Acme", Isolation::Shared).await;
    let (initech, initech_slug) = org(&app, &ada, "Initech", Isolation::Shared).await;
    let (umbrella, umbrella_slug) = org(&app, &ada, "Umbrella", Isolation::Shared).await;
    create_page(
        &app,
        &ada,
        &acme,
        json!({"slug": "draft", "title": "Draft"}),
    )
    .await;
    create_page(
        &app,
        &ada,
        &acme,
        json!({"slug": "open", "title": "Open", "public": true}),
    )
    .await;
    public_json(&app, &acme_slug, "open").await;
    for org in [&initech, &umbrella] {
        create_page(
            &app,
            &ada,
            org,
            json!({"slug": "main", "title": "Main", "public": true}),
        )
        .await;
    }
    // Visible while the organizations are active.
    public_json(&app, &initech_slug, "main").await;
    public_json(&app, &umbrella_slug, "main").await;
    app.tenancy.suspend(&initech).await.unwrap();
    app.tenancy.soft_delete(&umbrella).await.unwrap();

    for json in [true, false] {
        let missing = public_404(&app, &acme_slug, "nothing-here", json).await;
        let hidden = [
            (acme_slug.as_str(), "draft"),
            ("no-such-org", "main"),
            (initech_slug.as_str(), "main"),
            (umbrella_slug.as_str(), "main"),
            // By slug only, never by the organization's id.
            (acme.as_str(), "open"),
            (acme_slug.as_str(), "Not A Slug"),
        ];
        for (org_slug, page_slug) in hidden {
            assert_eq!(
                public_404(&app, org_slug, page_slug, json).await,
                missing,
                "/status/{org_slug}/{page_slug}"
            );
        }
    }
    // A page made public is shown; made private again, it is hidden again.
    let draft = &pages(&app, &ada, &acme).await[0];
    let id = draft["id"].as_str().unwrap();
    let publish = |public: bool| json!({"slug": "draft", "title": "Draft", "public": public});
    let pages_of_acme = app.as_(&ada).org(&acme).status_pages();
    pages_of_acme.update(id, publish(true)).await;
    assert_eq!(
        public_json(&app, &acme_slug, "draft").await["title"],
        "Draft"
    );
    pages_of_acme.update(id, publish(false)).await;
    public_404(&app, &acme_slug, "draft", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_page_escapes_what_users_wrote_and_loads_nothing() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let (acme, acme_slug) = org(&app, &ada, "Acme", Isolation::Shared).await;
    let evil = monitor(&app, &ada, &acme, "<script>alert(1)</script>").await;
    let quoted = monitor(&app, &ada, &acme, "\"quoted\" & 'apostrophes'").await;
    checks(&app, &acme, &evil, &[true]).await;
    checks(&app, &acme, &quoted, &[true]).await;
    create_page(
        &app,
        &ada,
        &acme,
        json!({"slug": "main", "title": "<img src=x onerror=alert(1)>", "public": true,
               "monitor_ids": [evil, quoted]}),
    )
    .await;
    let response = public(&app, &acme_slug, "main", false).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(
        headers["content-security-policy"],
        "default-src 'none'; style-src 'unsafe-inline'"
    );
    assert_eq!(headers["cache-control"], "public, max-age=30");
    assert_eq!(headers["vary"], "accept");
    let html = response.text();
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{html}"
    );
    assert!(html.contains("&quot;quoted&quot; &amp; &#39;apostrophes&#39;"));
    assert!(
        !html.contains("<script") && !html.contains("<img"),
        "{html}"
    );
    assert!(html.contains("All systems operational"));
    for reference in [
        "http://", "https://", "//", "url(", "@import", " src=\"", " href=",
    ] {
        assert!(!html.contains(reference), "{reference} in {html}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_monitor_leaves_its_pages() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let (acme, acme_slug) = org(&app, &ada, "Acme", Isolation::Shared).await;
    let api = monitor(&app, &ada, &acme, "api").await;
    let web = monitor(&app, &ada, &acme, "web").await;
    let page = create_page(
        &app,
        &ada,
        &acme,
        json!({"slug": "main", "title": "Acme", "public": true, "monitor_ids": [api, web]}),
    )
    .await;
    let in_acme = app.as_(&ada).org(&acme);
    in_acme.monitors().delete(&api).await;
    let read = in_acme
        .status_pages()
        .get(page["id"].as_str().unwrap())
        .await;
    assert_eq!(read["monitor_ids"], json!([web]));
    let shown = public_json(&app, &acme_slug, "main").await;
    assert_eq!(shown["monitors"].as_array().unwrap().len(), 1);
    assert_eq!(shown["monitors"][0]["name"], "web");
}

/// Another organization's page, by id through the caller's own organization and through the
/// other's: the same 404 as a missing page, and nothing changes; its monitors cannot be listed
/// on the caller's pages; and each organization's public page shows its own, in `tier`.
async fn another_organizations_pages_are_out_of_reach(tier: Isolation) {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let bob = caller(&app, "bob@example.com").await;
    let (a, a_slug) = org(&app, &ada, "Ada's", tier).await;
    let (b, b_slug) = org(&app, &bob, "Bob's", tier).await;
    let bobs_monitor = monitor(&app, &bob, &b, "bob-db").await;
    checks(&app, &b, &bobs_monitor, &[true, false]).await;
    let bobs = create_page(
        &app,
        &bob,
        &b,
        json!({"slug": "main", "title": "Bob", "public": true, "monitor_ids": [bobs_monitor]}),
    )
    .await;
    let adas_monitor = monitor(&app, &ada, &a, "ada-web").await;
    create_page(
        &app,
        &ada,
        &a,
        json!({"slug": "main", "title": "Ada", "public": true, "monitor_ids": [adas_monitor]}),
    )
    .await;

    let theirs = bobs["id"].as_str().unwrap();
    let missing = Uuid::now_v7().to_string();
    let body = json!({"slug": "taken-over", "title": "Mine now", "public": true});
    for tenant in [a.as_str(), a_slug.as_str(), b.as_str(), b_slug.as_str()] {
        let pages = app.as_(&ada).org(tenant).status_pages();
        let attempts = [
            (
                Method::GET,
                pages.try_get(&missing).await,
                pages.try_get(theirs).await,
            ),
            (
                Method::PUT,
                pages.try_update(&missing, body.clone()).await,
                pages.try_update(theirs, body.clone()).await,
            ),
            (
                Method::DELETE,
                pages.try_delete(&missing).await,
                pages.try_delete(theirs).await,
            ),
        ];
        for (method, expected, got) in attempts {
            assert_eq!(
                got.problem(404),
                expected.problem(404),
                "{method} as X-Tenant {tenant}"
            );
        }
    }
    let refused = app
        .as_(&ada)
        .org(&a)
        .status_pages()
        .try_create(json!({"slug": "steal", "title": "t", "monitor_ids": [bobs_monitor]}))
        .await;
    assert_eq!(refused.problem(422)["field"], "monitor_ids");
    // Bob's page is as it was; Ada has only hers.
    let still = app.as_(&bob).org(&b).status_pages().get(theirs).await;
    assert_eq!(still, bobs);
    assert_eq!(pages(&app, &ada, &a).await.len(), 1);
    assert_eq!(
        public_json(&app, &b_slug, "main").await,
        json!({"title": "Bob", "monitors": [
            {"name": "bob-db", "status": "down", "uptime_24h": 50.0},
        ]})
    );
    assert_eq!(
        public_json(&app, &a_slug, "main").await,
        json!({"title": "Ada", "monitors": [
            {"name": "ada-web", "status": "pending", "uptime_24h": null},
        ]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organizations_pages_are_out_of_reach_shared() {
    another_organizations_pages_are_out_of_reach(Isolation::Shared).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organizations_pages_are_out_of_reach_schema() {
    another_organizations_pages_are_out_of_reach(Isolation::Schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organizations_pages_are_out_of_reach_database() {
    another_organizations_pages_are_out_of_reach(Isolation::Database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_read_pages_and_members_change_them() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let vic = caller(&app, "vic@example.com").await;
    let (acme, _) = org(&app, &ada, "Acme", Isolation::Shared).await;
    let members = app.as_(&ada).organizations().members(&acme);
    members.add(vic.id, "viewer").await;
    let page = create_page(&app, &ada, &acme, json!({"slug": "main", "title": "Acme"})).await;
    let id = page["id"].as_str().unwrap();
    let by_vic = app.as_(&vic).org(&acme).status_pages();
    let read = by_vic.get(id).await;
    assert_eq!(read, page);
    let attempts = [
        (
            Method::POST,
            by_vic
                .try_create(json!({"slug": "mine", "title": "Mine"}))
                .await,
        ),
        (
            Method::PUT,
            by_vic
                .try_update(id, json!({"slug": "main", "title": "Changed"}))
                .await,
        ),
        (Method::DELETE, by_vic.try_delete(id).await),
    ];
    for (method, refused) in attempts {
        assert_eq!(refused.problem(403)["code"], "forbidden", "{method}");
    }
    assert_eq!(pages(&app, &ada, &acme).await, vec![page]);
}

/// The headers of a response other than those that differ on every answer.
fn stable_headers(response: &Answer) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(name, _)| !["date", "x-request-id"].contains(&name.as_str()))
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("").to_string()))
        .collect();
    headers.sort();
    headers
}

/// The organization's API requests this period, as its usage shows them.
async fn api_requests_used(app: &TestApp, who: &Caller, org: &str) -> i64 {
    let body = app.as_(who).organizations().usage(org).await;
    body["usage"]["api_requests"]["used"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_page_traffic_spends_nothing_of_the_organization_and_tells_nothing() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let (id, slug) = org(&app, &ada, "Acme", Isolation::Shared).await;
    app.set_limit(&id, "api_requests_per_minute", json!(10))
        .await;
    let before = api_requests_used(&app, &ada, &id).await;

    // 25 anonymous requests for a page that does not exist, of a real organization.
    for _ in 0..25 {
        let response = public(&app, &slug, "nope", false).await;
        assert_eq!(response.status(), 404);
        assert!(response.headers().get("ratelimit-limit").is_none());
    }
    // The organization's members are not locked out, and its usage did not move.
    let response = app.as_(&ada).org(&id).monitors().try_list().await;
    assert_eq!(response.status(), 200);
    let after = api_requests_used(&app, &ada, &id).await;
    assert!(
        after - before <= 2,
        "anonymous requests were counted: {before} → {after}"
    );

    // An unknown organization and an unknown page of a known one answer byte for byte alike.
    for json in [false, true] {
        let unknown_org = public(&app, "no-such-org", "nope", json).await;
        let unknown_page = public(&app, &slug, "nope", json).await;
        assert_eq!(unknown_org.status(), unknown_page.status());
        assert_eq!(stable_headers(&unknown_org), stable_headers(&unknown_page));
        assert_eq!(unknown_org.bytes(), unknown_page.bytes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_pages_have_a_budget_per_client_and_are_cacheable() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let (id, slug) = org(&app, &ada, "Acme", Isolation::Schema).await;
    let m = monitor(&app, &ada, &id, "db").await;
    create_page(
        &app,
        &ada,
        &id,
        json!({"slug": "status", "title": "Acme", "monitor_ids": [m], "public": true}),
    )
    .await;

    let first = public(&app, &slug, "status", true).await;
    assert_eq!(first.status(), 200);
    let tag = first.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(first.headers()["cache-control"], "public, max-age=30");
    let again = app
        .anonymous()
        .request(Method::GET, format!("/status/{slug}/status"))
        .header("Accept", "application/json")
        .header("If-None-Match", &tag)
        .send()
        .await;
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), tag);

    // One client past its budget is refused; the organization's members are not.
    let mut refused = 0;
    for _ in 0..130 {
        let response = public(&app, &slug, "status", true).await;
        if response.status() == 429 {
            assert!(response.headers().contains_key("retry-after"));
            refused += 1;
        }
    }
    assert!(refused >= 5, "{refused} refused");
    let response = app.as_(&ada).org(&id).monitors().try_list().await;
    assert_eq!(response.status(), 200);
}
