//! Check results, incidents and heartbeat pings over HTTP: results recorded through the
//! monitoring crate listed in pages and time ranges, incidents opened after `confirmations`
//! failures, `confirmations` validated, and a heartbeat monitor pinged end to end at the URL its
//! creation showed (and nowhere else once it is gone, disabled, or its organization suspended).

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::Method;
use serde_json::{Map, Value, json};
use tenantry_monitoring::{self as monitoring, Observation, Recorded};
use tenantry_orgs::EntitlementChange;
use tenantry_tenancy::Isolation;
use uuid::Uuid;

use crate::{Answer, Caller, Listing, TestApp, caller, org_in};

/// Records `seen` as monitor `id`'s check due at `due_at`, through the monitoring crate.
pub async fn record(app: &TestApp, org: &str, id: &str, due_at: DateTime<Utc>, seen: Observation) {
    let ctx = app.tenancy.resolve(org).await.unwrap();
    let mut tx = ctx.begin().await.unwrap();
    let recorded = monitoring::record_result(&mut tx, id.parse().unwrap(), due_at, &seen)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(matches!(recorded, Recorded::Stored { .. }), "{recorded:?}");
}

/// A fixed origin for a test's check slots, an hour ago, to the microsecond.
fn origin() -> DateTime<Utc> {
    let at = Utc::now() - TimeDelta::hours(1);
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap()
}

fn slot(origin: DateTime<Utc>, n: i64) -> DateTime<Utc> {
    origin + TimeDelta::minutes(n)
}

