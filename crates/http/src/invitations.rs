//! Invitations: admins invite by email; the invited person accepts with the token from the
//! email, signed in as the invited address or signing up on the way.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tenantry_identity::{Email, IdentityError, User};
use tenantry_orgs::{Invitation, InvitationPreview, Membership, OrgSummary, Orgs, Role};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Tokens;
use crate::error::{AppError, Problem};
use crate::extract::{ApiJson, AuthUser, Items, OptionalUser};
use crate::members::membership;
use crate::openapi::{Forbidden, Internal, JsonBody, NotFound, PROBLEM, SignedIn, schemas};
use crate::server::AppState;
use crate::throttle::{self, Client};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
        .routes(routes!(resend))
        .routes(routes!(preview))
        .routes(routes!(accept))
        .routes(routes!(page))
}

/// The media type of the invitation page.
const HTML: &str = "text/html";

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewInvitation {
    /// The address to invite; accepting needs an account with it (or makes one).
    #[schema(example = "bob@example.com")]
    email: String,
    /// The role the invited person gets; only an owner invites owners.
    role: Role,
}

/// The body of an accept without a signed-in user: the account to create, for the invited
/// address.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AcceptSignup {
    /// 1 to 200 characters.
    #[schema(example = "Bob Example")]
    name: String,
    /// At least 8 characters.
    password: String,
}

/// An accepted invitation: the membership, the organization, the user, and a token pair whose
/// `org_id` is the organization.
#[derive(Serialize, ToSchema)]
#[schema(as = AcceptedInvitation)]
struct Accepted {
    #[schema(value_type = schemas::Membership)]
    membership: Membership,
    /// The organization joined, with the new member's role.
    #[schema(value_type = schemas::OrgSummary)]
    organization: OrgSummary,
    /// The user who joined; `default_org_id` is this organization if they had none.
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

/// Invite someone by email (admin)
///
/// The invitation email carries the token; it is open for 7 days and works once. Only an owner
/// invites owners. Members and pending invitations count against the plan's `max_users`.
#[utoipa::path(
    post,
    path = "/api/v1/organizations/{id}/invitations",
    tag = "invitations",
    operation_id = "create_invitation",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The organization's id or slug")),
    request_body = NewInvitation,
    responses(
        (status = 201, description = "The invitation (never its token), its email on its way", body = schemas::Invitation),
        SignedIn,
        JsonBody,
        (status = 403, description = "`forbidden`: not an admin, or inviting an owner without being one; `tenant_suspended`; `limit_exceeded`: the plan's `max_users` (members and pending invitations) is reached", body = Problem, content_type = PROBLEM),
        (status = 404, response = NotFound),
        (status = 409, description = "`conflict`: the address is already a member's, or already has an open invitation (resend or revoke it)", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`validation_failed`: `email` is not an address, or `role` is not a role", body = Problem, content_type = PROBLEM),
    )
)]
async fn create(
    State(state): State<AppState>,
    origin: crate::audit::Origin,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewInvitation>,
) -> Result<(StatusCode, Json<Invitation>), AppError> {
    let (record, role) = membership(&state, claims.sub, &id).await?;
    let email = Email::parse(&body.email).map_err(|e| AppError::invalid("email", e))?;
    let inviter = inviter(&state, claims.sub).await?;
    let invitation = state
        .orgs
        .invite(
            role,
            record.id.as_uuid(),
            &inviter,
            &email,
            body.role,
            &origin.by_user(claims.sub),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(invitation)))
}

