//! `/api/v1/agents`: the agents of the organization in context, through the tenant door (viewers
//! read, admins register and delete them, like API keys: a token acts for the organization); and
//! the routes an agent itself calls (`/api/v1/agent/claims`, `/api/v1/agent/results`),
//! authenticated by its token alone.
//!
//! An agent's token is issued in the control database before the agent commits (and removed
//! again if it does not), shown once in the response, and forgotten after the agent is deleted;
//! deleting an agent puts its monitors back on the servers, in the tenant and then in the
//! schedule.

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use tenantry_monitoring::agent::{
    ClaimRequest, Claimed, ClaimedCheck, MAX_CLAIM, MAX_RESULTS, ReportedResult, ResultBatch,
    ResultsAnswer,
};
use tenantry_monitoring::scheduler::{self, Claim, Claimant, LEASE_SLACK, Next};
use tenantry_monitoring::{
    self as monitoring, Agent, AgentCursor, AgentIdentity, AgentToken, Monitor, Observation,
    Recorded,
};
use tenantry_orgs::Action;
use tenantry_tenancy::{TenancyError, TenantCtx, TenantId};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::cases::agents as case;
use crate::cases::monitors::Acting;
use crate::error::{AppError, Problem};
use crate::extract::{ApiJson, ApiQuery, Items, TenantScope, admit};
use crate::openapi::{InTenant, Internal, JsonBody, PROBLEM, RateLimited, TenantHeader};
use crate::paging::{Page, parse_id};
use crate::server::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, remove))
        .routes(routes!(claims))
        .routes(routes!(results))
}

/// A new agent.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AgentInput {
    /// What the agent is called, e.g. where it runs.
    #[schema(min_length = 1, max_length = 200, example = "datacenter-1")]
    name: String,
}

/// An agent as the response that registered it shows it.
#[derive(Serialize, ToSchema)]
struct IssuedAgent {
    #[serde(flatten)]
    agent: Agent,
    /// The agent's token (`tagt_…`), for `tenantry agent --server URL --token TOKEN`. Shown in
    /// this response only: the server keeps only its hash.
    token: String,
}

/// The agents of the organization in context, oldest first
#[utoipa::path(
    get,
    path = "/api/v1/agents",
    tag = "agents",
    operation_id = "list_agents",
    security(("bearer" = [])),
    params(TenantHeader, Page),
    responses(
        (status = 200, description = "A page of agents", body = Items<Agent>),
        InTenant,
        (status = 422, description = "`validation_failed`: `limit` out of range, or a `cursor` this server did not return", body = Problem, content_type = PROBLEM),
    )
)]
async fn list(
    scope: TenantScope,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Items<Agent>>, AppError> {
    scope.require(Action::Read)?;
    let limit = page.limit()?;
    let cursor = page
        .position()?
        .map(|(created_at, id)| AgentCursor { created_at, id });
    let mut tx = scope.ctx.begin_read().await?;
    let items = monitoring::list_agents(&mut tx, limit + 1, cursor).await?;
    tx.commit().await?;
    Ok(Json(Items::paged(items, limit, |a| (a.created_at, a.id))))
}

/// Register an agent (admin)
///
/// The response carries the agent's token, shown this once. Assign monitors to the agent with
/// their `agent_id`.
#[utoipa::path(
    post,
    path = "/api/v1/agents",
    tag = "agents",
    operation_id = "create_agent",
    security(("bearer" = [])),
    params(TenantHeader),
    request_body = AgentInput,
    responses(
        (status = 201, description = "The new agent with its token, shown this once", body = IssuedAgent),
        JsonBody,
        InTenant,
        (status = 403, description = "`forbidden`: the role may not register agents; `tenant_suspended`; or `limit_exceeded` with `limit: max_agents`", body = Problem, content_type = PROBLEM),
    )
)]
async fn create(
    State(state): State<AppState>,
    origin: crate::audit::Origin,
    scope: TenantScope,
    ApiJson(input): ApiJson<AgentInput>,
) -> Result<(StatusCode, Json<IssuedAgent>), AppError> {
    let acting = Acting::new(&scope.ctx, scope.role, origin.by(&scope.actor));
    let (agent, token) = case::register(&state, &acting, &input.name).await?;
    Ok((StatusCode::CREATED, Json(IssuedAgent { agent, token })))
}

