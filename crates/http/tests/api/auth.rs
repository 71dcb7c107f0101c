//! Sign-up, login, refresh with rotation and reuse detection, logout, the caller and the JWKS.

use reqwest::Method;
use serde_json::{Value, json};

use crate::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_returns_the_user_and_tokens_that_work() {
    let app = TestApp::spawn().await;
    let body = app.signup("ada@example.com").await;
    assert_eq!(body["user"]["email"], "ada@example.com");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body["user"].get("password_hash").is_none());
    let me = app
        .as_(body["access_token"].as_str().unwrap())
        .user()
        .get()
        .await;
    assert_eq!(me["id"], body["user"]["id"]);
    assert_eq!(me["default_org_id"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_email_is_a_conflict_and_bad_input_names_the_field() {
    let app = TestApp::spawn().await;
    app.signup("bob@example.com").await;
    let auth = app.anonymous().auth();
    let taken = auth
        .try_signup(json!({"email": "BOB@example.com", "password": "another pw", "name": "Bob"}))
        .await;
    assert_eq!(taken.problem(409)["code"], "conflict");

    for (body, field) in [
        (
            json!({"email": "not-an-email", "password": "long enough", "name": "X"}),
            "email",
        ),
        (
            json!({"email": "x@example.com", "password": "short", "name": "X"}),
            "password",
        ),
        (
            json!({"email": "x@example.com", "password": "long enough"}),
            "name",
        ),
    ] {
        let problem = auth.try_signup(body).await.problem(422);
        assert_eq!(problem["code"], "validation_failed");
        assert_eq!(problem["field"], field, "{problem}");
    }
    let raw = |path: String, body: String| {
        app.anonymous()
            .request(Method::POST, path)
            .header("content-type", "application/json")
            .raw_body(body)
    };
    let malformed = raw("/api/v1/auth/signup".into(), "{not json".into())
        .send()
        .await;
    assert_eq!(malformed.problem(400)["code"], "bad_request");
    let too_large = raw(
        "/api/v1/auth/signup".into(),
        format!("{{\"email\": \"{}\"}}", "a".repeat(1024 * 1024 + 10)),
    )
    .send()
    .await;
    assert_eq!(too_large.problem(413)["code"], "payload_too_large");
    // A route reading the raw body (accepting an invitation) answers the same way.
    let raw = raw(
        format!("/api/v1/invitations/{}/accept", "A".repeat(43)),
        "a".repeat(1024 * 1024 + 10),
    )
    .send()
    .await;
    assert_eq!(raw.problem(413)["code"], "payload_too_large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_fails_the_same_way_for_an_unknown_email_and_a_wrong_password() {
    let app = TestApp::spawn().await;
    app.signup("cy@example.com").await;
    let auth = app.anonymous().auth();
    auth.login("cy@example.com", "correct horse").await;
    let mut bodies = Vec::new();
    for (email, password) in [
        ("cy@example.com", "wrong horse"),
        ("nobody@example.com", "correct horse"),
    ] {
        let mut body = auth.try_login(email, password).await.problem(401);
        assert_eq!(body["code"], "invalid_credentials");
        body.as_object_mut().unwrap().remove("instance");
        bodies.push(body);
    }
    assert_eq!(bodies[0], bodies[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_used_twice_revokes_the_session() {
    let app = TestApp::spawn().await;
    let first = app.signup("dan@example.com").await;
    let auth = app.anonymous().auth();
    let second = auth.refresh(first["refresh_token"].as_str().unwrap()).await;
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    let me = app.as_(second["access_token"].as_str().unwrap()).user();
    assert_eq!(me.try_get().await.status(), 200);

    let reused = auth
        .try_refresh(first["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(reused.problem(401)["code"], "refresh_token_reused");
    let later = auth
        .try_refresh(second["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(later.problem(401)["code"], "invalid_token");
    assert_eq!(me.try_get().await.problem(401)["code"], "invalid_token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_the_session_and_requests_need_a_valid_token() {
    let app = TestApp::spawn().await;
    let session = app.signup("eve@example.com").await;
    let access = app.as_(session["access_token"].as_str().unwrap());
    access.auth().logout().await;
    assert_eq!(
        access.user().try_get().await.problem(401)["code"],
        "invalid_token"
    );
    let refreshed = app
        .anonymous()
        .auth()
        .try_refresh(session["refresh_token"].clone())
        .await;
    assert_eq!(refreshed.status(), 401);
    assert_eq!(
        app.anonymous().user().try_get().await.problem(401)["code"],
        "unauthorized"
    );
    assert_eq!(
        app.as_("garbage").user().try_get().await.problem(401)["code"],
        "invalid_token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jwks_publishes_the_key_that_signs_access_tokens() {
    let app = TestApp::spawn().await;
    let session = app.signup("fay@example.com").await;
    let jwks = app
        .anonymous()
        .request(Method::GET, "/.well-known/jwks.json")
        .send()
        .await
        .json();
    let token = session["access_token"].as_str().unwrap();
    let header = crate::jwt_part(token, 0);
    assert_eq!(header["alg"], "EdDSA");
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == header["kid"])
    );
}
