//! Another organization's resources, reached every way a caller could try — by id through their
//! own organization, through the `X-Tenant` header (id and slug), through the token's `org_id`
//! claim, through an API key — on every organization and tenant-scoped route, in all three tiers:
//! always a 404 whose body is identical to a missing resource's, and nothing changes.

use reqwest::Method;
use serde_json::{Value, json};
use tenantry_tenancy::Isolation;
use uuid::Uuid;

use crate::{Caller, Client, TestApp, caller, org_in};

/// Sends `method` `path` (with `body`) as `who` and returns the 404 body.
async fn not_found(who: &Client<'_>, method: Method, path: &str, body: Option<Value>) -> Value {
    who.request(method, path)
        .body(body)
        .send()
        .await
        .problem(404)
}

async fn across_tiers(tier: Isolation) {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let bob = caller(&app, "bob@example.com").await;
    let a = org_in(&app, &ada, "Ada's", tier).await;
    let b = org_in(&app, &bob, "Bob's", tier).await;
    let (adas, bobs) = (app.as_(&ada).organizations(), app.as_(&bob).organizations());
    let b_slug = bobs.get(&b).await["slug"].as_str().unwrap().to_string();
    let a_slug = adas.get(&a).await["slug"].as_str().unwrap().to_string();

    // Bob's organization has a monitor, a key, a member and an invitation.
    let monitor = app
        .as_(&bob)
        .org(&b)
        .monitors()
        .create(json!({"name": "bob-1", "kind": "tcp", "target": "example.com:443"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bob_key = bobs
        .api_keys(&b)
        .create(json!({"name": "bob", "role": "admin"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let carl = caller(&app, "carl@example.com").await;
    bobs.members(&b).add(carl.id, "member").await;
    let invitation = bobs
        .invitations(&b)
        .invite("dora@example.com", "member")
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Ada's ways in: her org by header (id, slug), her org by claim, her org's API key.
    let ada_in_a = adas.switch(&a).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let ada_key = adas
        .api_keys(&a)
        .create(json!({"name": "ada", "role": "admin"}))
        .await["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let ways = [
        ("header id", app.as_(&ada).org(&a)),
        ("header slug", app.as_(&ada).org(&a_slug)),
        ("claim", app.as_(&ada_in_a)),
        ("api key", app.as_(&ada_key)),
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
    for (way, who) in &ways {
        for ((method, theirs, body), (_, made_up, _)) in monitor_routes(&monitor)
            .into_iter()
            .zip(monitor_routes(&missing.to_string()))
        {
            let got = not_found(who, method.clone(), &theirs, body.clone()).await;
            let reference = not_found(who, method.clone(), &made_up, body).await;
            assert_eq!(got, reference, "{way}: {method} {theirs}");
        }
        let listed = who.monitors().list().await;
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
        let in_nowhere = app.as_(&ada).org(&nowhere);
        let reference = not_found(&in_nowhere, method.clone(), &path, body.clone()).await;
        for header in [b.as_str(), b_slug.as_str()] {
            let in_header = app.as_(&ada).org(header);
            let got = not_found(&in_header, method.clone(), &path, body.clone()).await;
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
    let as_ada = app.as_(&ada);
    for ((method, theirs, body), (_, made_up, made_up_body)) in org_routes(&b)
        .into_iter()
        .chain(org_routes(&b_slug))
        .zip(org_routes(&nowhere).into_iter().chain(org_routes(&nowhere)))
    {
        let got = not_found(&as_ada, method.clone(), &theirs, body).await;
        let reference = not_found(&as_ada, method.clone(), &made_up, made_up_body).await;
        assert_eq!(got, reference, "{method} {theirs}");
    }
    let default = as_ada.user().try_set_default_organization(&b).await;
    assert_eq!(default.status(), 422);
    let default_nowhere = as_ada.user().try_set_default_organization(&nowhere).await;
    assert_eq!(default.problem(422), default_nowhere.problem(422));

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
        let got = not_found(&as_ada, method.clone(), &theirs, body.clone()).await;
        let reference = not_found(&as_ada, method.clone(), &made_up, body).await;
        assert_eq!(got, reference, "{method} {theirs}");
    }

    // Heartbeat tokens: Ada's pings her monitor only; a token leading to Ada's organization and
    // naming Bob's monitor (a control row gone wrong) finds nothing, the tenant door refusing it.
    heartbeats_stay_in_their_organization(&app, (&ada, &a), (&bob, &b), &monitor).await;

    // Bob's organization is untouched.
    let kept = app.as_(&bob).org(&b).monitors().get(&monitor).await;
    assert_eq!(kept["name"], "bob-1");
    let org = bobs.get(&b).await;
    assert_eq!(org["status"], "active");
    assert_eq!(org["name"], "Bob's");
    let members = bobs.members(&b).list().await;
    assert_eq!(members["items"].as_array().unwrap().len(), 2);
    let keys = bobs.api_keys(&b).list().await;
    assert_eq!(keys["items"][0]["id"], bob_key.as_str());
    let invitations = bobs.invitations(&b).list().await;
    assert_eq!(invitations["items"][0]["id"], invitation.as_str());
}

/// A heartbeat monitor in `org` as `who`: its id and the path of its `heartbeat_url`.
async fn heartbeat_monitor(app: &TestApp, who: &Caller, org: &str) -> (String, String) {
    let created = app
        .as_(who)
        .org(org)
        .monitors()
        .create(json!({"name": "push", "kind": "heartbeat"}))
        .await;
    (
        created["id"].as_str().unwrap().to_string(),
        crate::results::heartbeat_path(created["heartbeat_url"].as_str().unwrap()),
    )
}

async fn last_ping(app: &TestApp, who: &Caller, org: &str, id: &str) -> Value {
    app.as_(who).org(org).monitors().get(id).await["last_ping_at"].clone()
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
        .as_(bob)
        .org(b)
        .request(Method::POST, &ada_path)
        .send()
        .await;
    assert_eq!(pinged.status(), 200);
    assert!(last_ping(app, ada, a, &ada_hb).await.is_string());
    assert_eq!(last_ping(app, bob, b, &bob_hb).await, Value::Null);
    // What an unknown token gets.
    let reference = crate::results::ping(
        app,
        Method::GET,
        &format!("/api/v1/heartbeat/{}", "z".repeat(43)),
    )
    .await
    .problem(404);
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
            assert_eq!(response.problem(404), reference, "{theirs}");
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
