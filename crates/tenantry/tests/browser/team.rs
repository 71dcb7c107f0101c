//! A team forms in the browser: Ada signs up, creates an organization and invites Bob by
//! email; Bob, who has no account, accepts from the emailed link in his own browser; both see
//! each other on "Members"; Ada switches between her organizations and stays on the same kind
//! of page; Bob leaves.

use crate::harness::{Browser, Driver, Site, create_org, sign_up};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_forms_by_invitation_switches_and_leaves() {
    let site = Site::start().await;
    let driver = Driver::start().await;
    let ada = Browser::open(&driver, &site, 1280).await;
    sign_up(&ada, "Ada Lovelace", "ada@example.com").await;
    // No organization yet: the start page offers to create one.
    ada.sees("Create organization").await;
    let acme = create_org(&ada, "Acme").await;
    assert_eq!(ada.path().await, format!("/o/{acme}/monitors"));

    ada.follow("Members").await;
    ada.sees("ada@example.com").await;
    // "Invite" opens a dialog (a page without script).
    ada.follow("Invite").await;
    let dialog = ada
        .client
        .find(fantoccini::Locator::Css("dialog#invite-dialog"))
        .await
        .unwrap();
    assert!(dialog.is_displayed().await.unwrap());
    assert_eq!(ada.path().await, format!("/o/{acme}/members"));
    ada.fill("Email", "bob@example.com").await;
    ada.choose("Role", "member").await;
    ada.press("Send invitation").await;
    ada.sees("An invitation is on its way to bob@example.com")
        .await;
    ada.sees("Pending invitations").await;
    ada.sees("Expires in 7 days").await;

    // Bob, in another browser, follows the link of the email.
    let link = site.link_in_mail("bob@example.com", "/invitations/").await;
    assert!(link.starts_with(&site.url("/invitations/")), "{link}");
    let bob = Browser::open(&driver, &site, 1280).await;
    bob.goto(&link).await;
    bob.sees("Join Acme").await;
    bob.sees("as member").await;
    bob.fill("Name", "Bob Builder").await;
    bob.fill("Password", "correct horse battery").await;
    bob.press("Accept invitation").await;
    bob.sees("Welcome to Acme: you joined as member.").await;
    assert_eq!(bob.path().await, format!("/o/{acme}/monitors"));
    bob.follow("Members").await;
    bob.sees("ada@example.com").await;
    bob.sees("bob@example.com").await;
    // The used link is a page saying so.
    bob.goto(&link).await;
    bob.sees("This invitation can no longer be used").await;

    ada.goto(&format!("/o/{acme}/members")).await;
    ada.sees("bob@example.com").await;
    assert!(
        !ada.text()
            .await
            .contains("Pending invitations\nbob@example.com")
    );

    // A second organization; the switcher lists both, and keeps the kind of page.
    let labs = create_org(&ada, "Acme Labs").await;
    ada.goto(&format!("/o/{labs}/members")).await;
    let switcher = ada
        .client
        .find(fantoccini::Locator::Css("details.switcher > summary"))
        .await
        .unwrap();
    assert!(
        switcher
            .attr("aria-label")
            .await
            .unwrap()
            .unwrap()
            .starts_with("Switch organization")
    );
    switcher.click().await.unwrap();
    ada.sees("Create organization").await;
    let current = ada
        .client
        .find(fantoccini::Locator::Css("details.switcher a[aria-current]"))
        .await
        .unwrap();
    assert!(current.text().await.unwrap().contains("Acme Labs"));
    ada.client
        .find(fantoccini::Locator::XPath(&format!(
            "//details[contains(@class,'switcher')]//a[@href='/o/{acme}/members']"
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    ada.sees("bob@example.com").await;
    assert_eq!(ada.path().await, format!("/o/{acme}/members"));

    // Bob leaves; Ada no longer sees him.
    bob.goto(&format!("/o/{acme}/members")).await;
    bob.follow("Settings").await;
    bob.press("Leave organization").await;
    bob.confirm().await;
    bob.sees("You left Acme.").await;
    bob.goto(&format!("/o/{acme}/monitors")).await;
    bob.sees("Page not found").await;
    ada.goto(&format!("/o/{acme}/members")).await;
    ada.sees("ada@example.com").await;
    assert!(!ada.text().await.contains("bob@example.com"));

    // The last owner cannot leave, and is told why.
    ada.follow("Settings").await;
    ada.press("Leave organization").await;
    ada.confirm().await;
    ada.sees("owner").await;
    assert_eq!(ada.path().await, format!("/o/{acme}/settings"));

    ada.close().await;
    bob.close().await;
}
