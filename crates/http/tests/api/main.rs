//! The HTTP application from outside, against a real engine: the operational endpoints and the
//! conventions every response follows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ops;

use std::net::SocketAddr;

use tenantry_http::Application;
use tenantry_tenancy::Tenancy;

/// The application served on a free port, with its engine.
pub struct TestApp {
    pub base: String,
    pub tenancy: Tenancy,
    pub client: reqwest::Client,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        let tenancy = tenantry_testkit::tenancy().await;
        let app = Application::build(SocketAddr::from(([127, 0, 0, 1], 0)), tenancy.clone())
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
}
