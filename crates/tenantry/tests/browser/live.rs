//! Monitors going down and up, followed live: the monitors list and a monitor's page change
//! status through the organization's event stream, without a reload.

use crate::harness::{
    Browser, Driver, PATIENCE, Site, Target, create_monitor, create_org, sign_up,
};
use crate::support;

/// Waits until the status shown for the monitor named `name` in the list is `status`.
async fn status_becomes(browser: &Browser, name: &str, status: &str) {
    let what = format!("{name} showing {status}");
    tenantry_testkit::eventually(&what, PATIENCE * 2, async || {
        let shown = browser
            .client
            .execute(
                "const row = [...document.querySelectorAll('tr[data-monitor]')]
                   .find(r => r.textContent.includes(arguments[0]));
                 return row ? row.querySelector('.status').getAttribute('data-status') : null;",
                vec![serde_json::json!(name)],
            )
            .await
            .unwrap();
        if shown == serde_json::json!(status) {
            Ok(())
        } else {
            Err(shown.to_string())
        }
    })
    .await;
}

/// A mark left in the page: still there later means the page was not reloaded.
async fn mark(browser: &Browser) {
    browser
        .client
        .execute("window.__mark = 'same page';", vec![])
        .await
        .unwrap();
}

async fn still_marked(browser: &Browser) -> bool {
    browser
        .client
        .execute("return window.__mark === 'same page';", vec![])
        .await
        .unwrap()
        == serde_json::json!(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_are_seen_going_down_and_up_without_a_reload() {
    let site = Site::start().await;
    let target = Target::start().await;
    let driver = Driver::start().await;
    let ada = Browser::open(&driver, &site, 1280).await;
    sign_up(&ada, "Ada Lovelace", "ada@example.com").await;
    let acme = create_org(&ada, "Acme").await;
    // Checks every 10 s: the enterprise plan's least interval.
    support::stdout(&support::tenantry(
        site.dir.path(),
        &["tenant", "set-plan", &acme, "enterprise"],
    ));
    let page = create_monitor(&ada, &acme, "Homepage", "http", &target.url, "10").await;

    ada.goto(&format!("/o/{acme}/monitors")).await;
    status_becomes(&ada, "Homepage", "up").await;
    mark(&ada).await;
    target.set_up(false);
    status_becomes(&ada, "Homepage", "down").await;
    target.set_up(true);
    status_becomes(&ada, "Homepage", "up").await;
    assert!(still_marked(&ada).await, "the list was reloaded");

    // The monitor's page follows too, and shows the incident while it is open.
    ada.goto(&page).await;
    mark(&ada).await;
    target.set_up(false);
    tenantry_testkit::eventually(
        "the monitor's page showing the outage",
        PATIENCE * 2,
        async || {
            let text = ada.text().await;
            if text.contains("down") && text.contains("since ") {
                Ok(())
            } else {
                Err(text)
            }
        },
    )
    .await;
    assert!(still_marked(&ada).await, "the monitor's page was reloaded");
    target.set_up(true);

    // The page's event stream never ends on its own: stopping the server ends it, and the
    // server exits cleanly while the page is still open.
    let connected = ada
        .client
        .execute(
            "return document.querySelector('[data-events]').getAttribute('data-live');",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(connected, serde_json::json!("connected"));
    let Site { server, dir, .. } = site;
    let status = server.stop(nix::sys::signal::Signal::SIGTERM);
    assert!(status.success(), "{status:?}");
    drop(dir);
    ada.close().await;
}
