//! One typed client for the API tests. A [`Client`] is a caller (`app.as_(&ada)`, or
//! `app.anonymous()`), optionally in an organization (`.org(&id)`, the `X-Tenant` header), with
//! a group of methods per resource: `acme.monitors().create(body)`,
//! `app.as_(&ada).organizations().members(&org).add(bob.id, "admin")`.
//!
//! A method named after an action expects the status that action answers with and returns the
//! body's JSON (`null` for none); its `try_` twin returns the [`Answer`] whatever the status, for
//! tests about refusals (`answer.problem(404)`). A failed expectation names the method, path,
//! organization, status and body. [`Client::request`] makes any request at all, for tests that
//! send odd ones on purpose.

use std::fmt::{self, Display};
use std::ops::Deref;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{Caller, TestApp};

/// What a request is authenticated with: a signed-up caller, or a token as text (an access
/// token, an API key, an agent token).
pub trait Credential {
    fn token(&self) -> &str;
}

impl Credential for Caller {
    fn token(&self) -> &str {
        &self.token
    }
}

impl Credential for str {
    fn token(&self) -> &str {
        self
    }
}

impl Credential for String {
    fn token(&self) -> &str {
        self
    }
}

impl TestApp {
    /// A client sending `who`'s token.
    pub fn as_(&self, who: &(impl Credential + ?Sized)) -> Client<'_> {
        Client {
            app: self,
            token: Some(who.token().to_string()),
            tenant: None,
            headers: Vec::new(),
        }
    }

    /// A client sending no token.
    pub fn anonymous(&self) -> Client<'_> {
        Client {
            app: self,
            token: None,
            tenant: None,
            headers: Vec::new(),
        }
    }
}

/// A caller of the API: a token or none, an organization in context or none, and headers sent
/// on every request.
#[derive(Clone)]
pub struct Client<'a> {
    app: &'a TestApp,
    token: Option<String>,
    tenant: Option<String>,
    headers: Vec<(String, String)>,
}

impl<'a> Client<'a> {
    /// The same caller in organization `tenant` (an id or a slug, sent as `X-Tenant`).
    pub fn org(&self, tenant: &str) -> Client<'a> {
        Client {
            tenant: Some(tenant.to_string()),
            ..self.clone()
        }
    }

    /// The same caller, sending header `name` on every request.
    pub fn header(&self, name: &str, value: &str) -> Client<'a> {
        let mut client = self.clone();
        client.headers.push((name.to_string(), value.to_string()));
        client
    }

    /// Any request: `method` on `path` (with its query), as this caller.
    pub fn request(&self, method: Method, path: impl Into<String>) -> Request<'a> {
        Request {
            client: self.clone(),
            method,
            path: path.into(),
            body: Body::None,
            headers: Vec::new(),
        }
    }

    /// Sign-up, login, refresh, logout.
    pub fn auth(&self) -> Auth<'a> {
        Auth(self.clone())
    }

    /// The caller's own account.
    pub fn user(&self) -> User<'a> {
        User(self.clone())
    }

    /// `/api/v1/organizations` and everything under it.
    pub fn organizations(&self) -> Organizations<'a> {
        Organizations(self.collection("/api/v1/organizations".to_string()))
    }

    /// The invitation whose emailed token is `token`.
    pub fn invitation(&self, token: &str) -> Invitation<'a> {
        Invitation {
            client: self.clone(),
            path: format!("/api/v1/invitations/{token}"),
        }
    }

    /// `/api/v1/monitors`, in the organization in context.
    pub fn monitors(&self) -> Monitors<'a> {
        Monitors(self.collection("/api/v1/monitors".to_string()))
    }

    /// `/api/v1/alert-channels`, in the organization in context.
    pub fn alert_channels(&self) -> Collection<'a> {
        self.collection("/api/v1/alert-channels".to_string())
    }

    /// `/api/v1/status-pages`, in the organization in context.
    pub fn status_pages(&self) -> Collection<'a> {
        self.collection("/api/v1/status-pages".to_string())
    }

    /// `/api/v1/agents`, in the organization in context.
    pub fn agents(&self) -> Collection<'a> {
        self.collection("/api/v1/agents".to_string())
    }

    /// `/api/v1/admin/tenants`, for platform admins.
    pub fn admin_tenants(&self) -> AdminTenants<'a> {
        AdminTenants(self.collection("/api/v1/admin/tenants".to_string()))
    }

    fn collection(&self, path: String) -> Collection<'a> {
        Collection {
            client: self.clone(),
            path,
        }
    }

    async fn call(&self, method: Method, path: String, body: Option<Value>) -> Answer {
        self.request(method, path).body(body).send().await
    }

    async fn expect(
        &self,
        method: Method,
        path: String,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        self.call(method, path, body).await.expect(status)
    }
}

