//! The console's pages over plain HTTP: sessions in cookies, redirects to the login page,
//! CSRF, the one 404 page for other organizations' pages, security headers, revoking a
//! session, the organization-scoped event stream, and platform-admin pages.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::{TestApp, caller, new_org};

/// A browser without a browser: keeps its cookies, follows no redirect.
struct Console {
    base: String,
    client: reqwest::Client,
    cookies: HashMap<String, String>,
}

impl Console {
    fn new(app: &TestApp) -> Console {
        Console {
            base: app.base.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all("set-cookie") {
            let value = value.to_str().unwrap();
            let pair = value.split(';').next().unwrap();
            let (name, content) = pair.split_once('=').unwrap();
            if content.is_empty() || value.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), content.to_string());
            }
        }
    }

    async fn get(&mut self, path: &str) -> reqwest::Response {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(&response);
        response
    }

    /// The CSRF token of the forms on page `path`.
    async fn token(&mut self, path: &str) -> String {
        let page = self.get(path).await.text().await.unwrap();
        let at = page
            .find("name=\"_csrf\" value=\"")
            .expect("a form with a CSRF token")
            + 20;
        page[at..].split('"').next().unwrap().to_string()
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .form(fields)
            .send()
            .await
            .unwrap();
        self.keep(&response);
        response
    }

    /// Posts a form of page `page` (its CSRF token added).
    async fn submit(
        &mut self,
        page: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let token = self.token(page).await;
        let mut all = vec![("_csrf", token.as_str())];
        all.extend_from_slice(fields);
        self.post(action, &all).await
    }

    /// Logs in through the login page (`caller`'s password is "correct horse").
    async fn log_in(&mut self, email: &str) {
        let response = self
            .submit(
                "/login",
                "/login",
                &[("email", email), ("password", "correct horse")],
            )
            .await;
        assert_eq!(response.status(), 303, "{}", response.text().await.unwrap());
    }
}

fn location(response: &reqwest::Response) -> String {
    response.headers()["location"].to_str().unwrap().to_string()
}