/// An organization's open invitations, expired ones included (admin)
///
/// Oldest first; an expired invitation stays listed, with its past `expires_at`, until it is
/// resent or revoked.
#[utoipa::path(
    get,
    path = "/api/v1/organizations/{id}/invitations",
    tag = "invitations",
    operation_id = "list_invitations",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The organization's id or slug")),
    responses(
        (status = 200, description = "Every open invitation, in one page", body = Items<schemas::Invitation>),
        SignedIn,
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
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

/// Revoke an invitation (admin); its token stops working
#[utoipa::path(
    delete,
    path = "/api/v1/organizations/{id}/invitations/{iid}",
    tag = "invitations",
    operation_id = "revoke_invitation",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The organization's id or slug"),
        ("iid" = Uuid, Path, description = "The invitation's id"),
    ),
    responses(
        (status = 204, description = "Revoked"),
        SignedIn,
        (status = 403, response = Forbidden),
        (status = 404, description = "`not_found`: no such organization of the caller's, or no such open invitation in it (accepted and revoked ones included)", body = Problem, content_type = PROBLEM),
    )
)]
async fn revoke(
    State(state): State<AppState>,
    origin: crate::audit::Origin,
    AuthUser(claims): AuthUser,
    Path((id, iid)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    let (record, role) = membership(&state, claims.sub, &id).await?;
    let iid = invitation_id(&iid)?;
    state
        .orgs
        .revoke_invitation(role, record.id.as_uuid(), iid, &origin.by_user(claims.sub))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Send an invitation again (admin), with a new token and a new expiry
///
/// The previous token stops working (`410 gone`). Resending an expired invitation takes a place
/// in the plan's `max_users` again.
#[utoipa::path(
    post,
    path = "/api/v1/organizations/{id}/invitations/{iid}/resend",
    tag = "invitations",
    operation_id = "resend_invitation",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The organization's id or slug"),
        ("iid" = Uuid, Path, description = "The invitation's id"),
    ),
    responses(
        (status = 200, description = "The invitation with its new `sent_at` and `expires_at`", body = schemas::Invitation),
        SignedIn,
        (status = 403, description = "`forbidden`: not an admin, or resending an owner's invitation without being an owner; `tenant_suspended`; `limit_exceeded`: the plan's `max_users` is reached", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found`: no such organization of the caller's, or no such open invitation in it", body = Problem, content_type = PROBLEM),
    )
)]
async fn resend(
    State(state): State<AppState>,
    origin: crate::audit::Origin,
    AuthUser(claims): AuthUser,
    Path((id, iid)): Path<(String, String)>,
) -> Result<Json<Invitation>, AppError> {
    let (record, role) = membership(&state, claims.sub, &id).await?;
    let iid = invitation_id(&iid)?;
    let inviter = inviter(&state, claims.sub).await?;
    Ok(Json(
        state
            .orgs
            .resend_invitation(
                role,
                record.id.as_uuid(),
                iid,
                &inviter,
                &origin.by_user(claims.sub),
            )
            .await?,
    ))
}

/// What an invitation token invites to
///
/// For the holder of the token (the page the email links to uses it); no sign-in needed.
#[utoipa::path(
    get,
    path = "/api/v1/invitations/{token}",
    tag = "invitations",
    operation_id = "preview_invitation",
    params(("token" = String, Path, description = "The invitation token from the email")),
    responses(
        (status = 429, description = "`too_many_attempts`: too many unknown or unusable tokens from this address; retry after `Retry-After` seconds", body = Problem, content_type = PROBLEM),
        (status = 200, description = "The organization, the invited address and role, the expiry", body = schemas::InvitationPreview),
        (status = 404, description = "`not_found`: no invitation ever had this token", body = Problem, content_type = PROBLEM),
        (status = 410, description = "`gone`: the invitation expired, was revoked, was resent with a new token, or was used", body = Problem, content_type = PROBLEM),
        (status = 500, response = Internal),
    )
)]
async fn preview(
    State(state): State<AppState>,
    client: Client,
    Path(token): Path<String>,
) -> Result<Json<InvitationPreview>, AppError> {
    let throttle = &state.throttles.invitation_client;
    throttle::admit(&[(throttle, &client.0)])?;
    let preview = state
        .orgs
        .preview_invitation(&token)
        .await
        .map_err(AppError::from);
    if matches!(preview, Err(AppError::NotFound | AppError::Gone(_))) {
        throttle.count(&client.0);
    }
    Ok(Json(preview?))
}

/// Accept an invitation, signed in or signing up
///
/// Either signed in as the invited address (`Authorization: Bearer <access token>`; the body is
/// ignored), or with no `Authorization` header and the body `{"name", "password"}`, which creates
/// the account for the invited address. Either way the answer carries a token pair for the
/// organization joined.
#[utoipa::path(
    post,
    path = "/api/v1/invitations/{token}/accept",
    tag = "invitations",
    operation_id = "accept_invitation",
    security((), ("bearer" = [])),
    params(("token" = String, Path, description = "The invitation token from the email")),
    request_body(content = Option<AcceptSignup>, description = "Only without `Authorization`: the account to create"),
    responses(
        (status = 429, description = "`too_many_attempts`: too many unknown or unusable tokens from this address; retry after `Retry-After` seconds", body = Problem, content_type = PROBLEM),
        (status = 200, description = "Joined: the membership, the organization, the user and a token pair whose `org_id` is the organization", body = Accepted),
        (status = 400, description = "`bad_request`: without `Authorization`, the body is not JSON `{\"name\", \"password\"}`", body = Problem, content_type = PROBLEM),
        (status = 401, description = "`unauthorized`: no `Authorization` header and no body, or an `Authorization` header that is not a user's bearer token (API keys cannot accept); `invalid_token`: the access token is expired, revoked or unknown", body = Problem, content_type = PROBLEM),
        (status = 403, description = "`email_mismatch`: the signed-in user's email is not the invited address; `tenant_suspended`: the organization is suspended", body = Problem, content_type = PROBLEM),
        (status = 404, description = "`not_found`: no invitation ever had this token", body = Problem, content_type = PROBLEM),
        (status = 409, description = "`conflict`: signing up, an account with the invited address exists (sign in and accept with its token); signed in, the user is already a member", body = Problem, content_type = PROBLEM),
        (status = 410, description = "`gone`: the invitation expired, was revoked, was resent with a new token, or was used; or its organization is deleted", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`validation_failed`: signing up, `password` is too short or too long, or `name` is empty or longer than 200 characters", body = Problem, content_type = PROBLEM),
        (status = 500, response = Internal),
    )
)]
async fn accept(
    State(state): State<AppState>,
    client: Client,
    origin: crate::audit::Origin,
    OptionalUser(caller): OptionalUser,
    Path(token): Path<String>,
    body: Bytes,
) -> Result<Json<Accepted>, AppError> {
    let throttle = &state.throttles.invitation_client;
    throttle::admit(&[(throttle, &client.0)])?;
    let accepted = accept_unthrottled(&state, &origin, caller, &token, &body).await;
    if matches!(accepted, Err(AppError::NotFound | AppError::Gone(_))) {
        throttle.count(&client.0);
    }
    accepted
}

async fn accept_unthrottled(
    state: &AppState,
    origin: &crate::audit::Origin,
    caller: Option<tenantry_identity::AccessClaims>,
    token: &str,
    body: &[u8],
) -> Result<Json<Accepted>, AppError> {
    if let Some(field) = crate::text::unstorable_field(body) {
        return Err(AppError::Validation {
            field,
            detail: "Text may not contain the NUL character (U+0000) or an unpaired surrogate."
                .to_string(),
        });
    }
    let accepted = match caller {
        Some(claims) => {
            let user = state
                .identity
                .user(claims.sub)
                .await?
                .ok_or_else(AppError::unauthorized)?;
            let (membership, user) = accept_as(state, origin, token, user).await?;
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
                serde_json::from_slice(body).map_err(|e| {
                    AppError::BadRequest(format!(
                        "The body must be JSON {{\"name\": \"…\", \"password\": \"…\"}}: {e}"
                    ))
                })?
            };
            let (membership, user) = sign_up_and_accept(state, origin, token, &signup).await?;
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
    origin: &crate::audit::Origin,
    token: &str,
    user: User,
) -> Result<(Membership, User), AppError> {
    let mut tx = state.tenancy.control_db().begin().await?;
    let invitation = state.orgs.lock_invitation(&mut tx, token).await?;
    if !invitation.email.eq_ignore_ascii_case(&user.email) {
        return Err(AppError::Forbidden {
            code: "email_mismatch",
            detail: "This invitation is for another email address: sign in as that address to accept it.".to_string(),
        });
    }
    let membership = state
        .orgs
        .accept_invitation(&mut tx, &invitation, user.id, &origin.by_user(user.id))
        .await?;
    tx.commit().await?;
    let user = adopt_default(state, user, membership.org_id).await?;
    Ok((membership, user))
}

async fn sign_up_and_accept(
    state: &AppState,
    origin: &crate::audit::Origin,
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
    let mut tx = state.tenancy.control_db().begin().await?;
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
        .accept_invitation(&mut tx, &invitation, user.id, &origin.by_user(user.id))
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

/// The invitation page the email links to
///
/// An HTML page: what the invitation is for, and forms to accept it by creating the account or
/// by signing in (which call `POST /api/v1/invitations/{token}/accept`). Self-contained: no
/// external assets.
#[utoipa::path(
    get,
    path = "/invitations/{token}",
    tag = "invitations",
    operation_id = "invitation_page",
    params(("token" = String, Path, description = "The invitation token from the email")),
    responses(
        (status = 200, description = "The invitation, and the forms to accept it", body = String, content_type = HTML),
        (status = 404, description = "A page saying no invitation has this token", body = String, content_type = HTML),
        (status = 410, description = "A page saying the invitation is no longer valid (expired, revoked, replaced or used)", body = String, content_type = HTML),
        (status = 500, description = "A page saying something went wrong", body = String, content_type = HTML),
    )
)]
async fn page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> axum::response::Response {
    use axum::response::IntoResponse;

    // The page's own script and style carry this request's nonce; nothing else may run.
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let (status, body) = match state.orgs.preview_invitation(&token).await {
        Ok(preview) => (StatusCode::OK, invitation_page(&preview, &nonce)),
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
    let mut response = (status, axum::response::Html(page_shell(&body, &nonce))).into_response();
    let headers = response.headers_mut();
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    );
    if let Ok(csp) = axum::http::HeaderValue::from_str(&csp) {
        headers.insert(axum::http::header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(
        axum::http::header::X_FRAME_OPTIONS,
        axum::http::HeaderValue::from_static("DENY"),
    );
    // The address carries the invitation's token: no other site may learn it.
    headers.insert(
        axum::http::header::REFERRER_POLICY,
        axum::http::HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page_shell(body: &str, nonce: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Tenantry invitation</title><style nonce=\"{nonce}\">\
         body{{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1b1f24}}\
         form{{display:grid;gap:.5rem;margin:1rem 0;padding:1rem;border:1px solid #d0d7de;border-radius:6px}}\
         input,button{{font:inherit;padding:.4rem}}#result{{font-weight:600}}</style></head>\
         <body>{body}</body></html>"
    )
}

fn invitation_page(preview: &InvitationPreview, nonce: &str) -> String {
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
<script nonce="{nonce}">
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