/// An agent
#[utoipa::path(
    get,
    path = "/api/v1/agents/{id}",
    tag = "agents",
    operation_id = "read_agent",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The agent's id"), TenantHeader),
    responses(
        (status = 200, description = "The agent", body = Agent),
        InTenant,
    )
)]
async fn read(scope: TenantScope, Path(id): Path<String>) -> Result<Json<Agent>, AppError> {
    scope.require(Action::Read)?;
    let id = parse_id(&id)?;
    let mut tx = scope.ctx.begin_read().await?;
    let agent = monitoring::get_agent(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(Json(agent))
}

/// Delete an agent (admin)
///
/// Its token stops working, and its monitors go back to the servers (`agent_id: null`).
#[utoipa::path(
    delete,
    path = "/api/v1/agents/{id}",
    tag = "agents",
    operation_id = "delete_agent",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The agent's id"), TenantHeader),
    responses(
        (status = 204, description = "Deleted"),
        InTenant,
    )
)]
async fn remove(
    State(state): State<AppState>,
    origin: crate::audit::Origin,
    scope: TenantScope,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let id = parse_id(&id)?;
    let acting = Acting::new(&scope.ctx, scope.role, origin.by(&scope.actor));
    case::remove(&state, &acting, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The calling agent: its token's organization (which must be active) and id, counted against
/// the organization's rate limit. Every refusal (a malformed, unknown or revoked token, a
/// suspended or deleted organization) is the same `401 invalid_token`.
struct AgentCaller {
    identity: AgentIdentity,
    ctx: TenantCtx,
}

fn refused() -> AppError {
    AppError::Unauthorized {
        code: "invalid_token",
        detail: "The agent token is invalid or revoked.",
    }
}

impl FromRequestParts<AppState> for AgentCaller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(AgentToken::new)
            .ok_or_else(refused)?;
        let identity = monitoring::find_agent_token(state.tenancy.control_db(), &token)
            .await?
            .ok_or_else(refused)?;
        let ctx = match state
            .tenancy
            .resolve_id(TenantId::from(identity.org_id))
            .await
        {
            Ok(ctx) => ctx,
            Err(TenancyError::NotFound(_) | TenancyError::NotActive { .. }) => {
                return Err(refused());
            }
            Err(e) => return Err(e.into()),
        };
        admit(state, identity.org_id).await?;
        Ok(AgentCaller { identity, ctx })
    }
}

/// How long `last_seen_at` may lag: a claim writes it only when older.
const SEEN_EVERY: TimeDelta = TimeDelta::seconds(10);
/// A schedule row younger than this is not removed for lack of a monitor: the monitor's
/// transaction may still be committing.
const YOUNG_ROW: TimeDelta = TimeDelta::minutes(1);
/// A result's slot may lie this far ahead of the server's clock (no further: it is no slot).
const CLOCK_SLACK: TimeDelta = TimeDelta::minutes(1);

