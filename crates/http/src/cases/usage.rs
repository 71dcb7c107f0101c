//! What an organization uses against its plan's limits: one report for the JSON API's
//! `GET /api/v1/organizations/{id}/usage` and the console's "Usage" page.

use chrono::{DateTime, NaiveDate, Utc};
use tenantry_orgs::{Limit, Used};
use tenantry_tenancy::TenantRecord;

use crate::error::AppError;
use crate::state::AppState;

#[derive(Debug)]
pub(crate) struct UsageReport {
    pub plan: String,
    /// The start of the current period (the calendar month, UTC).
    pub period_start: DateTime<Utc>,
    /// Members plus pending invitations, against `max_users`.
    pub users: Used,
    pub monitors: Used,
    pub agents: Used,
    /// API keys not revoked, against `max_api_keys`.
    pub api_keys: Used,
    /// API requests this period; `limit` is the rate, `api_requests_per_minute`.
    pub api_requests: Used,
    /// The organization's data on disk, in bytes.
    pub storage_bytes: i64,
}

/// The usage of organization `record` (the caller's membership is checked by the caller).
pub(crate) async fn report(
    state: &AppState,
    record: &TenantRecord,
) -> Result<UsageReport, AppError> {
    let org_id = record.id.as_uuid();
    let counts = state.orgs.counts(org_id).await?;
    let ctx = state.tenancy.resolve_id(record.id).await?;
    let (monitors, agents) = {
        let mut tx = ctx.begin_read().await?;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM monitors")
            .fetch_one(&mut *tx)
            .await?;
        let agents = tenantry_monitoring::count_agents(&mut tx).await?;
        tx.commit().await?;
        (n, agents)
    };
    let storage_bytes = state.tenancy.storage_bytes(&ctx).await?;
    Ok(UsageReport {
        plan: record.plan.clone(),
        period_start: counts.period_start,
        users: counts.users,
        monitors: Used {
            used: monitors,
            limit: state.orgs.limit(org_id, Limit::MaxMonitors).await?,
        },
        agents: Used {
            used: agents,
            limit: state.orgs.limit(org_id, Limit::MaxAgents).await?,
        },
        api_keys: counts.api_keys,
        api_requests: counts.api_requests,
        storage_bytes,
    })
}

/// API requests per day of the current period.
pub(crate) async fn per_day(
    state: &AppState,
    record: &TenantRecord,
) -> Result<Vec<(NaiveDate, i64)>, AppError> {
    Ok(state.orgs.requests_per_day(record.id.as_uuid()).await?)
}
