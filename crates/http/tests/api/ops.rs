use tenantry_tenancy::{Isolation, NewTenant, Slug};

use crate::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_answer() {
    let app = TestApp::spawn().await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<serde_json::Value>().await.unwrap()["status"],
        "ok"
    );
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<serde_json::Value>().await.unwrap()["status"],
        "ready"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_when_the_control_database_is_gone() {
    let app = TestApp::spawn().await;
    app.tenancy.close().await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["code"], "not_ready");
    assert_eq!(body["status"], 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_a_request_id_echoed_when_sent() {
    let app = TestApp::spawn().await;
    let generated = app.get("/healthz").await;
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    let echoed = app
        .client
        .get(format!("{}/healthz", app.base))
        .header("X-Request-Id", "client-chosen-42")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "client-chosen-42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_are_problem_json_404() {
    let app = TestApp::spawn().await;
    let response = app.get("/no/such/path").await;
    assert_eq!(response.status(), 404);
    assert!(response.headers().contains_key("x-request-id"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
    assert_eq!(body["title"], "Not found");
    // A browser gets the console's page instead.
    let page = app
        .client
        .get(format!("{}/no/such/path", app.base))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 404);
    assert!(page.text().await.unwrap().contains("Page not found"));
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
            })
            .await
            .unwrap();
    }
    app.tenancy.suspend("m-db").await.unwrap();
    app.get("/healthz").await;
    app.get("/nowhere").await;
    let response = app.metrics().await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
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
            let listed = crate::send(
                &app,
                reqwest::Method::GET,
                "/api/v1/monitors",
                &ada.token,
                Some(org),
                None,
            )
            .await;
            assert_eq!(listed.status(), 200);
        }
    }
    let text = app.metrics().await.text().await.unwrap();
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
        let mut request = app.client.get(format!("{}/metrics", app.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{what}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{what}"
        );
        let problem: serde_json::Value = response.json().await.unwrap();
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
    assert!(response.text().await.unwrap().contains("tenantry_tenants"));
}
