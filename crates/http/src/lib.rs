//! The HTTP layer: the only crate that knows HTTP. For now it serves the operational endpoints
//! (`/healthz`, `/readyz`, `/metrics`); the JSON API and the console join it here.

mod error;
mod metrics;
mod ops;
mod server;

pub use error::AppError;
pub use metrics::Metrics;
pub use server::{AppState, Application};
