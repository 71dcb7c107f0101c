//! Agents over HTTP: registered by admins with a token shown once and stored only as a hash,
//! counted against `max_agents` under concurrency, named by monitors of their own organization
//! only, giving their monitors back to the servers when deleted; the agent routes refusing every
//! token but a current one; another organization's agents, monitors and results out of reach in
//! every tier; and an agent process (`tenantry_monitoring::agent::Runner`, in process) running
//! its monitor's checks end to end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};
use tenantry_monitoring::AgentToken;
use tenantry_monitoring::agent::{Runner, RunnerConfig};
use tenantry_monitoring::scheduler::{self, Claimant, LEASE_SLACK};
use tenantry_tenancy::Isolation;
use uuid::Uuid;

use crate::{Answer, Caller, TestApp, caller, org_in};

/// Registers an agent named `name` in `org` as `who`; the 201 body (with its token).
async fn register(app: &TestApp, who: &Caller, org: &str, name: &str) -> Value {
    // The free plan has no agents.
    app.allow(org, "agents").await;
    let agents = app.as_(who).org(org).agents();
    agents.create(json!({"name": name})).await
}

/// Creates a monitor in `org` and returns the 201 body.
async fn monitor(app: &TestApp, who: &Caller, org: &str, body: Value) -> Value {
    app.as_(who).org(org).monitors().create(body).await
}

fn id_of(value: &Value) -> String {
    value["id"].as_str().unwrap().to_string()
}

/// A request to an agent route with `token`.
async fn as_agent(app: &TestApp, path: &str, token: &str, body: Value) -> Answer {
    app.as_(token)
        .request(Method::POST, path)
        .body(body)
        .send()
        .await
}

async fn claim(app: &TestApp, token: &str, max: i64) -> Vec<Value> {
    let claimed = as_agent(app, "/api/v1/agent/claims", token, json!({"max": max}))
        .await
        .expect(200);
    claimed["checks"].as_array().unwrap().clone()
}

/// The schedule row of monitor `id`: whether there is one, and its agent.
async fn scheduled_agent(app: &TestApp, id: &str) -> Option<Option<Uuid>> {
    sqlx::query_scalar("SELECT agent_id FROM monitoring.schedule WHERE monitor_id = $1")
        .bind(id.parse::<Uuid>().unwrap())
        .fetch_optional(tenantry_tenancy::Operator::new(&app.tenancy).control())
        .await
        .unwrap()
}

/// Rows of `table` in `org`'s storage (read through the tenant door) whose text contains
/// `needle`.
async fn tenant_rows_containing(app: &TestApp, org: &str, table: &str, needle: &str) -> i64 {
    let ctx = app.tenancy.resolve(org).await.unwrap();
    let mut tx = ctx.begin_read().await.unwrap();
    let n: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {table} t WHERE strpos(t::text, $1) > 0"
    ))
    .bind(needle)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    n
}

/// The results of monitor `id` as `who` sees them, newest first.
async fn results_of(app: &TestApp, who: &Caller, org: &str, id: &str) -> Vec<Value> {
    let monitors = app.as_(who).org(org).monitors();
    let page = monitors.results(id).list_with("limit=200").await;
    page["items"].as_array().unwrap().clone()
}