enum Body {
    None,
    Json(Value),
    Raw(reqwest::Body),
}

/// A request being made: its body and headers, then [`Request::send`].
pub struct Request<'a> {
    client: Client<'a>,
    method: Method,
    path: String,
    body: Body,
    headers: Vec<(String, String)>,
}

impl Request<'_> {
    /// `body` as JSON, or no body for `None`.
    pub fn body(mut self, body: impl Into<Option<Value>>) -> Self {
        self.body = match body.into() {
            Some(body) => Body::Json(body),
            None => Body::None,
        };
        self
    }

    /// `body` as it is, without a content type of its own.
    pub fn raw_body(mut self, body: impl Into<reqwest::Body>) -> Self {
        self.body = Body::Raw(body.into());
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sends the request and reads the whole answer.
    pub async fn send(self) -> Answer {
        let (method, path) = (self.method.clone(), self.path.clone());
        let tenant = self.client.tenant.clone();
        let response = self.response().await;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap().to_vec();
        Answer {
            method,
            path,
            tenant,
            status,
            headers,
            body,
        }
    }

    /// Sends the request and returns the response with its body unread.
    pub async fn response(self) -> reqwest::Response {
        let client = self.client;
        let mut request = client
            .app
            .client
            .request(self.method, format!("{}{}", client.app.base, self.path));
        if let Some(token) = &client.token {
            request = request.bearer_auth(token);
        }
        if let Some(tenant) = &client.tenant {
            request = request.header("X-Tenant", tenant);
        }
        for (name, value) in client.headers.iter().chain(&self.headers) {
            request = request.header(name, value);
        }
        request = match self.body {
            Body::None => request,
            Body::Json(body) => request.json(&body),
            Body::Raw(body) => request.body(body),
        };
        request.send().await.unwrap()
    }
}

/// A response read in full, with the request it answers.
pub struct Answer {
    method: Method,
    path: String,
    tenant: Option<String>,
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    /// The method of the request answered.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path (and query) of the request answered.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    pub fn bytes(&self) -> &[u8] {
        &self.body
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{self}\nis not JSON: {e}"))
    }

    /// The answer, after checking its status.
    pub fn assert_status(self, status: u16) -> Self {
        assert_eq!(self.status, status, "expected {status}: {self}");
        self
    }

    /// The body as JSON (`null` when there is none), after checking the status.
    pub fn expect(self, status: u16) -> Value {
        let answer = self.assert_status(status);
        if answer.body.is_empty() {
            Value::Null
        } else {
            answer.json()
        }
    }

    /// The problem JSON of a refusal, after checking its status and media type.
    pub fn problem(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "expected {status}: {self}");
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "expected problem JSON: {self}"
        );
        self.json()
    }
}

impl Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        if let Some(tenant) = &self.tenant {
            write!(f, " (X-Tenant {tenant})")?;
        }
        let text = self.text();
        let shown: String = text.chars().take(2000).collect();
        let more = if shown.len() < text.len() { "…" } else { "" };
        write!(f, " answered {}: {shown}{more}", self.status)
    }
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Display::fmt(self, f)
    }
}

