//! The HTTP layer: the only crate that knows HTTP. It serves the operational endpoints
//! (`/healthz`, `/readyz`, `/metrics`) and the JSON API as it grows (auth and the current user
//! so far); the console joins it here.

mod auth;
mod error;
mod extract;
mod members;
mod metrics;
mod monitors;
mod ops;
mod orgs;
mod server;

pub use error::AppError;
pub use extract::{ApiJson, AuthUser, TenantScope};
pub use metrics::Metrics;
pub use server::{AppState, Application};
