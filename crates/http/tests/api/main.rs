//! The HTTP application from outside, against a real engine: the operational endpoints and the
//! conventions every response follows. Tests call the API through the typed client of
//! [`client`] (`app.as_(&ada).org(&org).monitors().create(body)`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod agents;
mod alert_channels;
mod api_keys;
mod audit;
mod auth;
mod client;
mod connections;
mod console;
mod cross_tenant;
mod export;
mod features;
mod fuzz;
mod hard_delete;
mod invitations;
mod limits;
mod members;
mod monitors;
mod openapi;
mod ops;
mod ratelimit;
mod rbac;
mod request_path;
mod results;
mod secrets;
mod slugs;
mod status_pages;
mod throttling;

use std::net::SocketAddr;

use serde_json::{Value, json};
use tenantry_http::Application;
use tenantry_identity::{Identity, IdentityConfig};
use tenantry_mail::{MailConfig, Outbox, Sender};
use tenantry_orgs::Orgs;
use tenantry_ratelimit::Limiter;
use tenantry_tenancy::{EngineConfig, PoolConfig, Tenancy};
use tenantry_testkit::smtp::SmtpSink;
use uuid::Uuid;

pub use client::{Answer, Client, Listing};

/// The token `/metrics` asks for in these tests.
pub const METRICS_TOKEN: &str = "test-metrics-token";

/// The address invitation links start with.
pub const PUBLIC_URL: &str = "http://tenantry.test";

/// The application served on a free port, with its engine, its mail sender and the SMTP server
/// that receives its mail.
pub struct TestApp {
    pub base: String,
    pub tenancy: Tenancy,
    pub client: reqwest::Client,
    pub orgs: Orgs,
    pub mail: SmtpSink,
    /// The application's rate limiter (in process unless spawned with a Redis URL).
    pub limiter: Limiter,
    /// The application's export slots (a test holding them all sees exports refused).
    pub export_slots: std::sync::Arc<tokio::sync::Semaphore>,
}

