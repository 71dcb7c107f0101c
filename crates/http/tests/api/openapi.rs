//! The OpenAPI document at `/api/openapi.json` and the browsable docs at `/api/docs`: the
//! document describes what the server serves, and real responses carry only documented fields.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::{TestApp, caller, platform_admin};

/// Every operation the route modules serve (method, path). A new route joins this list.
const OPERATIONS: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("post", "/api/v1/auth/signup"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/user"),
    ("get", "/.well-known/jwks.json"),
    ("get", "/api/v1/organizations"),
    ("post", "/api/v1/organizations"),
    ("get", "/api/v1/organizations/{id}"),
    ("put", "/api/v1/organizations/{id}"),
    ("delete", "/api/v1/organizations/{id}"),
    ("get", "/api/v1/user/organizations"),
    ("put", "/api/v1/user/default-organization"),
    ("get", "/api/v1/organizations/{id}/members"),
    ("post", "/api/v1/organizations/{id}/members"),
    ("patch", "/api/v1/organizations/{id}/members/{user_id}"),
    ("delete", "/api/v1/organizations/{id}/members/{user_id}"),
    ("post", "/api/v1/organizations/{id}/leave"),
    ("post", "/api/v1/organizations/{id}/switch"),
    ("get", "/api/v1/organizations/{id}/api-keys"),
    ("post", "/api/v1/organizations/{id}/api-keys"),
    ("delete", "/api/v1/organizations/{id}/api-keys/{kid}"),
    ("get", "/api/v1/organizations/{id}/usage"),
    ("get", "/api/v1/organizations/{id}/audit-logs"),
    ("get", "/api/v1/organizations/{id}/export"),
    ("get", "/api/v1/monitors"),
    ("post", "/api/v1/monitors"),
    ("get", "/api/v1/monitors/{id}"),
    ("put", "/api/v1/monitors/{id}"),
    ("delete", "/api/v1/monitors/{id}"),
    ("get", "/api/v1/monitors/{id}/results"),
    ("get", "/api/v1/monitors/{id}/incidents"),
    ("get", "/api/v1/heartbeat/{token}"),
    ("post", "/api/v1/heartbeat/{token}"),
    ("get", "/api/v1/agents"),
    ("post", "/api/v1/agents"),
    ("get", "/api/v1/agents/{id}"),
    ("delete", "/api/v1/agents/{id}"),
    ("post", "/api/v1/agent/claims"),
    ("post", "/api/v1/agent/results"),
    ("get", "/api/v1/alert-channels"),
    ("post", "/api/v1/alert-channels"),
    ("get", "/api/v1/alert-channels/{id}"),
    ("put", "/api/v1/alert-channels/{id}"),
    ("delete", "/api/v1/alert-channels/{id}"),
    ("get", "/api/v1/status-pages"),
    ("post", "/api/v1/status-pages"),
    ("get", "/api/v1/status-pages/{id}"),
    ("put", "/api/v1/status-pages/{id}"),
    ("delete", "/api/v1/status-pages/{id}"),
    ("get", "/status/{org_slug}/{page_slug}"),
    ("get", "/api/v1/organizations/{id}/invitations"),
    ("post", "/api/v1/organizations/{id}/invitations"),
    ("delete", "/api/v1/organizations/{id}/invitations/{iid}"),
    (
        "post",
        "/api/v1/organizations/{id}/invitations/{iid}/resend",
    ),
    ("get", "/api/v1/invitations/{token}"),
    ("post", "/api/v1/invitations/{token}/accept"),
    ("get", "/invitations/{token}"),
    ("get", "/api/v1/admin/tenants"),
    ("post", "/api/v1/admin/tenants"),
    ("get", "/api/v1/admin/tenants/{id}"),
    ("put", "/api/v1/admin/tenants/{id}"),
    ("delete", "/api/v1/admin/tenants/{id}"),
    ("post", "/api/v1/admin/tenants/{id}/activate"),
    ("post", "/api/v1/admin/tenants/{id}/suspend"),
    ("post", "/api/v1/admin/tenants/{id}/restore"),
];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn document(app: &TestApp) -> Value {
    let response = app
        .anonymous()
        .request(reqwest::Method::GET, "/api/openapi.json")
        .send()
        .await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    response.json()
}

