//! Alerts against a real PostgreSQL: an incident opened or resolved by `record_result` enqueues
//! one delivery per matching channel in its own transaction; the `Deliverer` POSTs signed JSON
//! to a local HTTP server, retries a failure with the same `Tenantry-Delivery`, sends nothing for
//! a rolled-back transition, shares the work with another deliverer without sending anything
//! twice, queues email alerts in the mail outbox (once, even when an attempt is made again), and
//! keeps a suspended organization's alerts until it is active again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tenantry_mail::{MailConfig, Outbox, Sender};
use tenantry_monitoring::alerts::{
    self, AlertChannelInput, AlertRetry, Deliverer, DelivererConfig, SecretKeys,
};
use tenantry_monitoring::checks::CheckerConfig;
use tenantry_monitoring::{self as monitoring, MonitorInput, Observation, Recorded, Transition};
use tenantry_tenancy::{EngineConfig, Isolation, NewTenant, PoolConfig, Slug, Tenancy, TenantCtx};
use tenantry_testkit::per_tier;
use tenantry_testkit::smtp::SmtpSink;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(60);

fn schemas() -> Vec<tenantry_tenancy::ControlSchema> {
    tenantry_app::control_schemas()
}

/// A fresh engine with the application's control schemas.
async fn engine() -> Tenancy {
    tenantry_testkit::open(tenantry_app::tenant_schema(), &schemas()).await
}

/// Another engine on `engine`'s control database: a second server instance.
async fn another_instance(engine: &Tenancy) -> Tenancy {
    Tenancy::open_full(
        EngineConfig {
            owner: tenantry_testkit::owner(),
            control_database: engine.control_database().to_string(),
            prefix: tenantry_testkit::PREFIX.to_string(),
            pools: PoolConfig::default(),
        },
        tenantry_app::tenant_schema(),
        &schemas(),
    )
    .await
    .unwrap()
}

/// An active tenant of `tier`.
async fn tenant(engine: &Tenancy, tier: Isolation) -> TenantCtx {
    let slug = format!("a{}", &Uuid::new_v4().simple().to_string()[..12]);
    let record = engine
        .create_tenant(&NewTenant {
            name: format!("Tenant {slug}"),
            slug: Slug::parse(&slug).unwrap(),
            isolation: tier,
            plan: None,
            server: None,
        })
        .await
        .unwrap();
    engine.resolve_id(record.id).await.unwrap()
}

async fn monitor(ctx: &TenantCtx, name: &str) -> Uuid {
    let input = MonitorInput {
        name: name.to_string(),
        kind: "tcp".to_string(),
        target: Some("db.internal:5432".to_string()),
        interval_seconds: None,
        timeout_seconds: None,
        keyword: None,
        enabled: None,
        confirmations: None,
        agent_id: None,
    };
    let mut tx = ctx.begin().await.unwrap();
    let created = monitoring::create(&mut tx, &input).await.unwrap();
    tx.commit().await.unwrap();
    created.id
}

/// A channel of `ctx`; returns its id and its secret (webhooks).
async fn channel(
    engine: &Tenancy,
    ctx: &TenantCtx,
    kind: &str,
    destination: &str,
    monitor_ids: &[Uuid],
) -> (Uuid, Option<String>) {
    let keys = SecretKeys::load_or_create(&tenantry_tenancy::Operator::new(engine))
        .await
        .unwrap();
    let input = AlertChannelInput {
        name: format!("{kind} channel"),
        kind: kind.to_string(),
        url: (kind == "webhook").then(|| destination.to_string()),
        secret: None,
        email: (kind == "email").then(|| destination.to_string()),
        monitor_ids: Some(monitor_ids.to_vec()),
    };
    let mut tx = ctx.begin().await.unwrap();
    let saved = alerts::create_channel(&mut tx, &keys, &input)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (
        saved.channel.id,
        saved.new_secret.map(|s| s.expose().to_string()),
    )
}

fn origin() -> DateTime<Utc> {
    let now = Utc::now() - TimeDelta::hours(1);
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap()
}

