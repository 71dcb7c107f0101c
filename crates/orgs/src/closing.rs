//! Closing an organization: once it is soft-deleted, every owner is emailed that it was
//! deleted, until when it can be restored, and where to download an archive of all its data
//! before it is purged for good (at the end of the retention window, `deleted_retention_days`).

use chrono::{DateTime, Duration, Utc};
use sqlx::PgConnection;
use tenantry_mail::Email as Mail;
use tenantry_tenancy::TenantRecord;
use uuid::Uuid;

use crate::error::OrgsError;
use crate::orgs::Orgs;

/// How long a soft-deleted organization stays restorable, unless configured otherwise.
pub const DEFAULT_DELETED_RETENTION_DAYS: u32 = 30;

impl Orgs {
    /// When soft-deleted organization `record` is purged: its deletion time plus the retention
    /// window.
    pub fn purge_date(&self, record: &TenantRecord) -> DateTime<Utc> {
        record.deleted_at.unwrap_or_else(Utc::now) + self.deleted_retention()
    }

    /// Soft-deletes organization `id` (id or slug): the registry change, its audit entry (in the
    /// organization's trail, and with `platform_trail` in the platform's too) and the owners'
    /// emails (see [`Orgs::announce_deletion_in`]) commit together or not at all. `change`
    /// describes the deletion for the trail, from the deleted record; `by` is the user who did
    /// it, when one did.
    pub async fn soft_delete(
        &self,
        id: &str,
        audit: &tenantry_audit::AuditContext,
        platform_trail: bool,
        by: Option<Uuid>,
        change: impl FnOnce(&TenantRecord) -> tenantry_audit::Change,
    ) -> Result<TenantRecord, OrgsError> {
        let tenancy = self.tenancy();
        let mut tx = tenancy.begin_registry().await?;
        let deleted = tenancy.soft_delete_in(&mut tx, id).await?;
        let change = change(&deleted);
        if platform_trail {
            tenantry_audit::record(&mut tx, None, audit, &change).await?;
        }
        tenantry_audit::record(&mut tx, Some(deleted.id.as_uuid()), audit, &change).await?;
        self.announce_deletion_in(&mut tx, &deleted, by).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    /// Emails every owner of soft-deleted organization `record` that it was deleted (by `by`,
    /// when a user did it), the date it will be purged, that it can be restored until then,
    /// and the link to its export. The emails are queued in `conn`'s transaction, the deletion's
    /// own (a registry transaction), so they go out exactly when the deletion commits.
    pub async fn announce_deletion_in(
        &self,
        conn: &mut PgConnection,
        record: &TenantRecord,
        by: Option<Uuid>,
    ) -> Result<(), OrgsError> {
        let org_id = record.id.as_uuid();
        let owners: Vec<String> = sqlx::query_scalar(
            "SELECT u.email FROM orgs.memberships m JOIN identity.users u ON u.id = m.user_id
             WHERE m.org_id = $1 AND m.role = 'owner' ORDER BY u.email",
        )
        .bind(org_id)
        .fetch_all(&mut *conn)
        .await?;
        let deleted_by = match by {
            Some(user) => user_label(&mut *conn, user).await?,
            None => None,
        };
        let text = self.deletion_text(record, deleted_by.as_deref());
        for owner in owners {
            self.outbox()
                .enqueue(
                    &mut *conn,
                    &Mail {
                        to: owner,
                        subject: format!(
                            "{} was deleted: download its data before {}",
                            record.name,
                            self.purge_date(record).format("%Y-%m-%d")
                        ),
                        text: text.clone(),
                        tenant_id: Some(org_id),
                    },
                )
                .await?;
        }
        Ok(())
    }

    fn deletion_text(&self, record: &TenantRecord, deleted_by: Option<&str>) -> String {
        let base = self.public_url();
        let name = &record.name;
        let slug = &record.slug;
        let id = record.id;
        let deleted_at = record
            .deleted_at
            .unwrap_or_else(Utc::now)
            .format("%Y-%m-%d %H:%M UTC");
        let purge_at = self.purge_date(record).format("%Y-%m-%d %H:%M UTC");
        let by = deleted_by
            .map(|who| format!(" by {who}"))
            .unwrap_or_default();
        format!(
            "The organization {name} ({slug}) was deleted on Tenantry{by} on {deleted_at}.\n\
             \n\
             It will be purged on {purge_at}: from then on, its monitors, check results,\n\
             members, API keys, invitations and audit log are gone for good. Until then it can\n\
             be restored: ask your Tenantry platform administrator.\n\
             \n\
             Before it is purged, an owner can download an archive of all its data:\n\
             {base}/api/v1/organizations/{id}/export\n\
             (GET, as an owner: Authorization: Bearer <access token>)\n\
             \n\
             You receive this email as an owner of {name}.\n"
        )
    }

    fn deleted_retention(&self) -> Duration {
        Duration::days(i64::from(self.deleted_retention_days()))
    }
}

/// `Name <email>` of a user, if they exist.
async fn user_label(conn: &mut PgConnection, user: Uuid) -> Result<Option<String>, OrgsError> {
    let found: Option<(String, String)> =
        sqlx::query_as("SELECT name, email FROM identity.users WHERE id = $1")
            .bind(user)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(found.map(|(name, email)| format!("{name} <{email}>")))
}