/// Every item of `list` with `query`, following `next_cursor` with pages of `limit`.
async fn all_pages(list: &Listing<'_>, query: &str, limit: u32) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let joiner = if query.is_empty() { "" } else { "&" };
    loop {
        let query = match &cursor {
            Some(c) => format!("{query}{joiner}limit={limit}&cursor={c}"),
            None => format!("{query}{joiner}limit={limit}"),
        };
        let page = list.list_with(&query).await;
        let got = page["items"].as_array().unwrap();
        assert!(got.len() <= limit as usize);
        items.extend(got.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    items
}

/// Creates a monitor in `org` and returns the 201 body.
async fn create(app: &TestApp, who: &Caller, org: &str, body: Value) -> Value {
    app.as_(who).org(org).monitors().create(body).await
}

/// The path of a `heartbeat_url` (the host is the public URL, not the test server's).
pub fn heartbeat_path(url: &str) -> String {
    let at = url.find("/api/v1/heartbeat/").unwrap();
    url[at..].to_string()
}

/// Pings `path` with `method`, without authentication.
pub async fn ping(app: &TestApp, method: Method, path: &str) -> Answer {
    app.anonymous().request(method, path).send().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_and_incidents_are_listed_newest_first_in_pages() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = org_in(&app, &ada, "Acme", Isolation::Shared).await;
    let created = create(
        &app,
        &ada,
        &org,
        json!({"name": "db", "kind": "tcp", "target": "db.internal:5432", "confirmations": 2}),
    )
    .await;
    assert_eq!(created["confirmations"], 2);
    assert!(created.get("heartbeat_url").is_none());
    let id = created["id"].as_str().unwrap().to_string();
    let t0 = origin();
    // Down after two failures, up, down again: five results, two incidents.
    let story = [false, false, true, false, false];
    for (n, ok) in story.into_iter().enumerate() {
        let at = slot(t0, n as i64);
        let seen = if ok {
            Observation::up(at, Some(7))
        } else {
            Observation {
                status_code: Some(503),
                latency_ms: Some(12),
                ..Observation::down(at, format!("failure {n}"))
            }
        };
        record(&app, &org, &id, at, seen).await;
    }

    let in_org = app.as_(&ada).org(&org);
    let monitors = in_org.monitors();
    let results = all_pages(&monitors.results(&id), "", 2).await;
    let times: Vec<DateTime<Utc>> = results
        .iter()
        .map(|r| r["checked_at"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(times, (0..5).rev().map(|n| slot(t0, n)).collect::<Vec<_>>());
    assert_eq!(
        results[0],
        json!({
            "id": results[0]["id"],
            "monitor_id": id,
            "checked_at": results[0]["checked_at"],
            "ok": false,
            "latency_ms": 12,
            "status_code": 503,
            "error": "failure 4",
        })
    );
    assert_eq!(results[2]["ok"], true);
    assert_eq!(results[2]["error"], Value::Null);

    // A time range: since included, until excluded.
    let range = format!(
        "since={}&until={}",
        slot(t0, 1).to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        slot(t0, 3).to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    );
    let within = all_pages(&monitors.results(&id), &range, 50).await;
    let within: Vec<&Value> = within.iter().map(|r| &r["error"]).collect();
    assert_eq!(within, [&Value::Null, &json!("failure 1")]);

    let incidents = all_pages(&monitors.incidents(&id), "", 1).await;
    assert_eq!(incidents.len(), 2);
    assert_eq!(incidents[0]["resolved_at"], Value::Null);
    assert_eq!(incidents[0]["cause"], "failure 4");
    assert_eq!(incidents[1]["cause"], "failure 1");
    let started: DateTime<Utc> = incidents[1]["started_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let resolved: DateTime<Utc> = incidents[1]["resolved_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!((started, resolved), (slot(t0, 0), slot(t0, 2)));
    let mut fields: Vec<&String> = incidents[0].as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(
        fields,
        ["cause", "id", "monitor_id", "resolved_at", "started_at"]
    );

    let read = monitors.get(&id).await;
    assert_eq!(read["status"], "down");
    assert_eq!(
        read["last_checked_at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        slot(t0, 4)
    );

    // Malformed paging and ranges name their field; a made-up monitor is not found.
    for (query, field) in [
        ("results?limit=0", "limit"),
        ("results?limit=201", "limit"),
        ("results?cursor=nonsense", "cursor"),
        ("results?since=yesterday", "since"),
        ("results?until=2025-13-01T00:00:00Z", "until"),
        ("incidents?cursor=bm9wZQ", "cursor"),
    ] {
        let response = in_org
            .request(Method::GET, format!("/api/v1/monitors/{id}/{query}"))
            .send()
            .await;
        assert_eq!(response.problem(422)["field"], field, "{query}");
    }
    for list in [
        monitors.results(Uuid::new_v4()),
        monitors.incidents(Uuid::new_v4()),
    ] {
        let response = list.try_list().await;
        assert_eq!(response.problem(404)["code"], "not_found");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmations_are_one_to_ten() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = org_in(&app, &ada, "Acme", Isolation::Shared).await;
    let plain = create(
        &app,
        &ada,
        &org,
        json!({"name": "a", "kind": "tcp", "target": "h:1"}),
    )
    .await;
    assert_eq!(plain["confirmations"], 1);
    let id = plain["id"].as_str().unwrap();
    let monitors = app.as_(&ada).org(&org).monitors();
    for wrong in [json!(0), json!(11), json!(-3)] {
        let body = json!({"name": "a", "kind": "tcp", "target": "h:1", "confirmations": wrong});
        let created = monitors.try_create(body.clone()).await;
        let replaced = monitors.try_update(id, body.clone()).await;
        for response in [created, replaced] {
            assert_eq!(response.problem(422)["field"], "confirmations", "{wrong}");
        }
    }
    let changed = monitors
        .update(
            id,
            json!({"name": "a", "kind": "tcp", "target": "h:1", "confirmations": 10}),
        )
        .await;
    assert_eq!(changed["confirmations"], 10);
    let read = monitors.get(id).await;
    assert_eq!(read["confirmations"], 10);
}

/// The monitor as its organization reads it.
async fn read(app: &TestApp, who: &Caller, org: &str, id: &str) -> Value {
    app.as_(who).org(org).monitors().get(id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_monitor_is_pinged_at_the_url_its_creation_showed() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = org_in(&app, &ada, "Acme", Isolation::Database).await;
    let created = create(
        &app,
        &ada,
        &org,
        json!({"name": "nightly", "kind": "heartbeat"}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_string();
    let url = created["heartbeat_url"].as_str().unwrap();
    let path = heartbeat_path(url);
    let token = path.trim_start_matches("/api/v1/heartbeat/");
    assert_eq!(token.len(), 43, "{url}");
    // Shown once: not on later reads, and only its hash is stored.
    let before = read(&app, &ada, &org, &id).await;
    assert!(before.get("heartbeat_url").is_none());
    assert_eq!(
        (before["status"].as_str(), &before["last_ping_at"]),
        (Some("pending"), &Value::Null)
    );
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM monitoring.heartbeats")
        .fetch_all(tenantry_tenancy::Operator::new(&app.tenancy).control())
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert!(!String::from_utf8_lossy(&stored[0]).contains(token));

    let pinged = ping(&app, Method::POST, &path).await;
    assert_eq!(pinged.status(), 200);
    assert!(pinged.headers().contains_key("ratelimit-limit"));
    assert_eq!(pinged.json(), json!({"ok": true}));
    let after_post = read(&app, &ada, &org, &id).await;
    assert_eq!(after_post["status"], "up");
    let first: DateTime<Utc> = after_post["last_ping_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let got = ping(&app, Method::GET, &path).await;
    assert_eq!(got.status(), 200);
    let after_get = read(&app, &ada, &org, &id).await;
    let second: DateTime<Utc> = after_get["last_ping_at"].as_str().unwrap().parse().unwrap();
    assert!(second >= first);
    // The first ping brought it up (a result); the second, on an up monitor, only noted the time.
    let monitors = app.as_(&ada).org(&org).monitors();
    let results = all_pages(&monitors.results(&id), "", 50).await;
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["ok"], true);

    // Unknown and malformed tokens: 404, the same body.
    let reference = ping(
        &app,
        Method::GET,
        &format!("/api/v1/heartbeat/{}", "x".repeat(43)),
    )
    .await
    .problem(404);
    for other in ["short", "a%20b", &"A".repeat(43)] {
        for method in [Method::GET, Method::POST] {
            let response = ping(&app, method, &format!("/api/v1/heartbeat/{other}")).await;
            assert_eq!(response.problem(404), reference, "{other}");
        }
    }

    // Disabled: 404; enabled again: pinged again.
    let replace =
        |enabled: bool| json!({"name": "nightly", "kind": "heartbeat", "enabled": enabled});
    let disabled = monitors.update(&id, replace(false)).await;
    // Still a heartbeat monitor with its token: no new URL.
    assert!(disabled.get("heartbeat_url").is_none());
    assert_eq!(
        ping(&app, Method::POST, &path).await.problem(404),
        reference
    );
    monitors.update(&id, replace(true)).await;
    assert_eq!(ping(&app, Method::POST, &path).await.status(), 200);

    // Suspended organization: 404 alike; active again: pinged again.
    app.tenancy.suspend(&org).await.unwrap();
    assert_eq!(ping(&app, Method::GET, &path).await.problem(404), reference);
    app.tenancy.activate(&org).await.unwrap();
    assert_eq!(ping(&app, Method::GET, &path).await.status(), 200);

    // Deleted: 404, and its token is gone from the control database.
    monitors.delete(&id).await;
    assert_eq!(
        ping(&app, Method::POST, &path).await.problem(404),
        reference
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM monitoring.heartbeats")
        .fetch_one(tenantry_tenancy::Operator::new(&app.tenancy).control())
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_turned_into_a_heartbeat_monitor_shows_its_new_url_once() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = org_in(&app, &ada, "Acme", Isolation::Schema).await;
    let created = create(
        &app,
        &ada,
        &org,
        json!({"name": "job", "kind": "heartbeat"}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_string();
    let old = heartbeat_path(created["heartbeat_url"].as_str().unwrap());
    let monitors = app.as_(&ada).org(&org).monitors();
    let put = |body: Value| monitors.update(&id, body);
    // No longer a heartbeat monitor: its token stops working.
    let tcp = put(json!({"name": "job", "kind": "tcp", "target": "h:1"})).await;
    assert!(tcp.get("heartbeat_url").is_none());
    assert_eq!(ping(&app, Method::GET, &old).await.status(), 404);
    // A heartbeat monitor again: a new URL, in this response only; the old one stays dead.
    let back = put(json!({"name": "job", "kind": "heartbeat"})).await;
    let new = heartbeat_path(back["heartbeat_url"].as_str().unwrap());
    assert_ne!(new, old);
    assert_eq!(ping(&app, Method::GET, &old).await.status(), 404);
    assert_eq!(ping(&app, Method::GET, &new).await.status(), 200);
    let again = put(json!({"name": "job", "kind": "heartbeat"})).await;
    assert!(again.get("heartbeat_url").is_none());
    assert_eq!(ping(&app, Method::GET, &new).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_count_against_the_organizations_rate_limit() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = org_in(&app, &ada, "Acme", Isolation::Shared).await;
    let mut limits = Map::new();
    limits.insert("api_requests_per_minute".to_string(), json!(3));
    app.orgs
        .change_entitlements(
            org.parse().unwrap(),
            &EntitlementChange {
                limits: Some(limits),
                ..EntitlementChange::default()
            },
            &tenantry_audit::AuditContext::system(),
        )
        .await
        .unwrap();
    // One request to create it, two pings: the budget of three is spent.
    let created = create(
        &app,
        &ada,
        &org,
        json!({"name": "job", "kind": "heartbeat"}),
    )
    .await;
    let path = heartbeat_path(created["heartbeat_url"].as_str().unwrap());
    for _ in 0..2 {
        assert_eq!(ping(&app, Method::POST, &path).await.status(), 200);
    }
    let refused = ping(&app, Method::POST, &path).await;
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(refused.problem(429)["code"], "rate_limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_past_the_plans_retention_are_pruned_and_unlimited_ones_kept() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let free = org_in(&app, &ada, "Free", Isolation::Schema).await;
    let kept = org_in(&app, &ada, "Kept", Isolation::Database).await;
    let mut unlimited = Map::new();
    unlimited.insert("retention_days".into(), Value::Null);
    app.orgs
        .change_entitlements(
            kept.parse().unwrap(),
            &EntitlementChange {
                limits: Some(unlimited),
                ..EntitlementChange::default()
            },
            &tenantry_audit::AuditContext::system(),
        )
        .await
        .unwrap();
    let now = origin() + TimeDelta::hours(1);
    for org in [&free, &kept] {
        let monitor = create(
            &app,
            &ada,
            org,
            json!({"name": "site", "kind": "http", "target": "https://example.test"}),
        )
        .await;
        let id = monitor["id"].as_str().unwrap();
        // The free plan keeps 7 days: the 30- and 8-day-old results go, the 6-day-old stays.
        for days in [30, 8, 6] {
            let at = now - TimeDelta::days(days);
            let seen = Observation {
                checked_at: at,
                ok: true,
                latency_ms: Some(12),
                status_code: Some(200),
                error: None,
            };
            record(&app, org, id, at, seen).await;
        }
    }
    let pruned = prune(&app).await;
    assert_eq!(pruned.results, 2);
    let count = |org: String| {
        let app = &app;
        async move {
            let ctx = app.tenancy.resolve(&org).await.unwrap();
            let mut tx = ctx.begin_read().await.unwrap();
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM check_results")
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            n
        }
    };
    assert_eq!(count(free.clone()).await, 1);
    assert_eq!(count(kept.clone()).await, 3);
    // A second pass (another instance's) deletes nothing more.
    assert_eq!(prune(&app).await.results, 0);
}

/// A pass of the hourly pruning, with the organizations' plans giving the retention.
async fn prune(app: &TestApp) -> tenantry_monitoring::Pruned {
    let retention = |id: tenantry_tenancy::TenantId| {
        app.orgs
            .limit(id.as_uuid(), tenantry_orgs::Limit::RetentionDays)
    };
    tenantry_monitoring::prune_expired_results::<_, _, tenantry_orgs::OrgsError>(
        &app.tenancy,
        retention,
    )
    .await
    .unwrap()
}
