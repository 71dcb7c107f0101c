//! An organization's members: list, add, change roles, remove, leave. Only an owner grants or
//! removes `owner`, and an organization never loses its last owner: changes lock the
//! organization's memberships first, so two concurrent demotions cannot both pass the check.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use tenantry_audit::{AuditContext, Change};

use crate::error::OrgsError;
use crate::orgs::Orgs;
use crate::roles::{Action, Role};

/// A member as the team page shows them.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Member {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub joined_at: DateTime<Utc>,
}

const MEMBER_SELECT: &str = "SELECT m.user_id, u.email, u.name, m.role, m.joined_at
     FROM orgs.memberships m JOIN identity.users u ON u.id = m.user_id";

impl Orgs {
    pub async fn members(&self, org_id: Uuid) -> Result<Vec<Member>, OrgsError> {
        Ok(sqlx::query_as(&format!(
            "{MEMBER_SELECT} WHERE m.org_id = $1 ORDER BY m.joined_at, u.email"
        ))
        .bind(org_id)
        .fetch_all(self.runtime())
        .await?)
    }

    /// Adds an existing user; `actor` is the caller's role.
    pub async fn add_member(
        &self,
        actor: Role,
        org_id: Uuid,
        user_id: Uuid,
        role: Role,
        audit: &AuditContext,
    ) -> Result<Member, OrgsError> {
        actor.require(Action::Administer)?;
        // Owners are made by invitation (the person accepts) or by promoting a member.
        if role == Role::Owner {
            return Err(OrgsError::Invalid {
                field: "role",
                detail:
                    "a member cannot be added as owner: invite them as owner, or promote a member"
                        .to_string(),
            });
        }
        let user: Option<(String, String)> =
            sqlx::query_as("SELECT email, name FROM identity.users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(self.runtime())
                .await?;
        let Some((email, _)) = user else {
            return Err(OrgsError::Invalid {
                field: "user_id",
                detail: "no such user".to_string(),
            });
        };
        let org_name: String = sqlx::query_scalar("SELECT name FROM control.tenants WHERE id = $1")
            .bind(org_id)
            .fetch_one(self.runtime())
            .await?;
        let mut tx = self.runtime().begin().await?;
        crate::members::lock_org(&mut tx, org_id).await?;
        if role_in(&mut tx, org_id, user_id).await?.is_some() {
            return Err(OrgsError::Conflict(
                "This user is already a member.".to_string(),
            ));
        }
        crate::limits::ensure_user_room(&mut tx, org_id, None).await?;
        sqlx::query("INSERT INTO orgs.memberships (org_id, user_id, role) VALUES ($1, $2, $3)")
            .bind(org_id)
            .bind(user_id)
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?;
        let change = member_change(
            tenantry_audit::AuditAction::MemberAdded,
            user_id,
            None,
            Some(role),
        );
        tenantry_audit::record(&mut tx, Some(org_id), audit, &change).await?;
        // The person is told, in the transaction that adds them.
        let base = self.public_url();
        self.outbox()
            .enqueue(
                &mut tx,
                &tenantry_mail::Email {
                    to: email,
                    subject: format!("You were added to {org_name} on Tenantry"),
                    text: format!(
                        "You are now a member of {org_name} on Tenantry, as {role}.\n\n\
                         Sign in to see it: {base}/\n\n\
                         If you did not expect this, ask the organization's owners, or leave it \
                         from your list of organizations.\n"
                    ),
                    tenant_id: Some(org_id),
                },
            )
            .await?;
        tx.commit().await?;
        self.changed();
        self.member(org_id, user_id).await
    }

    /// Changes a member's role.
    pub async fn change_role(
        &self,
        actor: Role,
        org_id: Uuid,
        user_id: Uuid,
        role: Role,
        audit: &AuditContext,
    ) -> Result<Member, OrgsError> {
        actor.require(Action::Administer)?;
        let mut tx = self.lock_members(org_id).await?;
        let current = role_in(&mut tx, org_id, user_id)
            .await?
            .ok_or(OrgsError::NotFound)?;
        if current == Role::Owner || role == Role::Owner {
            actor.require(Action::ManageOwners)?;
        }
        if current == Role::Owner && role != Role::Owner && owners(&mut tx, org_id).await? <= 1 {
            return Err(OrgsError::Conflict(
                "The last owner cannot be demoted: make someone else owner first.".to_string(),
            ));
        }
        sqlx::query("UPDATE orgs.memberships SET role = $3 WHERE org_id = $1 AND user_id = $2")
            .bind(org_id)
            .bind(user_id)
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?;
        let change = member_change(
            tenantry_audit::AuditAction::MemberRoleChanged,
            user_id,
            Some(current),
            Some(role),
        );
        tenantry_audit::record(&mut tx, Some(org_id), audit, &change).await?;
        // Below the role that makes keys, the keys they made go.
        if !role.may(Action::Administer) && current.may(Action::Administer) {
            Orgs::revoke_keys_of(&mut tx, org_id, user_id, "member_demoted", audit).await?;
        }
        tx.commit().await?;
        self.changed();
        self.member(org_id, user_id).await
    }

    /// Removes a member (`actor` is the caller's role); their tokens lose the organization at once,
    /// since membership is checked on every request.
    pub async fn remove_member(
        &self,
        actor: Role,
        org_id: Uuid,
        user_id: Uuid,
        audit: &AuditContext,
    ) -> Result<(), OrgsError> {
        actor.require(Action::Administer)?;
        self.remove(org_id, user_id, Some(actor), audit).await
    }

    /// The caller leaves the organization.
    pub async fn leave(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        audit: &AuditContext,
    ) -> Result<(), OrgsError> {
        self.remove(org_id, user_id, None, audit).await
    }

    async fn remove(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        actor: Option<Role>,
        audit: &AuditContext,
    ) -> Result<(), OrgsError> {
        let mut tx = self.lock_members(org_id).await?;
        let current = role_in(&mut tx, org_id, user_id)
            .await?
            .ok_or(OrgsError::NotFound)?;
        if current == Role::Owner {
            if let Some(actor) = actor {
                actor.require(Action::ManageOwners)?;
            }
            if owners(&mut tx, org_id).await? <= 1 {
                return Err(OrgsError::Conflict(
                    "The last owner cannot leave or be removed: make someone else owner first, or delete the organization.".to_string(),
                ));
            }
        }
        sqlx::query("DELETE FROM orgs.memberships WHERE org_id = $1 AND user_id = $2")
            .bind(org_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        // Credentials die with their owner's access.
        Orgs::revoke_keys_of(&mut tx, org_id, user_id, "member_removed", audit).await?;
        // Their next login no longer starts in an organization they left.
        sqlx::query(
            "UPDATE identity.users SET default_org_id = NULL WHERE id = $1 AND default_org_id = $2",
        )
        .bind(user_id)
        .bind(org_id)
        .execute(&mut *tx)
        .await?;
        let action = if actor.is_some() {
            tenantry_audit::AuditAction::MemberRemoved
        } else {
            tenantry_audit::AuditAction::MemberLeft
        };
        let change = member_change(action, user_id, Some(current), None);
        tenantry_audit::record(&mut tx, Some(org_id), audit, &change).await?;
        tx.commit().await?;
        self.changed();
        Ok(())
    }

    async fn member(&self, org_id: Uuid, user_id: Uuid) -> Result<Member, OrgsError> {
        sqlx::query_as(&format!(
            "{MEMBER_SELECT} WHERE m.org_id = $1 AND m.user_id = $2"
        ))
        .bind(org_id)
        .bind(user_id)
        .fetch_optional(self.runtime())
        .await?
        .ok_or(OrgsError::NotFound)
    }

    /// A transaction holding the organization's membership rows locked.
    async fn lock_members(
        &self,
        org_id: Uuid,
    ) -> Result<Transaction<'static, Postgres>, OrgsError> {
        let mut tx = self.runtime().begin().await?;
        sqlx::query("SELECT user_id FROM orgs.memberships WHERE org_id = $1 FOR UPDATE")
            .bind(org_id)
            .fetch_all(&mut *tx)
            .await?;
        Ok(tx)
    }
}

async fn role_in(
    conn: &mut PgConnection,
    org_id: Uuid,
    user_id: Uuid,
) -> Result<Option<Role>, OrgsError> {
    let role: Option<String> =
        sqlx::query_scalar("SELECT role FROM orgs.memberships WHERE org_id = $1 AND user_id = $2")
            .bind(org_id)
            .bind(user_id)
            .fetch_optional(&mut *conn)
            .await?;
    role.map(|r| {
        r.parse()
            .map_err(|e: String| OrgsError::Unexpected(anyhow::anyhow!(e)))
    })
    .transpose()
}

async fn owners(conn: &mut PgConnection, org_id: Uuid) -> Result<i64, OrgsError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM orgs.memberships WHERE org_id = $1 AND role = 'owner'",
    )
    .bind(org_id)
    .fetch_one(&mut *conn)
    .await?)
}

/// A membership change as the audit trail records it.
fn member_change(
    action: tenantry_audit::AuditAction,
    user_id: Uuid,
    before: Option<Role>,
    after: Option<Role>,
) -> Change {
    Change {
        action,
        target_kind: "member",
        target_id: Some(user_id.to_string()),
        before: before.map(|role| serde_json::json!({ "role": role })),
        after: after.map(|role| serde_json::json!({ "role": role })),
    }
}
