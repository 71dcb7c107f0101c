//! Members and roles over HTTP: adding, role changes, the last owner, removal, leaving,
//! switching, the default organization, deleting an organization.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::{TestApp, caller, jwt_claims as claims, new_org};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_change_and_the_last_owner_is_protected() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let bob = caller(&app, "bob@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;
    let by_ada = app.as_(&ada).organizations().members(&org);
    let by_bob = app.as_(&bob).organizations().members(&org);

    by_ada.add(bob.id, "admin").await;
    let twice = by_ada.try_add(bob.id, "admin").await;
    assert_eq!(twice.problem(409)["code"], "conflict");
    let listed = by_bob.list().await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);

    // An admin cannot make owners, nor touch one.
    let refused = by_bob.try_change_role(bob.id, "owner").await;
    assert_eq!(refused.problem(403)["code"], "forbidden");
    let refused = by_bob.try_remove(ada.id).await;
    assert_eq!(refused.problem(403)["code"], "forbidden");
    // The last owner can neither be demoted nor leave.
    let last = by_ada.try_change_role(ada.id, "admin").await;
    assert_eq!(last.problem(409)["code"], "conflict");
    let leave = app.as_(&ada).organizations().try_leave(&org).await;
    assert_eq!(leave.problem(409)["code"], "conflict");

    // With a second owner, the first can step down.
    by_ada.change_role(bob.id, "owner").await;
    by_ada.change_role(ada.id, "member").await;
    let bad_role = by_bob.try_change_role(ada.id, "god").await;
    assert_eq!(bad_role.problem(422)["code"], "validation_failed");
    let unknown = by_bob.try_change_role(Uuid::new_v4(), "viewer").await;
    assert_eq!(unknown.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_owners_demoting_each_other_at_once_leave_one_owner() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let bob = caller(&app, "bob@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;
    let by_ada = app.as_(&ada).organizations().members(&org);
    let by_bob = app.as_(&bob).organizations().members(&org);
    by_ada.add(bob.id, "member").await;
    by_ada.change_role(bob.id, "owner").await;
    let (a, b) = tokio::join!(
        by_ada.try_change_role(bob.id, "admin"),
        by_bob.try_change_role(ada.id, "admin"),
    );
    let statuses = [a.status().as_u16(), b.status().as_u16()];
    assert!(statuses.contains(&200), "{statuses:?}");
    let listed = by_ada.list().await;
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
    let members = app.as_(&ada).organizations().members(&org);
    members.add(bob.id, "member").await;
    let switched = app.as_(&bob).organizations().switch(&org).await;
    let bob_in_org = switched["access_token"].as_str().unwrap().to_string();
    assert_eq!(claims(&bob_in_org)["org_id"], org);
    let monitors = app.as_(&bob_in_org).monitors();
    assert_eq!(monitors.try_list().await.status(), 200);

    members.remove(bob.id).await;
    assert_eq!(monitors.try_list().await.status(), 404);
    let switch = app.as_(&bob).organizations().try_switch(&org).await;
    assert_eq!(switch.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_starts_in_the_default_organization() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;
    let stranger = new_org(&app, &caller(&app, "eve@example.com").await, "Eve's").await;
    let refused = app
        .as_(&ada)
        .user()
        .try_set_default_organization(&stranger)
        .await;
    assert_eq!(refused.problem(422)["field"], "org_id");
    let set = app.as_(&ada).user().set_default_organization(&org).await;
    assert_eq!(set["default_org_id"], org);
    let login = app
        .anonymous()
        .auth()
        .login("ada@example.com", "correct horse")
        .await;
    let token = login["access_token"].as_str().unwrap();
    assert_eq!(claims(token)["org_id"], org);
    assert_eq!(app.as_(token).monitors().try_list().await.status(), 200);

    // Bob made Acme his default, then was removed: his next login starts nowhere.
    let bob = caller(&app, "bob@example.com").await;
    let members = app.as_(&ada).organizations().members(&org);
    members.add(bob.id, "member").await;
    app.as_(&bob).user().set_default_organization(&org).await;
    members.remove(bob.id).await;
    let login = app
        .anonymous()
        .auth()
        .login("bob@example.com", "correct horse")
        .await;
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
    let orgs = app.as_(&ada).organizations();
    orgs.members(&org).add(bob.id, "admin").await;
    let refused = app.as_(&bob).organizations().try_delete(&org).await;
    assert_eq!(refused.problem(403)["code"], "forbidden");

    orgs.delete(&org).await;
    assert_eq!(
        orgs.try_get(&org).await.status(),
        404,
        "a soft-deleted organization is gone for its members"
    );
    let wrong = orgs.try_hard_delete(&org, "nope").await;
    assert_eq!(wrong.problem(422)["field"], "confirm");
    orgs.hard_delete(&org, "doomed").await;
    assert_eq!(orgs.try_get(&org).await.status(), 404);
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
    let orgs = app.as_(&ada).organizations();
    orgs.members(&org).add(max.id, "member").await;

    let change = json!({"name": "Acme Inc", "slug": "acme-inc", "logo_url": "https://cdn.example.com/acme.png",
        "billing_email": "billing@acme.test", "settings": {"timezone": "Europe/Paris"}});
    let refused = app
        .as_(&max)
        .organizations()
        .try_update(&org, change.clone())
        .await;
    assert_eq!(refused.problem(403)["code"], "forbidden");
    let updated = orgs.update(&org, change).await;
    assert_eq!(
        (updated["name"].as_str(), updated["slug"].as_str()),
        (Some("Acme Inc"), Some("acme-inc"))
    );
    assert_eq!(updated["billing_email"], "billing@acme.test");
    assert_eq!(updated["settings"]["timezone"], "Europe/Paris");
    assert_eq!(orgs.try_get("acme-inc").await.status(), 200);
    assert_eq!(orgs.try_get("acme").await.status(), 404);

    // Only what is sent changes.
    let renamed = orgs.update(&org, json!({"name": "Acme"})).await;
    assert_eq!(
        (renamed["slug"].as_str(), renamed["billing_email"].as_str()),
        (Some("acme-inc"), Some("billing@acme.test"))
    );

    let taken = orgs.try_update(&org, json!({"slug": "taken"})).await;
    assert_eq!(taken.problem(409)["code"], "conflict");
    for (body, field) in [
        (json!({"billing_email": "nope"}), "billing_email"),
        (json!({"logo_url": "javascript:alert(1)"}), "logo_url"),
        (json!({"settings": [1, 2]}), "settings"),
        (json!({"name": " "}), "name"),
    ] {
        let bad = orgs.try_update(&org, body).await;
        assert_eq!(bad.problem(422)["field"], field);
    }
    let stranger = caller(&app, "eve@example.com").await;
    let theirs = app
        .as_(&stranger)
        .organizations()
        .try_update(&org, json!({"name": "x"}))
        .await;
    assert_eq!(theirs.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_is_added_as_owner_and_an_added_member_is_told_by_email() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let bob = caller(&app, "bob@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;
    let members = app.as_(&ada).organizations().members(&org);
    let problem = members.try_add(bob.id, "owner").await.problem(422);
    assert_eq!(problem["code"], "validation_failed");
    assert_eq!(problem["field"], "role");
    // Nothing changed: bob is no member, and was not told anything.
    let listed = members.list().await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    members.add(bob.id, "admin").await;
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
