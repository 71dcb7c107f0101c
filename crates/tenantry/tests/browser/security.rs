//! What the browser must refuse: another organization's pages pasted into the address bar are
//! the same 404 page as a missing one, and a form whose CSRF token was removed is refused and
//! changes nothing.

use crate::harness::{Browser, Driver, Site, create_monitor, create_org, sign_up};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pasted_urls_of_another_organization_and_forms_without_their_token_are_refused() {
    let site = Site::start().await;
    let driver = Driver::start().await;
    let ada = Browser::open(&driver, &site, 1280).await;
    sign_up(&ada, "Ada Lovelace", "ada@example.com").await;
    let acme = create_org(&ada, "Acme").await;
    let monitor = create_monitor(&ada, &acme, "Homepage", "tcp", "127.0.0.1:1", "60").await;
    let mut urls = vec![monitor.clone()];
    for section in [
        "monitors", "members", "settings", "api-keys", "audit", "usage", "agents",
    ] {
        urls.push(format!("/o/{acme}/{section}"));
    }

    let eve = Browser::open(&driver, &site, 1280).await;
    sign_up(&eve, "Eve", "eve@example.com").await;
    let own = create_org(&eve, "Evil Corp").await;
    eve.goto("/o/no-such-organization/monitors").await;
    eve.sees("Page not found").await;
    let missing = eve.text().await;
    for url in &urls {
        eve.goto(url).await;
        eve.sees("Page not found").await;
        assert_eq!(eve.text().await, missing, "{url}");
    }
    // Ada's monitor through Eve's own organization: the same.
    eve.goto(&monitor.replace(&format!("/o/{acme}/"), &format!("/o/{own}/")))
        .await;
    assert_eq!(eve.text().await, missing);

    // A form whose token was taken out: refused, and nothing is created.
    ada.goto(&format!("/o/{acme}/members/invite")).await;
    ada.fill("Email", "mallory@example.com").await;
    ada.client
        .execute(
            "document.querySelectorAll('input[name=_csrf]').forEach(i => i.remove());",
            vec![],
        )
        .await
        .unwrap();
    ada.press("Send invitation").await;
    ada.sees("This form has expired").await;
    ada.goto(&format!("/o/{acme}/members")).await;
    ada.sees("Members").await;
    assert!(!ada.text().await.contains("mallory@example.com"));
    ada.close().await;
    eve.close().await;
}
