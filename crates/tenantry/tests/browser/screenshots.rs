//! Every page of the console, filled with data, at 1280 and 375 pixels wide: saved as
//! artefacts (`target/tmp/screenshots/<page>-<width>.png`) for people to look at, and checked
//! for what every page must have: a heading, labels for every input, visible text on every
//! button, and no horizontal scrolling at phone width.

use crate::harness::{
    Browser, Driver, Site, Target, create_monitor, create_org, screenshots, sign_up,
};
use crate::support;

/// Checks what every page must have, and saves its screenshot.
async fn capture(browser: &Browser, name: &str, width: u32) {
    browser.width(width).await;
    // Every input (but hidden ones) has a label; every button has visible text; one h1.
    let problems = browser
        .client
        .execute(
            r#"
            const problems = [];
            for (const input of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
              const labelled = (input.id && document.querySelector('label[for="' + input.id + '"]'))
                || input.closest('label') || input.getAttribute('aria-label');
              if (!labelled) problems.push('unlabelled ' + input.outerHTML.slice(0, 80));
            }
            for (const button of document.querySelectorAll('button, summary')) {
              if (!button.textContent.trim() && !button.getAttribute('aria-label')) problems.push('button without text');
            }
            if (document.querySelectorAll('h1').length !== 1) problems.push(document.querySelectorAll('h1').length + ' h1');
            if (document.documentElement.scrollWidth > window.innerWidth + 1) problems.push('scrolls sideways: ' + document.documentElement.scrollWidth);
            return problems;
            "#,
            vec![],
        )
        .await
        .unwrap();
    browser.screenshot(&format!("{name}-{width}")).await;
    assert_eq!(problems, serde_json::json!([]), "{name} at {width} px");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_at_desktop_and_phone_width() {
    let site = Site::start().await;
    let target = Target::start().await;
    let driver = Driver::start().await;
    let made = support::tenantry(
        site.dir.path(),
        &[
            "user",
            "create",
            "--email",
            "ops@example.com",
            "--password",
            "correct horse battery",
            "--name",
            "Olivia Ops",
            "--platform-admin",
        ],
    );
    assert!(made.status.success(), "{made:?}");
    let visitor = Browser::open(&driver, &site, 1280).await;
    let ada = Browser::open(&driver, &site, 1280).await;
    sign_up(&ada, "Ada Lovelace", "ada@example.com").await;
    let acme = create_org(&ada, "Acme").await;
    create_org(&ada, "Globex").await;
    support::stdout(&support::tenantry(
        site.dir.path(),
        &["tenant", "set-plan", &acme, "pro"],
    ));
    let homepage = create_monitor(&ada, &acme, "Homepage", "http", &target.url, "60").await;
    create_monitor(&ada, &acme, "Database", "tcp", "127.0.0.1:1", "60").await;
    create_monitor(&ada, &acme, "Nightly backup", "heartbeat", "", "60").await;
    ada.goto(&format!("/o/{acme}/members/invite")).await;
    ada.fill("Email", "bob@example.com").await;
    ada.press("Send invitation").await;
    ada.sees("Pending invitations").await;
    ada.goto(&format!("/o/{acme}/alert-channels")).await;
    ada.fill("Name", "On call").await;
    ada.choose("Type", "email").await;
    ada.fill("Email", "oncall@example.com").await;
    ada.press("Create").await;
    ada.sees("On call").await;
    ada.goto(&format!("/o/{acme}/status-pages")).await;
    ada.fill("Title", "Acme status").await;
    ada.fill("Slug", "main").await;
    ada.press("Create").await;
    ada.sees("Acme status").await;
    ada.goto(&format!("/o/{acme}/api-keys")).await;
    ada.fill("Name", "CI deploys").await;
    ada.press("Create API key").await;
    ada.sees("New API key").await;
    ada.goto(&format!("/o/{acme}/agents")).await;
    ada.fill("Name", "office network").await;
    ada.press("Register agent").await;
    ada.sees("Agent token").await;
    // Some checks for the charts.
    ada.goto(&homepage).await;
    ada.sees("up").await;

    let invite = site.link_in_mail("bob@example.com", "/invitations/").await;
    let pages: Vec<(&str, String)> = vec![
        ("monitors", format!("/o/{acme}/monitors")),
        ("monitor", homepage.clone()),
        ("new-monitor", format!("/o/{acme}/monitors/new")),
        ("members", format!("/o/{acme}/members")),
        ("invite", format!("/o/{acme}/members/invite")),
        ("alert-channels", format!("/o/{acme}/alert-channels")),
        ("status-pages", format!("/o/{acme}/status-pages")),
        ("api-keys", format!("/o/{acme}/api-keys")),
        ("agents", format!("/o/{acme}/agents")),
        ("audit", format!("/o/{acme}/audit")),
        ("usage", format!("/o/{acme}/usage")),
        ("settings", format!("/o/{acme}/settings")),
        ("sessions", "/account/sessions".to_string()),
        ("create-organization", "/orgs/new".to_string()),
        ("not-found", format!("/o/{acme}/nothing-here")),
    ];
    for width in [1280, 375] {
        for (name, path) in &pages {
            ada.goto(path).await;
            capture(&ada, name, width).await;
        }
        visitor.goto("/login").await;
        capture(&visitor, "login", width).await;
        visitor.goto("/signup").await;
        capture(&visitor, "signup", width).await;
        visitor.goto(&invite).await;
        capture(&visitor, "invitation", width).await;
    }

    let ops = Browser::open(&driver, &site, 1280).await;
    ops.goto("/login").await;
    ops.fill("Email", "ops@example.com").await;
    ops.fill("Password", "correct horse battery").await;
    ops.press("Log in").await;
    ops.sees("Log out").await;
    for width in [1280, 375] {
        ops.goto("/admin").await;
        capture(&ops, "admin", width).await;
        ops.goto(&format!("/admin/tenants/{acme}")).await;
        capture(&ops, "admin-tenant", width).await;
    }
    println!("screenshots in {}", screenshots().display());
    for browser in [visitor, ada, ops] {
        browser.close().await;
    }
}
