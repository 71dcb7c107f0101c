//! Invitations over HTTP, with the email received by a real SMTP server: the whole flow from the
//! email alone, the rules (410, 403, 409), resend and revoke, concurrent accepts, and other
//! organizations' invitations.

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{TestApp, caller, jwt_claims as claims, new_org, problem, send};

async fn invite(
    app: &TestApp,
    token: &str,
    org: &str,
    email: &str,
    role: &str,
) -> reqwest::Response {
    send(
        app,
        Method::POST,
        &format!("/api/v1/organizations/{org}/invitations"),
        token,
        None,
        Some(json!({"email": email, "role": role})),
    )
    .await
}

async fn accept_signed_in(app: &TestApp, invitation: &str, token: &str) -> reqwest::Response {
    send(
        app,
        Method::POST,
        &format!("/api/v1/invitations/{invitation}/accept"),
        token,
        None,
        None,
    )
    .await
}

async fn accept_signing_up(app: &TestApp, invitation: &str, name: &str) -> reqwest::Response {
    app.post(
        &format!("/api/v1/invitations/{invitation}/accept"),
        &json!({"name": name, "password": "a long passphrase"}),
    )
    .await
}

/// Sign up → create an organization with a monitor → invite → accept from the email → switch →
/// see the organization's monitors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invited_user_joins_from_the_email_and_sees_the_monitors() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;
    let monitor = send(
        &app,
        Method::POST,
        "/api/v1/monitors",
        &ada.token,
        Some(&org),
        Some(json!({"name": "Home", "kind": "http", "target": "https://example.com"})),
    )
    .await;
    assert_eq!(monitor.status(), 201);

    // Bob has an account and an organization of his own, which is his default.
    let bob = caller(&app, "bob@example.com").await;
    let own = new_org(&app, &bob, "Bob's").await;
    let set_default = send(
        &app,
        Method::PUT,
        "/api/v1/user/default-organization",
        &bob.token,
        None,
        Some(json!({"org_id": own})),
    )
    .await;
    assert_eq!(set_default.status(), 200);

    let invited = invite(&app, &ada.token, &org, "bob@example.com", "member").await;
    assert_eq!(invited.status(), 201);
    let invitation: Value = invited.json().await.unwrap();
    assert_eq!(invitation["email"], "bob@example.com");
    assert_eq!(invitation["role"], "member");
    assert!(invitation["expires_at"].is_string());

    let token = app.invitation_token("bob@example.com", 0).await;
    assert!(token.len() >= 22, "at least 128 bits: {token}");
    assert!(!invitation.to_string().contains(&token));
    let email = &app.mail.messages()[0];
    assert!(email.subject().unwrap().contains("Acme"));
    assert!(email.text().contains(&format!("Invitation token: {token}")));
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM orgs.invitations WHERE token_hash = sha256(convert_to($1, 'UTF8'))",
    )
    .bind(&token)
    .fetch_one(tenantry_tenancy::Operator::new(&app.tenancy).control())
    .await
    .unwrap();
    assert_eq!(stored, 1, "the token is stored as its SHA-256");

    let preview: Value = app
        .get(&format!("/api/v1/invitations/{token}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(preview["organization"]["name"], "Acme");
    assert_eq!(preview["email"], "bob@example.com");

    let accepted = accept_signed_in(&app, &token, &bob.token).await;
    assert_eq!(accepted.status(), 200);
    let accepted: Value = accepted.json().await.unwrap();
    assert_eq!(accepted["membership"]["role"], "member");
    assert_eq!(accepted["organization"]["id"], org.as_str());
    assert_eq!(
        claims(accepted["access_token"].as_str().unwrap())["org_id"],
        org.as_str()
    );
    // His default organization stays his own.
    assert_eq!(accepted["user"]["default_org_id"], own.as_str());

    // Bob switches to Acme with his original token and sees its monitor.
    let switched = send(
        &app,
        Method::POST,
        &format!("/api/v1/organizations/{org}/switch"),
        &bob.token,
        None,
        None,
    )
    .await;
    assert_eq!(switched.status(), 200);
    let switched: Value = switched.json().await.unwrap();
    let acme_token = switched["access_token"].as_str().unwrap();
    let monitors: Value = send(
        &app,
        Method::GET,
        "/api/v1/monitors",
        acme_token,
        None,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(monitors["items"][0]["name"], "Home");

    // Used: the same token is gone, and the invitation is no longer pending.
    let again = accept_signed_in(&app, &token, &bob.token).await;
    assert_eq!(problem(again, 410).await["code"], "gone");
    let pending: Value = send(
        &app,
        Method::GET,
        &format!("/api/v1/organizations/{org}/invitations"),
        &ada.token,
        None,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(pending["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_signs_up_while_accepting() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;
    assert_eq!(
        invite(&app, &ada.token, &org, "Carol@Example.com", "viewer")
            .await
            .status(),
        201
    );
    let token = app.invitation_token("Carol@Example.com", 0).await;

    let no_body = app
        .client
        .post(format!("{}/api/v1/invitations/{token}/accept", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(no_body, 401).await["code"], "unauthorized");
    let weak = app
        .post(
            &format!("/api/v1/invitations/{token}/accept"),
            &json!({"name": "Carol", "password": "short"}),
        )
        .await;
    assert_eq!(weak.status(), 422);

    let accepted = accept_signing_up(&app, &token, "Carol").await;
    assert_eq!(accepted.status(), 200);
    let accepted: Value = accepted.json().await.unwrap();
    assert_eq!(accepted["user"]["email"], "Carol@Example.com");
    assert_eq!(accepted["user"]["default_org_id"], org.as_str());
    assert_eq!(accepted["membership"]["role"], "viewer");
    let access = accepted["access_token"].as_str().unwrap();
    assert_eq!(claims(access)["org_id"], org.as_str());
    assert_eq!(
        send(&app, Method::GET, "/api/v1/monitors", access, None, None)
            .await
            .status(),
        200
    );

    // The account exists now: her login lands in Acme.
    let login: Value = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "carol@example.com", "password": "a long passphrase"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        claims(login["access_token"].as_str().unwrap())["org_id"],
        org.as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_follow_the_rules() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let bob = caller(&app, "bob@example.com").await;
    let eve = caller(&app, "eve@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;
    let path = format!("/api/v1/organizations/{org}/invitations");

    // Bob is a member already; Eve is invited as an admin and joins.
    send(
        &app,
        Method::POST,
        &format!("/api/v1/organizations/{org}/members"),
        &ada.token,
        None,
        Some(json!({"user_id": bob.id, "role": "member"})),
    )
    .await;
    let member = invite(&app, &ada.token, &org, "BOB@example.com", "viewer").await;
    assert_eq!(problem(member, 409).await["code"], "conflict");
    let bad = invite(&app, &ada.token, &org, "not an email", "viewer").await;
    assert_eq!(problem(bad, 422).await["field"], "email");
    let by_member = invite(&app, &bob.token, &org, "x@example.com", "viewer").await;
    assert_eq!(problem(by_member, 403).await["code"], "forbidden");
    let listed_by_member = send(&app, Method::GET, &path, &bob.token, None, None).await;
    assert_eq!(problem(listed_by_member, 403).await["code"], "forbidden");

    assert_eq!(
        invite(&app, &ada.token, &org, "eve@example.com", "admin")
            .await
            .status(),
        201
    );
    let twice = invite(&app, &ada.token, &org, "eve@example.com", "admin").await;
    assert_eq!(problem(twice, 409).await["code"], "conflict");
    let eve_token = app.invitation_token("eve@example.com", 0).await;

    // Someone else, signed in, cannot take Eve's invitation.
    let mismatch = accept_signed_in(&app, &eve_token, &bob.token).await;
    assert_eq!(problem(mismatch, 403).await["code"], "email_mismatch");
    assert_eq!(
        accept_signed_in(&app, &eve_token, &eve.token)
            .await
            .status(),
        200
    );

    // An admin invites, but only an owner invites owners.
    let eve_token_org = {
        let switched: Value = send(
            &app,
            Method::POST,
            &format!("/api/v1/organizations/{org}/switch"),
            &eve.token,
            None,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
        switched["access_token"].as_str().unwrap().to_string()
    };
    let owner_by_admin = invite(&app, &eve_token_org, &org, "o@example.com", "owner").await;
    assert_eq!(problem(owner_by_admin, 403).await["code"], "forbidden");

    // Resend: a new token in a new email; the old one is gone.
    let created: Value = invite(&app, &eve.token, &org, "dan@example.com", "member")
        .await
        .json()
        .await
        .unwrap();
    let iid = created["id"].as_str().unwrap();
    let first = app.invitation_token("dan@example.com", 0).await;
    let resent = send(
        &app,
        Method::POST,
        &format!("{path}/{iid}/resend"),
        &eve.token,
        None,
        None,
    )
    .await;
    assert_eq!(resent.status(), 200);
    let second = app.invitation_token("dan@example.com", 1).await;
    assert_ne!(first, second);
    let old = accept_signing_up(&app, &first, "Dan").await;
    assert_eq!(problem(old, 410).await["code"], "gone");

    // Revoke: the current token is gone too, and the invitation leaves the list.
    let revoked = send(
        &app,
        Method::DELETE,
        &format!("{path}/{iid}"),
        &eve.token,
        None,
        None,
    )
    .await;
    assert_eq!(revoked.status(), 204);
    let after_revoke = accept_signing_up(&app, &second, "Dan").await;
    assert_eq!(problem(after_revoke, 410).await["code"], "gone");
    let again = send(
        &app,
        Method::DELETE,
        &format!("{path}/{iid}"),
        &eve.token,
        None,
        None,
    )
    .await;
    assert_eq!(problem(again, 404).await["code"], "not_found");

    // Expired: 410, and listed with its past expiry until resent.
    let created: Value = invite(&app, &ada.token, &org, "fay@example.com", "member")
        .await
        .json()
        .await
        .unwrap();
    let fay = app.invitation_token("fay@example.com", 0).await;
    sqlx::query(
        "UPDATE orgs.invitations SET expires_at = now() - interval '1 minute' WHERE id = $1",
    )
    .bind(created["id"].as_str().unwrap().parse::<Uuid>().unwrap())
    .execute(tenantry_tenancy::Operator::new(&app.tenancy).control())
    .await
    .unwrap();
    let expired = accept_signing_up(&app, &fay, "Fay").await;
    assert_eq!(problem(expired, 410).await["code"], "gone");
    let listed: Value = send(&app, Method::GET, &path, &ada.token, None, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed["items"][0]["email"], "fay@example.com");
    // Inviting the address again replaces the expired invitation.
    assert_eq!(
        invite(&app, &ada.token, &org, "fay@example.com", "member")
            .await
            .status(),
        201
    );

    // A token that never existed.
    let unknown = accept_signing_up(&app, &"A".repeat(43), "Nobody").await;
    assert_eq!(problem(unknown, 404).await["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_accepts_make_one_membership() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;

    // Signed in, eight times at once.
    let bob = caller(&app, "bob@example.com").await;
    invite(&app, &ada.token, &org, "bob@example.com", "member").await;
    let token = app.invitation_token("bob@example.com", 0).await;
    let attempts = (0..8).map(|_| accept_signed_in(&app, &token, &bob.token));
    let statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [200, 409, 410].contains(s)),
        "{statuses:?}"
    );

    // Signing up, eight times at once.
    invite(&app, &ada.token, &org, "cy@example.com", "member").await;
    let token = app.invitation_token("cy@example.com", 0).await;
    let names: Vec<String> = (0..8).map(|i| format!("Cy {i}")).collect();
    let attempts = names
        .iter()
        .map(|name| accept_signing_up(&app, &token, name));
    let statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [200, 409, 410].contains(s)),
        "{statuses:?}"
    );

    let members: Value = send(
        &app,
        Method::GET,
        &format!("/api/v1/organizations/{org}/members"),
        &ada.token,
        None,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let emails: Vec<&str> = members["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails.len(), 3, "{emails:?}");
    let users: i64 =
        sqlx::query_scalar("SELECT count(*) FROM identity.users WHERE email = 'cy@example.com'")
            .fetch_one(tenantry_tenancy::Operator::new(&app.tenancy).control())
            .await
            .unwrap();
    assert_eq!(users, 1);
}

/// Another organization's invitations: through the caller's own organization's path, or through
/// the other organization's path as a non-member, the same 404 as a missing one, in every tier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organizations_invitations_are_not_found() {
    use tenantry_tenancy::Isolation;

    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let mallory = caller(&app, "mallory@example.com").await;
    let own = new_org(&app, &mallory, "Mallory Inc").await;
    for tier in [Isolation::Shared, Isolation::Schema, Isolation::Database] {
        let org = crate::org_in(&app, &ada, &format!("Acme {tier}"), tier).await;
        let email = format!("x-{tier}@example.com");
        let created: Value = invite(&app, &ada.token, &org, &email, "member")
            .await
            .json()
            .await
            .unwrap();
        let iid = created["id"].as_str().unwrap();
        app.invitation_token(&email, 0).await;
        let missing = Uuid::new_v4();

        let reference = problem(
            send(
                &app,
                Method::DELETE,
                &format!("/api/v1/organizations/{own}/invitations/{missing}"),
                &mallory.token,
                None,
                None,
            )
            .await,
            404,
        )
        .await;
        let attempts = [
            (
                Method::DELETE,
                format!("/api/v1/organizations/{own}/invitations/{iid}"),
            ),
            (
                Method::POST,
                format!("/api/v1/organizations/{own}/invitations/{iid}/resend"),
            ),
            (
                Method::GET,
                format!("/api/v1/organizations/{org}/invitations"),
            ),
            (
                Method::POST,
                format!("/api/v1/organizations/{org}/invitations"),
            ),
            (
                Method::DELETE,
                format!("/api/v1/organizations/{org}/invitations/{iid}"),
            ),
            (
                Method::POST,
                format!("/api/v1/organizations/{org}/invitations/{iid}/resend"),
            ),
        ];
        for (method, path) in attempts {
            let body = (method == Method::POST && path.ends_with("/invitations"))
                .then(|| json!({"email": "m@example.com", "role": "owner"}));
            let response = send(
                &app,
                method.clone(),
                &path,
                &mallory.token,
                Some(&own),
                body,
            )
            .await;
            assert_eq!(
                problem(response, 404).await,
                reference,
                "{method} {path} ({tier})"
            );
        }
        // Still pending, untouched.
        let listed: Value = send(
            &app,
            Method::GET,
            &format!("/api/v1/organizations/{org}/invitations"),
            &ada.token,
            None,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
        assert_eq!(listed["items"][0]["id"], iid);
        assert_eq!(
            listed["items"][0]["sent_at"], created["sent_at"],
            "not resent"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_invitation_page_cannot_be_framed_leaks_no_token_and_runs_only_this_servers_script() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;
    assert_eq!(
        invite(&app, &ada.token, &org, "bob@example.com", "member")
            .await
            .status(),
        201
    );
    let token = app.invitation_token("bob@example.com", 0).await;
    for path in [
        format!("/invitations/{token}"),
        "/invitations/unknown".to_string(),
    ] {
        let page = app.get(&path).await;
        let headers = page.headers().clone();
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["referrer-policy"], "same-origin", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        let csp = headers["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        let body = page.text().await.unwrap();
        // No inline script or style: the page's script and sheet come from this server.
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert_eq!(
            body.matches("<script").count(),
            body.matches("<script src=\"/static/").count()
        );
        assert!(!body.contains("<style") && !body.contains(" style=\""));
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{body}"
        );
    }
}
