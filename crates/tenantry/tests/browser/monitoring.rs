//! The monitoring pages as a member uses them: a heartbeat monitor's ping URL shown once and
//! pinged; a monitor edited, paused, resumed and deleted; an email alert channel sent a test
//! alert that arrives; a public status page opened from its link.

use crate::harness::{Browser, Driver, Site, Target, create_monitor, create_org, sign_up};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_channels_and_status_pages_are_managed_from_the_console() {
    let site = Site::start().await;
    let target = Target::start().await;
    let driver = Driver::start().await;
    let ada = Browser::open(&driver, &site, 1280).await;
    sign_up(&ada, "Ada Lovelace", "ada@example.com").await;
    let acme = create_org(&ada, "Acme").await;

    // A heartbeat monitor: its ping URL is shown once, and a ping makes it up.
    create_monitor(&ada, &acme, "Nightly backup", "heartbeat", "", "3600").await;
    ada.sees("Ping URL").await;
    let url = ada
        .client
        .find(fantoccini::Locator::Id("secret-value"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(url.starts_with(&site.url("/api/v1/heartbeat/")), "{url}");
    ada.follow("Open the monitor").await;
    ada.sees("pending").await;
    assert!(
        !ada.text().await.contains(&url),
        "the ping URL is shown once"
    );
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    ada.client.refresh().await.unwrap();
    ada.sees("Last check").await;
    let text = ada.text().await;
    assert!(text.contains("up"), "{text}");

    // An HTTP monitor: edited, paused, resumed, deleted.
    let page = create_monitor(&ada, &acme, "Homepage", "http", &target.url, "60").await;
    ada.follow("Edit").await;
    ada.fill("Name", "Front page").await;
    ada.press("Save").await;
    ada.sees("The monitor is saved.").await;
    ada.sees("Front page").await;
    ada.press("Pause").await;
    ada.sees("paused").await;
    ada.press("Resume").await;
    ada.sees("The monitor is checked again.").await;
    ada.press("Delete").await;
    ada.confirm().await;
    ada.sees("The monitor is deleted.").await;
    ada.goto(&page).await;
    ada.sees("Page not found").await;

    // An email channel, and a test alert that arrives.
    ada.goto(&format!("/o/{acme}/alert-channels")).await;
    ada.fill("Name", "On call").await;
    ada.choose("Type", "email").await;
    ada.fill("Email", "oncall@example.com").await;
    ada.press("Create").await;
    ada.sees("On call").await;
    ada.press("Send test alert").await;
    ada.sees("A test alert is on its way.").await;
    let mail = site
        .mail
        .wait_for(
            |m| {
                m.iter()
                    .any(|m| m.recipients.iter().any(|r| r == "oncall@example.com"))
            },
            crate::harness::PATIENCE,
        )
        .await;
    let alert = mail
        .iter()
        .find(|m| m.recipients.iter().any(|r| r == "oncall@example.com"))
        .unwrap();
    assert!(
        alert.subject().unwrap().contains("TEST"),
        "{:?}",
        alert.subject()
    );
    assert!(alert.text().contains("ada@example.com"));

    // A public status page, opened from its link.
    ada.goto(&format!("/o/{acme}/status-pages")).await;
    ada.fill("Title", "Acme status").await;
    ada.fill("Slug", "main").await;
    ada.field("Nightly backup").await.click().await.unwrap();
    ada.field("Public: anyone with the address may see it")
        .await
        .click()
        .await
        .unwrap();
    ada.press("Create").await;
    ada.sees("The status page Acme status is created.").await;
    ada.follow(&format!("/status/{acme}/main")).await;
    ada.sees("Nightly backup").await;
    ada.close().await;
}
