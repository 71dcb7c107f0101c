//! What benchmark (i) reads: one organization per isolation tier, made as an operator would make
//! it. A platform admin (`tenantry user create --platform-admin`) creates each organization in its
//! tier (`POST /api/v1/admin/tenants`, on the `pro` plan) and lifts its `api_requests_per_minute`
//! (`PUT /api/v1/admin/tenants/{id}`, `null`: unlimited) before anyone uses it; its owner accepts
//! the invitation from the dev mailbox (`tenantry mail list`), creates one monitor and an API key
//! (`viewer`, no budget of its own).

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use tenantry_tenancy::{Isolation, Naming, TenantId};
use uuid::Uuid;

use crate::api_load::{Conn, request};
use crate::api_serve::Serve;

/// The zero-configuration server's database prefix and control database.
const PREFIX: &str = "tenantry";
const PASSWORD: &str = "benchmark password 1";
const ADMIN_EMAIL: &str = "bench-admin@example.com";
/// How long the invitation emails may take to appear in the outbox.
const MAIL_TIMEOUT: Duration = Duration::from_secs(30);
/// One setup request.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// An organization ready to be read.
#[derive(Debug, Clone)]
pub struct Org {
    pub tier: Isolation,
    pub id: Uuid,
    pub slug: String,
    pub monitor: Uuid,
    /// The API key's `tnt_…` secret.
    pub key: String,
    /// Where its rows live, as the registry says.
    pub database: String,
    pub schema: String,
    /// The role its requests' transactions run as: the runtime role, or for the database tier
    /// the tenant's own role.
    pub role: String,
}

/// Creates the three organizations.
pub async fn organizations(serve: &Serve) -> anyhow::Result<Vec<Org>> {
    serve
        .cli(&[
            "user",
            "create",
            "--email",
            ADMIN_EMAIL,
            "--password",
            PASSWORD,
            "--name",
            "Bench admin",
            "--platform-admin",
        ])
        .await?;
    let admin = login(serve, ADMIN_EMAIL).await?;
    let naming = Naming::new(PREFIX)?;
    let mut created = Vec::new();
    for tier in [Isolation::Shared, Isolation::Schema, Isolation::Database] {
        let slug = format!("bench-{tier}");
        let tenant = expect(
            call(
                serve,
                Method::POST,
                "/api/v1/admin/tenants",
                Some(&admin),
                Some(json!({
                    "name": format!("Bench {tier}"),
                    "slug": slug,
                    "admin_email": owner_email(tier),
                    "plan": "pro",
                    "isolation": tier,
                })),
            )
            .await?,
            StatusCode::CREATED,
            "create the organization",
        )?;
        let id: Uuid = field(&tenant, "/id")?.parse()?;
        // Before the organization's first request, so no budget of the plan is remembered.
        let changed = expect(
            call(
                serve,
                Method::PUT,
                &format!("/api/v1/admin/tenants/{id}"),
                Some(&admin),
                Some(json!({"limits": {"api_requests_per_minute": null}})),
            )
            .await?,
            StatusCode::OK,
            "lift the request rate limit",
        )?;
        ensure!(
            changed.pointer("/limits/api_requests_per_minute") == Some(&Value::Null),
            "api_requests_per_minute is still limited: {changed}"
        );
        let role = match tier {
            Isolation::Database => naming.tenant_role(TenantId::from(id)),
            Isolation::Shared | Isolation::Schema => naming.runtime_role(),
        };
        created.push((tier, id, slug, tenant, role));
    }
    let mut orgs = Vec::new();
    for (tier, id, slug, tenant, role) in created {
        let token = invitation_token(serve, &owner_email(tier)).await?;
        let accepted = expect(
            call(
                serve,
                Method::POST,
                &format!("/api/v1/invitations/{token}/accept"),
                None,
                Some(json!({"name": format!("Owner {tier}"), "password": PASSWORD})),
            )
            .await?,
            StatusCode::OK,
            "accept the invitation",
        )?;
        let owner = field(&accepted, "/access_token")?.to_string();
        let monitor = expect(
            call(
                serve,
                Method::POST,
                "/api/v1/monitors",
                Some(&owner),
                // Disabled, so the scheduler never checks it.
                Some(json!({
                    "name": "Bench monitor",
                    "kind": "http",
                    "target": "https://example.com/health",
                    "enabled": false,
                })),
            )
            .await?,
            StatusCode::CREATED,
            "create the monitor",
        )?;
        let key = expect(
            call(
                serve,
                Method::POST,
                &format!("/api/v1/organizations/{id}/api-keys"),
                Some(&owner),
                Some(json!({"name": "bench", "role": "viewer"})),
            )
            .await?,
            StatusCode::CREATED,
            "create the API key",
        )?;
        orgs.push(Org {
            tier,
            id,
            slug,
            monitor: field(&monitor, "/id")?.parse()?,
            key: field(&key, "/secret")?.to_string(),
            database: field(&tenant, "/placement/database")?.to_string(),
            schema: field(&tenant, "/placement/schema")?.to_string(),
            role,
        });
    }
    Ok(orgs)
}

fn owner_email(tier: Isolation) -> String {
    format!("owner-{tier}@example.com")
}

async fn login(serve: &Serve, email: &str) -> anyhow::Result<String> {
    let signed = expect(
        call(
            serve,
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": email, "password": PASSWORD})),
        )
        .await?,
        StatusCode::OK,
        "sign in",
    )?;
    Ok(field(&signed, "/access_token")?.to_string())
}

/// The token in the invitation email to `email`, read from the dev mailbox.
async fn invitation_token(serve: &Serve, email: &str) -> anyhow::Result<String> {
    const MARK: &str = "Invitation token: ";
    let deadline = Instant::now() + MAIL_TIMEOUT;
    loop {
        let listed: Value = serde_json::from_str(
            &serve
                .cli(&["mail", "list", "--json", "--limit", "50"])
                .await?,
        )
        .context("`tenantry mail list --json` printed something else than JSON")?;
        let token = listed
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["to"] == email)
            .filter_map(|m| m["text"].as_str())
            .flat_map(str::lines)
            .find_map(|l| l.trim().strip_prefix(MARK).map(str::to_string));
        if let Some(token) = token {
            return Ok(token);
        }
        if Instant::now() >= deadline {
            bail!("no invitation email to {email} within {MAIL_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One request on a connection of its own; the status and the JSON answer (`null` when empty).
pub async fn call(
    serve: &Serve,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> anyhow::Result<(StatusCode, Value)> {
    let what = format!("{method} {path}");
    let request = request(serve.addr, method, path, bearer, body.as_ref())?;
    let answered = tokio::time::timeout(CALL_TIMEOUT, async {
        Conn::open(serve.addr).await?.send(request).await
    })
    .await
    .map_err(|_| anyhow!("{what}: no answer within {CALL_TIMEOUT:?}"))?
    .with_context(|| what.clone())?;
    let (status, bytes) = answered;
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{what} answered {status} with something else than JSON"))?
    };
    Ok((status, json))
}

/// The answer's JSON when its status is `want`, else an error saying what failed.
pub fn expect(answer: (StatusCode, Value), want: StatusCode, what: &str) -> anyhow::Result<Value> {
    let (status, json) = answer;
    ensure!(
        status == want,
        "failed to {what}: {status} (expected {want}): {json}"
    );
    Ok(json)
}

fn field<'a>(json: &'a Value, pointer: &str) -> anyhow::Result<&'a str> {
    json.pointer(pointer)
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("no {pointer} in {json}"))
}
