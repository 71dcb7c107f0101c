//! No input makes a 500. Every operation of the OpenAPI document gets generated bodies — each
//! documented field given the wrong type, a NUL character, an unpaired surrogate, a huge number,
//! a long string; the whole body nested deep, empty, or not an object — as a platform admin in
//! an organization of their own, and with `%00` in its path and query. None is answered with a
//! 5xx; NUL and unpaired surrogates in a body are `422 validation_failed` naming the field.

use reqwest::Method;
use serde_json::{Map, Value, json};
use tenantry_tenancy::Isolation;

use crate::{TestApp, caller, org_in, platform_admin};

/// The schema `schema` refers to, followed through `$ref`s.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    let mut schema = schema;
    for _ in 0..10 {
        let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
            break;
        };
        let path = reference.trim_start_matches("#/");
        let mut target = document;
        for part in path.split('/') {
            target = &target[part];
        }
        schema = target;
    }
    schema
}

/// The documented properties of an operation's JSON body, if it has one.
fn body_properties(document: &Value, operation: &Value) -> Option<Vec<String>> {
    let schema = operation.pointer("/requestBody/content/application~1json/schema")?;
    let schema = resolve(document, schema);
    let mut names = Vec::new();
    for source in std::iter::once(schema).chain(
        ["allOf", "oneOf", "anyOf"]
            .iter()
            .filter_map(|k| schema.get(*k).and_then(Value::as_array))
            .flatten()
            .map(|s| resolve(document, s)),
    ) {
        if let Some(properties) = source.get("properties").and_then(Value::as_object) {
            names.extend(properties.keys().cloned());
        }
    }
    names.sort();
    names.dedup();
    Some(names)
}