/// Every `(method, path, operation)` of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if METHODS.contains(&method.as_str()) {
                all.push((method.clone(), path.clone(), operation.clone()));
            }
        }
    }
    all
}

/// What a `$ref` (`#/components/...`) points at, if anything.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

fn refs(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(r)) => found.push(r.clone()),
                    _ => refs(inner, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_openapi_3_1_and_lists_every_route() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "Tenantry API");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    for (method, path) in OPERATIONS {
        assert!(
            documented.contains(&(method.to_string(), path.to_string())),
            "{method} {path} is served but not documented"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_is_summarised_answered_and_secured_by_a_declared_scheme() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    let mut ids = BTreeSet::new();
    for (method, path, operation) in operations(&doc) {
        let what = format!("{method} {path}");
        let summary = operation["summary"].as_str().unwrap_or_default();
        assert!(!summary.trim().is_empty(), "{what} has no summary");
        let responses = operation["responses"].as_object().unwrap();
        assert!(!responses.is_empty(), "{what} has no response");
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{what} has no success response"
        );
        let id = operation["operationId"].as_str().unwrap().to_string();
        assert!(
            ids.insert(id.clone()),
            "{what}: operationId {id} is not unique"
        );
        for requirement in operation["security"].as_array().into_iter().flatten() {
            for scheme in requirement.as_object().unwrap().keys() {
                assert!(
                    schemes.contains_key(scheme),
                    "{what}: unknown scheme {scheme}"
                );
            }
        }
        // Errors are problem JSON, documented with the shared schema; an HTML page's errors are
        // HTML pages.
        let page = responses.values().all(|r| {
            r["content"]
                .as_object()
                .is_some_and(|c| c.keys().all(|t| t == "text/html"))
        });
        for (status, response) in responses {
            let response = match response.get("$ref").and_then(Value::as_str) {
                Some(r) => resolve(&doc, r).unwrap(),
                None => response,
            };
            if !page && (status.starts_with('4') || status.starts_with('5')) {
                assert_eq!(
                    response["content"]["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{what} {status}"
                );
            }
        }
    }
    let problem = &doc["components"]["schemas"]["Problem"]["properties"];
    for field in [
        "type", "title", "status", "detail", "code", "field", "limit",
    ] {
        assert!(problem.get(field).is_some(), "Problem lacks {field}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reference_in_the_document_resolves() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(!found.is_empty());
    for reference in found {
        assert!(
            reference.starts_with("#/components/") && resolve(&doc, &reference).is_some(),
            "{reference} does not resolve"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_are_served_from_the_server_itself() {
    let app = TestApp::spawn().await;
    // `/api/docs` itself works (it redirects to `/api/docs/`, where relative assets resolve).
    for path in ["/api/docs", "/api/docs/"] {
        // The raw response, for the address it was redirected to.
        let response = app
            .anonymous()
            .request(reqwest::Method::GET, path)
            .response()
            .await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.url().path(), "/api/docs/");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let page = response.url().clone();
        let html = response.text().await.unwrap();
        let assets = attributes(&html, &["src", "href"]);
        assert!(
            assets.iter().any(|a| a.ends_with("swagger-ui-bundle.js")),
            "{assets:?}"
        );
        for asset in &assets {
            assert!(
                !asset.contains("://") && !asset.starts_with("//"),
                "{asset} is not served by this server"
            );
        }
        for asset in assets
            .iter()
            .filter(|a| a.ends_with(".js") || a.ends_with(".css"))
        {
            let url = page.join(asset).unwrap();
            let loaded = app.client.get(url.clone()).send().await.unwrap();
            assert_eq!(loaded.status(), 200, "{url}");
        }
    }
    let bundle = app
        .anonymous()
        .request(reqwest::Method::GET, "/api/docs/swagger-ui-bundle.js")
        .send()
        .await;
    assert_eq!(bundle.status(), 200);
    assert!(
        bundle.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    assert!(bundle.text().len() > 100_000);
    // The UI is pointed at this server's document.
    let init = app
        .anonymous()
        .request(reqwest::Method::GET, "/api/docs/swagger-initializer.js")
        .send()
        .await;
    assert_eq!(init.status(), 200);
    assert!(init.text().contains("/api/openapi.json"));
}

/// The values of the `names` attributes in `html`.
fn attributes(html: &str, names: &[&str]) -> Vec<String> {
    let mut values = Vec::new();
    for name in names {
        for quote in ['"', '\''] {
            let opening = format!("{name}={quote}");
            for (at, _) in html.match_indices(&opening) {
                let rest = &html[at + opening.len()..];
                if let Some(end) = rest.find(quote) {
                    values.push(rest[..end].to_string());
                }
            }
        }
    }
    values
}

/// Checks `value` against `schema`: every field of an object is a documented property, every
/// required property is there, and the same inside, through `$ref`, `allOf` and arrays.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return conforms(doc, resolve(doc, r).unwrap(), value, at);
    }
    match value {
        Value::Object(fields) => {
            let mut properties = serde_json::Map::new();
            let mut required = BTreeSet::new();
            collect(doc, schema, &mut properties, &mut required);
            if properties.is_empty() && schema.get("type").is_none() {
                return; // free-form, e.g. `settings`
            }
            let others = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, inner) in fields {
                let property = properties
                    .get(key)
                    .or(others)
                    .unwrap_or_else(|| panic!("{at}.{key} is not documented"));
                conforms(doc, property, inner, &format!("{at}.{key}"));
            }
            for key in required {
                assert!(
                    fields.contains_key(&key),
                    "{at}.{key} is required but absent"
                );
            }
        }
        Value::Array(items) => {
            let item = &schema["items"];
            for (i, inner) in items.iter().enumerate() {
                conforms(doc, item, inner, &format!("{at}[{i}]"));
            }
        }
        _ => {}
    }
}

fn collect(
    doc: &Value,
    schema: &Value,
    properties: &mut serde_json::Map<String, Value>,
    required: &mut BTreeSet<String>,
) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return collect(doc, resolve(doc, r).unwrap(), properties, required);
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        collect(doc, part, properties, required);
    }
    if let Some(own) = schema["properties"].as_object() {
        properties.extend(own.clone());
    }
    for key in schema["required"].as_array().into_iter().flatten() {
        required.insert(key.as_str().unwrap().to_string());
    }
}

/// Sends a request and checks its answer against the documented response for its status.
async fn conforming(
    app: &TestApp,
    doc: &Value,
    (method, path): (reqwest::Method, &str),
    documented_path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Value {
    let who = match token {
        Some(token) => app.as_(token),
        None => app.anonymous(),
    };
    let response = who.request(method.clone(), path).body(body).send().await;
    let status = response.status().as_u16().to_string();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    let value = response.json();
    let operation = &doc["paths"][documented_path][method.as_str().to_lowercase()];
    let mut documented = operation["responses"][&status].clone();
    if let Some(r) = documented.get("$ref").and_then(Value::as_str) {
        documented = resolve(doc, r).unwrap().clone();
    }
    let schema = &documented["content"][&content_type]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path}: {status} {content_type} is not documented"
    );
    conforms(doc, schema, &value, &format!("{method} {path}"));
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_responses_carry_only_documented_fields() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let session = conforming(
        &app,
        &doc,
        (reqwest::Method::POST, "/api/v1/auth/signup"),
        "/api/v1/auth/signup",
        None,
        Some(json!({"email": "doc@example.com", "password": "correct horse", "name": "Doc"})),
    )
    .await;
    let token = session["access_token"].as_str().unwrap().to_string();
    let get = |path: &'static str| (reqwest::Method::GET, path);
    conforming(
        &app,
        &doc,
        get("/api/v1/user"),
        "/api/v1/user",
        Some(&token),
        None,
    )
    .await;
    conforming(
        &app,
        &doc,
        get("/.well-known/jwks.json"),
        "/.well-known/jwks.json",
        None,
        None,
    )
    .await;
    conforming(&app, &doc, get("/healthz"), "/healthz", None, None).await;
    let org = conforming(
        &app,
        &doc,
        (reqwest::Method::POST, "/api/v1/organizations"),
        "/api/v1/organizations",
        Some(&token),
        Some(json!({"name": "Documented"})),
    )
    .await;
    let id = org["id"].as_str().unwrap().to_string();
    conforming(
        &app,
        &doc,
        get("/api/v1/organizations"),
        "/api/v1/organizations",
        Some(&token),
        None,
    )
    .await;
    let one = format!("/api/v1/organizations/{id}");
    conforming(
        &app,
        &doc,
        (reqwest::Method::GET, &one),
        "/api/v1/organizations/{id}",
        Some(&token),
        None,
    )
    .await;
    let members = format!("/api/v1/organizations/{id}/members");
    conforming(
        &app,
        &doc,
        (reqwest::Method::GET, &members),
        "/api/v1/organizations/{id}/members",
        Some(&token),
        None,
    )
    .await;
    let keys = format!("/api/v1/organizations/{id}/api-keys");
    conforming(
        &app,
        &doc,
        (reqwest::Method::POST, &keys),
        "/api/v1/organizations/{id}/api-keys",
        Some(&token),
        Some(json!({"name": "ci", "role": "member"})),
    )
    .await;
    conforming(
        &app,
        &doc,
        (reqwest::Method::GET, &keys),
        "/api/v1/organizations/{id}/api-keys",
        Some(&token),
        None,
    )
    .await;
    let switched = conforming(
        &app,
        &doc,
        (
            reqwest::Method::POST,
            &format!("/api/v1/organizations/{id}/switch"),
        ),
        "/api/v1/organizations/{id}/switch",
        Some(&token),
        None,
    )
    .await;
    let token = switched["access_token"].as_str().unwrap().to_string();
    let monitor = conforming(
        &app,
        &doc,
        (reqwest::Method::POST, "/api/v1/monitors"),
        "/api/v1/monitors",
        Some(&token),
        Some(json!({"name": "Home", "kind": "http", "target": "https://example.com"})),
    )
    .await;
    conforming(
        &app,
        &doc,
        get("/api/v1/monitors"),
        "/api/v1/monitors",
        Some(&token),
        None,
    )
    .await;
    let results = format!(
        "/api/v1/monitors/{}/results",
        monitor["id"].as_str().unwrap()
    );
    conforming(
        &app,
        &doc,
        (reqwest::Method::GET, &results),
        "/api/v1/monitors/{id}/results",
        Some(&token),
        None,
    )
    .await;
    // Errors too: a validation failure names its field.
    let problem = conforming(
        &app,
        &doc,
        (reqwest::Method::POST, "/api/v1/monitors"),
        "/api/v1/monitors",
        Some(&token),
        Some(json!({"name": "Bad", "kind": "smoke"})),
    )
    .await;
    assert_eq!(problem["field"], "kind");
    let other = caller(&app, "stranger@example.com").await;
    conforming(
        &app,
        &doc,
        (reqwest::Method::GET, "/api/v1/monitors"),
        "/api/v1/monitors",
        Some(&other.token),
        None,
    )
    .await;
}

