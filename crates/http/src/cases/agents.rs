//! Registering and deleting an agent: the plan's `agents` feature and `max_agents`, the token
//! (issued in the control database before the agent commits, forgotten after it is deleted),
//! the audit entry, and handing a deleted agent's checks back to the servers. One use case for
//! the JSON API and the console's "Agents".

use tenantry_monitoring::{self as monitoring, Agent, scheduler};
use tenantry_orgs::{Action, Limit};
use uuid::Uuid;

use crate::cases::monitors::Acting;
use crate::error::AppError;
use crate::state::AppState;

/// Registers an agent named `name` (admins); the agent and its token (`tagt_…`), shown once.
pub(crate) async fn register(
    state: &AppState,
    acting: &Acting<'_>,
    name: &str,
) -> Result<(Agent, String), AppError> {
    crate::extract::require(acting.role, Action::Administer)?;
    let name = monitoring::agent_name(name).map_err(|e| AppError::invalid(e.field, e.detail))?;
    let org_id = acting.ctx.tenant_id().as_uuid();
    state
        .orgs
        .require_feature(org_id, tenantry_orgs::Feature::Agents)
        .await?;
    let control = state.tenancy.control_db();
    let limit = state.orgs.limit(org_id, Limit::MaxAgents).await?;
    let id = Uuid::now_v7();
    // The token first, in the control database: should the agent not commit, what is left is a
    // token naming no agent (removed below when possible), which is refused like a wrong one.
    let token = monitoring::issue_agent_token(control, org_id, id).await?;
    let created = async {
        let mut tx = acting.ctx.begin().await?;
        // Counted under the tenant's agent lock: parallel registrations cannot overshoot.
        let used = monitoring::lock_and_count_agents(&mut tx).await?;
        tenantry_orgs::Orgs::ensure_room(Limit::MaxAgents, limit, used, 1)?;
        let agent = monitoring::create_agent(&mut tx, id, name).await?;
        let change = agent_change(
            tenantry_audit::AuditAction::AgentCreated,
            id,
            None,
            Some(&agent),
        );
        tenantry_audit::record_in_tenant(&mut tx, &acting.audit, &change).await?;
        // Read again: who registered it comes from the entry just written.
        let agent = monitoring::get_agent(&mut tx, id).await?.unwrap_or(agent);
        tx.commit().await?;
        Ok::<_, AppError>(agent)
    }
    .await;
    match created {
        Ok(agent) => Ok((agent, token.expose().to_string())),
        Err(e) => {
            forget_token(state, org_id, id).await;
            Err(e)
        }
    }
}

/// Deletes agent `id` (admins): its token stops working, and its monitors go back to the
/// servers.
pub(crate) async fn remove(
    state: &AppState,
    acting: &Acting<'_>,
    id: Uuid,
) -> Result<(), AppError> {
    crate::extract::require(acting.role, Action::Administer)?;
    let mut tx = acting.ctx.begin().await?;
    let Some(agent) = monitoring::delete_agent(&mut tx, id).await? else {
        return Err(AppError::NotFound);
    };
    let change = agent_change(
        tenantry_audit::AuditAction::AgentDeleted,
        id,
        Some(&agent),
        None,
    );
    tenantry_audit::record_in_tenant(&mut tx, &acting.audit, &change).await?;
    tx.commit().await?;
    let org_id = acting.ctx.tenant_id().as_uuid();
    forget_token(state, org_id, id).await;
    if let Err(error) = scheduler::release_agent(state.tenancy.control_db(), org_id, id).await {
        // The schedule's reconciliation puts the rows back in step with the monitors later.
        tracing::warn!(%error, agent_id = %id, "failed to hand a deleted agent's checks back to the servers");
    }
    Ok(())
}

/// Forgets agent `id`'s token once the agent is gone. A failure leaves a token naming no agent,
/// which is refused like a wrong one: it is logged, not an error.
async fn forget_token(state: &AppState, org_id: Uuid, id: Uuid) {
    if let Err(error) = monitoring::forget_agent_token(state.tenancy.control_db(), org_id, id).await
    {
        tracing::warn!(%error, agent_id = %id, "failed to remove an agent token; requests with it find no agent");
    }
}

/// An agent change as the audit trail records it (never the token).
fn agent_change(
    action: tenantry_audit::AuditAction,
    id: Uuid,
    before: Option<&Agent>,
    after: Option<&Agent>,
) -> tenantry_audit::Change {
    let summary = |a: &Agent| serde_json::to_value(a).unwrap_or_default();
    tenantry_audit::Change {
        action,
        target_kind: "agent",
        target_id: Some(id.to_string()),
        before: before.map(summary),
        after: after.map(summary),
    }
}
