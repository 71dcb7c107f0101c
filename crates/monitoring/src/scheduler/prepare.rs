//! Claimed checks made ready to run, before they fall due: per organization, the tenant is
//! resolved and its claimed monitors and already-recorded slots are read in one transaction.
//! Slots that must not run are released at once: the monitor is gone (the row removed, unless
//! young), disabled, assigned to an agent since (the row corrected), the slot recorded already
//! (by an instance that died after recording it), or the organization is no longer active.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt as _;
use tenantry_tenancy::{TenancyError, TenantCtx, TenantId};
use uuid::Uuid;

use super::Shared;
use super::plan::{Claim, Next, plan};
use super::stats::{CheckOutcome, TenantLabels};
use super::work::{RETRY_AFTER, Ready, slot_after};
use crate::monitors::{self, Monitor};

/// A check slot whose row was written less than this long ago is not removed for lack of a
/// monitor: the monitor's transaction may still be committing.
const YOUNG_ROW: TimeDelta = TimeDelta::minutes(1);

/// Organizations read at once.
const AT_ONCE: usize = 4;

/// The claims of every organization made ready; the rest released.
pub(super) async fn prepare(shared: &Shared, claims: Vec<Claim>, claimed: Instant) -> Vec<Ready> {
    let mut by_org: HashMap<Uuid, Vec<Claim>> = HashMap::new();
    for claim in claims {
        by_org.entry(claim.org_id).or_default().push(claim);
    }
    futures::stream::iter(by_org)
        .map(|(org_id, claims)| organization(shared, org_id, claims, claimed))
        .buffer_unordered(AT_ONCE)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// One organization's claims made ready.
async fn organization(
    shared: &Shared,
    org_id: Uuid,
    claims: Vec<Claim>,
    claimed: Instant,
) -> Vec<Ready> {
    let began = Instant::now();
    let ready = match read(shared, org_id, &claims).await {
        Ok(Some((ctx, monitors, recorded))) => {
            sort(shared, ctx, claims, monitors, recorded, claimed).await
        }
        // Suspended or deleted since the claim: the rows stay for a reactivation.
        Ok(None) => {
            skip_all(shared, claims, Next::Retry(Duration::from_secs(60)));
            Vec::new()
        }
        Err(e) => {
            tracing::warn!(organization = %org_id, error = %e, "preparing checks failed; the slots are retried");
            skip_all(shared, claims, Next::Retry(RETRY_AFTER));
            Vec::new()
        }
    };
    shared.metrics.overhead(began.elapsed());
    ready
}

fn skip_all(shared: &Shared, claims: Vec<Claim>, next: Next) {
    for claim in claims {
        skip(shared, claim, next, CheckOutcome::retried);
    }
}

type Read = (
    TenantCtx,
    HashMap<Uuid, Monitor>,
    HashSet<(Uuid, DateTime<Utc>)>,
);

/// The organization's context, its claimed monitors that exist, and the claimed slots
/// recorded already; `None` when the organization is no longer active.
async fn read(
    shared: &Shared,
    org_id: Uuid,
    claims: &[Claim],
) -> Result<Option<Read>, TenancyError> {
    let ctx = match shared.tenancy.resolve_id(TenantId::from(org_id)).await {
        Ok(ctx) => ctx,
        Err(TenancyError::NotFound(_) | TenancyError::NotActive { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let ids: Vec<Uuid> = claims.iter().map(|c| c.monitor_id).collect();
    let dues: Vec<DateTime<Utc>> = claims.iter().map(|c| c.due_at).collect();
    let mut tx = ctx.begin_read().await?;
    let monitors = monitors::get_many(&mut tx, &ids).await?;
    let recorded: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(
        "SELECT r.monitor_id, r.due_at
         FROM check_results r
         JOIN unnest($1::uuid[], $2::timestamptz[]) AS c(monitor_id, due_at)
           ON r.monitor_id = c.monitor_id AND r.due_at = c.due_at",
    )
    .bind(&ids)
    .bind(&dues)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some((
        ctx,
        monitors.into_iter().map(|m| (m.id, m)).collect(),
        recorded.into_iter().collect(),
    )))
}

/// Each claim ready, or released as its monitor says.
async fn sort(
    shared: &Shared,
    ctx: TenantCtx,
    claims: Vec<Claim>,
    mut monitors: HashMap<Uuid, Monitor>,
    recorded: HashSet<(Uuid, DateTime<Utc>)>,
    claimed: Instant,
) -> Vec<Ready> {
    let now = Utc::now();
    let mut ready = Vec::with_capacity(claims.len());
    for claim in claims {
        let monitor = match monitors.remove(&claim.monitor_id) {
            Some(monitor) if monitor.enabled => monitor,
            _ if now - claim.planned_at < YOUNG_ROW => {
                skip(
                    shared,
                    claim,
                    Next::Retry(Duration::from_secs(5)),
                    CheckOutcome::retried,
                );
                continue;
            }
            _ => {
                skip(shared, claim, Next::Remove, CheckOutcome::gone);
                continue;
            }
        };
        if monitor.agent_id.is_some() {
            // Assigned to an agent since the row was written: the row follows, and the agent
            // runs the slot.
            let next = match plan(
                shared.tenancy.control_db(),
                claim.org_id,
                &monitor,
                monitor.agent_id,
            )
            .await
            {
                Ok(()) => Next::Retry(Duration::ZERO),
                Err(e) => {
                    tracing::warn!(monitor = %monitor.id, error = %e, "handing a check to its agent failed; retried");
                    Next::Retry(RETRY_AFTER)
                }
            };
            skip(shared, claim, next, CheckOutcome::retried);
            continue;
        }
        let labels = TenantLabels {
            tenant: ctx.slug().to_string(),
            plan: claim.plan.clone(),
        };
        if recorded.contains(&(claim.monitor_id, claim.due_at)) {
            let next = slot_after(&claim, &monitor, shared, &labels);
            skip(shared, claim, next, CheckOutcome::duplicate);
            continue;
        }
        ready.push(Ready {
            claim,
            claimed,
            ctx: ctx.clone(),
            monitor: Box::new(monitor),
            labels,
        });
    }
    ready
}

fn skip(shared: &Shared, claim: Claim, next: Next, outcome: CheckOutcome) {
    shared.release(claim, next);
    shared.metrics.outcome(outcome);
}
