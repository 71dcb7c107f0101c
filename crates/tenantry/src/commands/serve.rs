//! `tenantry serve`: finish interrupted work, migrate, serve HTTP until SIGINT or SIGTERM.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tenantry_http::Application;
use tenantry_identity::Identity;
use tenantry_mail::{Outbox, Sender};
use tenantry_monitoring::alerts::{Deliverer, DelivererConfig, SecretKeys};
use tenantry_monitoring::checks::Checker;
use tenantry_monitoring::scheduler::Scheduler;
use tenantry_orgs::{Limit, Orgs};
use tenantry_ratelimit::Limiter;
use tenantry_tenancy::{
    MigrateProgress, Operator, SchemaVersions, Tenancy, TenantId, TenantRecord, TenantStatus,
};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use uuid::Uuid;

use crate::settings::Settings;

pub async fn run(
    settings: &Settings,
    tenancy: &Tenancy,
    metrics: tenantry_http::MetricsAccess,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let limiter = limiter(settings).await?;
    // A signal during the start-up work ends it; the caller then stops PostgreSQL.
    tokio::select! {
        started = start_up(settings, tenancy, &limiter) => started?,
        _ = shutdown.wait() => {
            tracing::info!("shutting down before serving");
            return Ok(());
        }
    }
    let reaper = tenancy.spawn_pool_reaper(Duration::from_secs(30));
    let purger = spawn_retention_purge(
        tenancy.clone(),
        limiter.clone(),
        Duration::from_secs(u64::from(settings.deleted_retention_days) * 24 * 3600),
    );
    // Owner-only tables (signing and sealing keys) are read with the owner role, here at start
    // and never by a request.
    let keys = Operator::new(tenancy);
    let identity = Identity::open(tenancy, &keys, settings.identity()).await?;
    let outbox = Outbox::open(tenancy, &keys).await?;
    // The sender outlives the HTTP server, for emails of requests finishing during shutdown; it
    // stops once `stop_mail` is dropped (by an early return too).
    let (stop_mail, mail_stopped) = tokio::sync::oneshot::channel::<()>();
    let sender = tokio::spawn(Sender::new(outbox.clone(), &settings.mail())?.run(async {
        let _ = mail_stopped.await;
    }));
    // Alerts go out until the HTTP server has stopped (`stop_alerts` dropped), before the mail
    // sender stops: it sends the email alerts the deliverer queues.
    let (stop_alerts, alerts_stopped) = tokio::sync::oneshot::channel::<()>();
    let deliverer = Deliverer::new(
        tenancy.clone(),
        outbox.clone(),
        &keys,
        DelivererConfig {
            public_url: settings.public_url.clone(),
            checker: settings.checker(),
            ..DelivererConfig::default()
        },
    )
    .await?;
    let deliverer = tokio::spawn(deliverer.run(async {
        let _ = alerts_stopped.await;
    }));
    let orgs = Orgs::new(tenancy.clone(), outbox.clone(), &settings.public_url)
        .with_organization_cap(settings.organization_cap())
        .with_deleted_retention_days(settings.deleted_retention_days);
    // API requests counted in memory reach the database every 10 s, and once more after the
    // HTTP server stopped.
    let (stop_usage, usage_stopped) = tokio::sync::oneshot::channel::<()>();
    let usage = tokio::spawn(
        orgs.clone()
            .run_request_flusher(Duration::from_secs(10), async {
                let _ = usage_stopped.await;
            }),
    );
    let pruner = spawn_result_pruning(tenancy.clone(), orgs.clone());
    let checker = Checker::new(settings.checker())?;
    let app = Application::build(
        settings.listen,
        tenancy.clone(),
        identity,
        orgs,
        tenantry_http::Options {
            limiter,
            checker: checker.clone(),
            metrics,
            alert_keys: Arc::new(SecretKeys::load_or_create(&keys).await?),
        },
    )
    .await?;
    // The scheduler stops claiming once the HTTP server has stopped (`stop_checks` dropped),
    // gives back what it had not started and lets running checks finish.
    let (stop_checks, checks_stopped) = tokio::sync::oneshot::channel::<()>();
    let scheduler = Scheduler::new(
        tenancy.clone(),
        checker,
        settings.scheduler(),
        app.scheduler_metrics(),
    );
    let scheduler = tokio::spawn(scheduler.run(async {
        let _ = checks_stopped.await;
    }));
    let address = app.local_addr()?;
    tracing::info!(%address, "serving");
    println!("listening on http://{address}");
    let served = app.run_until(shutdown.wait_owned()).await;
    reaper.abort();
    purger.abort();
    pruner.abort();
    tracing::info!("HTTP server stopped");
    drop(stop_checks);
    if let Err(e) = scheduler.await {
        tracing::error!(error = %e, "the check scheduler failed");
    }
    drop(stop_usage);
    if let Err(e) = usage.await {
        tracing::error!(error = %e, "the API usage flusher failed");
    }
    drop(stop_alerts);
    if let Err(e) = deliverer.await {
        tracing::error!(error = %e, "the alert deliverer failed");
    }
    drop(stop_mail);
    if let Err(e) = sender.await {
        tracing::error!(error = %e, "the email sender failed");
    }
    served
}

/// The organizations' request budgets: shared through `redis_url` when set (an unreachable Redis
/// does not stop the start: budgets are per instance until it answers), else in process.
async fn limiter(settings: &Settings) -> anyhow::Result<Limiter> {
    match &settings.redis_url {
        Some(url) => Limiter::with_redis(url.expose())
            .await
            .map_err(|e| anyhow::anyhow!("{e} (fix TENANTRY_REDIS_URL)")),
        None => Ok(Limiter::in_process()),
    }
}

