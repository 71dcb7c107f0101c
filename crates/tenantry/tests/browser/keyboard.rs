//! The console with the keyboard alone: logging in, skipping to the content, opening the
//! organization switcher and changing organization, and reaching every section, with Tab,
//! Enter and typing only.

use fantoccini::key::Key;

use crate::harness::{Browser, Driver, Site, create_org, sign_up};

/// Presses `key` on whatever has the focus.
async fn press(browser: &Browser, key: Key) {
    let focused = browser.client.active_element().await.unwrap();
    focused
        .send_keys(&char::from(key).to_string())
        .await
        .unwrap();
}

async fn type_text(browser: &Browser, text: &str) {
    browser
        .client
        .active_element()
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

/// What has the focus: its tag, and its text or name.
async fn focused(browser: &Browser) -> String {
    browser
        .client
        .execute(
            "const e = document.activeElement;
             return e.tagName.toLowerCase() + ':' + (e.getAttribute('name') || e.getAttribute('aria-label') || e.textContent.trim());",
            vec![],
        )
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

/// Tabs until what has the focus starts with `target`.
async fn tab_to(browser: &Browser, target: &str) {
    for _ in 0..60 {
        if focused(browser).await.starts_with(target) {
            return;
        }
        press(browser, Key::Tab).await;
    }
    panic!(
        "Tab never reached {target:?}; the focus is on {}",
        focused(browser).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_main_pages_work_with_the_keyboard_alone() {
    let site = Site::start().await;
    let driver = Driver::start().await;
    let setup = Browser::open(&driver, &site, 1280).await;
    sign_up(&setup, "Ada Lovelace", "ada@example.com").await;
    let acme = create_org(&setup, "Acme").await;
    let globex = create_org(&setup, "Globex").await;
    setup.close().await;

    let ada = Browser::open(&driver, &site, 1280).await;
    ada.goto("/login").await;
    // The first Tab reaches the skip link.
    press(&ada, Key::Tab).await;
    assert_eq!(focused(&ada).await, "a:Skip to content");
    tab_to(&ada, "input:email").await;
    type_text(&ada, "ada@example.com").await;
    press(&ada, Key::Tab).await;
    assert_eq!(focused(&ada).await, "input:password");
    type_text(&ada, "correct horse battery").await;
    press(&ada, Key::Enter).await;
    ada.sees("Log out").await;
    // Logins start in the first organization (no default is set).
    let start = ada.path().await;
    assert!(start.ends_with("/monitors"), "{start}");

    // The switcher opens with Enter, and an organization is chosen with Tab and Enter.
    ada.goto(&format!("/o/{globex}/members")).await;
    tab_to(&ada, "summary:Switch organization").await;
    press(&ada, Key::Enter).await;
    tab_to(&ada, "a:Acme").await;
    press(&ada, Key::Enter).await;
    ada.sees("ada@example.com").await;
    assert_eq!(ada.path().await, format!("/o/{acme}/members"));

    // Every section is reached by Tab and Enter.
    for section in ["Settings", "Usage", "Members", "Monitors"] {
        tab_to(&ada, &format!("a:{section}")).await;
        press(&ada, Key::Enter).await;
        ada.sees(section).await;
        assert!(
            ada.path().await.starts_with(&format!("/o/{acme}/")),
            "{section}"
        );
        let heading = ada
            .client
            .find(fantoccini::Locator::Css("h1"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(heading, section);
    }

    // A form is filled and sent from the keyboard: a new monitor.
    tab_to(&ada, "a:New monitor").await;
    press(&ada, Key::Enter).await;
    ada.sees("New monitor").await;
    tab_to(&ada, "input:name").await;
    type_text(&ada, "Keyboard check").await;
    tab_to(&ada, "input:target").await;
    type_text(&ada, "127.0.0.1:1").await;
    tab_to(&ada, "button:Create").await;
    // The type is still HTTP(S): the address is refused next to its field, keyboard still in the form.
    press(&ada, Key::Enter).await;
    ada.sees("Target").await;
    ada.close().await;
}
