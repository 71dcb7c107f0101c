//! Another organization's resources, reached every way a caller could try — by id through their
//! own organization, through the `X-Tenant` header (id and slug), through the token's `org_id`
//! claim, through an API key — on every organization and tenant-scoped route, in all three tiers:
//! always a 404 whose body is identical to a missing resource's, and nothing changes.

use reqwest::Method;
use serde_json::{Value, json};
use tenantry_tenancy::Isolation;
use uuid::Uuid;

use crate::{Caller, TestApp, caller, org_in, problem, send, success_json};

/// Sends as `token` (with `tenant` as `X-Tenant` when given) and returns the 404 body.
async fn not_found(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    tenant: Option<&str>,
    body: Option<Value>,
) -> Value {
    let response = send(app, method.clone(), path, token, tenant, body).await;
    assert_eq!(
        response.status(),
        404,
        "{method} {path} (X-Tenant {tenant:?})"
    );
    problem(response, 404).await
}

async fn across_tiers(tier: Isolation) {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let bob = caller(&app, "bob@example.com").await;
    let a = org_in(&app, &ada, "Ada's", tier).await;
    let b = org_in(&app, &bob, "Bob's", tier).await;
    let b_slug = success_json(
        send(
            &app,
            Method::GET,
            &format!("/api/v1/organizations/{b}"),
            &bob.token,
            None,
            None,
        )
        .await,
    )
    .await["slug"]
        .as_str()
        .unwrap()
        .to_string();
    let a_slug = success_json(
        send(
            &app,
            Method::GET,
            &format!("/api/v1/organizations/{a}"),
            &ada.token,
            None,
            None,
        )
        .await,
    )
    .await["slug"]
        .as_str()
        .unwrap()
        .to_string();

    // Bob's organization has a monitor, a key, a member and an invitation.
    let monitor = success_json(
        send(
            &app,
            Method::POST,
            "/api/v1/monitors",
            &bob.token,
            Some(&b),
            Some(json!({"name": "bob-1", "kind": "tcp", "target": "example.com:443"})),
        )
        .await,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bob_key = success_json(
        send(
            &app,
            Method::POST,
            &format!("/api/v1/organizations/{b}/api-keys"),
            &bob.token,
            None,
            Some(json!({"name": "bob", "role": "admin"})),
        )
        .await,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let carl = caller(&app, "carl@example.com").await;
    success_json(
        send(
            &app,
            Method::POST,
            &format!("/api/v1/organizations/{b}/members"),
            &bob.token,
            None,
            Some(json!({"user_id": carl.id, "role": "member"})),
        )
        .await,
    )
    .await;
    let invitation = success_json(
        send(
            &app,
            Method::POST,
            &format!("/api/v1/organizations/{b}/invitations"),
            &bob.token,
            None,
            Some(json!({"email": "dora@example.com", "role": "member"})),
        )
        .await,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Ada's ways in: her org by header (id, slug), her org by claim, her org's API key.
    let ada_in_a = success_json(
        send(
            &app,
            Method::POST,
            &format!("/api/v1/organizations/{a}/switch"),
            &ada.token,
            None,
            None,
        )
        .await,
    )
    .await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let ada_key = success_json(
        send(
            &app,
            Method::POST,
            &format!("/api/v1/organizations/{a}/api-keys"),
            &ada.token,
            None,
            Some(json!({"name": "ada", "role": "admin"})),
        )
        .await,
    )
    .await["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let ways: [(&str, &str, Option<&str>); 4] = [
        ("header id", ada.token.as_str(), Some(a.as_str())),
        ("header slug", ada.token.as_str(), Some(a_slug.as_str())),
        ("claim", ada_in_a.as_str(), None),
        ("api key", ada_key.as_str(), None),
    ];

    // Tenant-scoped: Bob's monitor by id, each way, is as missing as a made-up id.
    let missing = Uuid::new_v4();
    let monitor_routes = |id: &str| {
        [
            (Method::GET, format!("/api/v1/monitors/{id}"), None),
            (
                Method::PUT,
                format!("/api/v1/monitors/{id}"),
                Some(json!({"name": "stolen", "kind": "tcp", "target": "example.com:1"})),
            ),
            (Method::DELETE, format!("/api/v1/monitors/{id}"), None),
            (Method::GET, format!("/api/v1/monitors/{id}/results"), None),
            (
                Method::GET,
                format!("/api/v1/monitors/{id}/incidents"),
                None,
            ),
        ]
    };
    for (way, token, tenant) in ways {
        for ((method, theirs, body), (_, made_up, _)) in monitor_routes(&monitor)
            .into_iter()
            .zip(monitor_routes(&missing.to_string()))
        {
            let got = not_found(&app, method.clone(), &theirs, token, tenant, body.clone()).await;
            let reference = not_found(&app, method.clone(), &made_up, token, tenant, body).await;
            assert_eq!(got, reference, "{way}: {method} {theirs}");
        }
        let listed =
            success_json(send(&app, Method::GET, "/api/v1/monitors", token, tenant, None).await)
                .await;
        assert_eq!(listed["items"], json!([]), "{way}");
    }

    // Naming Bob's organization (id or slug) in the header: the same 404 as an organization
    // that does not exist, on every tenant-scoped route.
    let nowhere = Uuid::new_v4().to_string();
    for (method, path, body) in monitor_routes(&monitor)
        .into_iter()
        .chain([(Method::GET, "/api/v1/monitors".to_string(), None)])
        .chain([(
            Method::POST,
            "/api/v1/monitors".to_string(),
            Some(json!({"name": "x", "kind": "tcp", "target": "example.com:1"})),
        )])
    {
        let reference = not_found(
            &app,
            method.clone(),
            &path,
            &ada.token,
            Some(&nowhere),
            body.clone(),
        )
        .await;
        for header in [b.as_str(), b_slug.as_str()] {
            let got = not_found(
                &app,
                method.clone(),
                &path,
                &ada.token,
                Some(header),
                body.clone(),
            )
            .await;
            assert_eq!(got, reference, "{method} {path} as {header}");
        }
    }

    // Organization routes: Bob's organization by id or slug, as a non-member, is the same 404
    // as an organization that does not exist.
    let org_routes = |org: &str| {
        vec![
            (Method::GET, format!("/api/v1/organizations/{org}"), None),
            (
                Method::PUT,
                format!("/api/v1/organizations/{org}"),
                Some(json!({"name": "Stolen"})),
            ),
            (Method::DELETE, format!("/api/v1/organizations/{org}"), None),
            (
                Method::GET,
                format!("/api/v1/organizations/{org}/export"),
                None,
            ),
            (
                Method::DELETE,
                format!("/api/v1/organizations/{org}?hard=true"),
                Some(json!({"confirm": org})),
            ),
            (
                Method::POST,
                format!("/api/v1/organizations/{org}/switch"),
                None,
            ),
            (
                Method::POST,
                format!("/api/v1/organizations/{org}/leave"),
                None,
            ),
            (
                Method::GET,
                format!("/api/v1/organizations/{org}/members"),
                None,
            ),
            (
                Method::POST,
                format!("/api/v1/organizations/{org}/members"),
                Some(json!({"user_id": ada.id, "role": "owner"})),
            ),
            (
                Method::PATCH,
                format!("/api/v1/organizations/{org}/members/{}", carl.id),
                Some(json!({"role": "owner"})),
            ),
            (
                Method::DELETE,
                format!("/api/v1/organizations/{org}/members/{}", carl.id),
                None,
            ),
            (
                Method::GET,
                format!("/api/v1/organizations/{org}/api-keys"),
                None,
            ),
            (
                Method::POST,
                format!("/api/v1/organizations/{org}/api-keys"),
                Some(json!({"name": "x", "role": "viewer"})),
            ),
            (
                Method::DELETE,
                format!("/api/v1/organizations/{org}/api-keys/{bob_key}"),
                None,
            ),
            (
                Method::GET,
                format!("/api/v1/organizations/{org}/invitations"),
                None,
            ),
            (
                Method::POST,
                format!("/api/v1/organizations/{org}/invitations"),
                Some(json!({"email": "x@example.com", "role": "owner"})),
            ),
            (
                Method::DELETE,
                format!("/api/v1/organizations/{org}/invitations/{invitation}"),
                None,
            ),
            (
                Method::POST,
                format!("/api/v1/organizations/{org}/invitations/{invitation}/resend"),
                None,
            ),
        ]
    };
    for ((method, theirs, body), (_, made_up, made_up_body)) in org_routes(&b)
        .into_iter()
        .chain(org_routes(&b_slug))
        .zip(org_routes(&nowhere).into_iter().chain(org_routes(&nowhere)))
    {
        let got = not_found(&app, method.clone(), &theirs, &ada.token, None, body).await;
        let reference = not_found(
            &app,
            method.clone(),
            &made_up,
            &ada.token,
            None,
            made_up_body,
        )
        .await;
        assert_eq!(got, reference, "{method} {theirs}");
    }
    let default = send(
        &app,
        Method::PUT,
        "/api/v1/user/default-organization",
        &ada.token,
        None,
        Some(json!({"org_id": b})),
    )
    .await;
    assert_eq!(default.status(), 422);
    let default_nowhere = send(
        &app,
        Method::PUT,
        "/api/v1/user/default-organization",
        &ada.token,
        None,
        Some(json!({"org_id": nowhere})),
    )
    .await;
    assert_eq!(
        problem(default, 422).await,
        problem(default_nowhere, 422).await
    );

    // Bob's members, keys and invitations through Ada's own organization: not found.
    for (method, theirs, made_up, body) in [
        (
            Method::PATCH,
            format!("/api/v1/organizations/{a}/members/{}", carl.id),
            format!("/api/v1/organizations/{a}/members/{}", Uuid::new_v4()),
            Some(json!({"role": "viewer"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/organizations/{a}/members/{}", carl.id),
            format!("/api/v1/organizations/{a}/members/{}", Uuid::new_v4()),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/v1/organizations/{a}/api-keys/{bob_key}"),
            format!("/api/v1/organizations/{a}/api-keys/{}", Uuid::new_v4()),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/v1/organizations/{a}/invitations/{invitation}"),
            format!("/api/v1/organizations/{a}/invitations/{}", Uuid::new_v4()),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/organizations/{a}/invitations/{invitation}/resend"),
            format!(
                "/api/v1/organizations/{a}/invitations/{}/resend",
                Uuid::new_v4()
            ),
            None,
        ),
    ] {
        let got = not_found(
            &app,
            method.clone(),
            &theirs,
            &ada.token,
            None,
            body.clone(),
        )
        .await;
        let reference = not_found(&app, method.clone(), &made_up, &ada.token, None, body).await;
        assert_eq!(got, reference, "{method} {theirs}");
    }

    // Heartbeat tokens: Ada's pings her monitor only; a token leading to Ada's organization and
    // naming Bob's monitor (a control row gone wrong) finds nothing, the tenant door refusing it.
    heartbeats_stay_in_their_organization(&app, (&ada, &a), (&bob, &b), &monitor).await;

    // Bob's organization is untouched.
    let kept = success_json(
        send(
            &app,
            Method::GET,
            &format!("/api/v1/monitors/{monitor}"),
            &bob.token,
            Some(&b),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(kept["name"], "bob-1");
    let org = success_json(
        send(
            &app,
            Method::GET,
            &format!("/api/v1/organizations/{b}"),
            &bob.token,
            None,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(org["status"], "active");
    assert_eq!(org["name"], "Bob's");
    let members = success_json(
        send(
            &app,
            Method::GET,
            &format!("/api/v1/organizations/{b}/members"),
            &bob.token,
            None,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(members["items"].as_array().unwrap().len(), 2);
    let keys = success_json(
        send(
            &app,
            Method::GET,
            &format!("/api/v1/organizations/{b}/api-keys"),
            &bob.token,
            None,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(keys["items"][0]["id"], bob_key.as_str());
    let invitations = success_json(
        send(
            &app,
            Method::GET,
            &format!("/api/v1/organizations/{b}/invitations"),
            &bob.token,
            None,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(invitations["items"][0]["id"], invitation.as_str());
}

/// A heartbeat monitor in `org` as `who`: its id and the path of its `heartbeat_url`.
async fn heartbeat_monitor(app: &TestApp, who: &Caller, org: &str) -> (String, String) {
    let created = success_json(
        send(
            app,
            Method::POST,
            "/api/v1/monitors",
            &who.token,
            Some(org),
            Some(json!({"name": "push", "kind": "heartbeat"})),
        )
        .await,
    )
    .await;
    (
        created["id"].as_str().unwrap().to_string(),
        crate::results::heartbeat_path(created["heartbeat_url"].as_str().unwrap()),
    )
}

async fn last_ping(app: &TestApp, who: &Caller, org: &str, id: &str) -> Value {
    success_json(
        send(
            app,
            Method::GET,
            &format!("/api/v1/monitors/{id}"),
            &who.token,
            Some(org),
            None,
        )
        .await,
    )
    .await["last_ping_at"]
        .clone()
}

async fn heartbeats_stay_in_their_organization(
    app: &TestApp,
    (ada, a): (&Caller, &str),
    (bob, b): (&Caller, &str),
    bob_tcp: &str,
) {
    let (ada_hb, ada_path) = heartbeat_monitor(app, ada, a).await;
    let (bob_hb, _) = heartbeat_monitor(app, bob, b).await;
    // Pinged with headers naming Bob's organization: the token alone decides.
    let pinged = app
        .client
        .post(format!("{}{ada_path}", app.base))
        .header("X-Tenant", b)
        .bearer_auth(&bob.token)
        .send()
        .await
        .unwrap();
    assert_eq!(pinged.status(), 200);
    assert!(last_ping(app, ada, a, &ada_hb).await.is_string());
    assert_eq!(last_ping(app, bob, b, &bob_hb).await, Value::Null);
    // What an unknown token gets.
    let reference = problem(
        crate::results::ping(
            app,
            Method::GET,
            &format!("/api/v1/heartbeat/{}", "z".repeat(43)),
        )
        .await,
        404,
    )
    .await;
    // A token whose control row leads to Ada's organization but names Bob's monitors.
    for theirs in [bob_hb.as_str(), bob_tcp] {
        let token = format!("{:0>43}", Uuid::new_v4().simple());
        sqlx::query(
            "INSERT INTO monitoring.heartbeats (token_hash, org_id, monitor_id) VALUES ($1, $2, $3)",
        )
        .bind(<sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()).to_vec())
        .bind(a.parse::<Uuid>().unwrap())
        .bind(theirs.parse::<Uuid>().unwrap())
        .execute(tenantry_tenancy::Operator::new(&app.tenancy).control())
        .await
        .unwrap();
        for method in [Method::GET, Method::POST] {
            let response =
                crate::results::ping(app, method, &format!("/api/v1/heartbeat/{token}")).await;
            assert_eq!(problem(response, 404).await, reference, "{theirs}");
        }
    }
    assert_eq!(last_ping(app, bob, b, &bob_hb).await, Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_of_another_organization_is_reachable_shared() {
    across_tiers(Isolation::Shared).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_of_another_organization_is_reachable_schema() {
    across_tiers(Isolation::Schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_of_another_organization_is_reachable_database() {
    across_tiers(Isolation::Database).await;
}
