//! Invitations: admins invite by email; the invited person accepts with the token from the
//! email, signed in as the invited address or signing up on the way.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tenantry_identity::{Email, IdentityError, User};
use tenantry_orgs::{Invitation, InvitationPreview, Membership, OrgSummary, Orgs, Role};
use uuid::Uuid;

use crate::auth::Tokens;
use crate::error::AppError;
use crate::extract::{AuthUser, Items, OptionalUser};
use crate::members::membership;
use crate::server::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/organizations/{id}/invitations",
            get(list).post(create),
        )
        .route(
            "/api/v1/organizations/{id}/invitations/{iid}",
            delete(revoke),
        )
        .route(
            "/api/v1/organizations/{id}/invitations/{iid}/resend",
            post(resend),
        )
        .route("/api/v1/invitations/{token}", get(preview))
        .route("/api/v1/invitations/{token}/accept", post(accept))
        .route("/invitations/{token}", get(page))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewInvitation {
    email: String,
    role: Role,
}

/// The body of an accept without a signed-in user: the account to create.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptSignup {
    name: String,
    password: String,
}

/// An accepted invitation: the membership, the organization, the user, and a token pair whose
/// `org_id` is the organization.
#[derive(Serialize)]
struct Accepted {
    membership: Membership,
    organization: OrgSummary,
    user: User,
    #[serde(flatten)]
    tokens: Tokens,
}

fn invitation_id(text: &str) -> Result<Uuid, AppError> {
    text.parse().map_err(|_| AppError::NotFound)
}

/// The inviter's name, as the email shows it.
async fn inviter(state: &AppState, user_id: Uuid) -> Result<String, AppError> {
    Ok(state
        .identity
        .user(user_id)
        .await?
        .map_or_else(|| "Someone".to_string(), |u| u.name))
}

async fn create(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
    crate::extract::ApiJson(body): crate::extract::ApiJson<NewInvitation>,
) -> Result<(StatusCode, Json<Invitation>), AppError> {
    let (record, role) = membership(&state, claims.sub, &id).await?;
    let email = Email::parse(&body.email).map_err(|e| AppError::invalid("email", e))?;
    let inviter = inviter(&state, claims.sub).await?;
    let invitation = state
        .orgs
        .invite(
            role,
            record.id.as_uuid(),
            Some(claims.sub),
            &inviter,
            &email,
            body.role,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(invitation)))
}

