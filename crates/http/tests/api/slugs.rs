//! A slug an organization lets go of (renamed away, or purged) is reserved for 30 days: nobody
//! else gets it meanwhile (`409`), the organization that renamed away may take it back, and after
//! 30 days it is free again.

use serde_json::json;
use sqlx::Connection as _;

use crate::{Answer, TestApp, caller};

async fn create(app: &TestApp, token: &str, slug: &str) -> Answer {
    let body = json!({"name": format!("Org {slug}"), "slug": slug});
    app.as_(token).organizations().try_create(body).await
}

async fn rename(app: &TestApp, token: &str, id: &str, slug: &str) -> Answer {
    let body = json!({"slug": slug});
    app.as_(token).organizations().try_update(id, body).await
}

/// Ages the reservation of `slug` by `days`.
async fn age(app: &TestApp, slug: &str, days: i32) {
    let mut conn = tenantry_testkit::superuser_conn(app.tenancy.control_database()).await;
    sqlx::query(
        "UPDATE control.released_slugs SET released_at = released_at - make_interval(days => $2)
         WHERE slug = $1",
    )
    .bind(slug)
    .bind(days)
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_slug_is_reserved_for_30_days() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let bob = caller(&app, "bob@example.com").await;
    let acme = create(&app, &ada.token, "acme").await.expect(201);
    let acme_id = acme["id"].as_str().unwrap().to_string();

    // Renamed away: nobody else may take it, by creating or by renaming.
    assert_eq!(
        rename(&app, &ada.token, &acme_id, "acme-labs")
            .await
            .status(),
        200
    );
    let taken = create(&app, &bob.token, "acme").await;
    assert_eq!(taken.status(), 409);
    let problem = taken.json();
    assert_eq!(problem["code"], "conflict");
    assert!(
        problem["detail"].as_str().unwrap().contains("30 days"),
        "{problem}"
    );
    let bobs = create(&app, &bob.token, "bob-co").await.expect(201);
    let bobs_id = bobs["id"].as_str().unwrap().to_string();
    assert_eq!(
        rename(&app, &bob.token, &bobs_id, "acme").await.status(),
        409
    );
    // The organization that let it go takes it back.
    assert_eq!(
        rename(&app, &ada.token, &acme_id, "acme").await.status(),
        200
    );

    // Purged: reserved too, for everyone.
    let orgs = app.as_(&ada).organizations();
    orgs.hard_delete(&acme_id, "acme").await;
    assert_eq!(create(&app, &bob.token, "acme").await.status(), 409);
    assert_eq!(create(&app, &ada.token, "acme").await.status(), 409);

    // 29 days on it is still reserved; after 30 it is free.
    age(&app, "acme", 29).await;
    assert_eq!(create(&app, &bob.token, "acme").await.status(), 409);
    age(&app, "acme", 2).await;
    let created = create(&app, &bob.token, "acme").await;
    assert_eq!(created.status(), 201);
}