/// A path with a query appended, when there is one.
fn with_query(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

/// A collection of resources: listed and created at its path, each read, replaced and deleted
/// at `{path}/{id}`.
#[derive(Clone)]
pub struct Collection<'a> {
    client: Client<'a>,
    path: String,
}

impl<'a> Collection<'a> {
    /// The path of one of its resources.
    pub fn path_of(&self, id: impl Display) -> String {
        format!("{}/{id}", self.path)
    }

    /// The first page (200).
    pub async fn list(&self) -> Value {
        self.try_list().await.expect(200)
    }

    pub async fn try_list(&self) -> Answer {
        self.try_list_with("").await
    }

    /// A page chosen by `query` (`limit=2&cursor=...`, without the `?`) (200).
    pub async fn list_with(&self, query: &str) -> Value {
        self.try_list_with(query).await.expect(200)
    }

    pub async fn try_list_with(&self, query: &str) -> Answer {
        let path = with_query(&self.path, query);
        self.client.call(Method::GET, path, None).await
    }

    /// Creates one from `body` (201).
    pub async fn create(&self, body: Value) -> Value {
        self.try_create(body).await.expect(201)
    }

    pub async fn try_create(&self, body: Value) -> Answer {
        let path = self.path.clone();
        self.client.call(Method::POST, path, Some(body)).await
    }

    /// Reads one (200).
    pub async fn get(&self, id: impl Display) -> Value {
        self.try_get(id).await.expect(200)
    }

    pub async fn try_get(&self, id: impl Display) -> Answer {
        self.client.call(Method::GET, self.path_of(id), None).await
    }

    /// Replaces or updates one with `body` (`PUT`, 200).
    pub async fn update(&self, id: impl Display, body: Value) -> Value {
        self.try_update(id, body).await.expect(200)
    }

    pub async fn try_update(&self, id: impl Display, body: Value) -> Answer {
        let path = self.path_of(id);
        self.client.call(Method::PUT, path, Some(body)).await
    }

    /// Deletes one (204).
    pub async fn delete(&self, id: impl Display) {
        self.try_delete(id).await.expect(204);
    }

    pub async fn try_delete(&self, id: impl Display) -> Answer {
        self.client
            .call(Method::DELETE, self.path_of(id), None)
            .await
    }
}

/// A read-only list: results, incidents, the audit trail.
pub struct Listing<'a> {
    client: Client<'a>,
    path: String,
}

impl Listing<'_> {
    /// The first page (200).
    pub async fn list(&self) -> Value {
        self.try_list().await.expect(200)
    }

    pub async fn try_list(&self) -> Answer {
        self.try_list_with("").await
    }

    /// A page chosen by `query` (without the `?`) (200).
    pub async fn list_with(&self, query: &str) -> Value {
        self.try_list_with(query).await.expect(200)
    }

    pub async fn try_list_with(&self, query: &str) -> Answer {
        let path = with_query(&self.path, query);
        self.client.call(Method::GET, path, None).await
    }
}

/// `/api/v1/auth`.
pub struct Auth<'a>(Client<'a>);

impl Auth<'_> {
    /// Signs up with `body` (`email`, `password`, `name`) (201): the user and tokens.
    pub async fn signup(&self, body: Value) -> Value {
        self.try_signup(body).await.expect(201)
    }

    pub async fn try_signup(&self, body: Value) -> Answer {
        let path = "/api/v1/auth/signup".to_string();
        self.0.call(Method::POST, path, Some(body)).await
    }

    /// Logs in (200): the user and tokens.
    pub async fn login(&self, email: &str, password: &str) -> Value {
        self.try_login(email, password).await.expect(200)
    }

    pub async fn try_login(&self, email: &str, password: &str) -> Answer {
        let body = json!({"email": email, "password": password});
        let path = "/api/v1/auth/login".to_string();
        self.0.call(Method::POST, path, Some(body)).await
    }

    /// Trades a refresh token for a new pair (200).
    pub async fn refresh(&self, refresh_token: &str) -> Value {
        self.try_refresh(refresh_token).await.expect(200)
    }

    pub async fn try_refresh(&self, refresh_token: impl Into<Value>) -> Answer {
        let body = json!({"refresh_token": refresh_token.into()});
        let path = "/api/v1/auth/refresh".to_string();
        self.0.call(Method::POST, path, Some(body)).await
    }

    /// Ends the caller's session (204).
    pub async fn logout(&self) {
        self.try_logout().await.expect(204);
    }

    pub async fn try_logout(&self) -> Answer {
        let path = "/api/v1/auth/logout".to_string();
        self.0.call(Method::POST, path, None).await
    }
}

