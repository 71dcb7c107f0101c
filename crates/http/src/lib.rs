//! The HTTP layer: the only crate that knows HTTP. It serves the operational endpoints
//! (`/healthz`, `/readyz`, `/metrics`), the JSON API under `/api/v1`, and its OpenAPI 3.1
//! document (`/api/openapi.json`, generated from the routes) with Swagger UI (`/api/docs`); the
//! console joins it here.

mod admin;
mod agents;
mod alert_channels;
mod audit;
mod auth;
mod cases;
mod connections;
mod console;
mod error;
mod export;
mod extract;
mod invalidate;
mod invitations;
mod members;
mod metrics;
mod monitors;
pub mod openapi;
mod ops;
mod orgs;
mod paging;
mod results;
mod server;
mod state;
mod status_pages;
mod text;
mod throttle;
mod usage;

pub use connections::{BODY_READ_TIMEOUT, HEADER_READ_TIMEOUT, MAX_CONNECTIONS};
pub use error::{AppError, Problem};
pub use extract::{ApiJson, ApiQuery, AuthUser, TenantScope};
pub use metrics::Metrics;
pub use ops::MetricsAccess;
pub use server::{Application, EXPORT_SLOTS, Options};
pub use state::{AppState, Services};