/// Hard-deletes organizations soft-deleted longer than `retention` ago, a minute after start and
/// then hourly, and drops their rate-limit state (in Redis too). Every instance runs it; each
/// tenant is claimed by one of them.
fn spawn_retention_purge(
    tenancy: Tenancy,
    limiter: Limiter,
    retention: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every.tick().await;
            // The purge reports slugs; their ids are read first, while the tenants exist.
            let deleted = ids_of(&tenancy, |t| t.status == TenantStatus::Deleted).await;
            match tenancy.purge_expired(retention).await {
                Ok(purged) if !purged.is_empty() => {
                    tracing::info!(tenants = ?purged, "deleted organizations past their retention purged");
                    forget_purged(&limiter, &deleted, &purged).await;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "the retention purge failed; it runs again within the hour")
                }
            }
        }
    })
}

/// Deletes check results older than each organization's `retention_days`, a minute after start
/// and then hourly. Every instance runs it (a second pass deletes nothing more).
fn spawn_result_pruning(tenancy: Tenancy, orgs: Orgs) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every.tick().await;
            let retention = |id: TenantId| orgs.limit(id.as_uuid(), Limit::RetentionDays);
            match tenantry_monitoring::prune_expired_results(&tenancy, retention).await {
                Ok(pruned) if pruned.results > 0 => tracing::info!(
                    organizations = pruned.organizations,
                    results = pruned.results,
                    "check results past their retention deleted"
                ),
                Ok(_) => {}
                Err(e) => tracing::error!(
                    error = %e,
                    "pruning check results failed; it runs again within the hour"
                ),
            }
        }
    })
}

/// Slug → id of the tenants `keep` selects (none when the registry cannot be read: their
/// rate-limit keys then expire on their own within a minute).
async fn ids_of(tenancy: &Tenancy, keep: impl Fn(&TenantRecord) -> bool) -> HashMap<String, Uuid> {
    match tenancy.list().await {
        Ok(records) => records
            .into_iter()
            .filter(|r| keep(r))
            .map(|r| (r.slug, r.id.as_uuid()))
            .collect(),
        Err(error) => {
            tracing::warn!(%error, "failed to list the tenants about to be purged");
            HashMap::new()
        }
    }
}

/// Drops the rate-limit state of the tenants purged (`purged` slugs, ids in `ids`). A Redis that
/// does not answer is logged: the keys expire on their own within a minute.
async fn forget_purged(limiter: &Limiter, ids: &HashMap<String, Uuid>, purged: &[String]) {
    for slug in purged {
        let Some(&id) = ids.get(slug) else {
            continue;
        };
        if let Err(error) = limiter.forget_tenant(id).await {
            tracing::warn!(
                %slug,
                %error,
                "could not remove a purged tenant's rate-limit keys from Redis; they expire within a minute"
            );
        }
    }
}

/// Finishes what an earlier run left undone, then migrates every tenant.
async fn start_up(settings: &Settings, tenancy: &Tenancy, limiter: &Limiter) -> anyhow::Result<()> {
    let purging = ids_of(tenancy, |t| t.purging).await;
    let (purged, failed) = tenancy.resume_purges().await?;
    if !purged.is_empty() {
        tracing::info!(tenants = ?purged, "finished interrupted hard deletes");
        forget_purged(limiter, &purging, &purged).await;
    }
    for (slug, error) in failed {
        tracing::error!(%slug, %error, "a hard delete could not be finished; it is retried at the next start");
    }
    for (slug, error) in tenancy.resume_provisioning().await? {
        tracing::error!(%slug, %error, "provisioning could not be finished; fix the cause and run `tenantry tenant create` again");
    }
    let report = tenancy
        .migrate_fleet(settings.migrate_jobs, &LogProgress)
        .await?;
    if !report.noop {
        tracing::info!(
            versions = %report.latest,
            migrated = report.migrated.len(),
            failed = report.failed.len(),
            "tenant schemas migrated"
        );
    }
    Ok(())
}

/// SIGINT and SIGTERM, listened for from the moment it is installed (before PostgreSQL starts),
/// so a signal at any point of the start leads to a clean stop.
pub struct Shutdown {
    requested: watch::Receiver<bool>,
}

impl Shutdown {
    pub fn install() -> anyhow::Result<Self> {
        let (tx, rx) = watch::channel(false);
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
                _ = interrupt.recv() => tracing::info!("SIGINT received, shutting down"),
            }
            let _ = tx.send(true);
        });
        Ok(Self { requested: rx })
    }

    /// Completes once a signal has arrived.
    pub async fn wait(&self) {
        self.wait_owned().await
    }

    pub fn wait_owned(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut requested = self.requested.clone();
        async move {
            // An error means the sender is gone without a signal: never complete.
            if requested.wait_for(|signalled| *signalled).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Migration progress as log lines.
struct LogProgress;

impl MigrateProgress for LogProgress {
    fn started(&self, tenants: usize) {
        tracing::info!(tenants, "migrating tenant schemas");
    }

    fn finished(&self, slug: &str, result: &Result<SchemaVersions, String>) {
        match result {
            Ok(versions) => tracing::info!(%slug, %versions, "tenant migrated"),
            Err(error) => tracing::error!(%slug, %error, "tenant migration failed"),
        }
    }
}
