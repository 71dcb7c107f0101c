//! Operational endpoints: liveness, readiness and metrics.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::{Json, Router, routing::get};
use serde_json::json;

use crate::error::AppError;
use crate::server::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// The process is up.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// The control database answers.
async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, AppError> {
    if state.tenancy.ping().await {
        Ok(Json(json!({ "status": "ready" })))
    } else {
        Err(AppError::NotReady)
    }
}

async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, AppError> {
    match state.tenancy.tenant_counts().await {
        Ok(counts) => state.metrics.set_tenants(&counts),
        Err(e) => tracing::warn!(error = %e, "failed to count tenants for metrics"),
    }
    state.metrics.set_pools(&state.tenancy.pool_stats());
    let text = state
        .metrics
        .render()
        .map_err(|e| AppError::Unexpected(anyhow::anyhow!("failed to render metrics: {e}")))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    ))
}
