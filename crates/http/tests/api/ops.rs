//! The operational endpoints: health and readiness, request ids on every response, the 404 of
//! unknown paths, and `/metrics` behind its token.

use tenantry_tenancy::{Isolation, NewTenant, Slug};

use reqwest::Method;

use crate::{Answer, TestApp};

/// `GET path`, without authentication.
async fn get(app: &TestApp, path: &str) -> Answer {
    app.anonymous().request(Method::GET, path).send().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_answer() {
    let app = TestApp::spawn().await;
    let health = get(&app, "/healthz").await;
    assert_eq!(health.status(), 200);
    assert_eq!(health.json()["status"], "ok");
    let ready = get(&app, "/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json()["status"], "ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_when_the_control_database_is_gone() {
    let app = TestApp::spawn().await;
    app.tenancy.close().await;
    let ready = get(&app, "/readyz").await;
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.headers()["content-type"], "application/problem+json");
    let body = ready.json();
    assert_eq!(body["code"], "not_ready");
    assert_eq!(body["status"], 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_a_request_id_echoed_when_sent() {
    let app = TestApp::spawn().await;
    let generated = get(&app, "/healthz").await;
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    let echoed = app
        .anonymous()
        .request(Method::GET, "/healthz")
        .header("X-Request-Id", "client-chosen-42")
        .send()
        .await;
    assert_eq!(echoed.headers()["x-request-id"], "client-chosen-42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_are_problem_json_404() {
    let app = TestApp::spawn().await;
    let response = get(&app, "/no/such/path").await;
    assert_eq!(response.status(), 404);
    assert!(response.headers().contains_key("x-request-id"));
    let body = response.json();
    assert_eq!(body["code"], "not_found");
    assert_eq!(body["title"], "Not found");
    // A browser gets the console's page instead.
    let page = app
        .anonymous()
        .request(Method::GET, "/no/such/path")
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await;
    assert_eq!(page.status(), 404);
    assert!(page.text().contains("Page not found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_tenants_pools_and_requests() {
    let app = TestApp::spawn().await;
    for (slug, tier) in [
        ("m-shared", Isolation::Shared),
        ("m-db", Isolation::Database),
    ] {
        app.tenancy
            .create_tenant(&NewTenant {
                name: slug.to_string(),
                slug: Slug::parse(slug).unwrap(),
                isolation: tier,
                plan: None,
                server: None,
            })
            .await
            .unwrap();
    }
    app.tenancy.suspend("m-db").await.unwrap();
    get(&app, "/healthz").await;
    get(&app, "/nowhere").await;
    let response = app.metrics().await;
    assert_eq!(response.status(), 200);
    let text = response.text();
    for line in [
        "tenantry_tenants{isolation=\"shared\",status=\"active\"} 1",
        "tenantry_tenants{isolation=\"database\",status=\"suspended\"} 1",
        "tenantry_tenants{isolation=\"schema\",status=\"active\"} 0",
        "tenantry_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1",
        "tenantry_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1",
        "tenantry_tenant_connection_budget 64",
        "tenantry_tenant_pools_capacity 16",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(text.contains("tenantry_pool_connections{pool=\"runtime\"}"));
    assert!(text.trim_end().ends_with("# EOF"));
}

/// Per-organization API requests on `/metrics`, with the labels bounded: the busiest
/// organizations by slug, the rest summed under `_other`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_tenant_request_metrics_have_bounded_labels() {
    let app = TestApp::spawn().await;
    let ada = crate::caller(&app, "ada@example.com").await;
    let mut orgs = Vec::new();
    for i in 0..23 {
        orgs.push(crate::new_org(&app, &ada, &format!("Org {i:02}")).await);
    }
    // The first organization is the busiest; every one makes at least one request.
    for (i, org) in orgs.iter().enumerate() {
        let times = if i == 0 { 5 } else { 1 };
        for _ in 0..times {
            app.as_(&ada).org(org).monitors().list().await;
        }
    }
    let text = app.metrics().await.text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("tenantry_tenant_api_requests_period{"))
        .collect();
    assert_eq!(lines.len(), 21, "20 organizations and _other:\n{text}");
    assert!(
        text.contains("tenantry_tenant_api_requests_period{tenant=\"org-00\"} 5"),
        "{text}"
    );
    let other: i64 = lines
        .iter()
        .find(|l| l.contains("tenant=\"_other\""))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(other, 3, "the three organizations outside the top 20");
}

/// `/metrics` answers only the scraper holding the metrics token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_metrics_token() {
    let app = TestApp::spawn().await;
    let ada = crate::caller(&app, "ada@example.com").await;
    for (what, token) in [
        ("no token", None),
        ("a wrong token", Some("test-metrics-tokeN")),
        ("a user's access token", Some(ada.token.as_str())),
        ("a prefix", Some("test-metrics")),
    ] {
        let scraper = match token {
            Some(token) => app.as_(token),
            None => app.anonymous(),
        };
        let response = scraper.request(Method::GET, "/metrics").send().await;
        assert_eq!(response.status(), 401, "{what}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{what}"
        );
        let problem = response.json();
        assert_eq!(problem["code"], "unauthorized", "{what}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("tenantry metrics token"),
            "{problem}"
        );
    }
    let response = app.metrics().await;
    assert_eq!(response.status(), 200);
    assert!(response.text().contains("tenantry_tenants"));
}