/// How [`TestApp::spawn_with`] makes the application; the default is [`TestApp::spawn`]'s.
#[derive(Default)]
pub struct Spawn {
    /// At most this many organizations owned per user (`None`: no cap, so tests may make as many
    /// as they need).
    pub cap: Option<i64>,
    /// Share rate limits through this Redis (`None`: in process).
    pub redis_url: Option<String>,
    /// Serve this control database (another instance's, `TestApp::control_database`) instead of
    /// a fresh one: a second server instance of the same deployment.
    pub control_database: Option<String>,
    /// The runtime pool's size instead of the default (door transactions have their own).
    pub runtime_max: Option<u32>,
    /// Reach the control database's server with these owner options (through a
    /// `LatencyProxy`, say); only with `control_database`.
    pub owner: Option<sqlx::postgres::PgConnectOptions>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(Spawn::default()).await
    }

    /// The application with at most `cap` organizations owned per user (`None`: no cap, so
    /// tests may make as many as they need).
    pub async fn spawn_with_cap(cap: Option<i64>) -> TestApp {
        Self::spawn_with(Spawn {
            cap,
            ..Spawn::default()
        })
        .await
    }

    /// Another instance of this application: same database, its own limiter (through
    /// `redis_url` when given).
    pub async fn another_instance(&self, redis_url: Option<String>) -> TestApp {
        Self::spawn_with(Spawn {
            redis_url,
            control_database: Some(self.tenancy.control_database().to_string()),
            ..Spawn::default()
        })
        .await
    }

    pub async fn spawn_with(spawn: Spawn) -> TestApp {
        let Spawn {
            cap,
            redis_url,
            control_database,
            runtime_max,
            owner,
        } = spawn;
        let mut config = match control_database {
            Some(control_database) => EngineConfig {
                owner: owner.unwrap_or_else(tenantry_testkit::owner),
                control_database,
                prefix: tenantry_testkit::PREFIX.to_string(),
                pools: PoolConfig::default(),
            },
            None => {
                tenantry_testkit::fresh_config_for(
                    &tenantry_app::tenant_schema(),
                    &tenantry_app::control_schemas(),
                )
                .await
            }
        };
        if let Some(runtime_max) = runtime_max {
            config.pools.runtime_max = runtime_max;
        }
        let tenancy = Tenancy::open_full(
            config,
            tenantry_app::tenant_schema(),
            &tenantry_app::control_schemas(),
        )
        .await
        .unwrap();
        let identity = Identity::open(
            &tenancy,
            &tenantry_tenancy::Operator::new(&tenancy),
            IdentityConfig::default(),
        )
        .await
        .unwrap();
        let mail = SmtpSink::start().await;
        let outbox = Outbox::open(&tenancy, &tenantry_tenancy::Operator::new(&tenancy))
            .await
            .unwrap();
        let sender = Sender::new(
            outbox.clone(),
            &MailConfig {
                smtp_url: Some(mail.url()),
                ..MailConfig::default()
            },
        )
        .unwrap();
        tokio::spawn(sender.run(std::future::pending()));
        let orgs = Orgs::new(tenancy.clone(), outbox, PUBLIC_URL).with_organization_cap(cap);
        let limiter = match redis_url {
            Some(url) => Limiter::with_redis(&url).await.unwrap(),
            None => Limiter::in_process(),
        };
        let app = Application::build(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            tenancy.clone(),
            identity,
            orgs.clone(),
            tenantry_http::Options {
                limiter: limiter.clone(),
                // Guard off: the tests' targets are on loopback (the guard is tested through
                // `tenantry serve`, whose default turns it on).
                checker: tenantry_monitoring::checks::Checker::new(Default::default()).unwrap(),
                metrics: tenantry_http::MetricsAccess::Token(METRICS_TOKEN.to_string()),
                alert_keys: std::sync::Arc::new(
                    tenantry_monitoring::alerts::SecretKeys::load_or_create(
                        &tenantry_tenancy::Operator::new(&tenancy),
                    )
                    .await
                    .unwrap(),
                ),
            },
        )
        .await
        .unwrap();
        let base = format!("http://{}", app.local_addr().unwrap());
        let export_slots = app.export_slots();
        tokio::spawn(app.run_until(std::future::pending()));
        TestApp {
            base,
            tenancy,
            // Idle connections are dropped before the server's keep-alive ends
            // (`connections::HEADER_READ_TIMEOUT`), or a request could go out on a connection
            // the server is closing.
            client: reqwest::Client::builder()
                .pool_idle_timeout(std::time::Duration::from_secs(5))
                .build()
                .unwrap(),
            orgs,
            mail,
            limiter,
            export_slots,
        }
    }

    /// The token of the newest invitation email to `email`, waiting for it to arrive; `after`
    /// emails to that address are skipped (0 for the first one).
    pub async fn invitation_token(&self, email: &str, after: usize) -> String {
        let messages = self
            .mail
            .wait_for(
                |m| {
                    m.iter()
                        .filter(|m| m.recipients.iter().any(|r| r == email))
                        .count()
                        > after
                },
                std::time::Duration::from_secs(30),
            )
            .await;
        let message = messages
            .iter()
            .filter(|m| m.recipients.iter().any(|r| r == email))
            .nth(after)
            .unwrap();
        let text = message.text();
        let link = format!("{PUBLIC_URL}/invitations/");
        let start = text.find(&link).unwrap() + link.len();
        text[start..].split_whitespace().next().unwrap().to_string()
    }

    /// `GET /metrics` with the metrics token.
    pub async fn metrics(&self) -> Answer {
        let scraper = self.as_(METRICS_TOKEN);
        scraper
            .request(reqwest::Method::GET, "/metrics")
            .send()
            .await
    }

    /// Signs up `email` and returns the response body (user and tokens).
    pub async fn signup(&self, email: &str) -> Value {
        let body = json!({"email": email, "password": "correct horse", "name": "Test User"});
        self.anonymous().auth().signup(body).await
    }

    /// Turns `feature` on for organization `org` (its id), whatever its plan says.
    pub async fn allow(&self, org: &str, feature: &str) {
        self.set_feature(org, feature, true).await;
    }

    /// Sets `feature` of organization `org` (its id) to `on`, whatever its plan says.
    pub async fn set_feature(&self, org: &str, feature: &str, on: bool) {
        let mut features = serde_json::Map::new();
        features.insert(feature.to_string(), Value::Bool(on));
        self.orgs
            .change_entitlements(
                org.parse().unwrap(),
                &tenantry_orgs::EntitlementChange {
                    features: Some(features),
                    ..tenantry_orgs::EntitlementChange::default()
                },
                &tenantry_audit::AuditContext::system(),
            )
            .await
            .unwrap();
    }

    /// Overrides the limit `key` of organization `org` (its id) with `value`.
    pub async fn set_limit(&self, org: &str, key: &str, value: Value) {
        let mut limits = serde_json::Map::new();
        limits.insert(key.to_string(), value);
        self.orgs
            .change_entitlements(
                org.parse().unwrap(),
                &tenantry_orgs::EntitlementChange {
                    limits: Some(limits),
                    ..tenantry_orgs::EntitlementChange::default()
                },
                &tenantry_audit::AuditContext::system(),
            )
            .await
            .unwrap();
    }
}

