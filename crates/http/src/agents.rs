//! `/api/v1/agents`: the agents of the organization in context, through the tenant door (viewers
//! read, admins register and delete them, like API keys: a token acts for the organization); and
//! the routes an agent itself calls (`/api/v1/agent/claims`, `/api/v1/agent/results`),
//! authenticated by its token alone.
//!
//! An agent's token is issued in the control database before the agent commits (and removed
//! again if it does not), shown once in the response, and forgotten after the agent is deleted;
//! deleting an agent puts its monitors back on the servers, in the tenant and then in the
//! schedule. The protocol itself (leases, results checked against them) is
//! `tenantry_monitoring::protocol`; these routes authenticate the agent and check its plan.

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use tenantry_monitoring::agent::{ClaimRequest, Claimed, ResultBatch, ResultsAnswer};
use tenantry_monitoring::{self as monitoring, After, Agent, AgentIdentity, AgentToken};
use tenantry_orgs::Action;
use tenantry_tenancy::{TenancyError, TenantCtx, TenantId};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use tenantry_monitoring::protocol::{self, ProtocolError};

use crate::cases::agents as case;
use crate::cases::monitors::Acting;
use crate::error::{AppError, Problem};
use crate::extract::{ApiJson, ApiQuery, Items, TenantScope, admit};
use crate::openapi::{InTenant, Internal, JsonBody, PROBLEM, RateLimited, TenantHeader};
use crate::paging::{Page, parse_id};
use crate::state::AppState;

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
    let cursor = page.position()?.map(|(at, id)| After { at, id });
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
    protocol::check_claim(request.max).map_err(protocol_error)?;
    let org_id = caller.identity.org_id;
    // Agents of a plan without them are kept, but run nothing.
    state
        .orgs
        .require_feature(org_id, tenantry_orgs::Feature::Agents)
        .await?;
    let checks = protocol::claim_checks(
        state.tenancy.control_db(),
        &caller.ctx,
        caller.identity,
        request.max,
    )
    .await
    .map_err(protocol_error)?;
    Ok(Json(Claimed { checks }))
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
    protocol::check_results(&batch.results).map_err(protocol_error)?;
    let org_id = caller.identity.org_id;
    state
        .orgs
        .require_feature(org_id, tenantry_orgs::Feature::Agents)
        .await?;
    let rejected = || {
        state.metrics.agent_results_rejected.inc();
    };
    let answer = protocol::record_results(
        state.tenancy.control_db(),
        &caller.ctx,
        caller.identity,
        batch.results,
        &rejected,
    )
    .await
    .map_err(protocol_error)?;
    Ok(Json(answer))
}

fn protocol_error(e: ProtocolError) -> AppError {
    match e {
        ProtocolError::UnknownAgent => refused(),
        ProtocolError::Invalid { field, detail } => AppError::invalid(field, detail),
        ProtocolError::Database(e) => e.into(),
        ProtocolError::Tenancy(e) => e.into(),
    }
}
