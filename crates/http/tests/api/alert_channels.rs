//! `/api/v1/alert-channels`: created, read, replaced, listed in pages and deleted; the webhook
//! secret shown in full once and as a hint after, never stored or audited in clear; bad input
//! refused naming the field and changing nothing; another organization's channels and monitors
//! unknown, in every tier.

use reqwest::Method;
use serde_json::{Value, json};
use tenantry_tenancy::Isolation;
use uuid::Uuid;

use crate::{Caller, TestApp, caller, new_org, org_in};

async fn monitor(app: &TestApp, who: &Caller, org: &str, name: &str) -> String {
    let body = json!({"name": name, "kind": "tcp", "target": "db.example.com:5432"});
    app.as_(who).org(org).monitors().create(body).await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn hint_of(secret: &str) -> String {
    let tail: String = secret.chars().skip(secret.chars().count() - 4).collect();
    format!("whsec_…{tail}")
}

/// Every alert channel row of the control database's shared schema, as text, read as the
/// superuser (past row-level security).
async fn stored_channels(app: &TestApp) -> String {
    use sqlx::Connection as _;
    let mut conn = tenantry_testkit::superuser_conn(app.tenancy.control_database()).await;
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT row_to_json(c)::text FROM shared.alert_channels c")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    conn.close().await.unwrap();
    rows.join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_channels_are_created_read_replaced_listed_and_deleted() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = new_org(&app, &ada, "Ada's").await;
    let api = monitor(&app, &ada, &org, "API").await;
    let in_org = app.as_(&ada).org(&org);
    let channels = in_org.alert_channels();

    // A webhook without a secret gets one, shown in full this once.
    let created = channels
        .create(json!({"name": "On call", "kind": "webhook", "url": "https://hooks.example.com/t"}))
        .await;
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 6 + 43,
        "{secret}"
    );
    assert_eq!(created["kind"], "webhook");
    assert_eq!(created["url"], "https://hooks.example.com/t");
    assert_eq!(created["email"], Value::Null);
    assert_eq!(created["monitor_ids"], json!([]));
    assert_eq!(created["all_monitors"], true);
    let id = created["id"].as_str().unwrap().to_string();

    // Read back: the secret as a hint only.
    let read = channels.get(&id).await;
    assert_eq!(read["secret"], hint_of(&secret));
    assert_eq!(read["name"], "On call");
    assert!(!stored_channels(&app).await.contains(&secret[6..]));

    // Replaced without a secret: kept, and still a hint.
    let replaced = channels
        .update(
            &id,
            json!({"name": "Pager", "kind": "webhook", "url": "https://hooks.example.com/p",
                    "monitor_ids": [api]}),
        )
        .await;
    assert_eq!(replaced["secret"], hint_of(&secret));
    assert_eq!(replaced["name"], "Pager");
    assert_eq!(replaced["monitor_ids"], json!([api]));
    assert_eq!(replaced["all_monitors"], false);
    // Replaced with a secret: shown in full in that response, a hint after.
    let chosen = "my-own-secret-0123456789";
    let rotated = channels
        .update(
            &id,
            json!({"name": "Pager", "kind": "webhook", "url": "https://hooks.example.com/p",
                    "secret": chosen}),
        )
        .await;
    assert_eq!(rotated["secret"], chosen);
    assert_eq!(rotated["all_monitors"], true);
    let read = channels.get(&id).await;
    assert_eq!(read["secret"], "…6789");
    assert!(!stored_channels(&app).await.contains(chosen));

    // An email channel: no url, no secret.
    let mail = channels
        .create(
            json!({"name": "Ops", "kind": "email", "email": " ops@example.com ",
                    "monitor_ids": [api, api]}),
        )
        .await;
    assert_eq!(
        (
            &mail["email"],
            &mail["url"],
            &mail["secret"],
            &mail["monitor_ids"]
        ),
        (
            &json!("ops@example.com"),
            &Value::Null,
            &Value::Null,
            &json!([api])
        )
    );
    // Turning the webhook into an email channel drops its secret; back to a webhook, a new one.
    let as_email = channels
        .update(
            &id,
            json!({"name": "Pager", "kind": "email", "email": "p@example.com"}),
        )
        .await;
    assert_eq!(
        (&as_email["secret"], &as_email["url"]),
        (&Value::Null, &Value::Null)
    );
    let back = channels
        .update(
            &id,
            json!({"name": "Pager", "kind": "webhook", "url": "http://10.0.0.1:9000/x"}),
        )
        .await;
    let new_secret = back["secret"].as_str().unwrap();
    assert!(new_secret.starts_with("whsec_") && new_secret.len() == 49);
    assert_ne!(new_secret, secret);

    // Listed in pages, oldest first.
    let first = channels.list_with("limit=1").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 1);
    assert_eq!(first["items"][0]["id"], id.as_str());
    assert_eq!(first["items"][0]["secret"], hint_of(new_secret));
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = channels
        .list_with(&format!("limit=1&cursor={cursor}"))
        .await;
    assert_eq!(second["items"][0]["id"], mail["id"]);
    assert_eq!(second["next_cursor"], Value::Null);

    // Deleted: gone, and a second delete is 404.
    channels.delete(&id).await;
    channels.try_get(&id).await.problem(404);
    channels.try_delete(&id).await.problem(404);

    // Every change is in the audit trail, with secrets only as hints.
    let trail = in_org
        .organizations()
        .audit_logs(&org)
        .try_list_with("action=alert_channel.&limit=200")
        .await
        .text();
    let trail_json: Value = serde_json::from_str(&trail).unwrap();
    let actions: Vec<&str> = trail_json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "alert_channel.deleted",
            "alert_channel.updated",
            "alert_channel.updated",
            "alert_channel.created",
            "alert_channel.updated",
            "alert_channel.updated",
            "alert_channel.created",
        ]
    );
    for clear in [&secret[6..], chosen, &new_secret[6..]] {
        assert!(!trail.contains(clear), "a secret is in the audit trail");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_channels_are_refused_naming_the_field_and_change_nothing() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = new_org(&app, &ada, "Ada's").await;
    let channels = app.as_(&ada).org(&org).alert_channels();
    let cases = [
        (
            json!({"name": "", "kind": "webhook", "url": "https://h.example.com"}),
            "name",
        ),
        (
            json!({"name": "x".repeat(201), "kind": "email", "email": "a@example.com"}),
            "name",
        ),
        (
            json!({"name": "n", "kind": "sms", "url": "https://h.example.com"}),
            "kind",
        ),
        (json!({"name": "n", "kind": "webhook"}), "url"),
        (
            json!({"name": "n", "kind": "webhook", "url": "ftp://h.example.com"}),
            "url",
        ),
        (
            json!({"name": "n", "kind": "webhook", "url": "h.example.com/x"}),
            "url",
        ),
        (
            json!({"name": "n", "kind": "webhook", "url": "https://h.example.com", "secret": "short"}),
            "secret",
        ),
        (
            json!({"name": "n", "kind": "webhook", "url": "https://h.example.com", "email": "a@example.com"}),
            "email",
        ),
        (json!({"name": "n", "kind": "email"}), "email"),
        (
            json!({"name": "n", "kind": "email", "email": "not-an-address"}),
            "email",
        ),
        (
            json!({"name": "n", "kind": "email", "email": "a@example.com", "url": "https://h.example.com"}),
            "url",
        ),
        (
            json!({"name": "n", "kind": "email", "email": "a@example.com", "monitor_ids": [Uuid::new_v4()]}),
            "monitor_ids",
        ),
    ];
    for (body, field) in &cases {
        let refused = channels.try_create(body.clone()).await.problem(422);
        assert_eq!(refused["code"], "validation_failed", "{body}");
        assert_eq!(refused["field"], *field, "{body}");
    }
    // A body that is not a channel at all.
    let unknown = channels
        .try_create(json!({"name": "n", "kind": "email", "email": "a@example.com", "phone": "1"}))
        .await;
    assert!(unknown.status().is_client_error());
    let listed = channels.list().await;
    assert_eq!(listed["items"], json!([]));

    // A refused replacement leaves the channel as it was.
    let kept = channels
        .create(json!({"name": "Ops", "kind": "email", "email": "ops@example.com"}))
        .await;
    let id = kept["id"].as_str().unwrap();
    for (body, field) in &cases {
        let refused = channels.try_update(id, body.clone()).await.problem(422);
        assert_eq!(refused["field"], *field, "{body}");
    }
    let read = channels.get(id).await;
    assert_eq!(read, kept);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_of_another_organization_cannot_be_listed() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let bob = caller(&app, "bob@example.com").await;
    let a = new_org(&app, &ada, "Ada's").await;
    let b = new_org(&app, &bob, "Bob's").await;
    let mine = monitor(&app, &ada, &a, "mine").await;
    let theirs = monitor(&app, &bob, &b, "theirs").await;
    let body = |ids: Value| json!({"name": "Ops", "kind": "email", "email": "ops@example.com", "monitor_ids": ids});
    let channels = app.as_(&ada).org(&a).alert_channels();
    let refused = channels
        .try_create(body(json!([mine, theirs])))
        .await
        .problem(422);
    assert_eq!(refused["field"], "monitor_ids");
    assert_eq!(channels.list().await["items"], json!([]));
    let created = channels.create(body(json!([mine]))).await;
    let id = created["id"].as_str().unwrap();
    let refused = channels
        .try_update(id, body(json!([theirs])))
        .await
        .problem(422);
    assert_eq!(refused["field"], "monitor_ids");
    let read = channels.get(id).await;
    assert_eq!(read["monitor_ids"], json!([mine]));
}

