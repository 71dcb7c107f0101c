//! `serve`'s watch over the managed PostgreSQL: checked every half second, started again (stale
//! `postmaster.pid` and orphaned backends cleared) when it died. Meanwhile requests get
//! `503 database_unavailable` with `Retry-After`; the pools reconnect by themselves once it is
//! back.

use std::time::Duration;

use tenantry_pg::{Restart, Supervisor};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How often the postmaster is looked at.
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// The wait after a failed start, doubling up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The running watch; [`Supervision::stop`] ends it before PostgreSQL is released.
pub struct Supervision {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Supervision {
    pub fn spawn(supervisor: Supervisor) -> Self {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(watch(supervisor, stopped));
        Self { stop, task }
    }

    /// Ends the watch, waiting for a restart in progress to finish, so that nothing starts
    /// PostgreSQL again once the caller lets go of it.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the PostgreSQL supervisor failed");
        }
    }
}

async fn watch(supervisor: Supervisor, mut stopped: oneshot::Receiver<()>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = &mut stopped => return,
        }
        let check = supervisor.clone();
        if tokio::task::spawn_blocking(move || check.is_running())
            .await
            .unwrap_or(true)
        {
            backoff = FIRST_BACKOFF;
            continue;
        }
        tracing::error!("PostgreSQL is not running; starting it again");
        // Not raced against `stopped`: a start under way is finished before the release.
        let restart = supervisor.clone();
        match tokio::task::spawn_blocking(move || restart.restart()).await {
            Ok(Ok(Restart::Started)) => tracing::info!("PostgreSQL started again"),
            Ok(Ok(Restart::AlreadyRunning)) => {
                tracing::info!(
                    "PostgreSQL was started again by another process of this data folder"
                )
            }
            Ok(Err(error)) => {
                tracing::error!(%error, retry_in = ?backoff, "failed to start PostgreSQL again");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = &mut stopped => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(error) => tracing::error!(%error, "the PostgreSQL restart task failed"),
        }
    }
}
