//! The HTTP application from outside, against a real engine: the operational endpoints and the
//! conventions every response follows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod members;
mod monitors;
mod ops;

use std::net::SocketAddr;

use serde_json::{Value, json};
use tenantry_http::Application;
use tenantry_identity::{Identity, IdentityConfig};
use tenantry_tenancy::{MigrationSet, Tenancy};

/// The application served on a free port, with its engine.
pub struct TestApp {
    pub base: String,
    pub tenancy: Tenancy,
    pub client: reqwest::Client,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        let tenancy = Tenancy::open_full(
            tenantry_testkit::fresh_config().await,
            MigrationSet::tenant(),
            &[
                tenantry_identity::control_schema(),
                tenantry_orgs::control_schema(),
            ],
        )
        .await
        .unwrap();
        let identity = Identity::open(tenancy.runtime_pool().clone(), IdentityConfig::default())
            .await
            .unwrap();
        let app = Application::build(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            tenancy.clone(),
            identity,
        )
        .await
        .unwrap();
        let base = format!("http://{}", app.local_addr().unwrap());
        tokio::spawn(app.run_until(std::future::pending()));
        TestApp {
            base,
            tenancy,
            client: reqwest::Client::new(),
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_as(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Signs up `email` and returns the response body (user and tokens).
    pub async fn signup(&self, email: &str) -> Value {
        let response = self
            .post(
                "/api/v1/auth/signup",
                &json!({"email": email, "password": "correct horse", "name": "Test User"}),
            )
            .await;
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }
}

/// The body of a problem response, after checking its status and media type.
pub async fn problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    response.json().await.unwrap()
}
