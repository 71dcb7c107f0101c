//! Invitations over HTTP, with the email received by a real SMTP server: the whole flow from the
//! email alone, the rules (410, 403, 409), resend and revoke, concurrent accepts, and other
//! organizations' invitations.

use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::{Answer, Spawn, TestApp, caller, jwt_claims as claims, new_org};

/// Accepts invitation `token` signing up as `name`.
async fn accept_signing_up(app: &TestApp, token: &str, name: &str) -> Answer {
    app.anonymous()
        .invitation(token)
        .try_accept_signing_up(name, "a long passphrase")
        .await
}

/// Sign up → create an organization with a monitor → invite → accept from the email → switch →
/// see the organization's monitors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invited_user_joins_from_the_email_and_sees_the_monitors() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;
    app.as_(&ada)
        .org(&org)
        .monitors()
        .create(json!({"name": "Home", "kind": "http", "target": "https://example.com"}))
        .await;

    // Bob has an account and an organization of his own, which is his default.
    let bob = caller(&app, "bob@example.com").await;
    let own = new_org(&app, &bob, "Bob's").await;
    app.as_(&bob).user().set_default_organization(&own).await;

    let invitations = app.as_(&ada).organizations().invitations(&org);
    let invitation = invitations.invite("bob@example.com", "member").await;
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

    let preview = app.anonymous().invitation(&token).preview().await;
    assert_eq!(preview["organization"]["name"], "Acme");
    assert_eq!(preview["email"], "bob@example.com");

    let accepted = app.as_(&bob).invitation(&token).accept().await;
    assert_eq!(accepted["membership"]["role"], "member");
    assert_eq!(accepted["organization"]["id"], org.as_str());
    assert_eq!(
        claims(accepted["access_token"].as_str().unwrap())["org_id"],
        org.as_str()
    );
    // His default organization stays his own.
    assert_eq!(accepted["user"]["default_org_id"], own.as_str());

    // Bob switches to Acme with his original token and sees its monitor.
    let switched = app.as_(&bob).organizations().switch(&org).await;
    let acme_token = switched["access_token"].as_str().unwrap();
    let monitors = app.as_(acme_token).monitors().list().await;
    assert_eq!(monitors["items"][0]["name"], "Home");

    // Used: the same token is gone, and the invitation is no longer pending.
    let again = app.as_(&bob).invitation(&token).try_accept().await;
    assert_eq!(again.problem(410)["code"], "gone");
    let pending = invitations.list().await;
    assert_eq!(pending["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_signs_up_while_accepting() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;
    let invitations = app.as_(&ada).organizations().invitations(&org);
    invitations.invite("Carol@Example.com", "viewer").await;
    let token = app.invitation_token("Carol@Example.com", 0).await;

    let invitation = app.anonymous().invitation(&token);
    let no_body = invitation.try_accept().await;
    assert_eq!(no_body.problem(401)["code"], "unauthorized");
    let weak = invitation.try_accept_signing_up("Carol", "short").await;
    assert_eq!(weak.status(), 422);

    let accepted = accept_signing_up(&app, &token, "Carol").await.expect(200);
    assert_eq!(accepted["user"]["email"], "Carol@Example.com");
    assert_eq!(accepted["user"]["default_org_id"], org.as_str());
    assert_eq!(accepted["membership"]["role"], "viewer");
    let access = accepted["access_token"].as_str().unwrap();
    assert_eq!(claims(access)["org_id"], org.as_str());
    assert_eq!(app.as_(access).monitors().try_list().await.status(), 200);

    // The account exists now: her login lands in Acme.
    let login = app
        .anonymous()
        .auth()
        .login("carol@example.com", "a long passphrase")
        .await;
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
    let orgs = app.as_(&ada).organizations();
    let by_ada = orgs.invitations(&org);

    // Bob is a member already; Eve is invited as an admin and joins.
    orgs.members(&org).add(bob.id, "member").await;
    let member = by_ada.try_invite("BOB@example.com", "viewer").await;
    assert_eq!(member.problem(409)["code"], "conflict");
    let bad = by_ada.try_invite("not an email", "viewer").await;
    assert_eq!(bad.problem(422)["field"], "email");
    let by_bob = app.as_(&bob).organizations().invitations(&org);
    let by_member = by_bob.try_invite("x@example.com", "viewer").await;
    assert_eq!(by_member.problem(403)["code"], "forbidden");
    let listed_by_member = by_bob.try_list().await;
    assert_eq!(listed_by_member.problem(403)["code"], "forbidden");

    by_ada.invite("eve@example.com", "admin").await;
    let twice = by_ada.try_invite("eve@example.com", "admin").await;
    assert_eq!(twice.problem(409)["code"], "conflict");
    let eve_token = app.invitation_token("eve@example.com", 0).await;

    // Someone else, signed in, cannot take Eve's invitation.
    let mismatch = app.as_(&bob).invitation(&eve_token).try_accept().await;
    assert_eq!(mismatch.problem(403)["code"], "email_mismatch");
    app.as_(&eve).invitation(&eve_token).accept().await;

    // An admin invites, but only an owner invites owners.
    let eve_token_org = {
        let switched = app.as_(&eve).organizations().switch(&org).await;
        switched["access_token"].as_str().unwrap().to_string()
    };
    let owner_by_admin = app
        .as_(&eve_token_org)
        .organizations()
        .invitations(&org)
        .try_invite("o@example.com", "owner")
        .await;
    assert_eq!(owner_by_admin.problem(403)["code"], "forbidden");

    // Resend: a new token in a new email; the old one is gone.
    let by_eve = app.as_(&eve).organizations().invitations(&org);
    let created = by_eve.invite("dan@example.com", "member").await;
    let iid = created["id"].as_str().unwrap();
    let first = app.invitation_token("dan@example.com", 0).await;
    by_eve.resend(iid).await;
    let second = app.invitation_token("dan@example.com", 1).await;
    assert_ne!(first, second);
    let old = accept_signing_up(&app, &first, "Dan").await;
    assert_eq!(old.problem(410)["code"], "gone");

    // Revoke: the current token is gone too, and the invitation leaves the list.
    by_eve.revoke(iid).await;
    let after_revoke = accept_signing_up(&app, &second, "Dan").await;
    assert_eq!(after_revoke.problem(410)["code"], "gone");
    let again = by_eve.try_revoke(iid).await;
    assert_eq!(again.problem(404)["code"], "not_found");

    // Expired: 410, and listed with its past expiry until resent.
    let created = by_ada.invite("fay@example.com", "member").await;
    let fay = app.invitation_token("fay@example.com", 0).await;
    sqlx::query(
        "UPDATE orgs.invitations SET expires_at = now() - interval '1 minute' WHERE id = $1",
    )
    .bind(created["id"].as_str().unwrap().parse::<Uuid>().unwrap())
    .execute(tenantry_tenancy::Operator::new(&app.tenancy).control())
    .await
    .unwrap();
    let expired = accept_signing_up(&app, &fay, "Fay").await;
    assert_eq!(expired.problem(410)["code"], "gone");
    let listed = by_ada.list().await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed["items"][0]["email"], "fay@example.com");
    // Inviting the address again replaces the expired invitation.
    by_ada.invite("fay@example.com", "member").await;

    // A token that never existed.
    let unknown = accept_signing_up(&app, &"A".repeat(43), "Nobody").await;
    assert_eq!(unknown.problem(404)["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_accepts_make_one_membership() {
    // A runtime pool smaller than the crowd: no request may hold one of its connections while
    // it waits for another (the invitation's preview once held its connection through the
    // organization's lookup, and eight accepts at once then waited out the acquire timeout).
    let app = TestApp::spawn_with(Spawn {
        runtime_max: Some(3),
        ..Spawn::default()
    })
    .await;
    let ada = caller(&app, "ada@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;
    let orgs = app.as_(&ada).organizations();
    let invitations = orgs.invitations(&org);

    // Signed in, eight times at once.
    let bob = caller(&app, "bob@example.com").await;
    invitations.invite("bob@example.com", "member").await;
    let token = app.invitation_token("bob@example.com", 0).await;
    let invitation = app.as_(&bob).invitation(&token);
    let attempts = (0..8).map(|_| invitation.try_accept());
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
    invitations.invite("cy@example.com", "member").await;
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

    let members = orgs.members(&org).list().await;
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
        let adas = app.as_(&ada).organizations().invitations(&org);
        let created = adas.invite(&email, "member").await;
        let iid = created["id"].as_str().unwrap();
        app.invitation_token(&email, 0).await;
        let missing = Uuid::new_v4();

        let reference = app
            .as_(&mallory)
            .organizations()
            .invitations(&own)
            .try_revoke(missing)
            .await
            .problem(404);
        let (theirs, ours) = {
            let orgs = app.as_(&mallory).org(&own).organizations();
            (orgs.invitations(&org), orgs.invitations(&own))
        };
        let attempts = [
            ours.try_revoke(iid).await,
            ours.try_resend(iid).await,
            theirs.try_list().await,
            theirs.try_invite("m@example.com", "owner").await,
            theirs.try_revoke(iid).await,
            theirs.try_resend(iid).await,
        ];
        for response in attempts {
            assert_eq!(response.problem(404), reference, "{response} ({tier})");
        }
        // Still pending, untouched.
        let listed = adas.list().await;
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
    let invitations = app.as_(&ada).organizations().invitations(&org);
    invitations.invite("bob@example.com", "member").await;
    let token = app.invitation_token("bob@example.com", 0).await;
    for path in [
        format!("/invitations/{token}"),
        "/invitations/unknown".to_string(),
    ] {
        let page = app.anonymous().request(Method::GET, &path).send().await;
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
        let body = page.text();
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