/// Claim due checks (agents)
///
/// Leases up to `max` due checks of the monitors assigned to the calling agent: run each and
/// post its result to `/api/v1/agent/results` before the lease ends (twice the monitor's
/// timeout and 30 s), or the slot is claimed again. Authenticated by the agent's token
/// (`Authorization: Bearer tagt_…`); counts against the organization's rate limit.
#[utoipa::path(
    post,
    path = "/api/v1/agent/claims",
    tag = "agents",
    operation_id = "claim_agent_checks",
    security(("bearer" = [])),
    request_body = ClaimRequest,
    responses(
        (status = 200, description = "The checks claimed, none when nothing is due", body = Claimed),
        JsonBody,
        (status = 401, description = "`invalid_token`: the agent token is unknown, revoked, or its organization suspended or deleted", body = Problem, content_type = PROBLEM),
        (status = 429, response = RateLimited),
        (status = 500, response = Internal),
    )
)]
async fn claims(
    State(state): State<AppState>,
    caller: AgentCaller,
    ApiJson(request): ApiJson<ClaimRequest>,
) -> Result<Json<Claimed>, AppError> {
    if !(1..=MAX_CLAIM).contains(&request.max) {
        return Err(AppError::invalid("max", format!("1 to {MAX_CLAIM}")));
    }
    let AgentIdentity { org_id, agent_id } = caller.identity;
    // Agents of a plan without them are kept, but run nothing.
    state
        .orgs
        .require_feature(org_id, tenantry_orgs::Feature::Agents)
        .await?;
    let control = state.tenancy.control_db();
    // A token outliving its agent (its removal failed) is refused like any other. (Each
    // transaction ends before the control database is used: a request never holds two
    // connections of the runtime pool at once.)
    let mut tx = caller.ctx.begin_read().await?;
    let seen = monitoring::agent_last_seen(&mut tx, agent_id)
        .await?
        .ok_or_else(refused)?;
    tx.commit().await?;
    let leased = scheduler::claim(
        control,
        Claimant::Agent { org_id, agent_id },
        agent_id,
        request.max,
        LEASE_SLACK,
    )
    .await?;
    let mut monitors = Vec::with_capacity(leased.len());
    if !leased.is_empty() {
        let mut tx = caller.ctx.begin_read().await?;
        for claim in leased {
            let monitor = monitoring::get(&mut tx, claim.monitor_id).await?;
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
                kind: m.kind,
                target: m.target.unwrap_or_default(),
                keyword: m.keyword,
                timeout_ms: u64::try_from(m.timeout_seconds.max(1)).unwrap_or(1) * 1000,
            }),
            other => hand_back(&state, &claim, agent_id, other.as_ref(), now).await,
        }
    }
    if seen.is_none_or(|at| now - at >= SEEN_EVERY) {
        // The checks are leased already: a failure here is logged, not the answer.
        let touched = async {
            let mut tx = caller.ctx.begin().await?;
            monitoring::touch_agent(&mut tx, agent_id).await?;
            tx.commit().await
        }
        .await;
        if let Err(error) = touched {
            tracing::warn!(%error, %agent_id, "failed to note when an agent was last seen");
        }
    }
    Ok(Json(Claimed { checks }))
}