/// An organization's slug from its id.
async fn slug_of(app: &TestApp, id: &str) -> String {
    app.tenancy.find(id).await.unwrap().slug
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_need_a_session_and_come_back_to_where_they_were() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;
    let slug = slug_of(&app, &org).await;
    let mut browser = Console::new(&app);
    let refused = browser.get(&format!("/o/{slug}/members")).await;
    assert_eq!(refused.status(), 303);
    assert_eq!(
        location(&refused),
        format!("/login?next=%2Fo%2F{slug}%2Fmembers")
    );
    assert_eq!(location(&browser.get("/").await), "/login");

    // A wrong password: the form again, with the error next to the field.
    let wrong = browser
        .submit(
            "/login",
            "/login",
            &[("email", "ada@example.com"), ("password", "nope nope")],
        )
        .await;
    assert_eq!(wrong.status(), 401);
    let page = wrong.text().await.unwrap();
    assert!(page.contains("The email or password is wrong."), "{page}");
    assert!(page.contains("aria-invalid=\"true\""), "{page}");

    let next = format!("/o/{slug}/members");
    let token = browser.token("/login").await;
    let signed = browser
        .post(
            "/login",
            &[
                ("_csrf", &token),
                ("email", "ada@example.com"),
                ("password", "correct horse"),
                ("next", &next),
            ],
        )
        .await;
    assert_eq!(signed.status(), 303);
    assert_eq!(location(&signed), next);
    let cookie = signed
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("tenantry_session="))
        .unwrap();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    // Plain http on loopback: no Secure, or the browser would not send it back.
    assert!(!cookie.contains("Secure"), "{cookie}");
    let members = browser.get(&next).await;
    assert_eq!(members.status(), 200);
    assert!(members.text().await.unwrap().contains("ada@example.com"));
    // Only the session's hash is stored.
    let token = browser.cookies["tenantry_session"].clone();
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM identity.refresh_tokens WHERE token_hash = sha256($1::bytea)",
    )
    .bind(token.as_bytes())
    .fetch_one(app.tenancy.control_db())
    .await
    .unwrap();
    assert_eq!(stored, 1);
    // An address of another site is never followed after login.
    let mut other = Console::new(&app);
    let token = other.token("/login").await;
    let away = other
        .post(
            "/login",
            &[
                ("_csrf", &token),
                ("email", "ada@example.com"),
                ("password", "correct horse"),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(location(&away), "/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organizations_pages_are_the_same_404_page_as_missing_ones() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let bob = caller(&app, "bob@example.com").await;
    let acme = new_org(&app, &ada, "Acme").await;
    let globex = new_org(&app, &bob, "Globex").await;
    let acme_slug = slug_of(&app, &acme).await;
    let globex_slug = slug_of(&app, &globex).await;
    let monitors = app.as_(&ada).org(&acme).monitors();
    let monitor = monitors
        .create(json!({"name": "Homepage", "kind": "http", "target": "https://example.com", "interval_seconds": 60}))
        .await;
    let monitor = monitor["id"].as_str().unwrap();
    let mut browser = Console::new(&app);
    browser.log_in("bob@example.com").await;
    let missing = browser.get("/o/no-such-org/monitors").await;
    assert_eq!(missing.status(), 404);
    let missing = missing.text().await.unwrap();
    assert!(missing.contains("Page not found"));
    for path in [
        format!("/o/{acme_slug}"),
        format!("/o/{acme_slug}/monitors"),
        format!("/o/{acme_slug}/monitors/{monitor}"),
        format!("/o/{acme_slug}/monitors/{monitor}/edit"),
        format!("/o/{acme_slug}/members"),
        format!("/o/{acme_slug}/settings"),
        format!("/o/{acme_slug}/usage"),
        format!("/o/{acme_slug}/api-keys"),
        format!("/o/{acme_slug}/agents"),
        format!("/o/{acme_slug}/audit"),
        format!("/o/{acme_slug}/alert-channels"),
        format!("/o/{acme_slug}/status-pages"),
        format!("/o/{acme_slug}/events"),
        format!("/o/{acme_slug}/export"),
        format!("/o/{acme_slug}/anything/else"),
        // Another organization's monitor through one's own organization.
        format!("/o/{globex_slug}/monitors/{monitor}"),
        format!("/o/{globex_slug}/monitors/{monitor}/edit"),
    ] {
        let answer = browser.get(&path).await;
        assert_eq!(answer.status(), 404, "{path}");
        assert_eq!(answer.text().await.unwrap(), missing, "{path}");
    }
    // Forms aimed at it change nothing, and answer the same page.
    let token = browser.token(&format!("/o/{globex_slug}/monitors")).await;
    for (path, fields) in [
        (format!("/o/{acme_slug}/monitors/{monitor}/delete"), vec![]),
        (format!("/o/{acme_slug}/monitors/{monitor}/pause"), vec![]),
        (
            format!("/o/{globex_slug}/monitors/{monitor}/delete"),
            vec![],
        ),
        (
            format!("/o/{acme_slug}/members/invite"),
            vec![("email", "eve@example.com")],
        ),
        (format!("/o/{acme_slug}/settings/leave"), vec![]),
        (
            format!("/o/{acme_slug}/settings/delete"),
            vec![("confirm", acme_slug.as_str())],
        ),
    ] {
        let mut all = vec![("_csrf", token.as_str())];
        all.extend(fields);
        let answer = browser.post(&path, &all).await;
        assert_eq!(answer.status(), 404, "{path}");
        assert_eq!(answer.text().await.unwrap(), missing, "{path}");
    }
    // The monitor is still there, and nobody was invited.
    monitors.get(monitor).await;
    let invited = app
        .as_(&ada)
        .organizations()
        .invitations(&acme)
        .list()
        .await;
    assert_eq!(invited["items"], json!([]));
    // Unknown paths outside the console and the API: the same page for a browser; under /api:
    // problem JSON.
    let elsewhere = browser
        .client
        .get(format!("{}/nothing/here", browser.base))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.text().await.unwrap(), missing);
    let api = browser.get("/api/v1/nothing").await;
    assert_eq!(api.status(), 404);
    assert_eq!(api.headers()["content-type"], "application/problem+json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_without_its_csrf_token_or_from_another_site_changes_nothing() {
    let app = TestApp::spawn().await;
    caller(&app, "ada@example.com").await;
    let mut browser = Console::new(&app);
    browser.log_in("ada@example.com").await;
    let token = browser.token("/orgs/new").await;
    let presession = browser.cookies["tenantry_presession"].clone();
    let forged = [
        vec![("name", "Forged")],
        vec![("_csrf", "not-the-token"), ("name", "Forged")],
        vec![("_csrf", presession.as_str()), ("name", "Forged")],
    ];
    for fields in &forged {
        let refused = browser.post("/orgs/new", fields).await;
        assert_eq!(refused.status(), 403);
        assert!(
            refused
                .text()
                .await
                .unwrap()
                .contains("This form has expired")
        );
    }
    let cross_site = browser
        .client
        .post(format!("{}/orgs/new", browser.base))
        .header("cookie", browser.cookie_header())
        .header("origin", "https://evil.example")
        .form(&[("_csrf", token.as_str()), ("name", "Forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    let orgs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM control.tenants WHERE name = 'Forged'")
            .fetch_one(app.tenancy.control_db())
            .await
            .unwrap();
    assert_eq!(orgs, 0);
    // With the token: created.
    let made = browser
        .post("/orgs/new", &[("_csrf", &token), ("name", "Acme")])
        .await;
    assert_eq!(made.status(), 303);
    assert!(location(&made).ends_with("/monitors"));
    // A visitor's forms (log in) need the pre-session token too.
    let mut visitor = Console::new(&app);
    visitor.get("/login").await;
    let refused = visitor
        .post(
            "/login",
            &[("email", "ada@example.com"), ("password", "correct horse")],
        )
        .await;
    assert_eq!(refused.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_console_page_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;
    let slug = slug_of(&app, &org).await;
    let mut browser = Console::new(&app);
    browser.log_in("ada@example.com").await;
    for path in [
        "/login".to_string(),
        "/signup".to_string(),
        format!("/o/{slug}/monitors"),
        format!("/o/{slug}/settings"),
        "/account/sessions".to_string(),
        "/o/nope/monitors".to_string(),
        "/invitations/unknown".to_string(),
    ] {
        let page = browser.get(&path).await;
        let headers = page.headers().clone();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        // No other site learns a console address (an invitation's carries its token).
        assert_eq!(headers["referrer-policy"], "same-origin", "{path}");
        let body = page.text().await.unwrap();
        // No inline script or style: scripts come from this server, styles from its sheet.
        assert_eq!(
            body.matches("<script").count(),
            body.matches("<script src=\"/static/").count(),
            "{path}"
        );
        assert!(
            !body.contains("<style") && !body.contains(" style=\""),
            "{path}"
        );
    }
    let css = browser.get("/static/console.css").await;
    assert_eq!(css.status(), 200);
    let etag = css.headers()["etag"].to_str().unwrap().to_string();
    let cached = browser
        .client
        .get(format!("{}/static/console.css", browser.base))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_revoked_from_the_sessions_page_is_signed_out_at_once() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    new_org(&app, &ada, "Acme").await;
    let mut laptop = Console::new(&app);
    laptop.log_in("ada@example.com").await;
    let mut phone = Console::new(&app);
    phone.log_in("ada@example.com").await;
    let page = laptop.get("/account/sessions").await.text().await.unwrap();
    // The API session of `caller` and both browsers.
    assert_eq!(page.matches("/revoke\"").count(), 3, "{page}");
    assert!(page.contains("(this session)"));
    let phone_session: uuid::Uuid = sqlx::query_scalar(
        "SELECT s.id FROM identity.sessions s JOIN identity.refresh_tokens r ON r.session_id = s.id
         WHERE r.token_hash = sha256($1::bytea)",
    )
    .bind(phone.cookies["tenantry_session"].as_bytes())
    .fetch_one(app.tenancy.control_db())
    .await
    .unwrap();
    let revoked = laptop
        .submit(
            "/account/sessions",
            &format!("/account/sessions/{phone_session}/revoke"),
            &[],
        )
        .await;
    assert_eq!(revoked.status(), 303);
    let signed_out = phone.get("/account/sessions").await;
    assert_eq!(signed_out.status(), 303);
    assert!(location(&signed_out).starts_with("/login"));
    assert_eq!(laptop.get("/account/sessions").await.status(), 200);
    // Someone else's session is not one's to revoke.
    let other = uuid::Uuid::now_v7();
    let refused = laptop
        .submit(
            "/account/sessions",
            &format!("/account/sessions/{other}/revoke"),
            &[],
        )
        .await;
    assert_eq!(refused.status(), 404);
    // Logging out ends the session: its cookie opens nothing any more.
    let cookie = laptop.cookies["tenantry_session"].clone();
    let out = laptop.submit("/account/sessions", "/logout", &[]).await;
    assert_eq!(out.status(), 303);
    let replay = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/account/sessions", app.base))
        .header("cookie", format!("tenantry_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 303);
}

/// The `monitor` events of a stream until `until` holds or 20 s pass: their monitor ids.
async fn monitor_events(
    mut response: reqwest::Response,
    until: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let ids = |text: &str| -> Vec<String> {
        text.split("\n\n")
            .filter(|event| event.contains("event: monitor"))
            .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")))
            .map(|data| {
                serde_json::from_str::<serde_json::Value>(data).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    while Instant::now() < deadline && !until(&ids(&text)) {
        match tokio::time::timeout(Duration::from_millis(500), response.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(_) => break,
            Err(_) => {}
        }
    }
    ids(&text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organizations_event_stream_never_carries_another_organizations_monitors() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let acme = new_org(&app, &ada, "Acme").await;
    let globex = new_org(&app, &ada, "Globex").await;
    let create = |org: String, name: &'static str| {
        let monitors = app.as_(&ada).org(&org).monitors();
        async move {
            let body = monitors
                .create(json!({"name": name, "kind": "http", "target": "https://example.com", "interval_seconds": 60}))
                .await;
            body["id"].as_str().unwrap().to_string()
        }
    };
    let acme_first = create(acme.clone(), "Acme site").await;
    let globex_first = create(globex.clone(), "Globex site").await;
    let mut browser = Console::new(&app);
    browser.log_in("ada@example.com").await;
    let acme_slug = slug_of(&app, &acme).await;
    let stream = browser.get(&format!("/o/{acme_slug}/events")).await;
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    // A monitor created in each organization while the stream is open.
    let acme_second = create(acme.clone(), "Acme API").await;
    let globex_second = create(globex.clone(), "Globex API").await;
    let seen = monitor_events(stream, |ids| {
        ids.contains(&acme_first) && ids.contains(&acme_second)
    })
    .await;
    assert!(seen.contains(&acme_first), "{seen:?}");
    assert!(seen.contains(&acme_second), "{seen:?}");
    assert!(
        !seen.contains(&globex_first) && !seen.contains(&globex_second),
        "{seen:?}"
    );
    // And the other way round; a stream opened on existing monitors sends them in list order.
    let globex_slug = slug_of(&app, &globex).await;
    let stream = browser.get(&format!("/o/{globex_slug}/events")).await;
    let seen = monitor_events(stream, |ids| ids.len() >= 2).await;
    assert_eq!(seen, [globex_first, globex_second]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_pages_are_the_404_page_to_anyone_but_platform_admins() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;
    let slug = slug_of(&app, &org).await;
    let mut browser = Console::new(&app);
    browser.log_in("ada@example.com").await;
    let token = browser.token("/account/sessions").await;
    for path in ["/admin".to_string(), format!("/admin/tenants/{slug}")] {
        assert_eq!(browser.get(&path).await.status(), 404, "{path}");
    }
    let refused = browser
        .post(
            &format!("/admin/tenants/{slug}/status?to=suspend"),
            &[("_csrf", &token)],
        )
        .await;
    assert_eq!(refused.status(), 404);
    assert_eq!(
        app.tenancy.find(&slug).await.unwrap().status,
        tenantry_tenancy::TenantStatus::Active
    );
    // A platform admin sees and changes it.
    crate::platform_admin(&app).await;
    let mut admin = Console::new(&app);
    let token = admin.token("/login").await;
    let signed = admin
        .post(
            "/login",
            &[
                ("_csrf", &token),
                ("email", "root@example.com"),
                ("password", "root password"),
            ],
        )
        .await;
    assert_eq!(signed.status(), 303);
    let list = admin.get("/admin").await;
    assert_eq!(list.status(), 200);
    assert!(list.text().await.unwrap().contains(&slug));
    let suspended = admin
        .submit(
            &format!("/admin/tenants/{slug}"),
            &format!("/admin/tenants/{slug}/status?to=suspend"),
            &[],
        )
        .await;
    assert_eq!(suspended.status(), 303);
    assert_eq!(
        app.tenancy.find(&slug).await.unwrap().status,
        tenantry_tenancy::TenantStatus::Suspended
    );
    // Its members still see it, read only.
    let page = browser
        .get(&format!("/o/{slug}/monitors"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("This organization is suspended"), "{page}");
}

/// The browser session behind `console`'s cookie.
async fn session_of(app: &TestApp, console: &Console) -> uuid::Uuid {
    sqlx::query_scalar(
        "SELECT session_id FROM identity.refresh_tokens WHERE token_hash = sha256($1::bytea)",
    )
    .bind(console.cookies["tenantry_session"].as_bytes())
    .fetch_one(app.tenancy.control_db())
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_rotates_and_a_replaced_one_presented_late_revokes_the_session() {
    let app = TestApp::spawn().await;
    caller(&app, "ada@example.com").await;
    let mut browser = Console::new(&app);
    browser.log_in("ada@example.com").await;
    let session = session_of(&app, &browser).await;
    let first = browser.cookies["tenantry_session"].clone();
    // A fresh cookie is not rotated.
    assert_eq!(browser.get("/account/sessions").await.status(), 200);
    assert_eq!(browser.cookies["tenantry_session"], first);
    // Once it is older than 10 minutes, the next request replaces it.
    sqlx::query(
        "UPDATE identity.refresh_tokens SET created_at = now() - interval '11 minutes'
         WHERE session_id = $1",
    )
    .bind(session)
    .execute(app.tenancy.control_db())
    .await
    .unwrap();
    assert_eq!(browser.get("/account/sessions").await.status(), 200);
    let second = browser.cookies["tenantry_session"].clone();
    assert_ne!(second, first);
    assert_eq!(session_of(&app, &browser).await, session);
    // The replaced cookie still works for a moment (requests already in flight)…
    let mut late = Console::new(&app);
    late.cookies
        .insert("tenantry_session".into(), first.clone());
    assert_eq!(late.get("/account/sessions").await.status(), 200);
    // …but presented a minute after it was replaced, it revokes the whole session.
    sqlx::query(
        "UPDATE identity.refresh_tokens SET used_at = now() - interval '2 minutes'
         WHERE session_id = $1 AND used_at IS NOT NULL",
    )
    .bind(session)
    .execute(app.tenancy.control_db())
    .await
    .unwrap();
    let mut thief = Console::new(&app);
    thief.cookies.insert("tenantry_session".into(), first);
    let refused = thief.get("/account/sessions").await;
    assert_eq!(refused.status(), 303);
    assert!(location(&refused).starts_with("/login"));
    let refused = browser.get("/account/sessions").await;
    assert_eq!(
        refused.status(),
        303,
        "the current cookie of a revoked session opens nothing"
    );
    let reason: Option<String> =
        sqlx::query_scalar("SELECT revoked_reason FROM identity.sessions WHERE id = $1")
            .bind(session)
            .fetch_one(app.tenancy.control_db())
            .await
            .unwrap();
    assert_eq!(reason.as_deref(), Some("reuse"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_is_accepted_signed_in_and_a_revoked_one_says_so() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    caller(&app, "bob@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;
    let slug = slug_of(&app, &org).await;
    let invitations = app.as_(&ada).organizations().invitations(&org);
    let invite = |email: &'static str| invitations.invite(email, "admin");
    invite("bob@example.com").await;
    let token = app.invitation_token("bob@example.com", 0).await;
    let page = format!("/invitations/{token}");

    // Signed in as someone else: told so, with no button.
    let mut carol = Console::new(&app);
    caller(&app, "carol@example.com").await;
    carol.log_in("carol@example.com").await;
    let shown = carol.get(&page).await.text().await.unwrap();
    assert!(
        shown.contains("this invitation is for bob@example.com"),
        "{shown}"
    );
    assert!(!shown.contains(">Accept invitation<"), "{shown}");

    // Signed in as the invited address: one button.
    let mut bob = Console::new(&app);
    bob.log_in("bob@example.com").await;
    let shown = bob.get(&page).await.text().await.unwrap();
    assert!(
        shown.contains("Join Acme") && shown.contains(">Accept invitation<"),
        "{shown}"
    );
    let accepted = bob.submit(&page, &page, &[]).await;
    assert_eq!(accepted.status(), 303);
    assert_eq!(location(&accepted), format!("/o/{slug}/monitors"));
    let members = bob
        .get(&format!("/o/{slug}/members"))
        .await
        .text()
        .await
        .unwrap();
    assert!(members.contains("bob@example.com") && members.contains("ada@example.com"));
    // Used: a page saying so.
    let used = bob.get(&page).await;
    assert_eq!(used.status(), 410);
    assert!(
        used.text()
            .await
            .unwrap()
            .contains("This invitation can no longer be used")
    );

    // Revoked, and unknown.
    let invitation = invite("dan@example.com").await;
    let token = app.invitation_token("dan@example.com", 0).await;
    invitations.revoke(invitation["id"].as_str().unwrap()).await;
    let mut visitor = Console::new(&app);
    let gone = visitor.get(&format!("/invitations/{token}")).await;
    assert_eq!(gone.status(), 410);
    assert!(
        gone.text()
            .await
            .unwrap()
            .contains("This invitation can no longer be used")
    );
    let unknown = visitor.get("/invitations/not-a-token").await;
    assert_eq!(unknown.status(), 404);
    assert!(unknown.text().await.unwrap().contains("No such invitation"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_admin_moves_a_tenant_between_tiers_and_follows_its_progress() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;
    let slug = slug_of(&app, &org).await;
    crate::platform_admin(&app).await;
    let mut admin = Console::new(&app);
    let token = admin.token("/login").await;
    admin
        .post(
            "/login",
            &[
                ("_csrf", &token),
                ("email", "root@example.com"),
                ("password", "root password"),
            ],
        )
        .await;
    let page = format!("/admin/tenants/{slug}");
    let started = admin
        .submit(&page, &format!("{page}/move"), &[("to", "schema")])
        .await;
    assert_eq!(started.status(), 303);
    let shown =
        tenantry_testkit::eventually("the move to finish", Duration::from_secs(60), async || {
            let shown = admin.get(&page).await.text().await.unwrap();
            if shown.contains("moved to the schema tier") {
                Ok(shown)
            } else {
                Err(shown)
            }
        })
        .await;
    assert!(shown.contains("data-move=\"finished\""), "{shown}");
    let record = app.tenancy.find(&slug).await.unwrap();
    assert_eq!(record.isolation, tenantry_tenancy::Isolation::Schema);
    // The tenant's members go on using it.
    app.as_(&ada).org(&org).monitors().list().await;
    // The purge asks for the slug, as the CLI does.
    let refused = admin
        .submit(
            &page,
            &format!("{page}/delete"),
            &[("hard", "true"), ("confirm", "wrong")],
        )
        .await;
    assert_eq!(refused.status(), 303);
    assert_eq!(
        app.tenancy.find(&slug).await.unwrap().status,
        tenantry_tenancy::TenantStatus::Active
    );
    let purged = admin
        .submit(
            &page,
            &format!("{page}/delete"),
            &[("hard", "true"), ("confirm", slug.as_str())],
        )
        .await;
    assert_eq!(purged.status(), 303);
    assert_eq!(location(&purged), "/admin");
    assert!(app.tenancy.find(&slug).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_form_input_is_refused_without_a_server_error_and_the_profile_can_be_cleared() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;
    let slug = slug_of(&app, &org).await;
    // A NUL in a field, before and after signing in: 400, nothing stored.
    let mut visitor = Console::new(&app);
    let refused = visitor
        .submit(
            "/login",
            "/login",
            &[("email", "ada\0@example.com"), ("password", "x")],
        )
        .await;
    assert_eq!(refused.status(), 400);
    let mut browser = Console::new(&app);
    browser.log_in("ada@example.com").await;
    let keys = format!("/o/{slug}/api-keys");
    let refused = browser
        .submit(&keys, &keys, &[("name", "ci\0"), ("role", "member")])
        .await;
    assert_eq!(refused.status(), 400);
    // An address to come back to that a browser would read as another site's: the start page.
    for next in ["/\t/evil.example", "/\n/evil.example", "/\\evil.example"] {
        let mut other = Console::new(&app);
        let token = other.token("/login").await;
        let signed = other
            .post(
                "/login",
                &[
                    ("_csrf", &token),
                    ("email", "ada@example.com"),
                    ("password", "correct horse"),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(signed.status(), 303, "{next:?}");
        assert_eq!(location(&signed), "/", "{next:?}");
    }
    // The profile: a logo and a billing email set, then cleared with empty fields.
    let settings = format!("/o/{slug}/settings");
    let saved = browser
        .submit(
            &settings,
            &settings,
            &[
                ("name", "Acme"),
                ("slug", slug.as_str()),
                ("logo_url", "https://cdn.example.com/acme.png"),
                ("billing_email", "billing@example.com"),
            ],
        )
        .await;
    assert_eq!(saved.status(), 303);
    let page = browser.get(&settings).await.text().await.unwrap();
    assert!(
        page.contains("https://cdn.example.com/acme.png") && page.contains("billing@example.com")
    );
    let cleared = browser
        .submit(
            &settings,
            &settings,
            &[
                ("name", "Acme Inc"),
                ("slug", slug.as_str()),
                ("logo_url", ""),
                ("billing_email", ""),
            ],
        )
        .await;
    assert_eq!(cleared.status(), 303);
    let page = browser.get(&settings).await.text().await.unwrap();
    assert!(page.contains("Acme Inc"), "{page}");
    assert!(
        !page.contains("cdn.example.com") && !page.contains("billing@example.com"),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_page_shows_whether_its_chains_verify() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let org = new_org(&app, &ada, "Acme").await;
    let slug = slug_of(&app, &org).await;
    app.allow(&org, "audit_log").await;
    app.as_(&ada)
        .org(&org)
        .monitors()
        .create(json!({"name": "Homepage", "kind": "http", "target": "https://example.com", "interval_seconds": 60}))
        .await;
    let mut browser = Console::new(&app);
    browser.log_in("ada@example.com").await;
    let audit = format!("/o/{slug}/audit");
    let page = browser.get(&audit).await.text().await.unwrap();
    assert!(page.contains("Chain verified"), "{page}");
    assert!(
        page.contains("monitor.created") && page.contains("ada@example.com"),
        "{page}"
    );
    // Filtered by action.
    let filtered = browser
        .get(&format!("{audit}?actor=&action=organization."))
        .await
        .text()
        .await
        .unwrap();
    assert!(!filtered.contains("monitor.created"), "{filtered}");
    // An entry altered behind the server's back is named.
    let mut conn = tenantry_testkit::superuser_conn(app.tenancy.control_database()).await;
    sqlx::query(
        "UPDATE shared.audit_log SET action = 'monitor.deleted' WHERE action = 'monitor.created'",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let page = browser.get(&audit).await.text().await.unwrap();
    assert!(page.contains("The chain does not verify."), "{page}");
    assert!(page.contains("was altered"), "{page}");
}
