//! The web console in a real headless Chromium, driven through WebDriver (ChromeDriver),
//! against a real `tenantry serve` whose emails go to an SMTP sink: a team forming by email
//! invitation, organizations switched and left, monitors followed live, another
//! organization's pages, CSRF, keyboard-only use, and screenshots of every page at 1280 and
//! 375 pixels (saved under `target/tmp/screenshots`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../cli/support.rs"]
#[allow(dead_code)]
mod support;

mod harness;
mod keyboard;
mod live;
mod monitoring;
mod screenshots;
mod security;
mod team;
