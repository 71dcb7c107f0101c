//! Sign-up, login, refresh with rotation and reuse detection, logout, the caller and the JWKS.

use serde_json::{Value, json};

use crate::{TestApp, problem};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_returns_the_user_and_tokens_that_work() {
    let app = TestApp::spawn().await;
    let body = app.signup("ada@example.com").await;
    assert_eq!(body["user"]["email"], "ada@example.com");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body["user"].get("password_hash").is_none());
    let me = app
        .get_as("/api/v1/user", body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["id"], body["user"]["id"]);
    assert_eq!(me["default_org_id"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_email_is_a_conflict_and_bad_input_names_the_field() {
    let app = TestApp::spawn().await;
    app.signup("bob@example.com").await;
    let taken = app
        .post(
            "/api/v1/auth/signup",
            &json!({"email": "BOB@example.com", "password": "another pw", "name": "Bob"}),
        )
        .await;
    assert_eq!(problem(taken, 409).await["code"], "conflict");

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
        let response = app.post("/api/v1/auth/signup", &body).await;
        let problem = problem(response, 422).await;
        assert_eq!(problem["code"], "validation_failed");
        assert_eq!(problem["field"], field, "{problem}");
    }
    let malformed = app
        .client
        .post(format!("{}/api/v1/auth/signup", app.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(malformed, 400).await["code"], "bad_request");
    let too_large = app
        .client
        .post(format!("{}/api/v1/auth/signup", app.base))
        .header("content-type", "application/json")
        .body(format!(
            "{{\"email\": \"{}\"}}",
            "a".repeat(1024 * 1024 + 10)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(too_large, 413).await["code"], "payload_too_large");
    // A route reading the raw body (accepting an invitation) answers the same way.
    let raw = app
        .client
        .post(format!(
            "{}/api/v1/invitations/{}/accept",
            app.base,
            "A".repeat(43)
        ))
        .header("content-type", "application/json")
        .body("a".repeat(1024 * 1024 + 10))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(raw, 413).await["code"], "payload_too_large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_fails_the_same_way_for_an_unknown_email_and_a_wrong_password() {
    let app = TestApp::spawn().await;
    app.signup("cy@example.com").await;
    let ok = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "cy@example.com", "password": "correct horse"}),
        )
        .await;
    assert_eq!(ok.status(), 200);
    let mut bodies = Vec::new();
    for (email, password) in [
        ("cy@example.com", "wrong horse"),
        ("nobody@example.com", "correct horse"),
    ] {
        let response = app
            .post(
                "/api/v1/auth/login",
                &json!({"email": email, "password": password}),
            )
            .await;
        let mut body = problem(response, 401).await;
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
    let refresh = |token: &Value| json!({"refresh_token": token.as_str().unwrap()});
    let second = app
        .post("/api/v1/auth/refresh", &refresh(&first["refresh_token"]))
        .await;
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(
        app.get_as("/api/v1/user", second["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );

    let reused = app
        .post("/api/v1/auth/refresh", &refresh(&first["refresh_token"]))
        .await;
    assert_eq!(problem(reused, 401).await["code"], "refresh_token_reused");
    let later = app
        .post("/api/v1/auth/refresh", &refresh(&second["refresh_token"]))
        .await;
    assert_eq!(problem(later, 401).await["code"], "invalid_token");
    let me = app
        .get_as("/api/v1/user", second["access_token"].as_str().unwrap())
        .await;
    assert_eq!(problem(me, 401).await["code"], "invalid_token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_the_session_and_requests_need_a_valid_token() {
    let app = TestApp::spawn().await;
    let session = app.signup("eve@example.com").await;
    let access = session["access_token"].as_str().unwrap();
    let out = app.post_as("/api/v1/auth/logout", access, &json!({})).await;
    assert_eq!(out.status(), 204);
    assert_eq!(
        problem(app.get_as("/api/v1/user", access).await, 401).await["code"],
        "invalid_token"
    );
    let refreshed = app
        .post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": session["refresh_token"]}),
        )
        .await;
    assert_eq!(refreshed.status(), 401);
    assert_eq!(
        problem(app.get("/api/v1/user").await, 401).await["code"],
        "unauthorized"
    );
    assert_eq!(
        problem(app.get_as("/api/v1/user", "garbage").await, 401).await["code"],
        "invalid_token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jwks_publishes_the_key_that_signs_access_tokens() {
    let app = TestApp::spawn().await;
    let session = app.signup("fay@example.com").await;
    let jwks: Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
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