/// A signed-up user: their id and access token.
pub struct Caller {
    pub id: Uuid,
    pub token: String,
}

pub async fn caller(app: &TestApp, email: &str) -> Caller {
    let body = app.signup(email).await;
    Caller {
        id: body["user"]["id"].as_str().unwrap().parse().unwrap(),
        token: body["access_token"].as_str().unwrap().to_string(),
    }
}

/// Part `i` of a JWT (0 the header, 1 the claims), decoded.
pub fn jwt_part(token: &str, i: usize) -> Value {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (mut bits, mut count, mut out) = (0u32, 0, Vec::new());
    for c in token.split('.').nth(i).unwrap().bytes() {
        bits = (bits << 6) | ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    serde_json::from_slice(&out).unwrap()
}

/// The claims of an access token.
pub fn jwt_claims(token: &str) -> Value {
    jwt_part(token, 1)
}

/// An organization of `tier` owned by `owner` (tiers other than shared are a platform admin's
/// choice, so tests make them through the domain directly); returns its id.
pub async fn org_in(
    app: &TestApp,
    owner: &Caller,
    name: &str,
    tier: tenantry_tenancy::Isolation,
) -> String {
    app.orgs
        .create(
            owner.id,
            name,
            None,
            tier,
            &tenantry_audit::AuditContext::system(),
        )
        .await
        .unwrap()
        .id
        .to_string()
}

/// An organization named `name` created by `owner` through the API; returns its id.
pub async fn new_org(app: &TestApp, owner: &Caller, name: &str) -> String {
    let orgs = app.as_(owner).organizations();
    let body = orgs.create(json!({"name": name})).await;
    body["id"].as_str().unwrap().to_string()
}

/// A platform admin, made as `tenantry user create --platform-admin` makes one; returns an
/// access token.
pub async fn platform_admin(app: &TestApp) -> String {
    use tenantry_identity::Email;

    Identity::open(
        &app.tenancy,
        &tenantry_tenancy::Operator::new(&app.tenancy),
        IdentityConfig::default(),
    )
    .await
    .unwrap()
    .create_user(
        &Email::parse("root@example.com").unwrap(),
        "root password",
        "Root",
        true,
    )
    .await
    .unwrap();
    let login = app
        .anonymous()
        .auth()
        .login("root@example.com", "root password")
        .await;
    login["access_token"].as_str().unwrap().to_string()
}