/// Bodies that try every documented field with hostile values, and hostile bodies as a whole.
fn bodies(fields: &[String]) -> Vec<(String, Value, Option<String>)> {
    let mut out = Vec::new();
    let hostile = [
        ("nul", json!("a\u{0}b")),
        ("number", json!(1e308)),
        ("overflow", json!(18446744073709551616u128 as f64)),
        ("negative", json!(-9223372036854775808i64)),
        ("bool", json!(true)),
        ("array", json!([1, "x", null])),
        ("object", json!({"x": {"y": "\u{0}"}})),
        ("long", json!("x".repeat(100_000))),
        ("null", Value::Null),
        ("empty", json!("")),
    ];
    for field in fields {
        for (what, value) in &hostile {
            let mut body = Map::new();
            // The other fields plausible, so the hostile one is what gets looked at.
            for other in fields {
                body.insert(other.clone(), json!("plausible"));
            }
            body.insert(field.clone(), value.clone());
            let nul_field = (*what == "nul").then(|| field.clone());
            out.push((format!("{field}={what}"), Value::Object(body), nul_field));
        }
    }
    let mut deep = json!(1);
    for _ in 0..300 {
        deep = json!([deep]);
    }
    out.push(("deep".into(), deep, None));
    out.push(("empty object".into(), json!({}), None));
    out.push(("array body".into(), json!([1, 2, 3]), None));
    out.push(("string body".into(), json!("x"), None));
    out.push(("number body".into(), json!(12345678901234567890u64), None));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_generated_input_makes_a_server_error() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app).await;
    let user = app.as_(&admin).user().get().await;
    let admin_id: uuid::Uuid = user["id"].as_str().unwrap().parse().unwrap();
    let other = caller(&app, "other@example.com").await;
    let org = org_in(
        &app,
        &crate::Caller {
            id: admin_id,
            token: admin.clone(),
        },
        "Fuzz",
        Isolation::Shared,
    )
    .await;
    let document = app
        .anonymous()
        .request(Method::GET, "/api/openapi.json")
        .send()
        .await
        .expect(200);
    let paths = document["paths"].as_object().unwrap().clone();
    let mut failures = Vec::new();
    let mut sent = 0;
    let mut nul_checked = 0;
    // What ends the organization's use (deleting, suspending, leaving) comes last, so every other
    // operation is tried on a live organization.
    let mut operations: Vec<(&String, &String, &Value)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .iter()
                .map(move |(method, operation)| (path, method, operation))
        })
        .filter(|(_, method, _)| {
            ["get", "post", "put", "patch", "delete"].contains(&method.as_str())
        })
        .collect();
    operations.sort_by_key(|(path, method, _)| {
        method.as_str() == "delete"
            || path.ends_with("/suspend")
            || path.ends_with("/leave")
            || path.ends_with("/logout")
    });
    for (path, method, operation) in operations {
        {
            // Path parameters: real ids where there are any, random ones, and hostile text.
            let concrete = path
                .replace("{id}", &org)
                .replace("{user_id}", &other.id.to_string())
                .replace("{org_slug}", "fuzz")
                .replace("{page_slug}", "page");
            let concrete = regex_free_fill(&concrete, &uuid::Uuid::new_v4().to_string());
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut cases: Vec<(String, Option<Value>, String, Option<String>)> = vec![
                ("no body".into(), None, concrete.clone(), None),
                ("nul in path".into(), None, format!("{concrete}%00"), None),
                (
                    "nul in query".into(),
                    None,
                    format!("{concrete}?limit=1%00&cursor=%00"),
                    None,
                ),
                (
                    "bad query".into(),
                    None,
                    format!("{concrete}?limit=99999999999999999999&since=x&cursor=!!"),
                    None,
                ),
            ];
            if let Some(fields) = body_properties(&document, operation) {
                for (what, body, nul_field) in bodies(&fields) {
                    cases.push((what, Some(body), concrete.clone(), nul_field));
                }
            }
            for (what, body, target, nul_field) in cases {
                // The raw response: a body cut short is told as an empty one.
                let response = app
                    .as_(&admin)
                    .org(&org)
                    .request(method.clone(), &target)
                    .body(body)
                    .response()
                    .await;
                sent += 1;
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                if status.is_server_error() {
                    failures.push(format!("{method} {target} ({what}): {status} {text:.300}"));
                    continue;
                }
                if let Some(field) = nul_field
                    && status == 422
                {
                    let problem: Value = serde_json::from_str(&text).unwrap();
                    if problem["code"] == "validation_failed" && problem["field"] == field.as_str()
                    {
                        nul_checked += 1;
                    }
                }
            }
        }
    }
    println!("{sent} requests, {nul_checked} NUL fields refused by name");
    assert!(
        failures.is_empty(),
        "{} server errors:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(sent > 500, "{sent}");
    assert!(nul_checked > 20, "{nul_checked}");
}

/// Every remaining `{param}` of `path` replaced by `value`.
fn regex_free_fill(path: &str, value: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        match rest[open..].find('}') {
            Some(close) => {
                out.push_str(value);
                rest = &rest[open + close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_and_unpaired_surrogates_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    for (body, field) in [
        (
            r#"{"email": "ada@example.com", "password": "correct horse", "name": "A\u0000da"}"#,
            "name",
        ),
        (
            r#"{"email": "ada@example.com", "password": "correct horse", "name": "A\ud800da"}"#,
            "name",
        ),
        (
            r#"{"email": "ada\udc00@example.com", "password": "correct horse", "name": "Ada"}"#,
            "email",
        ),
    ] {
        let response = app
            .anonymous()
            .request(Method::POST, "/api/v1/auth/signup")
            .header("content-type", "application/json")
            .raw_body(body)
            .send()
            .await;
        let problem = response.problem(422);
        assert_eq!(problem["code"], "validation_failed");
        assert_eq!(problem["field"], field, "{body}");
    }
    // Nothing was created.
    let response = app
        .anonymous()
        .auth()
        .try_login("ada@example.com", "correct horse")
        .await;
    assert_eq!(response.status(), 401);
    // A NUL in a path names nothing.
    let response = app
        .anonymous()
        .request(Method::GET, "/status/acme%00/page")
        .send()
        .await;
    assert_eq!(response.status(), 404);
}
