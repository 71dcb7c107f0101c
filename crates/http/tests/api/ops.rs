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
    let response = app.get("/metrics").await;
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
