//! Members and roles over HTTP: adding, role changes, the last owner, removal, leaving,
//! switching, the default organization, deleting an organization.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::{TestApp, caller, jwt_claims as claims, new_org, problem, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_change_and_the_last_owner_is_protected() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let bob = caller(&app, "bob@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;
    let members = format!("/api/v1/organizations/{org}/members");

    let added = send(
        &app,
        reqwest::Method::POST,
        &members,
        &ada.token,
        None,
        Some(json!({"user_id": bob.id, "role": "admin"})),
    )
    .await;
    assert_eq!(added.status(), 201);
    let twice = send(
        &app,
        reqwest::Method::POST,
        &members,
        &ada.token,
        None,
        Some(json!({"user_id": bob.id, "role": "admin"})),
    )
    .await;
    assert_eq!(problem(twice, 409).await["code"], "conflict");
    let listed: Value = send(&app, reqwest::Method::GET, &members, &bob.token, None, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);

    // An admin cannot make owners, nor touch one.
    let bob_path = format!("{members}/{}", bob.id);
    let ada_path = format!("{members}/{}", ada.id);
    let refused = send(
        &app,
        reqwest::Method::PATCH,
        &bob_path,
        &bob.token,
        None,
        Some(json!({"role": "owner"})),
    )
    .await;
    assert_eq!(problem(refused, 403).await["code"], "forbidden");
    let refused = send(
        &app,
        reqwest::Method::DELETE,
        &ada_path,
        &bob.token,
        None,
        None,
    )
    .await;
    assert_eq!(problem(refused, 403).await["code"], "forbidden");
    // The last owner can neither be demoted nor leave.
    let last = send(
        &app,
        reqwest::Method::PATCH,
        &ada_path,
        &ada.token,
        None,
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!(problem(last, 409).await["code"], "conflict");
    let leave = send(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/organizations/{org}/leave"),
        &ada.token,
        None,
        None,
    )
    .await;
    assert_eq!(problem(leave, 409).await["code"], "conflict");

    // With a second owner, the first can step down.
    let promoted = send(
        &app,
        reqwest::Method::PATCH,
        &bob_path,
        &ada.token,
        None,
        Some(json!({"role": "owner"})),
    )
    .await;
    assert_eq!(promoted.status(), 200);
    let stepped = send(
        &app,
        reqwest::Method::PATCH,
        &ada_path,
        &ada.token,
        None,
        Some(json!({"role": "member"})),
    )
    .await;
    assert_eq!(stepped.status(), 200);
    let bad_role = send(
        &app,
        reqwest::Method::PATCH,
        &ada_path,
        &bob.token,
        None,
        Some(json!({"role": "god"})),
    )
    .await;
    assert_eq!(problem(bad_role, 422).await["code"], "validation_failed");
    let unknown = send(
        &app,
        reqwest::Method::PATCH,
        &format!("{members}/{}", Uuid::new_v4()),
        &bob.token,
        None,
        Some(json!({"role": "viewer"})),
    )
    .await;
    assert_eq!(unknown.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_owners_demoting_each_other_at_once_leave_one_owner() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let bob = caller(&app, "bob@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;
    let members = format!("/api/v1/organizations/{org}/members");
    send(
        &app,
        reqwest::Method::POST,
        &members,
        &ada.token,
        None,
        Some(json!({"user_id": bob.id, "role": "member"})),
    )
    .await;
    let (bob_path, ada_path) = (
        format!("{members}/{}", bob.id),
        format!("{members}/{}", ada.id),
    );
    let promoted = send(
        &app,
        reqwest::Method::PATCH,
        &bob_path,
        &ada.token,
        None,
        Some(json!({"role": "owner"})),
    )
    .await;
    assert_eq!(promoted.status(), 200);
    let demote = json!({"role": "admin"});
    let (a, b) = tokio::join!(
        send(
            &app,
            reqwest::Method::PATCH,
            &bob_path,
            &ada.token,
            None,
            Some(demote.clone())
        ),
        send(
            &app,
            reqwest::Method::PATCH,
            &ada_path,
            &bob.token,
            None,
            Some(demote.clone())
        ),
    );
    let statuses = [a.status().as_u16(), b.status().as_u16()];
    assert!(statuses.contains(&200), "{statuses:?}");
    let listed: Value = send(&app, reqwest::Method::GET, &members, &ada.token, None, None)
        .await
        .json()
        .await
        .unwrap();
    let owners = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "owner")
        .count();
    assert_eq!(owners, 1, "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_loses_access_at_once() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let bob = caller(&app, "bob@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;
    let members = format!("/api/v1/organizations/{org}/members");
    send(
        &app,
        reqwest::Method::POST,
        &members,
        &ada.token,
        None,
        Some(json!({"user_id": bob.id, "role": "member"})),
    )
    .await;
    let switched: Value = send(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/organizations/{org}/switch"),
        &bob.token,
        None,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let bob_in_org = switched["access_token"].as_str().unwrap().to_string();
    assert_eq!(claims(&bob_in_org)["org_id"], org);
    assert_eq!(
        send(
            &app,
            reqwest::Method::GET,
            "/api/v1/monitors",
            &bob_in_org,
            None,
            None
        )
        .await
        .status(),
        200
    );

    let removed = send(
        &app,
        reqwest::Method::DELETE,
        &format!("{members}/{}", bob.id),
        &ada.token,
        None,
        None,
    )
    .await;
    assert_eq!(removed.status(), 204);
    assert_eq!(
        send(
            &app,
            reqwest::Method::GET,
            "/api/v1/monitors",
            &bob_in_org,
            None,
            None
        )
        .await
        .status(),
        404
    );
    let switch = send(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/organizations/{org}/switch"),
        &bob.token,
        None,
        None,
    )
    .await;
    assert_eq!(switch.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_starts_in_the_default_organization() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;
    let stranger = new_org(&app, &caller(&app, "eve@example.com").await, "Eve's").await;
    let refused = send(
        &app,
        reqwest::Method::PUT,
        "/api/v1/user/default-organization",
        &ada.token,
        None,
        Some(json!({"org_id": stranger})),
    )
    .await;
    assert_eq!(problem(refused, 422).await["field"], "org_id");
    let set = send(
        &app,
        reqwest::Method::PUT,
        "/api/v1/user/default-organization",
        &ada.token,
        None,
        Some(json!({"org_id": org})),
    )
    .await;
    assert_eq!(set.status(), 200);
    assert_eq!(set.json::<Value>().await.unwrap()["default_org_id"], org);
    let login: Value = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "ada@example.com", "password": "correct horse"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap();
    assert_eq!(claims(token)["org_id"], org);
    assert_eq!(
        send(
            &app,
            reqwest::Method::GET,
            "/api/v1/monitors",
            token,
            None,
            None
        )
        .await
        .status(),
        200
    );

    // Bob made Acme his default, then was removed: his next login starts nowhere.
    let bob = caller(&app, "bob@example.com").await;
    let members = format!("/api/v1/organizations/{org}/members");
    let body = json!({"user_id": bob.id, "role": "member"});
    send(
        &app,
        reqwest::Method::POST,
        &members,
        &ada.token,
        None,
        Some(body),
    )
    .await;
    let body = json!({"org_id": org});
    let path = "/api/v1/user/default-organization";
    let set = send(
        &app,
        reqwest::Method::PUT,
        path,
        &bob.token,
        None,
        Some(body),
    )
    .await;
    assert_eq!(set.status(), 200);
    let path = format!("{members}/{}", bob.id);
    let removed = send(&app, reqwest::Method::DELETE, &path, &ada.token, None, None).await;
    assert_eq!(removed.status(), 204);
    let login: Value = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "bob@example.com", "password": "correct horse"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(login["user"]["default_org_id"], Value::Null);
    assert_eq!(
        claims(login["access_token"].as_str().unwrap())["org_id"],
        Value::Null
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_owners_delete_and_a_hard_delete_needs_the_slug() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let bob = caller(&app, "bob@example.com").await;
    let org = new_org(&app, &ada, "Doomed").await;
    let path = format!("/api/v1/organizations/{org}");
    send(
        &app,
        reqwest::Method::POST,
        &format!("{path}/members"),
        &ada.token,
        None,
        Some(json!({"user_id": bob.id, "role": "admin"})),
    )
    .await;
    let refused = send(&app, reqwest::Method::DELETE, &path, &bob.token, None, None).await;
    assert_eq!(problem(refused, 403).await["code"], "forbidden");

    assert_eq!(
        send(&app, reqwest::Method::DELETE, &path, &ada.token, None, None)
            .await
            .status(),
        204
    );
    assert_eq!(
        send(&app, reqwest::Method::GET, &path, &ada.token, None, None)
            .await
            .status(),
        404,
        "a soft-deleted organization is gone for its members"
    );
    let wrong = send(
        &app,
        reqwest::Method::DELETE,
        &format!("{path}?hard=true"),
        &ada.token,
        None,
        Some(json!({"confirm": "nope"})),
    )
    .await;
    assert_eq!(problem(wrong, 422).await["field"], "confirm");
    let purged = send(
        &app,
        reqwest::Method::DELETE,
        &format!("{path}?hard=true"),
        &ada.token,
        None,
        Some(json!({"confirm": "doomed"})),
    )
    .await;
    assert_eq!(purged.status(), 204);
    assert_eq!(
        send(&app, reqwest::Method::GET, &path, &ada.token, None, None)
            .await
            .status(),
        404
    );
    let memberships: i64 =
        sqlx::query_scalar("SELECT count(*) FROM orgs.memberships WHERE org_id = $1")
            .bind(org.parse::<Uuid>().unwrap())
            .fetch_one(tenantry_tenancy::Operator::new(&app.tenancy).control())
            .await
            .unwrap();
    assert_eq!(memberships, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_update_the_profile_and_others_cannot() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let max = caller(&app, "max@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;
    new_org(&app, &ada, "Taken").await;
    let path = format!("/api/v1/organizations/{org}");
    send(
        &app,
        reqwest::Method::POST,
        &format!("{path}/members"),
        &ada.token,
        None,
        Some(json!({"user_id": max.id, "role": "member"})),
    )
    .await;

    let change = json!({"name": "Acme Inc", "slug": "acme-inc", "logo_url": "https://cdn.example.com/acme.png",
        "billing_email": "billing@acme.test", "settings": {"timezone": "Europe/Paris"}});
    let refused = send(
        &app,
        reqwest::Method::PUT,
        &path,
        &max.token,
        None,
        Some(change.clone()),
    )
    .await;
    assert_eq!(problem(refused, 403).await["code"], "forbidden");
    let updated = send(
        &app,
        reqwest::Method::PUT,
        &path,
        &ada.token,
        None,
        Some(change),
    )
    .await;
    assert_eq!(updated.status(), 200);
    let updated: Value = updated.json().await.unwrap();
    assert_eq!(
        (updated["name"].as_str(), updated["slug"].as_str()),
        (Some("Acme Inc"), Some("acme-inc"))
    );
    assert_eq!(updated["billing_email"], "billing@acme.test");
    assert_eq!(updated["settings"]["timezone"], "Europe/Paris");
    assert_eq!(
        send(
            &app,
            reqwest::Method::GET,
            "/api/v1/organizations/acme-inc",
            &ada.token,
            None,
            None
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        send(
            &app,
            reqwest::Method::GET,
            "/api/v1/organizations/acme",
            &ada.token,
            None,
            None
        )
        .await
        .status(),
        404
    );

    // Only what is sent changes.
    let renamed: Value = send(
        &app,
        reqwest::Method::PUT,
        &path,
        &ada.token,
        None,
        Some(json!({"name": "Acme"})),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        (renamed["slug"].as_str(), renamed["billing_email"].as_str()),
        (Some("acme-inc"), Some("billing@acme.test"))
    );

    let taken = send(
        &app,
        reqwest::Method::PUT,
        &path,
        &ada.token,
        None,
        Some(json!({"slug": "taken"})),
    )
    .await;
    assert_eq!(problem(taken, 409).await["code"], "conflict");
    for (body, field) in [
        (json!({"billing_email": "nope"}), "billing_email"),
        (json!({"logo_url": "javascript:alert(1)"}), "logo_url"),
        (json!({"settings": [1, 2]}), "settings"),
        (json!({"name": " "}), "name"),
    ] {
        let bad = send(
            &app,
            reqwest::Method::PUT,
            &path,
            &ada.token,
            None,
            Some(body),
        )
        .await;
        assert_eq!(problem(bad, 422).await["field"], field);
    }
    let stranger = caller(&app, "eve@example.com").await;
    assert_eq!(
        send(
            &app,
            reqwest::Method::PUT,
            &path,
            &stranger.token,
            None,
            Some(json!({"name": "x"}))
        )
        .await
        .status(),
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_is_added_as_owner_and_an_added_member_is_told_by_email() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let bob = caller(&app, "bob@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;
    let members = format!("/api/v1/organizations/{org}/members");
    let refused = send(
        &app,
        reqwest::Method::POST,
        &members,
        &ada.token,
        None,
        Some(json!({"user_id": bob.id, "role": "owner"})),
    )
    .await;
    let problem = crate::problem(refused, 422).await;
    assert_eq!(problem["code"], "validation_failed");
    assert_eq!(problem["field"], "role");
    // Nothing changed: bob is no member, and was not told anything.
    let listed: Value = send(&app, reqwest::Method::GET, &members, &ada.token, None, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    let added = send(
        &app,
        reqwest::Method::POST,
        &members,
        &ada.token,
        None,
        Some(json!({"user_id": bob.id, "role": "admin"})),
    )
    .await;
    assert_eq!(added.status(), 201);
    let messages = app
        .mail
        .wait_for(
            |m| {
                m.iter()
                    .any(|m| m.recipients.iter().any(|r| r == "bob@example.com"))
            },
            std::time::Duration::from_secs(30),
        )
        .await;
    let told: Vec<_> = messages
        .iter()
        .filter(|m| m.recipients.iter().any(|r| r == "bob@example.com"))
        .collect();
    assert_eq!(told.len(), 1);
    assert!(
        told[0].subject().unwrap().contains("Acme"),
        "{:?}",
        told[0].subject()
    );
    assert!(told[0].text().contains("as admin"), "{}", told[0].text());
}
