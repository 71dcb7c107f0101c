//! Invitations: an admin invites an email address with a role; the invited person accepts with
//! the token from the email. The token (256 random bits) exists only in that email; the table
//! keeps its SHA-256. An invitation is open for [`INVITATION_TTL_DAYS`] days and used once;
//! resending replaces its token, revoking closes it.
//!
//! The email is queued in the outbox in the same transaction as the change, so an invitation
//! exists exactly when its email is on its way.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use tenantry_audit::{AuditContext, Change};
use tenantry_base::Email;
use tenantry_mail::Email as Mail;
use tenantry_tenancy::TenantStatus;
use uuid::Uuid;

use crate::error::OrgsError;
use crate::members::Membership;
use crate::orgs::Orgs;
use crate::roles::{Action, Role};

/// How long an invitation stays open.
pub const INVITATION_TTL_DAYS: i64 = 7;

/// An invitation as admins see it: never the token.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Invitation {
    pub id: Uuid,
    pub org_id: Uuid,
    pub email: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub invited_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// When the current token was sent (the last resend).
    pub sent_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// An open invitation, locked for the transaction that accepts it.
#[derive(Debug, Clone)]
pub struct OpenInvitation {
    pub id: Uuid,
    pub org_id: Uuid,
    pub email: String,
    pub role: Role,
}

/// What an invitation token shows before it is accepted (to the holder of the token).
#[derive(Debug, Clone, Serialize)]
pub struct InvitationPreview {
    pub organization: PreviewOrg,
    pub email: String,
    pub role: Role,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PreviewOrg {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
}

const COLUMNS: &str = "id, org_id, email, role, invited_by, created_at, sent_at, expires_at";

/// The condition of an invitation that can still be accepted, resent or revoked.
const OPEN: &str = "accepted_at IS NULL AND revoked_at IS NULL";

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn gone() -> OrgsError {
    OrgsError::Gone(
        "This invitation is no longer valid (expired, revoked, replaced or already used): ask for a new one.".to_string(),
    )
}

impl Orgs {
    /// Invites `email` with `role`. `actor` is the caller's role (a platform admin acts as an
    /// owner); `inviter` names them in the email; the invitation records the user in `audit` as
    /// its inviter.
    pub async fn invite(
        &self,
        actor: Role,
        org_id: Uuid,
        inviter: &str,
        email: &Email,
        role: Role,
        audit: &AuditContext,
    ) -> Result<Invitation, OrgsError> {
        actor.require(Action::Administer)?;
        if role == Role::Owner {
            actor.require(Action::ManageOwners)?;
        }
        let org = self.tenancy().find(&org_id.to_string()).await?;
        let mut tx = self.runtime().begin().await?;
        crate::members::lock_org(&mut tx, org_id).await?;
        let member: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM orgs.memberships m JOIN identity.users u ON u.id = m.user_id
             WHERE m.org_id = $1 AND lower(u.email) = lower($2))",
        )
        .bind(org_id)
        .bind(email.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if member {
            return Err(OrgsError::Conflict(format!(
                "{email} is already a member of this organization."
            )));
        }
        // An expired invitation to the same address makes way for the new one.
        sqlx::query(&format!(
            "UPDATE orgs.invitations SET revoked_at = now()
             WHERE org_id = $1 AND lower(email) = lower($2) AND {OPEN} AND expires_at <= now()"
        ))
        .bind(org_id)
        .bind(email.as_str())
        .execute(&mut *tx)
        .await?;
        crate::limits::ensure_user_room(&mut tx, org_id, None).await?;
        let token = new_token();
        let inserted: Result<Invitation, sqlx::Error> = sqlx::query_as(&format!(
            "INSERT INTO orgs.invitations (id, org_id, email, role, token_hash, invited_by, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(days => $7))
             RETURNING {COLUMNS}"
        ))
        .bind(Uuid::now_v7())
        .bind(org_id)
        .bind(email.as_str())
        .bind(role.as_str())
        .bind(digest(&token))
        .bind(match audit.actor.kind {
            tenantry_audit::ActorKind::User => audit.actor.id,
            _ => None,
        })
        .bind(INVITATION_TTL_DAYS as i32)
        .fetch_one(&mut *tx)
        .await;
        let invitation = match inserted {
            Ok(invitation) => invitation,
            Err(sqlx::Error::Database(e)) if e.constraint() == Some("invitations_open_idx") => {
                return Err(OrgsError::Conflict(format!(
                    "{email} already has an open invitation: resend or revoke it."
                )));
            }
            Err(e) => return Err(e.into()),
        };
        self.queue_invitation_email(&mut tx, &invitation, &org.name, inviter, &token)
            .await?;
        let change = invitation_change(tenantry_audit::AuditAction::InvitationCreated, &invitation);
        tenantry_audit::record(&mut tx, Some(org_id), audit, &change).await?;
        tx.commit().await?;
        self.changed();
        Ok(invitation)
    }

