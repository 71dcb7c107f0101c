//! Deleting an organization as its owner: a soft delete (restorable until the end of the
//! retention window; the owners are emailed the purge date and the export link), or a purge
//! confirmed by repeating the slug. One use case for `DELETE /api/v1/organizations/{id}` and
//! the console's "Delete organization".

use tenantry_audit::AuditContext;
use tenantry_orgs::{Action, Role};
use tenantry_tenancy::{TenantRecord, TenantStatus};
use uuid::Uuid;

use crate::error::AppError;
use crate::state::AppState;

/// Deletes `record` for its owner `user_id` (`role` is theirs): a soft delete, or with
/// `hard = Some(confirm)` a purge, where `confirm` must repeat the slug.
pub(crate) async fn delete(
    state: &AppState,
    audit: &AuditContext,
    user_id: Uuid,
    record: &TenantRecord,
    role: Role,
    hard: Option<&str>,
) -> Result<(), AppError> {
    if record.status == TenantStatus::Deleted && hard.is_none() {
        return Err(AppError::NotFound);
    }
    crate::extract::require(role, Action::Own)?;
    match hard {
        Some(confirm) => {
            let change = org_deletion(tenantry_audit::AuditAction::OrganizationPurged, record);
            crate::cases::tenants::purge(state, audit, record, confirm, &change).await?;
        }
        None => {
            state
                .orgs
                .soft_delete(&record.id.to_string(), audit, false, Some(user_id), |_| {
                    org_deletion(tenantry_audit::AuditAction::OrganizationDeleted, record)
                })
                .await?;
        }
    }
    Ok(())
}

fn org_deletion(
    action: tenantry_audit::AuditAction,
    record: &TenantRecord,
) -> tenantry_audit::Change {
    tenantry_audit::Change {
        action,
        target_kind: "organization",
        target_id: Some(record.id.to_string()),
        before: Some(serde_json::json!({
            "name": record.name,
            "slug": record.slug,
            "isolation": record.isolation,
            "status": record.status,
        })),
        after: None,
    }
}