/// `/api/v1/user`: the caller's own account.
pub struct User<'a>(Client<'a>);

impl User<'_> {
    /// The caller, with `default_org_id` (200).
    pub async fn get(&self) -> Value {
        self.try_get().await.expect(200)
    }

    pub async fn try_get(&self) -> Answer {
        self.0.call(Method::GET, "/api/v1/user".into(), None).await
    }

    /// The caller's organizations with their role in each (200).
    pub async fn organizations(&self) -> Value {
        self.try_organizations().await.expect(200)
    }

    pub async fn try_organizations(&self) -> Answer {
        let path = "/api/v1/user/organizations".to_string();
        self.0.call(Method::GET, path, None).await
    }

    /// Makes `org` the caller's default organization (200).
    pub async fn set_default_organization(&self, org: impl Display) -> Value {
        self.try_set_default_organization(org).await.expect(200)
    }

    pub async fn try_set_default_organization(&self, org: impl Display) -> Answer {
        let body = json!({"org_id": org.to_string()});
        let path = "/api/v1/user/default-organization".to_string();
        self.0.call(Method::PUT, path, Some(body)).await
    }
}

/// `/api/v1/organizations`: the collection, and each organization's members, invitations, API
/// keys, audit trail, usage and export.
pub struct Organizations<'a>(Collection<'a>);

impl<'a> Deref for Organizations<'a> {
    type Target = Collection<'a>;

    fn deref(&self) -> &Collection<'a> {
        &self.0
    }
}

impl<'a> Organizations<'a> {
    /// Purges organization `id`, confirmed with `confirm` (its slug) (204).
    pub async fn hard_delete(&self, id: impl Display, confirm: impl Into<Value>) {
        self.try_hard_delete(id, confirm).await.expect(204);
    }

    pub async fn try_hard_delete(&self, id: impl Display, confirm: impl Into<Value>) -> Answer {
        let path = format!("{}?hard=true", self.path_of(id));
        let body = json!({"confirm": confirm.into()});
        self.0.client.call(Method::DELETE, path, Some(body)).await
    }

    /// A new token pair in organization `id` (200).
    pub async fn switch(&self, id: impl Display) -> Value {
        self.try_switch(id).await.expect(200)
    }

    pub async fn try_switch(&self, id: impl Display) -> Answer {
        let path = format!("{}/switch", self.path_of(id));
        self.0.client.call(Method::POST, path, None).await
    }

    /// Leaves organization `id` (204).
    pub async fn leave(&self, id: impl Display) {
        self.try_leave(id).await.expect(204);
    }

    pub async fn try_leave(&self, id: impl Display) -> Answer {
        let path = format!("{}/leave", self.path_of(id));
        self.0.client.call(Method::POST, path, None).await
    }

    /// The usage of organization `id` against its limits (200).
    pub async fn usage(&self, id: impl Display) -> Value {
        self.try_usage(id).await.expect(200)
    }

    pub async fn try_usage(&self, id: impl Display) -> Answer {
        let path = format!("{}/usage", self.path_of(id));
        self.0.client.call(Method::GET, path, None).await
    }

    /// The archive of organization `id` (200).
    pub async fn export(&self, id: impl Display) -> Answer {
        self.try_export(id).await.assert_status(200)
    }

    pub async fn try_export(&self, id: impl Display) -> Answer {
        let path = format!("{}/export", self.path_of(id));
        self.0.client.call(Method::GET, path, None).await
    }