    /// The organization's open invitations (expired ones included, with their `expires_at`, so
    /// they can be resent), oldest first.
    pub async fn invitations(&self, org_id: Uuid) -> Result<Vec<Invitation>, OrgsError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM orgs.invitations WHERE org_id = $1 AND {OPEN}
             ORDER BY created_at, id"
        ))
        .bind(org_id)
        .fetch_all(self.runtime())
        .await?)
    }

    /// Revokes an open invitation; its token stops working.
    pub async fn revoke_invitation(
        &self,
        actor: Role,
        org_id: Uuid,
        invitation_id: Uuid,
        audit: &AuditContext,
    ) -> Result<(), OrgsError> {
        actor.require(Action::Administer)?;
        let mut tx = self.runtime().begin().await?;
        let revoked: Option<Invitation> = sqlx::query_as(&format!(
            "UPDATE orgs.invitations SET revoked_at = now() WHERE id = $1 AND org_id = $2 AND {OPEN}
             RETURNING {COLUMNS}"
        ))
        .bind(invitation_id)
        .bind(org_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(revoked) = revoked else {
            return Err(OrgsError::NotFound);
        };
        let change = invitation_change(tenantry_audit::AuditAction::InvitationRevoked, &revoked);
        tenantry_audit::record(&mut tx, Some(org_id), audit, &change).await?;
        tx.commit().await?;
        self.changed();
        Ok(())
    }

    /// Sends an open invitation again with a new token and a new expiry; the old token stops
    /// working.
    pub async fn resend_invitation(
        &self,
        actor: Role,
        org_id: Uuid,
        invitation_id: Uuid,
        inviter: &str,
        audit: &AuditContext,
    ) -> Result<Invitation, OrgsError> {
        actor.require(Action::Administer)?;
        let org = self.tenancy().find(&org_id.to_string()).await?;
        let mut tx = self.runtime().begin().await?;
        crate::members::lock_org(&mut tx, org_id).await?;
        let current: Option<(Vec<u8>, String)> = sqlx::query_as(&format!(
            "SELECT token_hash, role FROM orgs.invitations
             WHERE id = $1 AND org_id = $2 AND {OPEN} FOR UPDATE"
        ))
        .bind(invitation_id)
        .bind(org_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((old_hash, role)) = current else {
            return Err(OrgsError::NotFound);
        };
        if parse_role(&role)? == Role::Owner {
            actor.require(Action::ManageOwners)?;
        }
        // An expired invitation made room; sending it again takes the room back.
        crate::limits::ensure_user_room(&mut tx, org_id, Some(invitation_id)).await?;
        sqlx::query(
            "INSERT INTO orgs.superseded_invitation_tokens (token_hash, invitation_id) VALUES ($1, $2)",
        )
        .bind(&old_hash)
        .bind(invitation_id)
        .execute(&mut *tx)
        .await?;
        let token = new_token();
        let invitation: Invitation = sqlx::query_as(&format!(
            "UPDATE orgs.invitations
             SET token_hash = $2, sent_at = now(), expires_at = now() + make_interval(days => $3)
             WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(invitation_id)
        .bind(digest(&token))
        .bind(INVITATION_TTL_DAYS as i32)
        .fetch_one(&mut *tx)
        .await?;
        self.queue_invitation_email(&mut tx, &invitation, &org.name, inviter, &token)
            .await?;
        let change = invitation_change(tenantry_audit::AuditAction::InvitationResent, &invitation);
        tenantry_audit::record(&mut tx, Some(org_id), audit, &change).await?;
        tx.commit().await?;
        self.changed();
        Ok(invitation)
    }

    /// What the token invites to, if it is still open: `NotFound` for a token that never
    /// existed, `Gone` for one expired, revoked, replaced or used.
    pub async fn preview_invitation(&self, token: &str) -> Result<InvitationPreview, OrgsError> {
        let (open, expires_at) = {
            let mut conn = self.runtime().acquire().await?;
            find_open(&mut conn, token, false).await?
        };
        // The connection is back in the pool first: the lookup may need one of its own.
        let org = self.tenancy().find(&open.org_id.to_string()).await?;
        Ok(InvitationPreview {
            organization: PreviewOrg {
                id: org.id.as_uuid(),
                name: org.name,
                slug: org.slug,
            },
            email: open.email,
            role: open.role,
            expires_at,
        })
    }

    /// Locks the open invitation behind `token` in the caller's transaction. Two concurrent
    /// accepts of one token queue here; the second finds it used.
    pub async fn lock_invitation(
        &self,
        tx: &mut PgConnection,
        token: &str,
    ) -> Result<OpenInvitation, OrgsError> {
        let (open, _) = find_open(tx, token, true).await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM control.tenants WHERE id = $1")
                .bind(open.org_id)
                .fetch_optional(&mut *tx)
                .await?;
        match status.as_deref().map(str::parse::<TenantStatus>) {
            Some(Ok(TenantStatus::Active)) => Ok(open),
            Some(Ok(TenantStatus::Suspended)) => Err(OrgsError::Suspended),
            _ => Err(gone()),
        }
    }

    /// Makes `user_id` a member as the locked invitation says, and closes the invitation; the
    /// caller commits.
    pub async fn accept_invitation(
        &self,
        tx: &mut PgConnection,
        invitation: &OpenInvitation,
        user_id: Uuid,
        audit: &AuditContext,
    ) -> Result<Membership, OrgsError> {
        let membership: Option<Membership> = sqlx::query_as(
            "INSERT INTO orgs.memberships (org_id, user_id, role) VALUES ($1, $2, $3)
             ON CONFLICT (org_id, user_id) DO NOTHING
             RETURNING org_id, user_id, role, joined_at",
        )
        .bind(invitation.org_id)
        .bind(user_id)
        .bind(invitation.role.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(membership) = membership else {
            return Err(OrgsError::Conflict(
                "You are already a member of this organization.".to_string(),
            ));
        };
        sqlx::query(
            "UPDATE orgs.invitations SET accepted_at = now(), accepted_by = $2 WHERE id = $1",
        )
        .bind(invitation.id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        let change = Change {
            action: tenantry_audit::AuditAction::InvitationAccepted,
            target_kind: "invitation",
            target_id: Some(invitation.id.to_string()),
            before: None,
            after: Some(serde_json::json!({
                "email": invitation.email,
                "role": invitation.role,
                "user_id": user_id,
            })),
        };
        tenantry_audit::record(tx, Some(invitation.org_id), audit, &change).await?;
        Ok(membership)
    }

    async fn queue_invitation_email(
        &self,
        tx: &mut PgConnection,
        invitation: &Invitation,
        org_name: &str,
        inviter: &str,
        token: &str,
    ) -> Result<(), OrgsError> {
        let base = self.public_url();
        let expires = invitation.expires_at.format("%Y-%m-%d %H:%M UTC");
        let role = invitation.role;
        let email = &invitation.email;
        let text = format!(
            "{inviter} invited you to join {org_name} on Tenantry as {role}.\n\
             \n\
             Accept the invitation:\n\
             {base}/invitations/{token}\n\
             \n\
             Invitation token: {token}\n\
             \n\
             To accept through the API, POST {base}/api/v1/invitations/{token}/accept\n\
             either signed in as {email} (Authorization: Bearer <access token>), or, to create\n\
             your account while accepting, with the JSON body {{\"name\": \"...\", \"password\": \"...\"}}.\n\
             \n\
             The invitation expires on {expires}. If you did not expect it, ignore this email.\n"
        );
        self.outbox()
            .enqueue(
                tx,
                &Mail {
                    to: email.clone(),
                    subject: format!("You are invited to join {org_name} on Tenantry"),
                    text,
                    tenant_id: Some(invitation.org_id),
                },
            )
            .await?;
        Ok(())
    }
}

/// The open invitation behind `token` and its expiry, locked when `lock` is set.
async fn find_open(
    conn: &mut PgConnection,
    token: &str,
    lock: bool,
) -> Result<(OpenInvitation, DateTime<Utc>), OrgsError> {
    // Tokens are 43 URL-safe characters; anything else was never issued.
    if token.len() != 43
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(OrgsError::NotFound);
    }
    let hash = digest(token);
    let row: Option<(Uuid, Uuid, String, String, DateTime<Utc>, bool)> = sqlx::query_as(&format!(
        "SELECT id, org_id, email, role, expires_at,
                ({OPEN} AND expires_at > now()) AS usable
         FROM orgs.invitations WHERE token_hash = $1 {}",
        if lock { "FOR UPDATE" } else { "" }
    ))
    .bind(&hash)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some((id, org_id, email, role, expires_at, true)) => Ok((
            OpenInvitation {
                id,
                org_id,
                email,
                role: parse_role(&role)?,
            },
            expires_at,
        )),
        Some(_) => Err(gone()),
        None => {
            let superseded: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM orgs.superseded_invitation_tokens WHERE token_hash = $1)",
            )
            .bind(&hash)
            .fetch_one(&mut *conn)
            .await?;
            Err(if superseded {
                gone()
            } else {
                OrgsError::NotFound
            })
        }
    }
}

fn parse_role(role: &str) -> Result<Role, OrgsError> {
    role.parse()
        .map_err(|e: String| OrgsError::Unexpected(anyhow::anyhow!(e)))
}

/// An invitation as the audit trail records it: never its token.
fn invitation_change(action: tenantry_audit::AuditAction, invitation: &Invitation) -> Change {
    Change {
        action,
        target_kind: "invitation",
        target_id: Some(invitation.id.to_string()),
        before: None,
        after: Some(serde_json::json!({
            "email": invitation.email,
            "role": invitation.role,
            "expires_at": invitation.expires_at,
        })),
    }
}