async fn another_organizations_channel_is_not_found(tier: Isolation) {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let bob = caller(&app, "bob@example.com").await;
    let a = org_in(&app, &ada, "Ada's", tier).await;
    let b = org_in(&app, &bob, "Bob's", tier).await;
    let bobs_channels = app.as_(&bob).org(&b).alert_channels();
    let theirs = bobs_channels
        .create(json!({"name": "bob-hook", "kind": "webhook", "url": "https://bob.example.com"}))
        .await;
    let theirs_id = theirs["id"].as_str().unwrap();
    let missing_id = Uuid::new_v4();
    let ada_key = app
        .as_(&ada)
        .organizations()
        .api_keys(&a)
        .create(json!({"name": "ada", "role": "admin"}))
        .await["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let stolen = json!({"name": "stolen", "kind": "webhook", "url": "https://ada.example.com"});

    // Ada in her own organization (header, or her API key): Bob's channel is as missing as a
    // made-up id, for every method.
    for ada_in_a in [app.as_(&ada).org(&a), app.as_(&ada_key)] {
        let channels = ada_in_a.alert_channels();
        let attempts = [
            (
                Method::GET,
                channels.try_get(theirs_id).await,
                channels.try_get(missing_id).await,
            ),
            (
                Method::PUT,
                channels.try_update(theirs_id, stolen.clone()).await,
                channels.try_update(missing_id, stolen.clone()).await,
            ),
            (
                Method::DELETE,
                channels.try_delete(theirs_id).await,
                channels.try_delete(missing_id).await,
            ),
        ];
        for (method, for_theirs, for_missing) in attempts {
            assert_eq!(
                for_theirs.problem(404),
                for_missing.problem(404),
                "{method}"
            );
        }
        let listed = channels.list().await;
        assert_eq!(listed["items"], json!([]));
    }
    // Naming Bob's organization: the same 404 as an organization that does not exist.
    let nowhere = app
        .as_(&ada)
        .org(&Uuid::new_v4().to_string())
        .alert_channels()
        .try_get(theirs_id)
        .await
        .problem(404);
    let via_b = app.as_(&ada).org(&b).alert_channels();
    let attempts = [
        via_b.try_get(theirs_id).await,
        via_b.try_update(theirs_id, stolen.clone()).await,
        via_b.try_delete(theirs_id).await,
        via_b.try_list().await,
        via_b.try_create(stolen.clone()).await,
    ];
    for via_header in attempts {
        assert_eq!(via_header.problem(404), nowhere, "{via_header}");
    }

    // Bob's channel is unchanged, and his organization got nothing new.
    let kept = bobs_channels.get(theirs_id).await;
    let mut expected = theirs.clone();
    expected["secret"] = json!(hint_of(theirs["secret"].as_str().unwrap()));
    assert_eq!(kept, expected);
    let listed = bobs_channels.list().await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organizations_channel_is_not_found_shared() {
    another_organizations_channel_is_not_found(Isolation::Shared).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organizations_channel_is_not_found_schema() {
    another_organizations_channel_is_not_found(Isolation::Schema).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organizations_channel_is_not_found_database() {
    another_organizations_channel_is_not_found(Isolation::Database).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_saving_a_webhook_as_shown_keeps_its_full_url() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;
    let bob = caller(&app, "bob@example.com").await;
    app.orgs
        .add_member(
            tenantry_orgs::Role::Owner,
            org.parse().unwrap(),
            bob.id,
            tenantry_orgs::Role::Member,
            &tenantry_audit::AuditContext::system(),
        )
        .await
        .unwrap();
    let full = "https://hooks.example.com/services/T000/B000/secret-path";
    let by_ada = app.as_(&ada).org(&org).alert_channels();
    let by_bob = app.as_(&bob).org(&org).alert_channels();
    let created = by_ada
        .create(json!({"name": "Hook", "kind": "webhook", "url": full}))
        .await;
    let id = created["id"].as_str().unwrap();
    // The member sees the URL cut to its origin, and sends the channel back as it is shown.
    let shown = by_bob.get(id).await;
    assert_eq!(shown["url"], "https://hooks.example.com/…");
    by_bob
        .update(
            id,
            json!({"name": "Hook, renamed", "kind": "webhook", "url": shown["url"]}),
        )
        .await;
    let kept = by_ada.get(id).await;
    assert_eq!(kept["name"], "Hook, renamed");
    assert_eq!(kept["url"], full, "the full URL is kept");
}