async fn list(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Items<Invitation>>, AppError> {
    let (record, role) = membership(&state, claims.sub, &id).await?;
    crate::extract::require(role, tenantry_orgs::Action::Administer)?;
    Ok(Json(Items::all(
        state.orgs.invitations(record.id.as_uuid()).await?,
    )))
}

async fn revoke(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path((id, iid)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    let (record, role) = membership(&state, claims.sub, &id).await?;
    let iid = invitation_id(&iid)?;
    state
        .orgs
        .revoke_invitation(role, record.id.as_uuid(), iid)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn resend(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path((id, iid)): Path<(String, String)>,
) -> Result<Json<Invitation>, AppError> {
    let (record, role) = membership(&state, claims.sub, &id).await?;
    let iid = invitation_id(&iid)?;
    let inviter = inviter(&state, claims.sub).await?;
    Ok(Json(
        state
            .orgs
            .resend_invitation(role, record.id.as_uuid(), iid, &inviter)
            .await?,
    ))
}

/// What a token invites to (for the page the email links to): 404 for a token that never
/// existed, 410 for one no longer valid.
async fn preview(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<InvitationPreview>, AppError> {
    Ok(Json(state.orgs.preview_invitation(&token).await?))
}

/// Accepts as the signed-in user (whose email must be the invited one), or, with no
/// `Authorization` header, signs up with `{name, password}` as the invited address.
async fn accept(
    State(state): State<AppState>,
    OptionalUser(caller): OptionalUser,
    Path(token): Path<String>,
    body: Bytes,
) -> Result<Json<Accepted>, AppError> {
    let accepted = match caller {
        Some(claims) => {
            let user = state
                .identity
                .user(claims.sub)
                .await?
                .ok_or_else(AppError::unauthorized)?;
            let (membership, user) = accept_as(&state, &token, user).await?;
            let tokens = state
                .identity
                .reissue(&claims, Some(membership.org_id))
                .await?;
            (membership, user, tokens)
        }
        None => {
            let signup: AcceptSignup = if body.iter().all(u8::is_ascii_whitespace) {
                return Err(AppError::Unauthorized {
                    code: "unauthorized",
                    detail: "Sign in as the invited address (Authorization: Bearer <access token>), or send {\"name\", \"password\"} to create the account.",
                });
            } else {
                serde_json::from_slice(&body).map_err(|e| {
                    AppError::BadRequest(format!(
                        "The body must be JSON {{\"name\": \"…\", \"password\": \"…\"}}: {e}"
                    ))
                })?
            };
            let (membership, user) = sign_up_and_accept(&state, &token, &signup).await?;
            let tokens = state
                .identity
                .sign_in(&user, Some(membership.org_id))
                .await?;
            (membership, user, tokens)
        }
    };
    let (membership, user, tokens) = accepted;
    let record = state.tenancy.find(&membership.org_id.to_string()).await?;
    Ok(Json(Accepted {
        organization: Orgs::summary(&record, membership.role),
        membership,
        user,
        tokens: tokens.into(),
    }))
}

async fn accept_as(
    state: &AppState,
    token: &str,
    user: User,
) -> Result<(Membership, User), AppError> {
    let mut tx = state.tenancy.runtime_pool().begin().await?;
    let invitation = state.orgs.lock_invitation(&mut tx, token).await?;
    if !invitation.email.eq_ignore_ascii_case(&user.email) {
        return Err(AppError::Forbidden {
            code: "email_mismatch",
            detail: "This invitation is for another email address: sign in as that address to accept it.".to_string(),
        });
    }
    let membership = state
        .orgs
        .accept_invitation(&mut tx, &invitation, user.id)
        .await?;
    tx.commit().await?;
    let user = adopt_default(state, user, membership.org_id).await?;
    Ok((membership, user))
}

async fn sign_up_and_accept(
    state: &AppState,
    token: &str,
    signup: &AcceptSignup,
) -> Result<(Membership, User), AppError> {
    // The address comes from the invitation; checking the token first spares the hashing work
    // for tokens that lead nowhere.
    let preview = state.orgs.preview_invitation(token).await?;
    let email =
        Email::parse(&preview.email).map_err(|e| AppError::Unexpected(anyhow::anyhow!(e)))?;
    let new = state
        .identity
        .prepare_user(&email, &signup.password, &signup.name)
        .await?;
    let mut tx = state.tenancy.runtime_pool().begin().await?;
    let invitation = state.orgs.lock_invitation(&mut tx, token).await?;
    let user = match state.identity.insert_user(&mut tx, &new).await {
        Ok(user) => user,
        Err(IdentityError::EmailTaken) => {
            return Err(AppError::Conflict(format!(
                "An account for {email} exists: sign in and accept the invitation with your access token."
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let membership = state
        .orgs
        .accept_invitation(&mut tx, &invitation, user.id)
        .await?;
    tx.commit().await?;
    let user = adopt_default(state, user, membership.org_id).await?;
    Ok((membership, user))
}

/// A user without a default organization starts in the one they just joined.
async fn adopt_default(state: &AppState, user: User, org_id: Uuid) -> Result<User, AppError> {
    if user.default_org_id.is_some() {
        return Ok(user);
    }
    Ok(state
        .identity
        .set_default_org(user.id, Some(org_id))
        .await?)
}

/// The page an invitation email links to: what the invitation is for, and forms to accept it by
/// creating the account or signing in. Self-contained: no external assets.
async fn page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> (StatusCode, axum::response::Html<String>) {
    let (status, body) = match state.orgs.preview_invitation(&token).await {
        Ok(preview) => (StatusCode::OK, invitation_page(&preview)),
        Err(tenantry_orgs::OrgsError::NotFound) => (
            StatusCode::NOT_FOUND,
            "<h1>No such invitation</h1><p>Check that the link is complete.</p>".to_string(),
        ),
        Err(tenantry_orgs::OrgsError::Gone(detail)) => (
            StatusCode::GONE,
            format!(
                "<h1>Invitation no longer valid</h1><p>{}</p>",
                escape(&detail)
            ),
        ),
        Err(e) => {
            tracing::error!(error = %e, "failed to show an invitation");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "<h1>Something went wrong</h1><p>Try again shortly.</p>".to_string(),
            )
        }
    };
    (status, axum::response::Html(page_shell(&body)))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page_shell(body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Tenantry invitation</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1b1f24}}\
         form{{display:grid;gap:.5rem;margin:1rem 0;padding:1rem;border:1px solid #d0d7de;border-radius:6px}}\
         input,button{{font:inherit;padding:.4rem}}#result{{font-weight:600}}</style></head>\
         <body>{body}</body></html>"
    )
}

fn invitation_page(preview: &InvitationPreview) -> String {
    let org = escape(&preview.organization.name);
    let email = escape(&preview.email);
    let expires = preview.expires_at.format("%Y-%m-%d %H:%M UTC");
    format!(
        r#"<h1>Join {org}</h1>
<p>You are invited to join <strong>{org}</strong> as <strong>{role}</strong>, as {email}. The invitation expires on {expires}.</p>
<form id="signup"><strong>New to Tenantry? Create your account</strong>
<label>Name <input name="name" required maxlength="200"></label>
<label>Password (8 characters or more) <input name="password" type="password" required minlength="8"></label>
<button>Create account and join</button></form>
<form id="signin"><strong>Already have an account? Sign in as {email}</strong>
<label>Password <input name="password" type="password" required></label>
<button>Sign in and join</button></form>
<p id="result" role="status"></p>
<script>
const accept = location.pathname.replace(/^\/invitations\//, "/api/v1/invitations/") + "/accept";
const email = {email_json};
const show = (text) => {{ document.getElementById("result").textContent = text; }};
async function call(url, body, token) {{
  const headers = {{"Content-Type": "application/json"}};
  if (token) headers["Authorization"] = "Bearer " + token;
  const response = await fetch(url, {{method: "POST", headers, body: body ? JSON.stringify(body) : undefined}});
  const json = await response.json().catch(() => ({{}}));
  if (!response.ok) throw new Error(json.detail || response.statusText);
  return json;
}}
function joined(result) {{
  show("You joined " + result.organization.name + " as " + result.membership.role + ".");
  document.querySelectorAll("form").forEach((f) => f.remove());
}}
document.getElementById("signup").addEventListener("submit", async (event) => {{
  event.preventDefault();
  const form = new FormData(event.target);
  try {{ joined(await call(accept, {{name: form.get("name"), password: form.get("password")}})); }}
  catch (e) {{ show(e.message); }}
}});
document.getElementById("signin").addEventListener("submit", async (event) => {{
  event.preventDefault();
  const form = new FormData(event.target);
  try {{
    const session = await call("/api/v1/auth/login", {{email, password: form.get("password")}});
    joined(await call(accept, null, session.access_token));
  }} catch (e) {{ show(e.message); }}
}});
</script>"#,
        role = preview.role,
        email_json = serde_json::to_string(&preview.email)
            .unwrap_or_default()
            .replace('<', "\\u003c"),
    )
}