    /// The members of organization `id`.
    pub fn members(&self, id: impl Display) -> Members<'a> {
        Members(
            self.0
                .client
                .collection(format!("{}/members", self.path_of(id))),
        )
    }

    /// The pending invitations of organization `id`.
    pub fn invitations(&self, id: impl Display) -> Invitations<'a> {
        let path = format!("{}/invitations", self.path_of(id));
        Invitations(self.0.client.collection(path))
    }

    /// The API keys of organization `id`.
    pub fn api_keys(&self, id: impl Display) -> ApiKeys<'a> {
        ApiKeys(
            self.0
                .client
                .collection(format!("{}/api-keys", self.path_of(id))),
        )
    }

    /// The audit trail of organization `id`.
    pub fn audit_logs(&self, id: impl Display) -> Listing<'a> {
        Listing {
            client: self.0.client.clone(),
            path: format!("{}/audit-logs", self.path_of(id)),
        }
    }
}

/// An organization's members.
pub struct Members<'a>(Collection<'a>);

impl Members<'_> {
    /// All of them (200).
    pub async fn list(&self) -> Value {
        self.0.list().await
    }

    pub async fn try_list(&self) -> Answer {
        self.0.try_list().await
    }

    /// Adds user `user` with `role` (201).
    pub async fn add(&self, user: Uuid, role: &str) -> Value {
        self.try_add(user, role).await.expect(201)
    }

    pub async fn try_add(&self, user: Uuid, role: &str) -> Answer {
        self.0
            .try_create(json!({"user_id": user, "role": role}))
            .await
    }

    /// Gives member `user` `role` (200).
    pub async fn change_role(&self, user: impl Display, role: &str) -> Value {
        self.try_change_role(user, role).await.expect(200)
    }

    pub async fn try_change_role(&self, user: impl Display, role: &str) -> Answer {
        let path = self.0.path_of(user);
        let body = json!({"role": role});
        self.0.client.call(Method::PATCH, path, Some(body)).await
    }

    /// Removes member `user` (204).
    pub async fn remove(&self, user: impl Display) {
        self.0.delete(user).await;
    }

    pub async fn try_remove(&self, user: impl Display) -> Answer {
        self.0.try_delete(user).await
    }
}

/// An organization's pending invitations.
pub struct Invitations<'a>(Collection<'a>);

impl Invitations<'_> {
    /// All of them (200).
    pub async fn list(&self) -> Value {
        self.0.list().await
    }

    pub async fn try_list(&self) -> Answer {
        self.0.try_list().await
    }

    /// Invites `email` as `role` (201).
    pub async fn invite(&self, email: &str, role: &str) -> Value {
        self.try_invite(email, role).await.expect(201)
    }

    pub async fn try_invite(&self, email: &str, role: &str) -> Answer {
        self.0
            .try_create(json!({"email": email, "role": role}))
            .await
    }

    /// Sends invitation `id` again, with a new token (200).
    pub async fn resend(&self, id: impl Display) -> Value {
        self.try_resend(id).await.expect(200)
    }

    pub async fn try_resend(&self, id: impl Display) -> Answer {
        let path = format!("{}/resend", self.0.path_of(id));
        self.0.client.call(Method::POST, path, None).await
    }

    /// Revokes invitation `id` (204).
    pub async fn revoke(&self, id: impl Display) {
        self.0.delete(id).await;
    }

    pub async fn try_revoke(&self, id: impl Display) -> Answer {
        self.0.try_delete(id).await
    }
}

/// An organization's API keys.
pub struct ApiKeys<'a>(Collection<'a>);

impl ApiKeys<'_> {
    /// All of them (200).
    pub async fn list(&self) -> Value {
        self.0.list().await
    }

    pub async fn try_list(&self) -> Answer {
        self.0.try_list().await
    }

    /// Makes a key from `body` (`name`, `role`, `requests_per_minute`) (201), its secret shown
    /// this once.
    pub async fn create(&self, body: Value) -> Value {
        self.0.create(body).await
    }

    pub async fn try_create(&self, body: Value) -> Answer {
        self.0.try_create(body).await
    }

    /// Revokes key `id` (204).
    pub async fn revoke(&self, id: impl Display) {
        self.0.delete(id).await;
    }

    pub async fn try_revoke(&self, id: impl Display) -> Answer {
        self.0.try_delete(id).await
    }
}

