//! The server side of the agent protocol: claiming an agent's due checks, and recording the
//! results it posts, each checked against the schedule's leases (a result for a slot not leased
//! to the agent is rejected, and recorded nowhere). The HTTP routes authenticate the agent and
//! check its organization's plan, then call these.

use chrono::{DateTime, TimeDelta, Utc};
use tenantry_tenancy::{ControlDb, TenantCtx};
use uuid::Uuid;

use crate::agent::{ClaimedCheck, MAX_CLAIM, MAX_RESULTS, ReportedResult, ResultsAnswer};
use crate::scheduler::{self, Claim, Claimant, LEASE_SLACK, Next};
use crate::{AgentIdentity, Monitor, Observation, Recorded};

/// How long `last_seen_at` may lag: a claim writes it only when older.
const SEEN_EVERY: TimeDelta = TimeDelta::seconds(10);
/// A schedule row younger than this is not removed for lack of a monitor: the monitor's
/// transaction may still be committing.
const YOUNG_ROW: TimeDelta = TimeDelta::minutes(1);
/// A result's slot may lie this far ahead of the server's clock (no further: it is no slot).
const CLOCK_SLACK: TimeDelta = TimeDelta::minutes(1);

/// Why the protocol refused a request.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The agent is gone (its token outlived it): refused like an unknown token.
    #[error("no such agent")]
    UnknownAgent,
    /// A field of the request is out of bounds.
    #[error("{field}: {detail}")]
    Invalid { field: &'static str, detail: String },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The tenant's door refused (it is being moved, or went away meanwhile).
    #[error(transparent)]
    Tenancy(#[from] tenantry_tenancy::TenancyError),
}

/// Leases up to `max` (1 to [`MAX_CLAIM`]) due checks of the monitors assigned to agent
/// `identity`, of the tenant behind `ctx`. Slots it may not run (monitor gone, disabled or
/// assigned elsewhere) are handed back to the schedule.
pub async fn claim_checks(
    control: &ControlDb,
    ctx: &TenantCtx,
    identity: AgentIdentity,
    max: i64,
) -> Result<Vec<ClaimedCheck>, ProtocolError> {
    check_claim(max)?;
    let AgentIdentity { org_id, agent_id } = identity;
    // A token outliving its agent (its removal failed) is refused like any other. (Each
    // transaction ends before the control database is used: a request never holds two
    // connections of the runtime pool at once.)
    let mut tx = ctx.begin_read().await?;
    let seen = crate::agent_last_seen(&mut tx, agent_id)
        .await?
        .ok_or(ProtocolError::UnknownAgent)?;
    tx.commit().await?;
    let leased = scheduler::claim(
        control,
        Claimant::Agent { org_id, agent_id },
        agent_id,
        max,
        LEASE_SLACK,
    )
    .await?;
    let mut monitors = Vec::with_capacity(leased.len());
    if !leased.is_empty() {
        let mut tx = ctx.begin_read().await?;
        for claim in leased {
            let monitor = crate::get(&mut tx, claim.monitor_id).await?;
            monitors.push((claim, monitor));
        }
        tx.commit().await?;
    }
    let now = Utc::now();
    let mut checks = Vec::new();
    for (claim, monitor) in monitors {
        match monitor {
            Some(m) if m.enabled && m.agent_id == Some(agent_id) => checks.push(ClaimedCheck {
                monitor_id: m.id,
                due_at: claim.due_at,
                kind: m.kind.to_string(),
                target: m.target.unwrap_or_default(),
                keyword: m.keyword,
                timeout_ms: u64::try_from(m.timeout_seconds.max(1)).unwrap_or(1) * 1000,
            }),
            other => hand_back(control, &claim, agent_id, other.as_ref(), now).await,
        }
    }
    if seen.is_none_or(|at| now - at >= SEEN_EVERY) {
        // The checks are leased already: a failure here is logged, not the answer.
        let touched = async {
            let mut tx = ctx.begin().await?;
            crate::touch_agent(&mut tx, agent_id).await?;
            tx.commit().await
        }
        .await;
        if let Err(error) = touched {
            tracing::warn!(%error, %agent_id, "failed to note when an agent was last seen");
        }
    }
    Ok(checks)
}

/// Releases a claimed slot this agent must not run: its monitor is gone (the row removed,
/// unless young), disabled (unscheduled) or assigned elsewhere (the row corrected, due again at
/// once for its runner). A failure leaves the lease to expire.
async fn hand_back(
    control: &ControlDb,
    claim: &Claim,
    agent_id: Uuid,
    monitor: Option<&Monitor>,
    now: DateTime<Utc>,
) {
    let released = async {
        let next = match monitor {
            None if now - claim.planned_at < YOUNG_ROW => {
                Next::Retry(std::time::Duration::from_secs(5))
            }
            None => Next::Remove,
            Some(m) => {
                scheduler::plan(control, claim.org_id, m, m.agent_id).await?;
                Next::Retry(std::time::Duration::ZERO)
            }
        };
        scheduler::finish(control, claim, agent_id, next).await
    }
    .await;
    if let Err(error) = released {
        tracing::warn!(%error, monitor = %claim.monitor_id, "failed to release a slot an agent may not run; its lease will expire");
    }
}

/// Records the results agent `identity` posts (at most [`MAX_RESULTS`]): each once per slot, and
/// only for slots the schedule leased to it, of monitors still assigned to it and enabled; the
/// others are rejected (`rejected` is called for each, for the metrics) and recorded nowhere.
/// The recorded slots move on to their next one.
pub async fn record_results(
    control: &ControlDb,
    ctx: &TenantCtx,
    identity: AgentIdentity,
    mut reported: Vec<ReportedResult>,
    rejected: &(dyn Fn() + Send + Sync),
) -> Result<ResultsAnswer, ProtocolError> {
    check_results(&reported)?;
    let AgentIdentity { org_id, agent_id } = identity;
    let now = Utc::now();
    // One order for the monitor locks `record_result` takes: concurrent posts cannot deadlock.
    reported.sort_by_key(|r| (r.monitor_id, r.due_at));
    let mut answer = ResultsAnswer::default();
    let mut slots: Vec<(Monitor, DateTime<Utc>)> = Vec::new();
    let mut deliveries = false;
    let asked: Vec<(Uuid, DateTime<Utc>)> =
        reported.iter().map(|r| (r.monitor_id, r.due_at)).collect();
    let leased = scheduler::leased_to(control, org_id, agent_id, &asked).await?;
    let mut tx = ctx.begin().await?;
    if !crate::touch_agent(&mut tx, agent_id).await? {
        return Err(ProtocolError::UnknownAgent);
    }
    for result in reported {
        if !leased.contains(&(result.monitor_id, result.due_at)) {
            // A result posted again after its slot moved on is a duplicate, not an intrusion.
            if crate::has_result(&mut tx, result.monitor_id, result.due_at).await? {
                answer.duplicates += 1;
            } else {
                rejected();
                answer.rejected.push(result.monitor_id);
            }
            continue;
        }
        let monitor = match crate::get(&mut tx, result.monitor_id).await? {
            Some(m)
                if m.enabled
                    && m.agent_id == Some(agent_id)
                    && result.due_at <= now + CLOCK_SLACK =>
            {
                m
            }
            _ => {
                rejected();
                answer.rejected.push(result.monitor_id);
                continue;
            }
        };
        let observation = Observation {
            // The server's clock is the reference: a time ahead of it is taken as now.
            checked_at: result.checked_at.min(now),
            ok: result.ok,
            latency_ms: result.latency_ms,
            status_code: result.status_code,
            error: result.error.filter(|_| !result.ok),
        };
        let recorded =
            crate::record_result(&mut tx, monitor.id, result.due_at, &observation).await?;
        deliveries |= recorded.needs_delivery();
        match recorded {
            Recorded::Stored { .. } => answer.recorded += 1,
            Recorded::Duplicate => answer.duplicates += 1,
            Recorded::NoMonitor => {
                answer.rejected.push(monitor.id);
                continue;
            }
        }
        slots.push((monitor, result.due_at));
    }
    if deliveries {
        // Before the commit: a crash after it never leaves deliveries nobody knows about.
        let mut control = tx.control(control).await?;
        crate::alerts::note_pending_in(&mut control, org_id).await?;
    }
    tx.commit().await?;
    for (monitor, due_at) in slots {
        move_slot(control, org_id, agent_id, &monitor, due_at, now).await;
    }
    Ok(answer)
}

/// Refuses a claim of a number of checks out of bounds.
pub fn check_claim(max: i64) -> Result<(), ProtocolError> {
    if !(1..=MAX_CLAIM).contains(&max) {
        return Err(ProtocolError::Invalid {
            field: "max",
            detail: format!("1 to {MAX_CLAIM}"),
        });
    }
    Ok(())
}

/// Refuses a batch that cannot be stored as it is.
pub fn check_results(results: &[ReportedResult]) -> Result<(), ProtocolError> {
    if results.len() > MAX_RESULTS {
        return Err(ProtocolError::Invalid {
            field: "results",
            detail: format!("at most {MAX_RESULTS} results per request"),
        });
    }
    for result in results {
        if result
            .status_code
            .is_some_and(|s| !(100..=999).contains(&s))
        {
            return Err(ProtocolError::Invalid {
                field: "status_code",
                detail: "an HTTP status, 100 to 999".to_string(),
            });
        }
        if result.latency_ms.is_some_and(|l| l < 0) {
            return Err(ProtocolError::Invalid {
                field: "latency_ms",
                detail: "0 or more milliseconds".to_string(),
            });
        }
    }
    Ok(())
}

/// Moves the recorded slot of `monitor` on to the next one (if this agent still holds it).
async fn move_slot(
    control: &ControlDb,
    org_id: Uuid,
    agent_id: Uuid,
    monitor: &Monitor,
    due_at: DateTime<Utc>,
    now: DateTime<Utc>,
) {
    let interval = TimeDelta::seconds(monitor.interval_seconds.max(1).into());
    let claim = Claim {
        org_id,
        monitor_id: monitor.id,
        due_at,
        interval_seconds: monitor.interval_seconds,
        timeout_seconds: monitor.timeout_seconds,
        plan: String::new(),
        weight: 1,
        planned_at: now,
    };
    let next = Next::Slot {
        at: scheduler::next_slot(due_at, interval, now).0,
        interval_seconds: monitor.interval_seconds,
        timeout_seconds: monitor.timeout_seconds,
    };
    if let Err(error) = scheduler::finish(control, &claim, agent_id, next).await {
        tracing::warn!(%error, monitor = %monitor.id, "failed to move an agent's check slot on; its lease will expire and the slot run again (recorded once)");
    }
}
