//! Accepting an invitation, as the signed-in invited user or creating their account on the way:
//! one use case for the JSON API (`POST /api/v1/invitations/{token}/accept`) and the console's
//! invitation page.

use serde::Deserialize;
use tenantry_identity::{Email, IdentityError, User};
use tenantry_orgs::Membership;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::AppError;
use crate::state::AppState;

/// The body of an accept without a signed-in user: the account to create, for the invited
/// address.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AcceptSignup {
    /// 1 to 200 characters.
    #[schema(example = "Bob Example")]
    pub name: String,
    /// At least 8 characters.
    pub password: String,
}

/// Accepts the invitation with `token` as `user`, who must have the invited address; a user
/// without a default organization starts in this one.
pub(crate) async fn accept_as(
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

/// Creates the account of the invited address and accepts the invitation with it, in one
/// transaction.
pub(crate) async fn sign_up_and_accept(
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