/// Releases a claimed slot this agent must not run: its monitor is gone (the row removed,
/// unless young), disabled (unscheduled) or assigned elsewhere (the row corrected, due again at
/// once for its runner). A failure leaves the lease to expire.
async fn hand_back(
    state: &AppState,
    claim: &Claim,
    agent_id: Uuid,
    monitor: Option<&Monitor>,
    now: DateTime<Utc>,
) {
    let control = state.tenancy.control_db();
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

/// Post check results (agents)
///
/// The results of checks claimed from `/api/v1/agent/claims`, at most 100. A result is stored
/// once per slot (`monitor_id`, `due_at`): posting it again is a duplicate. A result for a slot
/// the scheduler has not leased to the calling agent (another slot, another agent's, one whose
/// lease was taken over), for a monitor not (any more) assigned to it, or disabled, is rejected,
/// counted in `tenantry_agent_results_rejected_total`, and nothing is recorded for it. A `checked_at` ahead of the server's
/// clock is taken as the server's now. Authenticated by the agent's token; counts against the organization's rate
/// limit.
#[utoipa::path(
    post,
    path = "/api/v1/agent/results",
    tag = "agents",
    operation_id = "post_agent_results",
    security(("bearer" = [])),
    request_body = ResultBatch,
    responses(
        (status = 200, description = "What became of each result", body = ResultsAnswer),
        JsonBody,
        (status = 401, description = "`invalid_token`: the agent token is unknown, revoked, or its organization suspended or deleted", body = Problem, content_type = PROBLEM),
        (status = 429, response = RateLimited),
        (status = 500, response = Internal),
    )
)]
async fn results(
    State(state): State<AppState>,
    caller: AgentCaller,
    ApiJson(batch): ApiJson<ResultBatch>,
) -> Result<Json<ResultsAnswer>, AppError> {
    let mut reported = batch.results;
    check_results(&reported)?;
    let AgentIdentity { org_id, agent_id } = caller.identity;
    state
        .orgs
        .require_feature(org_id, tenantry_orgs::Feature::Agents)
        .await?;
    let control = state.tenancy.control_db();
    let now = Utc::now();
    // One order for the monitor locks `record_result` takes: concurrent posts cannot deadlock.
    reported.sort_by_key(|r| (r.monitor_id, r.due_at));
    let mut answer = ResultsAnswer::default();
    let mut slots: Vec<(Monitor, DateTime<Utc>)> = Vec::new();
    let mut deliveries = false;
    let asked: Vec<(Uuid, DateTime<Utc>)> =
        reported.iter().map(|r| (r.monitor_id, r.due_at)).collect();
    let leased = scheduler::leased_to(control, org_id, agent_id, &asked).await?;
    let mut tx = caller.ctx.begin().await?;
    if !monitoring::touch_agent(&mut tx, agent_id).await? {
        return Err(refused());
    }
    for result in reported {
        if !leased.contains(&(result.monitor_id, result.due_at)) {
            // A result posted again after its slot moved on is a duplicate, not an intrusion.
            if monitoring::has_result(&mut tx, result.monitor_id, result.due_at).await? {
                answer.duplicates += 1;
            } else {
                state.metrics.agent_results_rejected.inc();
                answer.rejected.push(result.monitor_id);
            }
            continue;
        }
        let monitor = match monitoring::get(&mut tx, result.monitor_id).await? {
            Some(m)
                if m.enabled
                    && m.agent_id == Some(agent_id)
                    && result.due_at <= now + CLOCK_SLACK =>
            {
                m
            }
            _ => {
                state.metrics.agent_results_rejected.inc();
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
            monitoring::record_result(&mut tx, monitor.id, result.due_at, &observation).await?;
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
        monitoring::alerts::note_pending_in(&mut control, org_id).await?;
    }
    tx.commit().await?;
    for (monitor, due_at) in slots {
        move_slot(&state, org_id, agent_id, &monitor, due_at, now).await;
    }
    Ok(Json(answer))
}

/// Refuses a batch that cannot be stored as it is.
fn check_results(results: &[ReportedResult]) -> Result<(), AppError> {
    if results.len() > MAX_RESULTS {
        return Err(AppError::invalid(
            "results",
            format!("at most {MAX_RESULTS} results per request"),
        ));
    }
    for result in results {
        if result
            .status_code
            .is_some_and(|s| !(100..=999).contains(&s))
        {
            return Err(AppError::invalid(
                "status_code",
                "an HTTP status, 100 to 999",
            ));
        }
        if result.latency_ms.is_some_and(|l| l < 0) {
            return Err(AppError::invalid("latency_ms", "0 or more milliseconds"));
        }
    }
    Ok(())
}

/// Moves the recorded slot of `monitor` on to the next one (if this agent still holds it).
async fn move_slot(
    state: &AppState,
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
        planned_at: now,
    };
    let next = Next::Slot {
        at: scheduler::next_slot(due_at, interval, now).0,
        interval_seconds: monitor.interval_seconds,
        timeout_seconds: monitor.timeout_seconds,
    };
    if let Err(error) = scheduler::finish(state.tenancy.control_db(), &claim, agent_id, next).await
    {
        tracing::warn!(%error, monitor = %monitor.id, "failed to move an agent's check slot on; its lease will expire and the slot run again (recorded once)");
    }
}
