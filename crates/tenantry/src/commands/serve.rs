//! `tenantry serve`: finish interrupted work, migrate, serve HTTP until SIGINT or SIGTERM.

use std::time::Duration;

use tenantry_http::Application;
use tenantry_tenancy::{MigrateProgress, Tenancy};

use crate::settings::Settings;

pub async fn run(settings: &Settings, tenancy: &Tenancy) -> anyhow::Result<()> {
    let purged = tenancy.resume_purges().await?;
    if purged > 0 {
        tracing::info!(tenants = purged, "finished interrupted hard deletes");
    }
    for (slug, error) in tenancy.resume_provisioning().await? {
        tracing::error!(%slug, %error, "provisioning could not be finished; fix the cause and run `tenantry tenant create` again");
    }
    let report = tenancy
        .migrate_fleet(settings.migrate_jobs, &LogProgress)
        .await?;
    if !report.noop {
        tracing::info!(
            version = report.latest,
            migrated = report.migrated.len(),
            failed = report.failed.len(),
            "tenant schemas migrated"
        );
    }
    let reaper = tenancy.spawn_pool_reaper(Duration::from_secs(30));
    let app = Application::build(settings.listen, tenancy.clone()).await?;
    let address = app.local_addr()?;
    tracing::info!(%address, "serving");
    println!("listening on http://{address}");
    let served = app.run_until(shutdown_signal()).await;
    reaper.abort();
    tracing::info!("HTTP server stopped");
    served
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = interrupt => tracing::info!("SIGINT received, shutting down"),
        _ = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// Migration progress as log lines.
struct LogProgress;

impl MigrateProgress for LogProgress {
    fn started(&self, tenants: usize) {
        tracing::info!(tenants, "migrating tenant schemas");
    }

    fn finished(&self, slug: &str, result: &Result<i32, String>) {
        match result {
            Ok(version) => tracing::info!(%slug, version, "tenant migrated"),
            Err(error) => tracing::error!(%slug, %error, "tenant migration failed"),
        }
    }
}
