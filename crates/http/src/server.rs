//! Building and running the HTTP application: the listener is bound first, so callers (and
//! tests) know the port before serving starts.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use tenantry_identity::Identity;
use tenantry_orgs::Orgs;
use tenantry_ratelimit::Limiter;
use tenantry_tenancy::Tenancy;
use tokio::net::TcpListener;
use tracing::Instrument;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

use crate::error::{AppError, LoggedError, rate_limit_headers};
use crate::extract::RequestTenant;
use crate::metrics::{Metrics, RequestLabels, RouteLabels};
use crate::openapi::{self, ApiDoc};
use crate::state::{AppState, Services};
use crate::{
    admin, audit, auth, connections, export, invitations, members, monitors, ops, orgs, results,
    usage,
};

const REQUEST_ID: &str = "x-request-id";

/// What [`Application::build`] takes besides the domain services.
pub struct Options {
    /// Each organization's `api_requests_per_minute` budget: in process, or shared through
    /// Redis.
    pub limiter: Limiter,
    /// The checker the scheduler runs, whose SSRF guard refuses literal targets when they are
    /// saved.
    pub checker: tenantry_monitoring::checks::Checker,
    /// Who may read `/metrics`.
    pub metrics: crate::ops::MetricsAccess,
    /// The keys sealing webhook secrets, loaded at start with the owner role
    /// (`SecretKeys::load_or_create`; their table is owner-only).
    pub alert_keys: Arc<tenantry_monitoring::alerts::SecretKeys>,
}

/// Exports one instance streams at once; past them, `503 export_busy`.
pub const EXPORT_SLOTS: usize = 4;

/// Request bodies larger than this are refused with 413.
pub(crate) const BODY_LIMIT: usize = 1024 * 1024;

pub struct Application {
    listener: TcpListener,
    router: Router,
    stop: tokio::sync::watch::Sender<bool>,
    exports: Arc<tokio::sync::Semaphore>,
    metrics: Arc<Metrics>,
}

impl Application {
    /// Binds `listen` (port 0 picks a free port) and builds the routes.
    pub async fn build(
        listen: SocketAddr,
        tenancy: Tenancy,
        identity: Identity,
        orgs: Orgs,
        options: Options,
    ) -> anyhow::Result<Self> {
        let Options {
            limiter,
            checker,
            metrics: metrics_access,
            alert_keys,
        } = options;
        let listener = TcpListener::bind(listen).await.map_err(|e| {
            anyhow::anyhow!(
                "failed to listen on {listen}: {e} (choose another address with --listen)"
            )
        })?;
        let exports = Arc::new(tokio::sync::Semaphore::new(EXPORT_SLOTS));
        let metrics = Arc::new(Metrics::new());
        // Authorization data is cached while the invalidation listener is connected.
        tenancy.start_cache_listener();
        let identity = identity.with_caches(tenancy.caches());
        let (stop, stopping) = tokio::sync::watch::channel(false);

        let state = AppState::new(Services {
            orgs,
            tenancy,
            identity,
            metrics: metrics.clone(),
            limiter,
            exports: exports.clone(),
            public_pages: Arc::new(crate::status_pages::PublicLimiter::default()),
            throttles: Arc::new(crate::throttle::Throttles::default()),
            checker,
            metrics_access,
            exporting: crate::export::Exporting::default(),
            alert_keys,
            moves: Default::default(),
            stopping,
        });
        Ok(Self {
            listener,
            router: router(state),
            stop,
            exports,
            metrics,
        })
    }

    /// The metrics a check scheduler of this instance records into, shown at `/metrics`.
    pub fn scheduler_metrics(&self) -> tenantry_monitoring::scheduler::SchedulerMetrics {
        self.metrics.scheduler.clone()
    }

