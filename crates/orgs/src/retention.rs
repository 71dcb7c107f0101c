//! Check results kept for the plan's `retention_days`: every active organization's older
//! results are deleted, in its own storage. `serve` runs it hourly on every instance (deleting
//! twice deletes nothing more).

use tenantry_tenancy::{TenancyError, TenantStatus};

use crate::error::OrgsError;
use crate::orgs::Orgs;

/// What a pass of [`Orgs::prune_check_results`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Organizations whose results were pruned (those with a retention).
    pub organizations: usize,
    /// Results deleted.
    pub results: u64,
}

impl Orgs {
    /// Deletes, in every active organization, the check results older than its
    /// `retention_days` (none for an organization whose retention is unlimited).
    pub async fn prune_check_results(&self) -> Result<Pruned, OrgsError> {
        let mut pruned = Pruned::default();
        for record in self.tenancy().list().await? {
            if record.status != TenantStatus::Active || record.purging {
                continue;
            }
            let Some(days) = self
                .limit(record.id.as_uuid(), crate::Limit::RetentionDays)
                .await?
            else {
                continue;
            };
            // Suspended or deleted since the list was read: its results wait for the next pass.
            let ctx = match self.tenancy().resolve_id(record.id).await {
                Ok(ctx) => ctx,
                Err(TenancyError::NotFound(_) | TenancyError::NotActive { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let days = i32::try_from(days).unwrap_or(i32::MAX);
            let mut tx = ctx.begin().await?;
            pruned.results += tenantry_monitoring::prune_results(&mut tx, days).await?;
            tx.commit().await?;
            pruned.organizations += 1;
        }
        Ok(pruned)
    }
}
