//! Guessing is throttled: wrong passwords per email and per address, sign-ups per address,
//! unknown invitation, refresh and heartbeat tokens per address — refused with
//! `429 too_many_attempts` and `Retry-After`, without locking the real owner out for long.

use serde_json::json;

use crate::{TestApp, caller};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_wrong_passwords_in_a_row_are_mostly_refused_and_the_address_is_counted_too() {
    let app = TestApp::spawn().await;
    caller(&app, "ada@example.com").await;
    let auth = app.anonymous().auth();
    let mut refused = 0;
    for _ in 0..30 {
        let response = auth.try_login("ada@example.com", "wrong password").await;
        match response.status().as_u16() {
            401 => {}
            429 => {
                assert!(response.headers().contains_key("retry-after"));
                let problem = response.problem(429);
                assert_eq!(problem["code"], "too_many_attempts");
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(refused > 15, "only {refused} of 30 refused");

    // Guessing another account from the same address: the address has its own count.
    caller(&app, "bob@example.com").await;
    let mut bob_refused = 0;
    for _ in 0..15 {
        let response = auth.try_login("bob@example.com", "wrong password").await;
        if response.status() == 429 {
            bob_refused += 1;
        }
    }
    assert!(bob_refused > 0, "the address was never refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_resets_the_address_so_the_owner_gets_back_in() {
    let app = TestApp::spawn().await;
    caller(&app, "ada@example.com").await;
    caller(&app, "bob@example.com").await;
    let auth = app.anonymous().auth();
    // A few failures for ada, under the email's budget, then her success.
    for _ in 0..5 {
        let response = auth.try_login("ada@example.com", "wrong password").await;
        assert_eq!(response.status(), 401);
    }
    auth.login("ada@example.com", "correct horse").await;
    // The address starts afresh: bob's mistakes are counted from zero.
    for _ in 0..9 {
        let response = auth.try_login("bob@example.com", "wrong password").await;
        assert_eq!(response.status(), 401);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_guesses_and_sign_ups_are_throttled_per_address() {
    let app = TestApp::spawn().await;
    for (what, method, path, body) in [
        (
            "heartbeat",
            reqwest::Method::GET,
            "/api/v1/heartbeat/guessed-token".to_string(),
            None,
        ),
        (
            "invitation",
            reqwest::Method::GET,
            format!("/api/v1/invitations/{}", "A".repeat(43)),
            None,
        ),
        (
            "invitation accept",
            reqwest::Method::POST,
            format!("/api/v1/invitations/{}/accept", "B".repeat(43)),
            Some(json!({"name": "Eve", "password": "guessing hard"})),
        ),
        (
            "refresh",
            reqwest::Method::POST,
            "/api/v1/auth/refresh".to_string(),
            Some(json!({"refresh_token": "guessed"})),
        ),
    ] {
        let mut refused = 0;
        for _ in 0..60 {
            let response = app
                .anonymous()
                .request(method.clone(), &path)
                .body(body.clone())
                .send()
                .await;
            if response.status() == 429 {
                assert!(response.headers().contains_key("retry-after"), "{what}");
                refused += 1;
            } else {
                assert!(
                    response.status().is_client_error(),
                    "{what}: {}",
                    response.status()
                );
            }
        }
        assert!(refused >= 20, "{what}: {refused} of 60 refused");
    }
    let mut refused = 0;
    let auth = app.anonymous().auth();
    for n in 0..40 {
        let response = auth
            .try_signup(json!({"email": format!("u{n}@example.com"), "password": "correct horse", "name": "U"}))
            .await;
        if response.status() == 429 {
            refused += 1;
        }
    }
    assert!(refused >= 5, "sign-ups: {refused} of 40 refused");
}
