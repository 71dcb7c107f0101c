//! Operational endpoints: liveness, readiness and metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::AppError;
use crate::openapi::{Internal, NotReady};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `{"status": "ok"}` or `{"status": "ready"}`.
#[derive(Serialize, ToSchema)]
struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

/// Liveness: the process is up
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "`{\"status\": \"ok\"}`", body = Health))
)]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the control database answers
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "`{\"status\": \"ready\"}`", body = Health),
        (status = 503, response = NotReady),
    )
)]
async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, AppError> {
    if state.tenancy.ping().await {
        Ok(Json(Health { status: "ready" }))
    } else {
        Err(AppError::NotReady)
    }
}

/// Who may read `/metrics`.
#[derive(Clone)]
pub enum MetricsAccess {
    /// Anyone (the `metrics_public` opt-out).
    Public,
    /// Only a scraper sending `Authorization: Bearer <token>`.
    Token(String),
}

impl std::fmt::Debug for MetricsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetricsAccess::Public => f.write_str("Public"),
            // The token itself is a secret.
            MetricsAccess::Token(_) => f.write_str("Token(..)"),
        }
    }
}

impl MetricsAccess {
    /// Whether `headers` may read the metrics. Compared as SHA-256 digests, so the time taken
    /// says nothing about how much of a guess was right.
    fn admits(&self, headers: &HeaderMap) -> bool {
        use sha2::{Digest, Sha256};
        match self {
            MetricsAccess::Public => true,
            MetricsAccess::Token(token) => headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|sent| {
                    Sha256::digest(sent.trim().as_bytes()) == Sha256::digest(token.as_bytes())
                }),
        }
    }
}

/// Prometheus metrics
///
/// Tenants by tier and status, pool and connection-budget gauges, request counters and latencies,
/// in the OpenMetrics text format. Requires `Authorization: Bearer <metrics token>` (`tenantry
/// metrics token` prints it) unless the server runs with `metrics_public`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    security(("metrics_token" = [])),
    responses(
        (status = 200, description = "OpenMetrics text", body = String, content_type = OPENMETRICS),
        (status = 401, description = "`unauthorized`: no metrics token, or a wrong one", body = crate::error::Problem, content_type = crate::openapi::PROBLEM),
        (status = 500, response = Internal),
    )
)]
async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, AppError> {
    if !state.metrics_access.admits(&headers) {
        return Err(AppError::Unauthorized {
            code: "unauthorized",
            detail: "Send `Authorization: Bearer <metrics token>`; `tenantry metrics token` prints it.",
        });
    }
    match state.tenancy.tenant_counts().await {
        Ok(counts) => state.metrics.set_tenants(&counts),
        Err(e) => tracing::warn!(error = %e, "failed to count tenants for metrics"),
    }
    match state.orgs.top_api_usage(crate::metrics::TOP_TENANTS).await {
        Ok((top, other)) => state.metrics.set_tenant_requests(&top, other),
        Err(e) => tracing::warn!(error = %e, "failed to read API usage for metrics"),
    }
    state.metrics.set_pools(&state.tenancy.pool_stats());
    let text = state
        .metrics
        .render()
        .map_err(|e| AppError::Unexpected(anyhow::anyhow!("failed to render metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, OPENMETRICS)], text))
}
