//! `/metrics` is not public: `tenantry serve` makes a token at its first start, keeps it in the
//! data folder (mode 0600) and asks scrapers for it; `tenantry metrics token` prints it,
//! `TENANTRY_METRICS_TOKEN` sets one, `TENANTRY_METRICS_PUBLIC=true` opts out.

use std::os::unix::fs::PermissionsExt;

use nix::sys::signal::Signal;

use crate::support::{Server, data_dir, tenantry};

async fn scrape(server: &Server, token: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(format!("{}/metrics", server.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_ask_for_the_token_kept_in_the_data_folder() {
    let dir = data_dir();
    let server = Server::start_with_defaults(dir.path());

    let refused = scrape(&server, None).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "unauthorized", "{problem}");
    assert_eq!(scrape(&server, Some("guess")).await.status(), 401);

    let file = dir.path().join("tenantry-data").join("metrics-token");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let kept = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert!(kept.len() >= 32, "{kept:?}");
    let printed = server.metrics_token();
    assert_eq!(printed, kept);
    let scraped = scrape(&server, Some(&printed)).await;
    assert_eq!(scraped.status(), 200);
    assert!(scraped.text().await.unwrap().contains("tenantry_tenants"));
    assert!(server.stop(Signal::SIGTERM).success());

    // The same token after a restart.
    let server = Server::start_with_defaults(dir.path());
    assert_eq!(scrape(&server, Some(&kept)).await.status(), 200);
    assert!(server.stop(Signal::SIGTERM).success());

    // A token of the operator's choosing replaces it.
    let chosen = "operator-chosen-metrics-token";
    let server = Server::spawn(dir.path(), &[("TENANTRY_METRICS_TOKEN", chosen)]);
    assert_eq!(scrape(&server, Some(chosen)).await.status(), 200);
    assert_eq!(scrape(&server, Some(&kept)).await.status(), 401);
    assert!(server.stop(Signal::SIGTERM).success());

    // Opting out.
    let server = Server::spawn(dir.path(), &[("TENANTRY_METRICS_PUBLIC", "true")]);
    assert_eq!(scrape(&server, None).await.status(), 200);
    assert!(server.stop(Signal::SIGTERM).success());

    // `metrics token` before any start makes the token the server will use.
    let fresh = data_dir();
    let printed = tenantry(fresh.path(), &["metrics", "token"]);
    assert!(printed.status.success(), "{printed:?}");
    let token = String::from_utf8(printed.stdout)
        .unwrap()
        .trim()
        .to_string();
    let server = Server::start_with_defaults(fresh.path());
    assert_eq!(scrape(&server, Some(&token)).await.status(), 200);
    assert!(server.stop(Signal::SIGTERM).success());
}