fn result_for(monitor_id: &str, due_at: &str, ok: bool) -> Value {
    json!({
        "monitor_id": monitor_id,
        "due_at": due_at,
        "checked_at": Utc::now(),
        "ok": ok,
        "latency_ms": 12,
        "status_code": if ok { 200 } else { 503 },
        "error": if ok { Value::Null } else { json!("status 503") },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_is_registered_read_listed_and_deleted_and_its_token_shown_once() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = org_in(&app, &ada, "Acme", Isolation::Shared).await;
    app.set_limit(&org, "max_agents", json!(5)).await;
    let agents = app.as_(&ada).org(&org).agents();

    let created = register(&app, &ada, &org, "  datacenter-1 ").await;
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("tagt_"), "{created}");
    assert_eq!(token.len(), "tagt_".len() + 43);
    assert_eq!(created["name"], "datacenter-1");
    assert_eq!(created["last_seen_at"], Value::Null);
    assert_eq!(created["monitor_ids"], json!([]));
    let id = id_of(&created);

    // Shown once: reads and lists never carry it.
    let read = agents.get(&id).await;
    assert!(read.get("token").is_none(), "{read}");
    let mut expected = created.clone();
    expected.as_object_mut().unwrap().remove("token");
    assert_eq!(read, expected);
    for i in 2..=3 {
        register(&app, &ada, &org, &format!("datacenter-{i}")).await;
    }
    let first = agents.list_with("limit=2").await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = agents.list_with(&format!("limit=2&cursor={cursor}")).await;
    let names: Vec<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["datacenter-1", "datacenter-2", "datacenter-3"]);
    assert_eq!(second["next_cursor"], Value::Null);
    assert!(
        first["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a.get("token").is_none())
    );

    // Stored only as a hash: the token's text is nowhere, in the control database or the
    // tenant's storage (its agents and its audit trail).
    let hashes: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT token_hash FROM monitoring.agent_tokens WHERE agent_id = $1")
            .bind(id.parse::<Uuid>().unwrap())
            .fetch_all(tenantry_tenancy::Operator::new(&app.tenancy).control())
            .await
            .unwrap();
    assert_eq!(hashes.len(), 1);
    let in_control: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM monitoring.agent_tokens t WHERE strpos(t::text, $1) > 0
            OR position(convert_to($1, 'UTF8') IN t.token_hash) > 0",
    )
    .bind(&token)
    .fetch_one(tenantry_tenancy::Operator::new(&app.tenancy).control())
    .await
    .unwrap();
    assert_eq!(in_control, 0);
    assert_eq!(
        tenant_rows_containing(&app, &org, "agents", &token).await,
        0
    );
    assert_eq!(
        tenant_rows_containing(&app, &org, "audit_log", &token).await,
        0
    );
    assert_eq!(
        tenant_rows_containing(&app, &org, "audit_log", "agent.created").await,
        3
    );

    // Invalid input names the field.
    let blank = agents.try_create(json!({"name": "   "})).await;
    assert_eq!(blank.problem(422)["field"], "name");

    // Deleted: gone, its token refused and removed, the deletion audited.
    agents.delete(&id).await;
    assert_eq!(agents.try_get(&id).await.problem(404)["code"], "not_found");
    assert_eq!(agents.try_delete(&id).await.status(), 404);
    let refused = as_agent(&app, "/api/v1/agent/claims", &token, json!({"max": 1})).await;
    assert_eq!(refused.problem(401)["code"], "invalid_token");
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM monitoring.agent_tokens WHERE agent_id = $1")
            .bind(id.parse::<Uuid>().unwrap())
            .fetch_one(tenantry_tenancy::Operator::new(&app.tenancy).control())
            .await
            .unwrap();
    assert_eq!(left, 0);
    assert_eq!(
        tenant_rows_containing(&app, &org, "audit_log", "agent.deleted").await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_registrations_against_room_for_three_make_three_and_usage_counts_them() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = org_in(&app, &ada, "Acme", Isolation::Schema).await;
    app.set_limit(&org, "max_agents", json!(3)).await;
    app.allow(&org, "agents").await;
    let agents = app.as_(&ada).org(&org).agents();
    let registrations = (0..20).map(|i| agents.try_create(json!({"name": format!("agent-{i}")})));
    let mut created = Vec::new();
    for response in join_all(registrations).await {
        if response.status().is_success() {
            created.push(response.json());
        } else {
            let body = response.problem(403);
            assert_eq!(body["code"], "limit_exceeded");
            assert_eq!(body["limit"], "max_agents");
        }
    }
    assert_eq!(created.len(), 3);
    // Refused registrations left no token behind.
    let tokens: i64 =
        sqlx::query_scalar("SELECT count(*) FROM monitoring.agent_tokens WHERE org_id = $1")
            .bind(org.parse::<Uuid>().unwrap())
            .fetch_one(tenantry_tenancy::Operator::new(&app.tenancy).control())
            .await
            .unwrap();
    assert_eq!(tokens, 3);

    let orgs = app.as_(&ada).organizations();
    assert_eq!(
        orgs.usage(&org).await["usage"]["agents"],
        json!({"used": 3, "limit": 3})
    );
    agents.delete(id_of(&created[0])).await;
    assert_eq!(
        orgs.usage(&org).await["usage"]["agents"],
        json!({"used": 2, "limit": 3})
    );
    // Room again for one.
    register(&app, &ada, &org, "replacement").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_names_an_agent_of_its_own_organization_and_never_for_a_heartbeat() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let bob = caller(&app, "bob@example.com").await;
    let acme = org_in(&app, &ada, "Acme", Isolation::Shared).await;
    let globex = org_in(&app, &bob, "Globex", Isolation::Shared).await;
    let ours = id_of(&register(&app, &ada, &acme, "ours").await);
    let theirs = id_of(&register(&app, &bob, &globex, "theirs").await);

    let tcp = |agent: &str| json!({"name": "db", "kind": "tcp", "target": "10.0.0.5:5432", "agent_id": agent});
    let monitors = app.as_(&ada).org(&acme).monitors();
    for wrong in [theirs.clone(), Uuid::new_v4().to_string()] {
        let refused = monitors.try_create(tcp(&wrong)).await;
        assert_eq!(refused.problem(422)["field"], "agent_id", "{wrong}");
    }
    let heartbeat = monitors
        .try_create(json!({"name": "cron", "kind": "heartbeat", "agent_id": ours}))
        .await;
    assert_eq!(heartbeat.problem(422)["field"], "agent_id");

    let created = monitor(&app, &ada, &acme, tcp(&ours)).await;
    assert_eq!(created["agent_id"], ours.as_str());
    let id = id_of(&created);
    assert_eq!(
        scheduled_agent(&app, &id).await,
        Some(Some(ours.parse().unwrap()))
    );
    let agent = app.as_(&ada).org(&acme).agents().get(&ours).await;
    assert_eq!(agent["monitor_ids"], json!([id]));

    // Replaced: to another organization's agent, refused and unchanged; to the servers, and
    // back to the agent, the schedule follows.
    let stolen = monitors.try_update(&id, tcp(&theirs)).await;
    assert_eq!(stolen.problem(422)["field"], "agent_id");
    let servers = monitors
        .update(
            &id,
            json!({"name": "db", "kind": "tcp", "target": "10.0.0.5:5432"}),
        )
        .await;
    assert_eq!(servers["agent_id"], Value::Null);
    assert_eq!(scheduled_agent(&app, &id).await, Some(None));
    monitors.update(&id, tcp(&ours)).await;
    assert_eq!(
        scheduled_agent(&app, &id).await,
        Some(Some(ours.parse().unwrap()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_agent_gives_its_monitors_back_to_the_servers() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = org_in(&app, &ada, "Acme", Isolation::Database).await;
    let agent = register(&app, &ada, &org, "dc").await;
    let agent_id = id_of(&agent);
    let created = monitor(
        &app,
        &ada,
        &org,
        json!({"name": "db", "kind": "tcp", "target": "10.0.0.5:5432", "agent_id": agent_id}),
    )
    .await;
    let id = id_of(&created);
    let monitor_id: Uuid = id.parse().unwrap();
    // The agent holds the slot when it is deleted.
    let token = agent["token"].as_str().unwrap();
    let claimed = claim(&app, token, 10).await;
    assert_eq!(claimed.len(), 1);

    let acme = app.as_(&ada).org(&org);
    acme.agents().delete(&agent_id).await;
    let read = acme.monitors().get(&id).await;
    assert_eq!(read["agent_id"], Value::Null);
    assert_eq!(scheduled_agent(&app, &id).await, Some(None));
    // The servers' instances may take it at once: the agent's lease went with it.
    let instances = scheduler::claim(
        app.tenancy.control_db(),
        Claimant::Instances,
        Uuid::now_v7(),
        100,
        LEASE_SLACK,
    )
    .await
    .unwrap();
    assert!(instances.iter().any(|c| c.monitor_id == monitor_id));
    let refused = as_agent(&app, "/api/v1/agent/claims", token, json!({"max": 1})).await;
    assert_eq!(refused.problem(401)["code"], "invalid_token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_routes_refuse_every_token_but_a_current_one_alike() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = org_in(&app, &ada, "Acme", Isolation::Shared).await;
    let agent = register(&app, &ada, &org, "dc").await;
    let token = agent["token"].as_str().unwrap().to_string();
    let key = app
        .as_(&ada)
        .organizations()
        .api_keys(&org)
        .create(json!({"name": "ci", "role": "admin"}))
        .await;
    let reference = as_agent(
        &app,
        "/api/v1/agent/claims",
        &format!("tagt_{}", "A".repeat(43)),
        json!({"max": 1}),
    )
    .await
    .problem(401);
    assert_eq!(reference["code"], "invalid_token");
    let others = [
        "tagt_short".to_string(),
        key["secret"].as_str().unwrap().to_string(),
        ada.token.clone(),
    ];
    for path in ["/api/v1/agent/claims", "/api/v1/agent/results"] {
        for other in &others {
            let body = json!({"max": 1, "results": []});
            let response = as_agent(&app, path, other, body).await;
            assert_eq!(response.problem(401), reference, "{path}");
        }
        let anonymous = app
            .anonymous()
            .request(Method::POST, path)
            .body(json!({"max": 1, "results": []}))
            .send()
            .await;
        assert_eq!(anonymous.problem(401), reference, "{path}");
    }

    // A current token works; its organization suspended, it is refused alike.
    assert!(claim(&app, &token, 5).await.is_empty());
    app.tenancy.suspend(&org).await.unwrap();
    let suspended = as_agent(&app, "/api/v1/agent/claims", &token, json!({"max": 1})).await;
    assert_eq!(suspended.problem(401), reference);
    app.tenancy.activate(&org).await.unwrap();
    assert!(claim(&app, &token, 5).await.is_empty());
    // Claiming marks the agent as seen.
    let seen = app.as_(&ada).org(&org).agents().get(id_of(&agent)).await;
    assert!(seen["last_seen_at"].is_string(), "{seen}");

    // Malformed requests name the field.
    for max in [0, 101] {
        let response = as_agent(&app, "/api/v1/agent/claims", &token, json!({"max": max})).await;
        assert_eq!(response.problem(422)["field"], "max");
    }
    let flood: Vec<Value> = (0..101)
        .map(|_| result_for(&Uuid::new_v4().to_string(), &Utc::now().to_rfc3339(), true))
        .collect();
    let response = as_agent(
        &app,
        "/api/v1/agent/results",
        &token,
        json!({"results": flood}),
    )
    .await;
    assert_eq!(response.problem(422)["field"], "results");
}

async fn agents_reach_only_their_own_organization(tier: Isolation) {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let bob = caller(&app, "bob@example.com").await;
    let acme = org_in(&app, &ada, "Acme", tier).await;
    let globex = org_in(&app, &bob, "Globex", tier).await;
    let ours = register(&app, &ada, &acme, "ours").await;
    let theirs = register(&app, &bob, &globex, "theirs").await;
    let (our_token, their_token) = (
        ours["token"].as_str().unwrap(),
        theirs["token"].as_str().unwrap(),
    );
    let tcp = |agent: &Value| json!({"name": "db", "kind": "tcp", "target": "10.0.0.5:5432", "agent_id": agent["id"]});
    let our_monitor = id_of(&monitor(&app, &ada, &acme, tcp(&ours)).await);
    let their_monitor = id_of(&monitor(&app, &bob, &globex, tcp(&theirs)).await);
    let server_run = id_of(
        &monitor(
            &app,
            &ada,
            &acme,
            json!({"name": "site", "kind": "tcp", "target": "10.0.0.6:443"}),
        )
        .await,
    );

    // Another organization's agent is the same 404 as a missing one; deleting it changes
    // nothing.
    let agents = app.as_(&ada).org(&acme).agents();
    let their_id = id_of(&theirs);
    let missing_id = Uuid::new_v4();
    let theirs = agents.try_get(&their_id).await;
    let missing = agents.try_get(missing_id).await;
    assert_eq!(theirs.problem(404), missing.problem(404));
    let theirs = agents.try_delete(&their_id).await;
    let missing = agents.try_delete(missing_id).await;
    assert_eq!(theirs.problem(404), missing.problem(404));
    let listed = agents.list().await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    let still = app.as_(&bob).org(&globex).agents().get(&their_id).await;
    assert_eq!(still["monitor_ids"], json!([their_monitor]));

    // Each token claims its own agent's monitors only.
    let claimed = claim(&app, our_token, 100).await;
    let ids: Vec<&str> = claimed
        .iter()
        .map(|c| c["monitor_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [our_monitor.as_str()]);
    assert_eq!(claimed[0]["kind"], "tcp");
    assert_eq!(claimed[0]["target"], "10.0.0.5:5432");
    assert_eq!(claimed[0]["timeout_ms"], 30_000);
    let due_at = claimed[0]["due_at"].as_str().unwrap().to_string();
    let their_claims = claim(&app, their_token, 100).await;
    assert_eq!(their_claims.len(), 1);
    assert_eq!(their_claims[0]["monitor_id"], their_monitor.as_str());
    let their_due = their_claims[0]["due_at"].as_str().unwrap().to_string();

    // Results for the other organization's monitor, or for a monitor the servers run, are
    // rejected and record nothing; the agent's own is recorded once.
    let batch = json!({"results": [
        result_for(&their_monitor, &their_due, false),
        result_for(&server_run, &due_at, false),
        result_for(&our_monitor, &due_at, true),
    ]});
    let answer = as_agent(&app, "/api/v1/agent/results", our_token, batch.clone())
        .await
        .expect(200);
    assert_eq!(answer["recorded"], 1, "{answer}");
    assert_eq!(answer["duplicates"], 0);
    let mut rejected: Vec<&str> = answer["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    rejected.sort_unstable();
    let mut expected = vec![their_monitor.as_str(), server_run.as_str()];
    expected.sort_unstable();
    assert_eq!(rejected, expected);
    assert!(
        results_of(&app, &bob, &globex, &their_monitor)
            .await
            .is_empty()
    );
    assert!(results_of(&app, &ada, &acme, &server_run).await.is_empty());
    let ours_recorded = results_of(&app, &ada, &acme, &our_monitor).await;
    assert_eq!(ours_recorded.len(), 1);
    assert_eq!(ours_recorded[0]["ok"], true);
    // Posted again: a duplicate, nothing changes.
    let again = as_agent(&app, "/api/v1/agent/results", our_token, batch)
        .await
        .expect(200);
    assert_eq!(
        (again["recorded"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(results_of(&app, &ada, &acme, &our_monitor).await.len(), 1);
    // The slot moved on: nothing is due for the agent now.
    assert!(claim(&app, our_token, 100).await.is_empty());
    // The other organization's agent still works, on its own monitor.
    let theirs_posted = as_agent(
        &app,
        "/api/v1/agent/results",
        their_token,
        json!({"results": [result_for(&their_monitor, &their_due, true)]}),
    )
    .await
    .expect(200);
    assert_eq!(theirs_posted["recorded"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_reach_only_their_own_organization_shared() {
    agents_reach_only_their_own_organization(Isolation::Shared).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_reach_only_their_own_organization_schema() {
    agents_reach_only_their_own_organization(Isolation::Schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_reach_only_their_own_organization_database() {
    agents_reach_only_their_own_organization(Isolation::Database).await;
}

/// A local HTTP target answering `/health` with the status in `status`.
async fn target(status: Arc<AtomicU16>) -> String {
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(move || {
            let status = status.clone();
            async move {
                axum::http::StatusCode::from_u16(status.load(Ordering::SeqCst))
                    .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}/health")
}

/// Waits (up to two minutes) until `done` holds for the monitor's newest results.
async fn wait_for_results(
    app: &TestApp,
    who: &Caller,
    org: &str,
    id: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    tenantry_testkit::eventually(
        "the agent's results",
        Duration::from_secs(120),
        async || {
            let results = results_of(app, who, org, id).await;
            if done(&results) {
                Ok(results)
            } else {
                Err(match results.first() {
                    Some(newest) => format!("{} results, the newest {newest}", results.len()),
                    None => "no result".to_string(),
                })
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_runs_its_monitors_checks_end_to_end() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = org_in(&app, &ada, "Acme", Isolation::Shared).await;
    app.set_limit(&org, "min_check_interval_s", json!(10)).await;
    let agent = register(&app, &ada, &org, "dc").await;
    let status = Arc::new(AtomicU16::new(200));
    let url = target(status.clone()).await;
    let created = monitor(
        &app,
        &ada,
        &org,
        json!({"name": "intranet", "kind": "http", "target": url, "interval_seconds": 10,
               "timeout_seconds": 5, "agent_id": agent["id"]}),
    )
    .await;
    let id = id_of(&created);
    let monitor_id: Uuid = id.parse().unwrap();
    // Scheduled for the agent, due now, and not for the servers' instances.
    assert_eq!(
        scheduled_agent(&app, &id).await,
        Some(Some(id_of(&agent).parse().unwrap()))
    );
    let instances = scheduler::claim(
        app.tenancy.control_db(),
        Claimant::Instances,
        Uuid::now_v7(),
        100,
        LEASE_SLACK,
    )
    .await
    .unwrap();
    assert!(instances.iter().all(|c| c.monitor_id != monitor_id));

    let config = RunnerConfig::new(
        app.base.clone(),
        AgentToken::new(agent["token"].as_str().unwrap()),
    );
    let runner = Runner::new(config).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(runner.run(async {
        let _ = stopped.await;
    }));

    let up = wait_for_results(&app, &ada, &org, &id, |r| !r.is_empty()).await;
    assert_eq!(up[0]["ok"], true, "{up:?}");
    assert_eq!(up[0]["status_code"], 200);
    let acme = app.as_(&ada).org(&org);
    assert_eq!(acme.monitors().get(&id).await["status"], "up");

    // The target fails: the next slot's check says so, and the monitor goes down.
    status.store(503, Ordering::SeqCst);
    let down = wait_for_results(&app, &ada, &org, &id, |r| {
        r.first().is_some_and(|r| r["ok"] == false)
    })
    .await;
    assert_eq!(down[0]["status_code"], 503, "{down:?}");
    assert!(down.iter().skip(1).all(|r| r["ok"] == true));
    let now_down = acme.monitors().get(&id).await;
    assert_eq!(now_down["status"], "down", "{now_down}");
    let incidents = acme.monitors().incidents(&id).list().await;
    assert_eq!(incidents["items"].as_array().unwrap().len(), 1);

    let seen = acme.agents().get(id_of(&agent)).await;
    assert!(seen["last_seen_at"].is_string());
    assert_eq!(seen["monitor_ids"], json!([id]));

    stop.send(()).unwrap();
    let summary = running.await.unwrap();
    assert!(summary.checks >= 2, "{summary:?}");
    assert_eq!(summary.unposted, 0);
    assert_eq!(summary.rejected, 0);
    assert_eq!(
        scheduled_agent(&app, &id).await,
        Some(Some(id_of(&agent).parse().unwrap()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_schedule_rows_follow_their_monitors_agent() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = org_in(&app, &ada, "Acme", Isolation::Schema).await;
    let agent = register(&app, &ada, &org, "dc").await;
    let agent_id: Uuid = id_of(&agent).parse().unwrap();
    let token = agent["token"].as_str().unwrap();
    let remote = id_of(
        &monitor(
            &app,
            &ada,
            &org,
            json!({"name": "db", "kind": "tcp", "target": "10.0.0.5:5432", "agent_id": agent_id}),
        )
        .await,
    );
    let local = id_of(
        &monitor(
            &app,
            &ada,
            &org,
            json!({"name": "site", "kind": "tcp", "target": "10.0.0.6:443"}),
        )
        .await,
    );
    // Rows gone wrong long enough ago (a crash between the monitor's commit and the schedule's
    // write): the remote monitor's row lost, the local one's naming the agent.
    let operator = tenantry_tenancy::Operator::new(&app.tenancy);
    let pool = operator.control();
    sqlx::query("DELETE FROM monitoring.schedule WHERE monitor_id = $1")
        .bind(remote.parse::<Uuid>().unwrap())
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE monitoring.schedule SET agent_id = $2, planned_at = now() - interval '2 minutes'
         WHERE monitor_id = $1",
    )
    .bind(local.parse::<Uuid>().unwrap())
    .bind(agent_id)
    .execute(pool)
    .await
    .unwrap();

    // The agent claims the local monitor's slot by mistake: it is handed back, corrected.
    let claimed = claim(&app, token, 10).await;
    assert!(claimed.is_empty(), "{claimed:?}");
    assert_eq!(scheduled_agent(&app, &local).await, Some(None));
    let leased: Option<Uuid> =
        sqlx::query_scalar("SELECT lease_owner FROM monitoring.schedule WHERE monitor_id = $1")
            .bind(local.parse::<Uuid>().unwrap())
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(leased, None);

    // Reconciliation restores the lost row with its agent, and corrects an old wrong one.
    sqlx::query(
        "UPDATE monitoring.schedule SET agent_id = $2, planned_at = now() - interval '2 minutes'
         WHERE monitor_id = $1",
    )
    .bind(local.parse::<Uuid>().unwrap())
    .bind(agent_id)
    .execute(pool)
    .await
    .unwrap();
    let done = scheduler::reconcile(&app.tenancy).await.unwrap();
    assert_eq!(done.added, 1, "{done:?}");
    assert_eq!(scheduled_agent(&app, &remote).await, Some(Some(agent_id)));
    assert_eq!(scheduled_agent(&app, &local).await, Some(None));
    let ids: Vec<String> = claim(&app, token, 10)
        .await
        .iter()
        .map(|c| c["monitor_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, [remote]);
}

/// An agent posts results only for the slots the scheduler leased to it: not an earlier or later
/// slot of its own monitor, not a slot leased to another agent of the organization. Those are
/// rejected, record nothing and are counted; a result posted again after its slot moved on is a
/// duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_posts_results_only_for_slots_leased_to_it() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = org_in(&app, &ada, "Acme", Isolation::Shared).await;
    app.set_limit(&org, "max_agents", json!(2)).await;
    let first = register(&app, &ada, &org, "first").await;
    let second = register(&app, &ada, &org, "second").await;
    let tcp = |agent: &Value, target: &str| json!({"name": "db", "kind": "tcp", "target": target, "agent_id": agent["id"]});
    let mine = id_of(&monitor(&app, &ada, &org, tcp(&first, "10.0.0.5:5432")).await);
    let other = id_of(&monitor(&app, &ada, &org, tcp(&second, "10.0.0.6:5432")).await);
    let token = first["token"].as_str().unwrap();
    let claimed = claim(&app, token, 10).await;
    assert_eq!(claimed.len(), 1);
    let due: DateTime<Utc> = claimed[0]["due_at"].as_str().unwrap().parse().unwrap();
    let their_claims = claim(&app, second["token"].as_str().unwrap(), 10).await;
    let their_due = their_claims[0]["due_at"].as_str().unwrap().to_string();
    let rejected_before = rejected_count(&app).await;

    let forged = json!({"results": [
        result_for(&mine, &(due - chrono::Duration::seconds(60)).to_rfc3339(), false),
        result_for(&mine, &(due - chrono::Duration::milliseconds(1)).to_rfc3339(), false),
        result_for(&other, &their_due, false),
    ]});
    let answer = as_agent(&app, "/api/v1/agent/results", token, forged)
        .await
        .expect(200);
    assert_eq!(answer["recorded"], 0, "{answer}");
    assert_eq!(answer["rejected"].as_array().unwrap().len(), 3, "{answer}");
    assert!(results_of(&app, &ada, &org, &mine).await.is_empty());
    assert!(results_of(&app, &ada, &org, &other).await.is_empty());
    assert_eq!(rejected_count(&app).await, rejected_before + 3.0);

    // The leased slot is recorded; posted again once it has moved on, a duplicate.
    let leased = json!({"results": [result_for(&mine, &due.to_rfc3339(), true)]});
    let answer = as_agent(&app, "/api/v1/agent/results", token, leased.clone())
        .await
        .expect(200);
    assert_eq!(answer["recorded"], 1, "{answer}");
    let again = as_agent(&app, "/api/v1/agent/results", token, leased)
        .await
        .expect(200);
    assert_eq!(again["duplicates"], 1, "{again}");
    assert_eq!(again["rejected"], json!([]), "{again}");
    assert_eq!(results_of(&app, &ada, &org, &mine).await.len(), 1);
    // The next slot is not leased until claimed.
    let next = json!({"results": [result_for(&mine, &(due + chrono::Duration::seconds(60)).to_rfc3339(), true)]});
    let answer = as_agent(&app, "/api/v1/agent/results", token, next)
        .await
        .expect(200);
    assert_eq!(answer["rejected"].as_array().unwrap().len(), 1, "{answer}");
    assert_eq!(rejected_count(&app).await, rejected_before + 4.0);
}

/// `tenantry_agent_results_rejected_total` on `/metrics`.
async fn rejected_count(app: &TestApp) -> f64 {
    let text = app.metrics().await.text();
    text.lines()
        .find_map(|l| l.strip_prefix("tenantry_agent_results_rejected_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rejected counter in\n{text}"))
}

/// An agent belongs to the organization: it is listed with who registered it, and keeps
/// working after that member is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_are_listed_with_who_registered_them_and_outlive_their_membership() {
    let app = TestApp::spawn().await;
    let owner = caller(&app, "owner@example.com").await;
    let ada = caller(&app, "ada@example.com").await;
    let org = org_in(&app, &owner, "Acme", Isolation::Schema).await;
    let members = app.as_(&owner).organizations().members(&org);
    members.add(ada.id, "admin").await;
    let agent = register(&app, &ada, &org, "rack-1").await;
    assert_eq!(
        agent["registered_by"],
        json!({"kind": "user", "id": ada.id}),
        "{agent}"
    );
    let token = agent["token"].as_str().unwrap().to_string();
    id_of(&monitor(&app, &owner, &org, json!({"name": "db", "kind": "tcp", "target": "10.0.0.5:5432", "agent_id": agent["id"]})).await);

    members.remove(ada.id).await;
    let listed = app.as_(&owner).org(&org).agents().list().await;
    assert_eq!(
        listed["items"][0]["registered_by"],
        json!({"kind": "user", "id": ada.id}),
        "{listed}"
    );
    assert_eq!(claim(&app, &token, 10).await.len(), 1);
}