fn post(path: &str) -> (reqwest::Method, &str) {
    (reqwest::Method::POST, path)
}

fn get(path: &str) -> (reqwest::Method, &str) {
    (reqwest::Method::GET, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitation_responses_carry_only_documented_fields() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let owner = caller(&app, "owner@example.com").await;
    let bob = caller(&app, "bob@example.com").await;
    let orgs = app.as_(&owner).organizations();
    let org = orgs.create(json!({"name": "Invites"})).await;
    let org_id = org["id"].as_str().unwrap();
    let invitations = format!("/api/v1/organizations/{org_id}/invitations");

    let invitation = conforming(
        &app,
        &doc,
        post(&invitations),
        "/api/v1/organizations/{id}/invitations",
        Some(&owner.token),
        Some(json!({"email": "guest@example.com", "role": "member"})),
    )
    .await;
    conforming(
        &app,
        &doc,
        get(&invitations),
        "/api/v1/organizations/{id}/invitations",
        Some(&owner.token),
        None,
    )
    .await;
    let first = app.invitation_token("guest@example.com", 0).await;
    let preview = conforming(
        &app,
        &doc,
        get(&format!("/api/v1/invitations/{first}")),
        "/api/v1/invitations/{token}",
        None,
        None,
    )
    .await;
    assert_eq!(preview["organization"]["name"], "Invites");
    let resent = format!(
        "{invitations}/{}/resend",
        invitation["id"].as_str().unwrap()
    );
    conforming(
        &app,
        &doc,
        post(&resent),
        "/api/v1/organizations/{id}/invitations/{iid}/resend",
        Some(&owner.token),
        None,
    )
    .await;
    let token = app.invitation_token("guest@example.com", 1).await;
    let replaced = conforming(
        &app,
        &doc,
        get(&format!("/api/v1/invitations/{first}")),
        "/api/v1/invitations/{token}",
        None,
        None,
    )
    .await;
    assert_eq!(replaced["code"], "gone");

    // The page the email links to is HTML, as documented, with no sign-in.
    let page = app
        .anonymous()
        .request(reqwest::Method::GET, format!("/invitations/{token}"))
        .send()
        .await;
    assert_eq!(page.status(), 200);
    let media = page.headers()["content-type"].to_str().unwrap().to_string();
    assert!(media.starts_with("text/html"), "{media}");
    let documented = &doc["paths"]["/invitations/{token}"]["get"];
    assert!(documented["responses"]["200"]["content"]["text/html"].is_object());
    assert!(documented.get("security").is_none());

    // Accepting: without a body nor a token, signing up, then signed in as the wrong and the
    // right user.
    let accept = format!("/api/v1/invitations/{token}/accept");
    let refused = conforming(
        &app,
        &doc,
        post(&accept),
        "/api/v1/invitations/{token}/accept",
        None,
        None,
    )
    .await;
    assert_eq!(refused["code"], "unauthorized");
    let weak = conforming(
        &app,
        &doc,
        post(&accept),
        "/api/v1/invitations/{token}/accept",
        None,
        Some(json!({"name": "Guest", "password": "short"})),
    )
    .await;
    assert_eq!(weak["code"], "validation_failed");
    let accepted = conforming(
        &app,
        &doc,
        post(&accept),
        "/api/v1/invitations/{token}/accept",
        None,
        Some(json!({"name": "Guest", "password": "a long passphrase"})),
    )
    .await;
    assert_eq!(accepted["membership"]["role"], "member");
    assert!(accepted["access_token"].is_string());
    let used = conforming(
        &app,
        &doc,
        post(&accept),
        "/api/v1/invitations/{token}/accept",
        None,
        Some(json!({"name": "Guest", "password": "a long passphrase"})),
    )
    .await;
    assert_eq!(used["code"], "gone");

    orgs.invitations(org_id)
        .invite("bob@example.com", "viewer")
        .await;
    let token = app.invitation_token("bob@example.com", 0).await;
    let accept = format!("/api/v1/invitations/{token}/accept");
    let mismatch = conforming(
        &app,
        &doc,
        post(&accept),
        "/api/v1/invitations/{token}/accept",
        Some(&owner.token),
        None,
    )
    .await;
    assert_eq!(mismatch["code"], "email_mismatch");
    let accepted = conforming(
        &app,
        &doc,
        post(&accept),
        "/api/v1/invitations/{token}/accept",
        Some(&bob.token),
        None,
    )
    .await;
    assert_eq!(accepted["user"]["id"], bob.id.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_responses_carry_only_documented_fields() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    // Every admin operation needs a token, and answers anyone else 404, never 401 or 403.
    for (method, path, operation) in operations(&doc) {
        if !path.starts_with("/api/v1/admin/") {
            continue;
        }
        assert_eq!(
            operation["security"],
            json!([{"bearer": []}]),
            "{method} {path}"
        );
        let responses = &operation["responses"];
        assert_eq!(
            responses["404"]["$ref"], "#/components/responses/NotAdmin",
            "{method} {path}"
        );
        for status in ["401", "403"] {
            assert!(responses.get(status).is_none(), "{method} {path} {status}");
        }
    }

    let root = platform_admin(&app).await;
    let created = conforming(
        &app,
        &doc,
        (reqwest::Method::POST, "/api/v1/admin/tenants"),
        "/api/v1/admin/tenants",
        Some(&root),
        Some(json!({
            "name": "Acme",
            "slug": "acme",
            "admin_email": "boss@acme.test",
            "plan": "pro",
            "isolation": "schema",
        })),
    )
    .await;
    assert_eq!(created["invitation"]["role"], "owner");
    let one = format!("/api/v1/admin/tenants/{}", created["id"].as_str().unwrap());
    conforming(
        &app,
        &doc,
        (reqwest::Method::GET, "/api/v1/admin/tenants"),
        "/api/v1/admin/tenants",
        Some(&root),
        None,
    )
    .await;
    conforming(
        &app,
        &doc,
        (reqwest::Method::GET, &one),
        "/api/v1/admin/tenants/{id}",
        Some(&root),
        None,
    )
    .await;
    let changed = conforming(
        &app,
        &doc,
        (reqwest::Method::PUT, &one),
        "/api/v1/admin/tenants/{id}",
        Some(&root),
        Some(json!({"limits": {"max_monitors": 3, "max_users": null}, "features": {"agents": false}})),
    )
    .await;
    assert_eq!(changed["overrides"]["limits"]["max_monitors"], 3);
    let suspended = conforming(
        &app,
        &doc,
        (reqwest::Method::POST, &format!("{one}/suspend")),
        "/api/v1/admin/tenants/{id}/suspend",
        Some(&root),
        None,
    )
    .await;
    assert_eq!(suspended["status"], "suspended");
    let again = conforming(
        &app,
        &doc,
        (reqwest::Method::POST, &format!("{one}/suspend")),
        "/api/v1/admin/tenants/{id}/suspend",
        Some(&root),
        None,
    )
    .await;
    assert_eq!(again["code"], "conflict");
    let stranger = caller(&app, "stranger@example.com").await;
    for token in [Some(stranger.token.as_str()), None] {
        let hidden = conforming(
            &app,
            &doc,
            (reqwest::Method::GET, &one),
            "/api/v1/admin/tenants/{id}",
            token,
            None,
        )
        .await;
        assert_eq!(hidden["code"], "not_found");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_query_is_problem_json() {
    let app = TestApp::spawn().await;
    let owner = caller(&app, "query@example.com").await;
    let response = app
        .as_(&owner)
        .request(
            reqwest::Method::DELETE,
            "/api/v1/organizations/acme?hard=maybe",
        )
        .send()
        .await;
    assert_eq!(response.problem(400)["code"], "bad_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_responses_carry_only_documented_fields() {
    use tenantry_monitoring::Observation;

    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let owner = caller(&app, "watch@example.com").await;
    let org = crate::org_in(&app, &owner, "Watch", tenantry_tenancy::Isolation::Shared).await;
    let token = token_in(&app, &owner, &org).await;
    let heartbeat = conforming(
        &app,
        &doc,
        (reqwest::Method::POST, "/api/v1/monitors"),
        "/api/v1/monitors",
        Some(&token),
        Some(json!({"name": "Cron", "kind": "heartbeat", "confirmations": 2})),
    )
    .await;
    let ping = crate::results::heartbeat_path(heartbeat["heartbeat_url"].as_str().unwrap());
    let id = heartbeat["id"].as_str().unwrap().to_string();
    // Down, up, down again: two incidents, five results.
    let at = chrono::Utc::now() - chrono::TimeDelta::minutes(5);
    for (n, ok) in [false, false, true, false, false].into_iter().enumerate() {
        let due = at + chrono::TimeDelta::seconds(n as i64);
        let seen = if ok {
            Observation::up(due, Some(1))
        } else {
            Observation::down(due, "no ping")
        };
        crate::results::record(&app, &org, &id, due, seen).await;
    }
    for list in ["results", "incidents"] {
        let page = conforming(
            &app,
            &doc,
            (
                reqwest::Method::GET,
                &format!("/api/v1/monitors/{id}/{list}?limit=1"),
            ),
            &format!("/api/v1/monitors/{{id}}/{list}"),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(page["items"].as_array().unwrap().len(), 1, "{list}");
        assert!(page["next_cursor"].is_string(), "{list}");
    }
    for path in [ping.as_str(), "/api/v1/heartbeat/unknown"] {
        for method in [reqwest::Method::GET, reqwest::Method::POST] {
            conforming(
                &app,
                &doc,
                (method, path),
                "/api/v1/heartbeat/{token}",
                None,
                None,
            )
            .await;
        }
    }
    conforming(
        &app,
        &doc,
        (reqwest::Method::GET, &format!("/api/v1/monitors/{id}")),
        "/api/v1/monitors/{id}",
        Some(&token),
        None,
    )
    .await;
}

/// An access token of `who` whose `org_id` is `org`.
async fn token_in(app: &TestApp, who: &crate::Caller, org: &str) -> String {
    let switched = app.as_(who).organizations().switch(org).await;
    switched["access_token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_responses_carry_only_documented_fields() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let ada = caller(&app, "ada@example.com").await;
    let org = crate::org_in(&app, &ada, "Pages", tenantry_tenancy::Isolation::Shared).await;
    let token = token_in(&app, &ada, &org).await;
    let monitor = conforming(
        &app,
        &doc,
        post("/api/v1/monitors"),
        "/api/v1/monitors",
        Some(&token),
        Some(json!({"name": "Home", "kind": "tcp", "target": "example.com:443"})),
    )
    .await;
    let id = monitor["id"].as_str().unwrap().to_string();
    crate::results::record(
        &app,
        &org,
        &id,
        chrono::Utc::now(),
        tenantry_monitoring::Observation::up(chrono::Utc::now(), Some(3)),
    )
    .await;
    let body = json!({"slug": "main", "title": "Pages", "monitor_ids": [id], "public": true});
    let page = conforming(
        &app,
        &doc,
        post("/api/v1/status-pages"),
        "/api/v1/status-pages",
        Some(&token),
        Some(body.clone()),
    )
    .await;
    let taken = conforming(
        &app,
        &doc,
        post("/api/v1/status-pages"),
        "/api/v1/status-pages",
        Some(&token),
        Some(body.clone()),
    )
    .await;
    assert_eq!(taken["code"], "conflict");
    let one = format!("/api/v1/status-pages/{}", page["id"].as_str().unwrap());
    conforming(
        &app,
        &doc,
        get(&one),
        "/api/v1/status-pages/{id}",
        Some(&token),
        None,
    )
    .await;
    conforming(
        &app,
        &doc,
        (reqwest::Method::PUT, &one),
        "/api/v1/status-pages/{id}",
        Some(&token),
        Some(body),
    )
    .await;
    conforming(
        &app,
        &doc,
        get("/api/v1/status-pages"),
        "/api/v1/status-pages",
        Some(&token),
        None,
    )
    .await;
    let slug = page["slug"].as_str().unwrap();
    let org_slug = app.as_(&token).organizations().get(&org).await;
    let org_slug = org_slug["slug"].as_str().unwrap();
    // The public page, as JSON: shown, and missing.
    let operation = &doc["paths"]["/status/{org_slug}/{page_slug}"]["get"];
    for (path, status, media) in [
        (
            format!("/status/{org_slug}/{slug}"),
            "200",
            "application/json",
        ),
        (
            format!("/status/{org_slug}/nope"),
            "404",
            "application/problem+json",
        ),
    ] {
        let response = app
            .anonymous()
            .request(reqwest::Method::GET, &path)
            .header("Accept", "application/json")
            .send()
            .await;
        assert_eq!(response.status().as_str(), status, "{path}");
        assert_eq!(response.headers()["content-type"], media, "{path}");
        let value = response.json();
        let schema = &operation["responses"][status]["content"][media]["schema"];
        assert!(schema.is_object(), "{status} {media} is not documented");
        conforms(&doc, schema, &value, &path);
        if status == "200" {
            assert_eq!(value["monitors"][0]["uptime_24h"], 100.0);
        }
    }
    for status in ["200", "404"] {
        assert!(
            operation["responses"][status]["content"]["text/html"].is_object(),
            "{status} text/html is not documented"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_channel_responses_carry_only_documented_fields() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let ada = caller(&app, "alerts@example.com").await;
    let org = crate::org_in(&app, &ada, "Alerts", tenantry_tenancy::Isolation::Shared).await;
    let token = token_in(&app, &ada, &org).await;
    let webhook = json!({"name": "Hook", "kind": "webhook", "url": "https://h.example.com"});
    let created = conforming(
        &app,
        &doc,
        post("/api/v1/alert-channels"),
        "/api/v1/alert-channels",
        Some(&token),
        Some(webhook.clone()),
    )
    .await;
    let refused = conforming(
        &app,
        &doc,
        post("/api/v1/alert-channels"),
        "/api/v1/alert-channels",
        Some(&token),
        Some(json!({"name": "Mail", "kind": "email"})),
    )
    .await;
    assert_eq!(refused["field"], "email");
    let one = format!("/api/v1/alert-channels/{}", created["id"].as_str().unwrap());
    for (method, body) in [
        (reqwest::Method::GET, None),
        (reqwest::Method::PUT, Some(webhook)),
    ] {
        conforming(
            &app,
            &doc,
            (method, &one),
            "/api/v1/alert-channels/{id}",
            Some(&token),
            body,
        )
        .await;
    }
    conforming(
        &app,
        &doc,
        get("/api/v1/alert-channels"),
        "/api/v1/alert-channels",
        Some(&token),
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_responses_carry_only_documented_fields() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let ada = caller(&app, "ada@example.com").await;
    let org = crate::org_in(&app, &ada, "Agents", tenantry_tenancy::Isolation::Shared).await;
    app.allow(&org, "agents").await;
    let token = token_in(&app, &ada, &org).await;
    let agent = conforming(
        &app,
        &doc,
        post("/api/v1/agents"),
        "/api/v1/agents",
        Some(&token),
        Some(json!({"name": "dc"})),
    )
    .await;
    let secret = agent["token"].as_str().unwrap().to_string();
    let one = format!("/api/v1/agents/{}", agent["id"].as_str().unwrap());
    conforming(
        &app,
        &doc,
        get(&one),
        "/api/v1/agents/{id}",
        Some(&token),
        None,
    )
    .await;
    let monitor = conforming(
        &app,
        &doc,
        post("/api/v1/monitors"),
        "/api/v1/monitors",
        Some(&token),
        Some(json!({"name": "db", "kind": "tcp", "target": "10.0.0.5:5432", "agent_id": agent["id"]})),
    )
    .await;
    assert_eq!(monitor["agent_id"], agent["id"]);
    let listed = conforming(
        &app,
        &doc,
        get("/api/v1/agents"),
        "/api/v1/agents",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(listed["items"][0]["monitor_ids"], json!([monitor["id"]]));
    let claimed = conforming(
        &app,
        &doc,
        post("/api/v1/agent/claims"),
        "/api/v1/agent/claims",
        Some(&secret),
        Some(json!({"max": 10})),
    )
    .await;
    let check = &claimed["checks"][0];
    let answer = conforming(
        &app,
        &doc,
        post("/api/v1/agent/results"),
        "/api/v1/agent/results",
        Some(&secret),
        Some(json!({"results": [{
            "monitor_id": check["monitor_id"], "due_at": check["due_at"],
            "checked_at": chrono::Utc::now(), "ok": true, "latency_ms": 3,
            "status_code": null, "error": null,
        }]})),
    )
    .await;
    assert_eq!(answer["recorded"], 1);
    let refused = conforming(
        &app,
        &doc,
        post("/api/v1/agent/claims"),
        "/api/v1/agent/claims",
        Some("tagt_unknown"),
        Some(json!({"max": 1})),
    )
    .await;
    assert_eq!(refused["code"], "invalid_token");
}