    /// The export slots ([`EXPORT_SLOTS`] permits; an export streaming holds one).
    pub fn export_slots(&self) -> Arc<tokio::sync::Semaphore> {
        self.exports.clone()
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight (see
    /// `connections` for the timeouts and the connection limit).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = self.stop;
        let shutdown = async move {
            shutdown.await;
            let _ = stop.send(true);
        };
        connections::serve(self.listener, self.router, shutdown).await;
        Ok(())
    }
}

/// Every documented route: each module's `routes()` is an `OpenApiRouter` whose handlers carry
/// their `#[utoipa::path]`, so the document at `/api/openapi.json` lists exactly what is served.
pub(crate) fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(ops::routes())
        .merge(auth::routes())
        .merge(orgs::routes())
        .merge(monitors::routes())
        .merge(crate::agents::routes())
        .merge(results::routes())
        .merge(crate::alert_channels::routes())
        .merge(crate::status_pages::routes())
        .merge(members::routes())
        .merge(invitations::routes())
        .merge(admin::routes())
        .merge(usage::routes())
        .merge(audit::routes())
        .merge(export::routes())
}

pub fn router(state: AppState) -> Router {
    let (routes, openapi) = api().split_for_parts();
    routes
        .merge(openapi::docs(openapi))
        .merge(crate::console::routes(state.clone()))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::invalidate::after_changes,
        ))
        .layer(middleware::from_fn(crate::text::refuse_nul))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// A path nothing serves: the console's 404 page for a browser (a request accepting HTML, outside
/// `/api/`), problem JSON for anyone else.
async fn not_found(uri: axum::http::Uri, headers: axum::http::HeaderMap) -> Response {
    let wants_html = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if wants_html && !uri.path().starts_with("/api/") {
        let mut response = crate::console::not_found();
        crate::console::security_headers(response.headers_mut());
        response
    } else {
        axum::response::IntoResponse::into_response(AppError::NotFound)
    }
}

/// Gives every request an id (the client's `X-Request-Id` when it sent a sane one), a tracing
/// span, a line in the metrics, and the full error in the log when it failed on our side. Each
/// request gets a [`RequestTenant`] slot; when the request acted in an organization with a rate
/// limit, the response carries its `RateLimit-*` headers. A body that does not arrive in time
/// is answered `408` and its connection closed.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut request, body_expired) = connections::body_deadline(request);
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    request
        .extensions_mut()
        .insert(crate::audit::RequestId(request_id.clone()));
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = request.method().to_string();
    let span = tracing::info_span!(
        "request",
        %method,
        %route,
        %request_id,
        user_id = tracing::field::Empty,
        tenant_id = tracing::field::Empty
    );
    let started = Instant::now();
    let tenant = RequestTenant::default();
    request.extensions_mut().insert(tenant.clone());
    let mut response = tenant
        .clone()
        .scope(next.run(request))
        .instrument(span.clone())
        .await;
    if response.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE
        && response.headers().get(axum::http::header::CONTENT_TYPE)
            != Some(&HeaderValue::from_static("application/problem+json"))
    {
        // A raw body past the limit is refused by axum itself, in plain text.
        response = axum::response::IntoResponse::into_response(AppError::PayloadTooLarge);
    }
    if body_expired.load(std::sync::atomic::Ordering::Relaxed) {
        response = axum::response::IntoResponse::into_response(AppError::RequestTimeout(
            connections::BODY_READ_TIMEOUT.as_secs(),
        ));
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            HeaderValue::from_static("close"),
        );
    }
    if let Some(org_id) = tenant.tenant_id() {
        // Counted in memory; the flusher writes the counts in batches.
        state.orgs.record_request(org_id);
    }
    if let Some(rate) = tenant.rate() {
        rate_limit_headers(
            response.headers_mut(),
            rate.limit,
            rate.remaining,
            rate.reset_seconds(),
        );
    }
    let status = response.status();
    if let Some(LoggedError(error)) = response.extensions().get::<LoggedError>() {
        span.in_scope(|| tracing::error!(%status, %error, "request failed"));
    }
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route: route.clone(),
            status: status.as_u16(),
        })
        .inc();
    state
        .metrics
        .latency
        .get_or_create(&RouteLabels { route })
        .observe(started.elapsed().as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}