fn slot(n: i64) -> DateTime<Utc> {
    origin_once() + TimeDelta::seconds(60 * n)
}

/// One origin per process, so slots of one test line up.
fn origin_once() -> DateTime<Utc> {
    static ORIGIN: std::sync::OnceLock<DateTime<Utc>> = std::sync::OnceLock::new();
    *ORIGIN.get_or_init(origin)
}

/// Records a check of `monitor` in slot `n` the way every caller must: the organization is
/// noted before the commit when an incident opened or resolved.
async fn check(engine: &Tenancy, ctx: &TenantCtx, monitor: Uuid, n: i64, ok: bool) -> Recorded {
    let at = slot(n);
    let seen = if ok {
        Observation::up(at, Some(3))
    } else {
        Observation::down(at, "connection refused")
    };
    let mut tx = ctx.begin().await.unwrap();
    let recorded = monitoring::record_result(&mut tx, monitor, at, &seen)
        .await
        .unwrap();
    if recorded.needs_delivery() {
        alerts::note_pending(engine.control_db(), ctx.tenant_id().as_uuid())
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    recorded
}

fn transition(recorded: Recorded) -> Transition {
    match recorded {
        Recorded::Stored {
            transition: Some(t),
            ..
        } => t,
        other => panic!("expected a transition, got {other:?}"),
    }
}

/// A delivery row as the tenant sees it.
#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: Uuid,
    channel_id: Uuid,
    incident_id: Uuid,
    event: String,
    payload: Value,
    attempts: i32,
    delivered_at: Option<DateTime<Utc>>,
    failed_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
}

async fn deliveries(ctx: &TenantCtx) -> Vec<Row> {
    let mut tx = ctx.begin_read().await.unwrap();
    let rows = sqlx::query_as(
        "SELECT id, channel_id, incident_id, event, payload, attempts, delivered_at, failed_at,
                last_error
         FROM alert_deliveries ORDER BY created_at, id",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    rows
}

async fn wakeup_exists(engine: &Tenancy, org: Uuid) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM monitoring.alert_wakeups WHERE org_id = $1)")
        .bind(org)
        .fetch_one(engine.control_db())
        .await
        .unwrap()
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn header(&self, name: &str) -> String {
        self.headers[name].to_str().unwrap().to_string()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// Checks the signature against `secret`.
    fn verify(&self, secret: &str) {
        let header = self.header("tenantry-signature");
        let (t, v1) = header.split_once(",v1=").unwrap();
        let t: i64 = t.strip_prefix("t=").unwrap().parse().unwrap();
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(&self.body);
        mac.verify_slice(&hex::decode(v1).unwrap())
            .expect("the signature verifies with the channel's secret");
    }
}

/// A local webhook receiver: keeps every request and answers the queued statuses, then 200.
#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<Received>>>,
    answers: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    async fn start() -> (Receiver, String) {
        let receiver = Receiver::default();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, url)
    }

    fn seen(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }

    fn answer(&self, statuses: &[u16]) {
        self.answers.lock().unwrap().extend(statuses);
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    receiver
        .seen
        .lock()
        .unwrap()
        .push(Received { headers, body });
    let status = receiver.answers.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
}

/// A deliverer for tests: short poll and backoff.
async fn deliverer(engine: &Tenancy, tune: impl FnOnce(&mut DelivererConfig)) -> Deliverer {
    let mut config = DelivererConfig {
        public_url: "https://tenantry.test".to_string(),
        poll: Duration::from_millis(50),
        retry: AlertRetry {
            first_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(200),
            give_up_after: Duration::from_secs(3600),
        },
        inactive_recheck: Duration::from_millis(50),
        ..DelivererConfig::default()
    };
    tune(&mut config);
    let outbox = Outbox::open(engine, &tenantry_tenancy::Operator::new(engine))
        .await
        .unwrap();
    Deliverer::new(
        engine.clone(),
        outbox,
        &tenantry_tenancy::Operator::new(engine),
        config,
    )
    .await
    .unwrap()
}

