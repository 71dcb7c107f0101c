//! Check results kept for a retention: every active organization's results older than its
//! retention are deleted, in its own storage. The retention of each organization comes from the
//! caller (plans and their limits are not this crate's); `serve` runs a pass hourly on every
//! instance, and a second pass deletes nothing more.

use std::future::Future;

use tenantry_tenancy::{Tenancy, TenancyError, TenantId, TenantStatus};

use crate::results::prune_results;

/// What a pass of [`prune_expired_results`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Organizations whose results were pruned (those with a retention).
    pub organizations: usize,
    /// Results deleted.
    pub results: u64,
}

/// Deletes, in every active organization, the check results older than the days
/// `retention_days` gives for it (nothing where it gives `None`: unlimited).
pub async fn prune_expired_results<F, Fut, E>(
    tenancy: &Tenancy,
    retention_days: F,
) -> Result<Pruned, E>
where
    F: Fn(TenantId) -> Fut,
    Fut: Future<Output = Result<Option<i64>, E>>,
    E: From<TenancyError> + From<sqlx::Error>,
{
    let mut pruned = Pruned::default();
    for record in tenancy.list().await? {
        if record.status != TenantStatus::Active || record.purging {
            continue;
        }
        let Some(days) = retention_days(record.id).await? else {
            continue;
        };
        // Suspended or deleted since the list was read: its results wait for the next pass.
        let ctx = match tenancy.resolve_id(record.id).await {
            Ok(ctx) => ctx,
            Err(TenancyError::NotFound(_) | TenancyError::NotActive { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let days = i32::try_from(days).unwrap_or(i32::MAX);
        let mut tx = ctx.begin().await?;
        pruned.results += prune_results(&mut tx, days).await?;
        tx.commit().await?;
        pruned.organizations += 1;
    }
    Ok(pruned)
}
