//! Invitations: admins invite by email; the invited person accepts with the token from the
//! email, signed in as the invited address or signing up on the way.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tenantry_identity::{Email, User};
use tenantry_orgs::{Invitation, InvitationPreview, Membership, OrgSummary, Orgs, Role};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Tokens;
use crate::cases::invitations::{self as case, AcceptSignup};
use crate::error::{AppError, Problem};
use crate::extract::{ApiJson, AuthUser, Items, OptionalUser};
use crate::members::membership;
use crate::openapi::{Forbidden, Internal, JsonBody, NotFound, PROBLEM, SignedIn, schemas};
use crate::state::AppState;
use crate::throttle::{self, Client};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
        .routes(routes!(resend))
        .routes(routes!(preview))
        .routes(routes!(accept))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewInvitation {
    /// The address to invite; accepting needs an account with it (or makes one).
    #[schema(example = "bob@example.com")]
    email: String,
    /// The role the invited person gets; only an owner invites owners.
    role: Role,
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
pub(crate) async fn inviter(state: &AppState, user_id: Uuid) -> Result<String, AppError> {
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
            let (membership, user) = case::accept_as(state, origin, token, user).await?;
            let tokens = state
                .identity
                .reissue(&claims, Some(membership.org_id))
                .await?;
            (membership, user, tokens)
        }
        None => {
            let signup: case::AcceptSignup = if body.iter().all(u8::is_ascii_whitespace) {
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
            let (membership, user) =
                case::sign_up_and_accept(state, origin, token, &signup).await?;
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