/// Runs delivery passes until `done` holds; panics after [`WAIT`].
async fn deliver_until(deliverer: &Deliverer, what: &str, mut done: impl AsyncFnMut() -> bool) {
    tenantry_testkit::eventually(what, WAIT, async || {
        deliverer.deliver_due().await.unwrap();
        if done().await {
            Ok(())
        } else {
            Err("not yet".to_string())
        }
    })
    .await;
}

async fn a_transition_enqueues_one_delivery_per_matching_channel(tier: Isolation) {
    let engine = engine().await;
    let ctx = tenant(&engine, tier).await;
    let org = ctx.tenant_id().as_uuid();
    let (a, b) = (monitor(&ctx, "A").await, monitor(&ctx, "B").await);
    let (all, _) = channel(&engine, &ctx, "webhook", "https://h.example.com/all", &[]).await;
    let (of_a, _) = channel(&engine, &ctx, "webhook", "https://h.example.com/a", &[a]).await;
    let (of_b, _) = channel(&engine, &ctx, "email", "b@example.com", &[b]).await;

    let opened = transition(check(&engine, &ctx, a, 0, false).await);
    let Transition::Opened(incident) = &opened else {
        panic!("a failure opens an incident: {opened:?}");
    };
    assert!(wakeup_exists(&engine, org).await);
    let rows = deliveries(&ctx).await;
    let channels: BTreeSet<Uuid> = rows.iter().map(|r| r.channel_id).collect();
    assert_eq!(channels, BTreeSet::from([all, of_a]));
    for row in &rows {
        assert_eq!(
            (row.incident_id, row.event.as_str(), row.attempts),
            (incident.id, "incident.opened", 0)
        );
        assert_eq!(
            row.payload["incident"],
            serde_json::to_value(incident).unwrap()
        );
        assert_eq!(row.payload["monitor"]["id"], json!(a));
        assert_eq!(row.payload["monitor"]["status"], "down");
        assert_eq!(row.delivered_at, None);
    }
    // Another failure changes nothing; the recovery enqueues the resolution.
    assert!(!check(&engine, &ctx, a, 1, false).await.needs_delivery());
    assert_eq!(deliveries(&ctx).await.len(), 2);
    transition(check(&engine, &ctx, a, 2, true).await);
    let rows = deliveries(&ctx).await;
    assert_eq!(rows.len(), 4);
    assert_eq!(
        rows.iter()
            .filter(|r| r.event == "incident.resolved")
            .count(),
        2
    );
    // B's outage reaches the all-monitors channel and B's own.
    transition(check(&engine, &ctx, b, 0, false).await);
    let of_b_rows: BTreeSet<Uuid> = deliveries(&ctx)
        .await
        .iter()
        .skip(4)
        .map(|r| r.channel_id)
        .collect();
    assert_eq!(of_b_rows, BTreeSet::from([all, of_b]));

    // A monitor deleted from a channel's list does not turn it into an all-monitors channel.
    let mut tx = ctx.begin().await.unwrap();
    monitoring::delete(&mut tx, a).await.unwrap();
    let listing = alerts::get_channel(&mut tx, of_a).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        (listing.monitor_ids.len(), listing.all_monitors),
        (0, false)
    );
    transition(check(&engine, &ctx, b, 1, true).await);
    let last: BTreeSet<Uuid> = deliveries(&ctx)
        .await
        .iter()
        .filter(|r| r.event == "incident.resolved")
        .map(|r| r.channel_id)
        .collect();
    assert_eq!(last, BTreeSet::from([all, of_b]));
}
per_tier!(a_transition_enqueues_one_delivery_per_matching_channel);

