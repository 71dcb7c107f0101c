//! [`AppState`], what every handler reaches: the domain services and the instance's shared
//! state, behind one reference count.

use std::sync::Arc;

use tenantry_identity::Identity;
use tenantry_orgs::Orgs;
use tenantry_ratelimit::Limiter;
use tenantry_tenancy::Tenancy;

use crate::metrics::Metrics;

/// What every handler can reach: a cheap handle (one reference count), since axum clones the
/// state for every middleware and extractor of every request.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services behind [`AppState`].
pub struct Services {
    pub tenancy: Tenancy,
    pub identity: Identity,
    pub orgs: Orgs,
    pub metrics: Arc<Metrics>,
    /// Each organization's `api_requests_per_minute` budget (`extract::admit`).
    pub limiter: Limiter,
    /// Exports streaming at once on this instance ([`EXPORT_SLOTS`](crate::EXPORT_SLOTS)): each holds two database
    /// connections of its own until its download ends.
    pub exports: Arc<tokio::sync::Semaphore>,
    /// The budget of anonymous public status-page requests (per client address, and in all).
    pub public_pages: Arc<crate::status_pages::PublicLimiter>,
    /// Failed logins, sign-ups, accepts, refreshes and pings, per email and client address.
    pub throttles: Arc<crate::throttle::Throttles>,
    /// The checker the scheduler runs: its SSRF guard judges literal targets on create/update.
    pub checker: tenantry_monitoring::checks::Checker,
    /// Who may read `/metrics`.
    pub metrics_access: crate::ops::MetricsAccess,
    /// The organizations with an export streaming from this instance (one each at a time).
    pub exporting: crate::export::Exporting,
    /// The keys sealing webhook secrets, loaded at start by the owner role (their table is
    /// owner-only).
    pub alert_keys: Arc<tenantry_monitoring::alerts::SecretKeys>,
    /// The tier moves platform admins started from this instance's console, and their progress.
    pub moves: crate::cases::tenants::Moves,
    /// Turns `true` when the server starts shutting down: responses that never end on their
    /// own (the console's event streams) end then, so the shutdown does not wait for them.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}
