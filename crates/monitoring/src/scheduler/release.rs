//! The releaser: moves handled slots on in the schedule ([`super::finish_all`]), as many as have
//! ended since its last statement in one transaction, so a busy instance writes the schedule
//! once for a batch of checks instead of once for each. A slot waits here for no timer: an
//! idle instance releases each at once.

use std::time::{Duration, Instant};

use tenantry_tenancy::ControlDb;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::plan::{Claim, Next, finish_all};
use super::stats::SchedulerMetrics;

/// Slots released in one transaction, at most.
const BATCH: usize = 500;

/// The pause before a failed release is tried again (once: it is only the lease's expiry that
/// a second failure costs).
const RETRY_PAUSE: Duration = Duration::from_secs(1);

pub(super) enum Release {
    Slot(Claim, Next),
    /// Answered once every slot sent before it is released.
    Flush(oneshot::Sender<()>),
}

pub(super) async fn run(
    control: ControlDb,
    owner: Uuid,
    metrics: SchedulerMetrics,
    mut releases: mpsc::UnboundedReceiver<Release>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut flushed = Vec::new();
    while let Some(first) = releases.recv().await {
        let mut next = Some(first);
        while let Some(release) = next.take() {
            match release {
                Release::Slot(claim, how) => batch.push((claim, how)),
                Release::Flush(done) => flushed.push(done),
            }
            if batch.len() < BATCH {
                next = releases.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            let began = Instant::now();
            if let Err(e) = finish_all(&control, owner, &batch).await {
                tracing::warn!(slots = batch.len(), error = %e, "releasing check slots failed; trying once more");
                tokio::time::sleep(RETRY_PAUSE).await;
                if let Err(e) = finish_all(&control, owner, &batch).await {
                    tracing::warn!(slots = batch.len(), error = %e, "releasing check slots failed again; their leases will expire and the slots be taken over");
                }
            }
            metrics.overhead(began.elapsed());
            batch.clear();
        }
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
    }
}
