//! Per-organization rate limits (`api_requests_per_minute`): `RateLimit-*` headers on admitted
//! requests, `429 rate_limited` with `Retry-After` past the budget, organizations apart, API keys
//! counted in their organization, an API key's own budget on top of it, one budget for every
//! instance sharing a Redis, and a Redis that goes away and comes back. Budgets are per minute
//! and small, so no request is refilled during a test: the tests count requests, never time.

use futures::future::join_all;
use reqwest::Method;
use serde_json::{Map, Value, json};
use tenantry_orgs::EntitlementChange;
use tenantry_ratelimit::server::RedisServer;
use tenantry_tenancy::Isolation;

use crate::{Answer, Caller, Spawn, TestApp, caller, org_in};

/// Sets the organization's `api_requests_per_minute` (before its first request: the server
/// remembers a budget for 30 s).
async fn set_budget(app: &TestApp, org: &str, per_minute: Value) {
    let mut limits = Map::new();
    limits.insert("api_requests_per_minute".to_string(), per_minute);
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
}

/// A tenant-scoped request in `org`.
async fn list_monitors(app: &TestApp, who: &Caller, org: &str) -> Answer {
    app.as_(who).org(org).monitors().try_list().await
}

/// The value of a numeric header.
fn header(response: &Answer, name: &str) -> u64 {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header ({})", response.status()))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn admitted(responses: &[Answer]) -> usize {
    responses
        .iter()
        .inspect(|r| assert!(r.status() == 200 || r.status() == 429, "{}", r.status()))
        .filter(|r| r.status() == 200)
        .count()
}

async fn redis() -> RedisServer {
    RedisServer::start()
        .await
        .unwrap_or_else(|e| panic!("the rate-limit tests need a redis-server: {e}"))
}