/// `/api/v1/invitations/{token}`: an invitation as its emailed token reaches it.
pub struct Invitation<'a> {
    client: Client<'a>,
    path: String,
}

impl Invitation<'_> {
    /// What the invitation is for (200).
    pub async fn preview(&self) -> Value {
        self.client
            .expect(Method::GET, self.path.clone(), None, 200)
            .await
    }

    /// Accepts it as the signed-in caller (200).
    pub async fn accept(&self) -> Value {
        self.try_accept().await.expect(200)
    }

    /// Accepts it without a body.
    pub async fn try_accept(&self) -> Answer {
        let path = format!("{}/accept", self.path);
        self.client.call(Method::POST, path, None).await
    }

    /// Accepts it signing up as `name` with `password` (200).
    pub async fn accept_signing_up(&self, name: &str, password: &str) -> Value {
        self.try_accept_signing_up(name, password).await.expect(200)
    }

    pub async fn try_accept_signing_up(&self, name: &str, password: &str) -> Answer {
        let path = format!("{}/accept", self.path);
        let body = json!({"name": name, "password": password});
        self.client.call(Method::POST, path, Some(body)).await
    }
}

/// `/api/v1/monitors`, with each monitor's results and incidents.
pub struct Monitors<'a>(Collection<'a>);

impl<'a> Deref for Monitors<'a> {
    type Target = Collection<'a>;

    fn deref(&self) -> &Collection<'a> {
        &self.0
    }
}

impl<'a> Monitors<'a> {
    /// The check results of monitor `id`, newest first.
    pub fn results(&self, id: impl Display) -> Listing<'a> {
        Listing {
            client: self.0.client.clone(),
            path: format!("{}/results", self.path_of(id)),
        }
    }

    /// The incidents of monitor `id`, newest first.
    pub fn incidents(&self, id: impl Display) -> Listing<'a> {
        Listing {
            client: self.0.client.clone(),
            path: format!("{}/incidents", self.path_of(id)),
        }
    }
}

/// `/api/v1/admin/tenants`: every tenant, for platform admins.
pub struct AdminTenants<'a>(Collection<'a>);

impl<'a> Deref for AdminTenants<'a> {
    type Target = Collection<'a>;

    fn deref(&self) -> &Collection<'a> {
        &self.0
    }
}

impl AdminTenants<'_> {
    /// Activates tenant `id` (200).
    pub async fn activate(&self, id: impl Display) -> Value {
        self.try_action(id, "activate").await.expect(200)
    }

    /// Suspends tenant `id` (200).
    pub async fn suspend(&self, id: impl Display) -> Value {
        self.try_action(id, "suspend").await.expect(200)
    }

    /// Undoes the soft delete of tenant `id` (200).
    pub async fn restore(&self, id: impl Display) -> Value {
        self.try_action(id, "restore").await.expect(200)
    }

    /// `POST /api/v1/admin/tenants/{id}/{action}`.
    pub async fn try_action(&self, id: impl Display, action: &str) -> Answer {
        let path = format!("{}/{action}", self.path_of(id));
        self.0.client.call(Method::POST, path, None).await
    }

    /// Purges tenant `id`, confirmed with `confirm` (its slug) (204).
    pub async fn hard_delete(&self, id: impl Display, confirm: impl Into<Value>) {
        self.try_hard_delete(id, confirm).await.expect(204);
    }

    pub async fn try_hard_delete(&self, id: impl Display, confirm: impl Into<Value>) -> Answer {
        let path = format!("{}?hard=true", self.path_of(id));
        let body = json!({"confirm": confirm.into()});
        self.0.client.call(Method::DELETE, path, Some(body)).await
    }
}