async fn webhooks_are_signed_and_carry_the_documented_json(tier: Isolation) {
    let engine = engine().await;
    let ctx = tenant(&engine, tier).await;
    let (receiver, url) = Receiver::start().await;
    let id = monitor(&ctx, "Homepage").await;
    let (_, secret) = channel(&engine, &ctx, "webhook", &url, &[]).await;
    let secret = secret.unwrap();
    assert!(secret.starts_with("whsec_"));
    let deliverer = deliverer(&engine, |_| {}).await;

    let Transition::Opened(incident) = transition(check(&engine, &ctx, id, 0, false).await) else {
        panic!("opened");
    };
    let mut tx = ctx.begin_read().await.unwrap();
    let monitor = monitoring::get(&mut tx, id).await.unwrap().unwrap();
    drop(tx);
    deliver_until(&deliverer, "the opened incident is POSTed", async || {
        receiver.seen().len() == 1
    })
    .await;
    let got = &receiver.seen()[0];
    got.verify(&secret);
    assert_eq!(got.header("content-type"), "application/json");
    assert!(got.header("user-agent").starts_with("Tenantry-Webhook/"));
    let delivery: Uuid = got.header("tenantry-delivery").parse().unwrap();
    assert_eq!(
        got.json(),
        json!({
            "event": "incident.opened",
            "organization": {"id": ctx.tenant_id().as_uuid(), "slug": ctx.slug()},
            "monitor": serde_json::to_value(&monitor).unwrap(),
            "incident": {
                "id": incident.id,
                "monitor_id": id,
                "started_at": serde_json::to_value(incident.started_at).unwrap(),
                "resolved_at": null,
                "cause": "connection refused",
            },
        })
    );
    let rows = deliveries(&ctx).await;
    assert_eq!(rows[0].id, delivery);
    assert!(rows[0].delivered_at.is_some());
    assert_eq!(rows[0].attempts, 1);

    let Transition::Resolved(resolved) = transition(check(&engine, &ctx, id, 1, true).await) else {
        panic!("resolved");
    };
    deliver_until(&deliverer, "the resolution is POSTed", async || {
        receiver.seen().len() == 2
    })
    .await;
    let got = &receiver.seen()[1];
    got.verify(&secret);
    let body = got.json();
    assert_eq!(body["event"], "incident.resolved");
    assert_eq!(body["monitor"]["status"], "up");
    assert_eq!(body["incident"], serde_json::to_value(&resolved).unwrap());
    assert!(!body["incident"]["resolved_at"].is_null());
    assert_ne!(got.header("tenantry-delivery"), delivery.to_string());
}
per_tier!(webhooks_are_signed_and_carry_the_documented_json);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_is_retried_with_the_same_delivery_id() {
    let engine = engine().await;
    let ctx = tenant(&engine, Isolation::Database).await;
    let (receiver, url) = Receiver::start().await;
    receiver.answer(&[500]);
    let id = monitor(&ctx, "API").await;
    let (_, secret) = channel(&engine, &ctx, "webhook", &url, &[id]).await;
    let deliverer = deliverer(&engine, |_| {}).await;
    transition(check(&engine, &ctx, id, 0, false).await);
    deliver_until(&deliverer, "the retry succeeds", async || {
        deliveries(&ctx).await[0].delivered_at.is_some()
    })
    .await;
    let seen = receiver.seen();
    assert_eq!(seen.len(), 2, "one 500, then one 200");
    assert_eq!(
        seen[0].header("tenantry-delivery"),
        seen[1].header("tenantry-delivery")
    );
    assert_eq!(seen[0].json(), seen[1].json());
    for got in &seen {
        got.verify(secret.as_deref().unwrap());
    }
    let row = &deliveries(&ctx).await[0];
    assert_eq!((row.attempts, row.last_error.as_deref()), (2, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_failing_for_good_is_given_up_with_its_last_error() {
    let engine = engine().await;
    let ctx = tenant(&engine, Isolation::Shared).await;
    let (receiver, url) = Receiver::start().await;
    receiver.answer(&[503, 503, 503]);
    let id = monitor(&ctx, "API").await;
    channel(&engine, &ctx, "webhook", &url, &[]).await;
    // Given up at the first failure once the delivery is older than `give_up_after`.
    let deliverer = deliverer(&engine, |c| c.retry.give_up_after = Duration::ZERO).await;
    transition(check(&engine, &ctx, id, 0, false).await);
    deliver_until(&deliverer, "the delivery is given up", async || {
        deliveries(&ctx).await[0].failed_at.is_some()
    })
    .await;
    let row = &deliveries(&ctx).await[0];
    assert_eq!(row.attempts, 1);
    assert_eq!(row.delivered_at, None);
    assert!(
        row.last_error.as_deref().unwrap().contains("503"),
        "{row:?}"
    );
    deliverer.deliver_due().await.unwrap();
    assert_eq!(receiver.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_transition_sends_nothing() {
    let engine = engine().await;
    let ctx = tenant(&engine, Isolation::Schema).await;
    let org = ctx.tenant_id().as_uuid();
    let (receiver, url) = Receiver::start().await;
    let id = monitor(&ctx, "API").await;
    channel(&engine, &ctx, "webhook", &url, &[]).await;
    let deliverer = deliverer(&engine, |c| c.note_grace = Duration::ZERO).await;

    let mut tx = ctx.begin().await.unwrap();
    let at = slot(0);
    let recorded = monitoring::record_result(&mut tx, id, at, &Observation::down(at, "refused"))
        .await
        .unwrap();
    assert!(recorded.needs_delivery());
    alerts::note_pending(engine.control_db(), org)
        .await
        .unwrap();
    tx.rollback().await.unwrap();

    assert!(wakeup_exists(&engine, org).await);
    deliverer.deliver_due().await.unwrap();
    assert!(deliveries(&ctx).await.is_empty());
    assert!(receiver.seen().is_empty());
    // Nothing pending and the note older than the grace: the wakeup is gone.
    assert!(!wakeup_exists(&engine, org).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deliverers_deliver_thirty_events_exactly_once() {
    let engine = engine().await;
    let second = another_instance(&engine).await;
    let (receiver, url) = Receiver::start().await;
    let mut tenants = Vec::new();
    for tier in [Isolation::Shared, Isolation::Schema, Isolation::Database] {
        let ctx = tenant(&engine, tier).await;
        channel(&engine, &ctx, "webhook", &url, &[]).await;
        tenants.push(ctx);
    }
    let one = deliverer(&engine, |_| {}).await;
    let two = deliverer(&second, |_| {}).await;
    tokio::spawn(one.run(std::future::pending()));
    tokio::spawn(two.run(std::future::pending()));
    // Ten events per tenant (five outages opened and resolved), recorded while both run.
    for ctx in &tenants {
        for m in 0..5 {
            let id = monitor(ctx, &format!("m{m}")).await;
            transition(check(&engine, ctx, id, 0, false).await);
            transition(check(&engine, ctx, id, 1, true).await);
        }
    }
    tenantry_testkit::eventually("every delivery made", WAIT, async || {
        let mut pending = 0;
        for ctx in &tenants {
            pending += deliveries(ctx)
                .await
                .iter()
                .filter(|r| r.delivered_at.is_none())
                .count();
        }
        if pending == 0 {
            Ok(())
        } else {
            Err(format!("{pending} still pending"))
        }
    })
    .await;
    let seen = receiver.seen();
    let ids: BTreeSet<String> = seen.iter().map(|r| r.header("tenantry-delivery")).collect();
    assert_eq!(ids.len(), 30);
    assert_eq!(seen.len(), 30, "every event was POSTed exactly once");
    let mut rows = 0;
    for ctx in &tenants {
        for row in deliveries(ctx).await {
            assert_eq!(row.attempts, 1);
            assert!(ids.contains(&row.id.to_string()));
            rows += 1;
        }
    }
    assert_eq!(rows, 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_alerts_reach_the_smtp_sink_once() {
    let engine = engine().await;
    let ctx = tenant(&engine, Isolation::Database).await;
    let org = ctx.tenant_id().as_uuid();
    let sink = SmtpSink::start().await;
    let outbox = Outbox::open(&engine, &tenantry_tenancy::Operator::new(&engine))
        .await
        .unwrap();
    let sender = Sender::new(
        outbox,
        &MailConfig {
            smtp_url: Some(sink.url()),
            ..MailConfig::default()
        },
    )
    .unwrap()
    .with_poll_interval(Duration::from_millis(50));
    tokio::spawn(sender.run(std::future::pending()));
    let id = monitor(&ctx, "Checkout").await;
    let (_, secret) = channel(&engine, &ctx, "email", "oncall@example.com", &[id]).await;
    assert_eq!(secret, None);
    let deliverer = deliverer(&engine, |_| {}).await;

    transition(check(&engine, &ctx, id, 0, false).await);
    deliver_until(&deliverer, "the email alert is queued", async || {
        deliveries(&ctx).await[0].delivered_at.is_some()
    })
    .await;
    let messages = sink.wait_for(|m| !m.is_empty(), WAIT).await;
    let message = &messages[0];
    assert_eq!(message.recipients, vec!["oncall@example.com".to_string()]);
    assert_eq!(
        message.subject().as_deref(),
        Some("[Tenantry] DOWN: Checkout")
    );
    let text = message.text();
    for part in [
        "db.internal:5432",
        "connection refused",
        &format!("https://tenantry.test/monitors/{id}"),
        ctx.slug(),
    ] {
        assert!(text.contains(part), "{part:?} missing from {text}");
    }

    // A deliverer that died after queueing the email, before recording the delivery made: the
    // attempt made again queues no second email.
    let mut tx = ctx.begin().await.unwrap();
    sqlx::query("UPDATE alert_deliveries SET delivered_at = NULL")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    alerts::note_pending(engine.control_db(), org)
        .await
        .unwrap();
    deliver_until(&deliverer, "the delivery is made again", async || {
        deliveries(&ctx).await[0].delivered_at.is_some()
    })
    .await;
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM mail.outbox WHERE org_id = $1")
        .bind(org)
        .fetch_one(engine.control_db())
        .await
        .unwrap();
    assert_eq!(queued, 1);

    transition(check(&engine, &ctx, id, 1, true).await);
    deliver_until(&deliverer, "the resolution is emailed", async || {
        sink.messages().len() == 2
    })
    .await;
    let messages = sink.messages();
    assert_eq!(
        messages[1].subject().as_deref(),
        Some("[Tenantry] RESOLVED: Checkout")
    );
}

async fn a_suspended_organizations_alerts_wait(tier: Isolation) {
    let engine = engine().await;
    let ctx = tenant(&engine, tier).await;
    let org = ctx.tenant_id().as_uuid();
    let (receiver, url) = Receiver::start().await;
    let id = monitor(&ctx, "API").await;
    channel(&engine, &ctx, "webhook", &url, &[]).await;
    let deliverer = deliverer(&engine, |_| {}).await;
    transition(check(&engine, &ctx, id, 0, false).await);
    engine.suspend(&org.to_string()).await.unwrap();
    for _ in 0..3 {
        deliverer.deliver_due().await.unwrap();
    }
    assert!(receiver.seen().is_empty());
    assert!(wakeup_exists(&engine, org).await, "the wakeup is kept");

    engine.activate(&org.to_string()).await.unwrap();
    let ctx = engine.resolve_id(ctx.tenant_id()).await.unwrap();
    assert_eq!(
        deliveries(&ctx).await[0].attempts,
        0,
        "nothing was attempted"
    );
    deliver_until(&deliverer, "the alert goes out once active", async || {
        receiver.seen().len() == 1
    })
    .await;
}
per_tier!(a_suspended_organizations_alerts_wait);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_webhook_targets_are_refused_when_the_guard_is_on() {
    let engine = engine().await;
    let ctx = tenant(&engine, Isolation::Shared).await;
    let (receiver, url) = Receiver::start().await;
    let id = monitor(&ctx, "API").await;
    channel(&engine, &ctx, "webhook", &url, &[]).await;
    let deliverer = deliverer(&engine, |c| {
        c.checker = CheckerConfig {
            forbid_private_targets: true,
            ..CheckerConfig::default()
        }
    })
    .await;
    transition(check(&engine, &ctx, id, 0, false).await);
    deliver_until(&deliverer, "an attempt is made", async || {
        deliveries(&ctx).await[0].attempts > 0
    })
    .await;
    let row = &deliveries(&ctx).await[0];
    assert_eq!(row.delivered_at, None);
    assert!(
        row.last_error
            .as_deref()
            .unwrap()
            .contains("private targets are forbidden"),
        "{row:?}"
    );
    assert!(receiver.seen().is_empty());
}