/// Waits, up to a deadline (nothing is measured), until the instance uses Redis again.
async fn until_shared(app: &TestApp) {
    tenantry_testkit::eventually(
        "the instance going back to Redis",
        std::time::Duration::from_secs(30),
        async || {
            if app.limiter.is_shared() {
                Ok(())
            } else {
                Err("the instance counts on its own budgets".to_string())
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admitted_requests_carry_the_budget_and_past_it_the_answer_is_429() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let acme = org_in(&app, &ada, "Acme", Isolation::Shared).await;
    set_budget(&app, &acme, json!(5)).await;

    for remaining in (0..5).rev() {
        let response = list_monitors(&app, &ada, &acme).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "ratelimit-limit"), 5);
        assert_eq!(header(&response, "ratelimit-remaining"), remaining);
        // Seconds until the whole budget is back: a request is 12 s of it.
        let reset = header(&response, "ratelimit-reset");
        assert!((1..=60).contains(&reset), "{reset}");
        assert!(response.headers().get("retry-after").is_none());
    }

    let refused = list_monitors(&app, &ada, &acme).await;
    let retry_after = header(&refused, "retry-after");
    assert!((1..=12).contains(&retry_after), "{retry_after}");
    assert_eq!(header(&refused, "ratelimit-limit"), 5);
    assert_eq!(header(&refused, "ratelimit-remaining"), 0);
    assert!((49..=60).contains(&header(&refused, "ratelimit-reset")));
    assert!(refused.headers().contains_key("x-request-id"));
    let body = refused.problem(429);
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(body["status"], 429);
    assert_eq!(body["limit"], "api_requests_per_minute");

    // Organization routes count against the same budget.
    let members = app
        .as_(&ada)
        .organizations()
        .members(&acme)
        .try_list()
        .await;
    assert_eq!(header(&members, "ratelimit-limit"), 5);
    assert_eq!(members.problem(429)["code"], "rate_limited");

    // Routes outside any organization are not limited, and carry no RateLimit headers.
    let me = app.as_(&ada).user().try_get().await;
    assert_eq!(me.status(), 200);
    assert!(me.headers().get("ratelimit-limit").is_none());

    // An organization without a budget (null: unlimited) carries none either.
    let free = org_in(&app, &ada, "Unlimited", Isolation::Shared).await;
    set_budget(&app, &free, Value::Null).await;
    let response = list_monitors(&app, &ada, &free).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("ratelimit-limit").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_organization_spending_its_budget_does_not_slow_another() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let acme = org_in(&app, &ada, "Acme", Isolation::Shared).await;
    let globex = org_in(&app, &ada, "Globex", Isolation::Schema).await;
    set_budget(&app, &acme, json!(5)).await;
    set_budget(&app, &globex, json!(1000)).await;

    // Both at the same moment: Acme's burst is refused past 5, Globex's is all admitted.
    let acme_burst = join_all((0..20).map(|_| list_monitors(&app, &ada, &acme)));
    let globex_burst = join_all((0..20).map(|_| list_monitors(&app, &ada, &globex)));
    let (acme_answers, globex_answers) = tokio::join!(acme_burst, globex_burst);
    assert_eq!(admitted(&acme_answers), 5);
    assert_eq!(admitted(&globex_answers), 20);
    // Globex's 20 took at most 20 from its own budget (a request is 60 ms of it, so some may
    // be back already); none of Acme's refusals did.
    for answer in &globex_answers {
        let remaining = header(answer, "ratelimit-remaining");
        assert!((980..1000).contains(&remaining), "{remaining}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_requests_count_against_their_organization() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let acme = org_in(&app, &ada, "Acme", Isolation::Shared).await;
    set_budget(&app, &acme, json!(5)).await;
    // Creating the key is the organization's first request.
    let created = app
        .as_(&ada)
        .organizations()
        .api_keys(&acme)
        .create(json!({"name": "ci", "role": "member"}))
        .await;
    let with_key = app.as_(created["secret"].as_str().unwrap()).monitors();
    for remaining in [3, 2] {
        let response = with_key.try_list().await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "ratelimit-remaining"), remaining);
    }
    // The member's own requests come out of the same budget...
    let response = list_monitors(&app, &ada, &acme).await;
    assert_eq!(header(&response, "ratelimit-remaining"), 1);
    let response = with_key.try_list().await;
    assert_eq!(header(&response, "ratelimit-remaining"), 0);
    // ...and once it is spent, both are refused.
    let refused = with_key.try_list().await;
    assert_eq!(refused.problem(429)["code"], "rate_limited");
    let refused = list_monitors(&app, &ada, &acme).await;
    assert_eq!(refused.problem(429)["code"], "rate_limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_sharing_a_redis_share_each_budget() {
    let server = redis().await;
    let one = TestApp::spawn_with(Spawn {
        redis_url: Some(server.url()),
        ..Spawn::default()
    })
    .await;
    let two = one.another_instance(Some(server.url())).await;
    assert!(one.limiter.is_shared() && two.limiter.is_shared());
    let ada = caller(&one, "ada@example.com").await;
    let acme = org_in(&one, &ada, "Acme", Isolation::Shared).await;
    set_budget(&one, &acme, json!(6)).await;

    // Alternating between the instances: one budget of 6, whose remainder each reports.
    let mut answers = Vec::new();
    for i in 0..16 {
        let app = if i % 2 == 0 { &one } else { &two };
        answers.push(list_monitors(app, &ada, &acme).await);
    }
    let remaining: Vec<u64> = answers[..6]
        .iter()
        .map(|r| header(r, "ratelimit-remaining"))
        .collect();
    assert_eq!(remaining, [5, 4, 3, 2, 1, 0]);
    assert_eq!(admitted(&answers), 6);

    // Each instance on its own would have admitted 6: without Redis, two make 12.
    let three = one.another_instance(None).await;
    let four = one.another_instance(None).await;
    let globex = org_in(&one, &ada, "Globex", Isolation::Shared).await;
    set_budget(&one, &globex, json!(6)).await;
    let mut answers = Vec::new();
    for i in 0..16 {
        let app = if i % 2 == 0 { &three } else { &four };
        answers.push(list_monitors(app, &ada, &globex).await);
    }
    assert_eq!(admitted(&answers), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_goes_away_leaves_local_limits_and_is_used_again_when_back() {
    let mut server = redis().await;
    let one = TestApp::spawn_with(Spawn {
        redis_url: Some(server.url()),
        ..Spawn::default()
    })
    .await;
    let two = one.another_instance(Some(server.url())).await;
    let ada = caller(&one, "ada@example.com").await;
    let acme = org_in(&one, &ada, "Acme", Isolation::Shared).await;
    set_budget(&one, &acme, json!(4)).await;

    // Shared: 4 in all, whichever instance answers.
    let mut answers = Vec::new();
    for app in [&one, &two, &one, &two, &one, &two] {
        answers.push(list_monitors(app, &ada, &acme).await);
    }
    assert_eq!(admitted(&answers), 4);

    // Redis dies: every request is still answered, within each instance's own budget of 4
    // (untouched so far, so full).
    server.stop().await;
    for app in [&one, &two] {
        let answers = join_all((0..7).map(|_| list_monitors(app, &ada, &acme))).await;
        assert_eq!(admitted(&answers), 4);
        assert!(!app.limiter.is_shared());
        let refused = answers.into_iter().find(|r| r.status() == 429).unwrap();
        assert_eq!(header(&refused, "ratelimit-limit"), 4);
        assert!(header(&refused, "retry-after") >= 1);
    }

    // Redis is back (empty, on the same port): both instances return to it, and share a full
    // budget again, although their own budgets are spent.
    server.restart().await.unwrap();
    until_shared(&one).await;
    until_shared(&two).await;
    let mut answers = Vec::new();
    for app in [&two, &one, &two, &one, &two, &one, &two, &one] {
        answers.push(list_monitors(app, &ada, &acme).await);
    }
    assert_eq!(admitted(&answers), 4);
    assert_eq!(header(&answers[0], "ratelimit-remaining"), 3);

    // The tenant's key: under the tenant's prefix, expiring once its budget is full again.
    let client = redis::Client::open(server.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("tenantry:{acme}:api_requests"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "{ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_429_on_tenant_scoped_routes() {
    let app = TestApp::spawn().await;
    let doc = app
        .anonymous()
        .request(Method::GET, "/api/openapi.json")
        .send()
        .await
        .json();
    let response = &doc["paths"]["/api/v1/monitors"]["get"]["responses"]["429"];
    assert_eq!(response["$ref"], "#/components/responses/RateLimited");
    let headers = &doc["components"]["responses"]["RateLimited"]["headers"];
    for name in [
        "Retry-After",
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "RateLimit-Reset",
    ] {
        assert!(headers.get(name).is_some(), "{name}");
    }
}

/// Makes an API key in `org` with `body` (`name`, `role`, `requests_per_minute`); returns the
/// created key (with its `secret`).
async fn create_key(app: &TestApp, owner: &Caller, org: &str, body: Value) -> Value {
    app.as_(owner)
        .organizations()
        .api_keys(org)
        .create(body)
        .await
}

/// A tenant-scoped request made with API key `key` (a created key, with its secret).
async fn with_key(app: &TestApp, key: &Value) -> Answer {
    let secret = key["secret"].as_str().unwrap();
    app.as_(secret).monitors().try_list().await
}

/// Lifts the organization's `max_api_keys`, so a test may make the keys it needs.
async fn unlimited_keys(app: &TestApp, org: &str) {
    let mut limits = Map::new();
    limits.insert("max_api_keys".to_string(), Value::Null);
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_past_its_own_budget_is_refused_while_other_keys_and_members_go_on() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let acme = org_in(&app, &ada, "Acme", Isolation::Shared).await;
    unlimited_keys(&app, &acme).await;
    set_budget(&app, &acme, json!(9)).await;
    // Three requests of the organization's 9.
    let small = create_key(
        &app,
        &ada,
        &acme,
        json!({"name": "small", "role": "member", "requests_per_minute": 2}),
    )
    .await;
    let other = create_key(
        &app,
        &ada,
        &acme,
        json!({"name": "other", "role": "member"}),
    )
    .await;
    let large = create_key(
        &app,
        &ada,
        &acme,
        json!({"name": "large", "role": "member", "requests_per_minute": 1000}),
    )
    .await;

    // The small key's 2, each reported against its own budget (the tighter one): 2 more of
    // the organization's.
    for remaining in [1, 0] {
        let response = with_key(&app, &small).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "ratelimit-limit"), 2);
        assert_eq!(header(&response, "ratelimit-remaining"), remaining);
    }
    // Past it: 429, with the headers of the key's budget (30 s per request).
    let refused = with_key(&app, &small).await;
    assert_eq!(header(&refused, "ratelimit-limit"), 2);
    assert_eq!(header(&refused, "ratelimit-remaining"), 0);
    let retry_after = header(&refused, "retry-after");
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    let reset = header(&refused, "ratelimit-reset");
    assert!((31..=60).contains(&reset), "{reset}");
    let body = refused.problem(429);
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(body["limit"], "requests_per_minute");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("API key's budget of 2"),
        "{body}"
    );
    // Refusals by the key's budget take nothing from the organization's.
    let refusals = join_all((0..10).map(|_| with_key(&app, &small))).await;
    assert_eq!(admitted(&refusals), 0);

    // Another key and the member go on, out of the organization's budget: 4 left of 9.
    let response = with_key(&app, &other).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "ratelimit-limit"), 9);
    assert_eq!(header(&response, "ratelimit-remaining"), 3);
    let response = list_monitors(&app, &ada, &acme).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "ratelimit-remaining"), 2);
    // A key whose own budget is larger reports the organization's, the tighter one.
    let response = with_key(&app, &large).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "ratelimit-limit"), 9);
    assert_eq!(header(&response, "ratelimit-remaining"), 1);
    assert_eq!(list_monitors(&app, &ada, &acme).await.status(), 200);

    // The organization's budget spent: every key is refused, with the organization's headers,
    // even one whose own budget has plenty left.
    let refused = with_key(&app, &large).await;
    assert_eq!(header(&refused, "ratelimit-limit"), 9);
    assert_eq!(header(&refused, "ratelimit-remaining"), 0);
    assert!(header(&refused, "retry-after") >= 1);
    let body = refused.problem(429);
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(body["limit"], "api_requests_per_minute");
    let refused = with_key(&app, &other).await;
    assert_eq!(header(&refused, "ratelimit-limit"), 9);
    assert_eq!(refused.problem(429)["code"], "rate_limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_budget_without_an_organization_budget_still_applies() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let acme = org_in(&app, &ada, "Acme", Isolation::Schema).await;
    set_budget(&app, &acme, Value::Null).await;
    let key = create_key(
        &app,
        &ada,
        &acme,
        json!({"name": "ci", "role": "viewer", "requests_per_minute": 3}),
    )
    .await;
    let answers = join_all((0..8).map(|_| with_key(&app, &key))).await;
    assert_eq!(admitted(&answers), 3);
    for answer in &answers {
        assert_eq!(header(answer, "ratelimit-limit"), 3);
    }
    // Members are not limited at all.
    let response = list_monitors(&app, &ada, &acme).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("ratelimit-limit").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_sharing_a_redis_share_each_key_budget() {
    let server = redis().await;
    let one = TestApp::spawn_with(Spawn {
        redis_url: Some(server.url()),
        ..Spawn::default()
    })
    .await;
    let two = one.another_instance(Some(server.url())).await;
    let ada = caller(&one, "ada@example.com").await;
    let acme = org_in(&one, &ada, "Acme", Isolation::Database).await;
    set_budget(&one, &acme, json!(1000)).await;
    let small = create_key(
        &one,
        &ada,
        &acme,
        json!({"name": "small", "role": "member", "requests_per_minute": 3}),
    )
    .await;
    let other = create_key(
        &two,
        &ada,
        &acme,
        json!({"name": "other", "role": "member"}),
    )
    .await;

    // Alternating between the instances: one budget of 3 for the key.
    let mut answers = Vec::new();
    for i in 0..8 {
        let app = if i % 2 == 0 { &one } else { &two };
        answers.push(with_key(app, &small).await);
    }
    let remaining: Vec<u64> = answers[..3]
        .iter()
        .map(|r| header(r, "ratelimit-remaining"))
        .collect();
    assert_eq!(remaining, [2, 1, 0]);
    assert_eq!(admitted(&answers), 3);
    for refused in &answers[3..] {
        assert_eq!(header(refused, "ratelimit-limit"), 3);
    }
    // The other key and the member are not held back on either instance.
    for app in [&one, &two] {
        assert_eq!(with_key(app, &other).await.status(), 200);
        assert_eq!(list_monitors(app, &ada, &acme).await.status(), 200);
    }

    // The key's budget lives under the organization's prefix, expiring once full again.
    let client = redis::Client::open(server.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let key_id = small["id"].as_str().unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("tenantry:{acme}:api_key:{key_id}"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "{ttl}");
    // The other key has no budget of its own, so no key of its own.
    let other_id = other["id"].as_str().unwrap();
    let exists: i64 = redis::cmd("EXISTS")
        .arg(format!("tenantry:{acme}:api_key:{other_id}"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(exists, 0);
}
