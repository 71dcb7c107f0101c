//! The background [`Deliverer`]: finds organizations with deliveries to make (their wakeups in
//! the control database), and for each, claims its due deliveries in a `TenantTx`
//! (`FOR UPDATE SKIP LOCKED`, then a lease), sends them outside any transaction, records each
//! outcome, and moves or removes the wakeup. Any number of instances share the work: a delivery
//! is claimed by one at a time, and sent again only when its deliverer died (or overran its
//! lease) before recording the outcome — at least once on the wire, deduplicable by
//! `Tenantry-Delivery`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::postgres::PgListener;
use tenantry_mail::Outbox;
use tenantry_tenancy::{Tenancy, TenancyError, TenantId};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::seal::SecretKeys;
use super::send::Webhooks;
use super::wakeups::{self, CHANNEL};
use crate::checks::CheckerConfig;

/// When failed attempts are tried again: after `first_delay`, doubling up to `max_delay`; a
/// delivery still failing once it is `give_up_after` old is given up (`failed_at`, with the last
/// error). The defaults, 10 s doubling to 1 h for 24 h, make about 30 attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertRetry {
    pub first_delay: Duration,
    pub max_delay: Duration,
    pub give_up_after: Duration,
}

impl Default for AlertRetry {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

impl AlertRetry {
    /// The wait after the `attempts`-th failed attempt (1 for the first).
    pub fn delay(&self, attempts: i32) -> Duration {
        let doublings = attempts.saturating_sub(1).clamp(0, 30) as u32;
        self.first_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }
}

/// How the [`Deliverer`] works. `Default` is what `tenantry serve` uses, apart from
/// `public_url` and `checker`.
#[derive(Debug, Clone)]
pub struct DelivererConfig {
    /// The server's public address, for the console link in alert emails.
    pub public_url: String,
    /// The checks' settings: `forbid_private_targets`, `allowed_private_addresses` and
    /// `extra_root_certificates` govern webhook targets as they govern check targets.
    pub checker: CheckerConfig,
    /// A webhook attempt's time limit (connecting, sending, the answer's headers).
    pub timeout: Duration,
    pub retry: AlertRetry,
    /// How often wakeups are looked for when no notification arrives.
    pub poll: Duration,
    /// How long a claimed wakeup or delivery is this deliverer's. Longer than `timeout`: a
    /// delivery whose lease ran out may be sent again by another deliverer.
    pub lease: Duration,
    /// Deliveries claimed (and sent concurrently) at once per organization.
    pub batch: i64,
    /// Organizations visited concurrently.
    pub organizations: i64,
    /// How long after its last note an organization with nothing pending is still looked at: a
    /// note is made before the transaction that enqueues commits, and that commit may come
    /// later. Transactions that enqueue deliveries must commit within it.
    pub note_grace: Duration,
    /// When a suspended or deleted organization's deliveries are looked at again.
    pub inactive_recheck: Duration,
}

impl Default for DelivererConfig {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".to_string(),
            checker: CheckerConfig::default(),
            timeout: Duration::from_secs(10),
            retry: AlertRetry::default(),
            poll: Duration::from_secs(2),
            lease: Duration::from_secs(60),
            batch: 20,
            organizations: 8,
            note_grace: Duration::from_secs(300),
            inactive_recheck: Duration::from_secs(300),
        }
    }
}

/// When an organization whose visit failed (moving, unreachable) is looked at again.
const RETRY_VISIT: Duration = Duration::from_secs(10);

/// Delivers alerts. Built once per process; [`Deliverer::run`] until shutdown.
#[derive(Clone)]
pub struct Deliverer {
    shared: Arc<Shared>,
}

pub(super) struct Shared {
    /// This deliverer's lease owner id.
    pub(super) id: Uuid,
    pub(super) tenancy: Tenancy,
    pub(super) outbox: Outbox,
    pub(super) keys: SecretKeys,
    pub(super) webhooks: Webhooks,
    pub(super) features: crate::features::PlanFeatures,
    pub(super) config: DelivererConfig,
    pub(super) stopping: AtomicBool,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer")
            .field("id", &self.shared.id)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Deliverer {
    /// A deliverer over `tenancy` (whose control database has the `monitoring` and `mail`
    /// schemas), queueing email alerts in `outbox`. Loads (or makes) the key that opens webhook
    /// secrets with `keys`, the owner role's handle the program's start-up hands over.
    pub async fn new(
        tenancy: Tenancy,
        outbox: Outbox,
        keys: &tenantry_tenancy::Operator,
        config: DelivererConfig,
    ) -> anyhow::Result<Deliverer> {
        let keys = SecretKeys::load_or_create(keys).await?;
        let webhooks = Webhooks::new(&config.checker, config.timeout)
            .context("failed to build the webhook client")?;
        Ok(Deliverer {
            shared: Arc::new(Shared {
                id: Uuid::now_v7(),
                features: crate::features::PlanFeatures::new(&tenancy),
                tenancy,
                outbox,
                keys,
                webhooks,
                config,
                stopping: AtomicBool::new(false),
            }),
        })
    }

    /// Delivers until `shutdown` completes; the pass under way then is finished first (its
    /// attempts are bounded by `timeout`).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        tokio::pin!(shutdown);
        let mut listener = tokio::select! {
            listener = self.listen() => listener,
            () = &mut shutdown => return,
        };
        let mut pruned: Option<Instant> = None;
        loop {
            let pass = self.shared.pass();
            tokio::pin!(pass);
            let (result, stop) = tokio::select! {
                result = &mut pass => (result, false),
                () = &mut shutdown => {
                    self.shared.stopping.store(true, Ordering::Relaxed);
                    (pass.await, true)
                }
            };
            if let Err(e) = result {
                tracing::error!(error = format!("{e:#}"), "failed to deliver alerts");
            }
            if stop {
                break;
            }
            if pruned.is_none_or(|at| at.elapsed() >= Duration::from_secs(3600)) {
                pruned = Some(Instant::now());
                if let Err(e) = wakeups::prune_emails(self.shared.tenancy.control_db()).await {
                    tracing::warn!(error = %e, "failed to prune the alert email records");
                }
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = self.wait(&mut listener) => {}
            }
        }
        tracing::info!("alert deliverer stopped");
    }

    /// One pass: visits every organization whose wakeup is due. Returns how many deliveries
    /// were made.
    pub async fn deliver_due(&self) -> anyhow::Result<usize> {
        self.shared.pass().await
    }

    /// Waits for a notification or the poll interval, whichever comes first.
    async fn wait(&self, listener: &mut Option<PgListener>) {
        let poll = self.shared.config.poll;
        if listener.is_none() {
            *listener = self.listen().await;
        }
        let Some(active) = listener.as_mut() else {
            tokio::time::sleep(poll).await;
            return;
        };
        match tokio::time::timeout(poll, active.recv()).await {
            Ok(Ok(_)) => while active.next_buffered().is_some() {},
            Err(_) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "lost the alert notifications; polling meanwhile");
                *listener = None;
                tokio::time::sleep(poll).await;
            }
        }
    }

    async fn listen(&self) -> Option<PgListener> {
        let listened = async {
            let mut listener = self.shared.tenancy.control_db().listener().await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        }
        .await;
        listened
            .inspect_err(
                |e| tracing::warn!(error = %e, "failed to listen for alert notifications; polling"),
            )
            .ok()
    }
}

impl Shared {
    async fn pass(self: &Arc<Self>) -> anyhow::Result<usize> {
        let control = self.tenancy.control_db();
        let mut delivered = 0;
        while !self.stopping.load(Ordering::Relaxed) {
            let orgs = wakeups::claim(
                control,
                self.id,
                self.config.organizations,
                self.config.lease,
            )
            .await
            .context("failed to claim alert wakeups")?;
            let claimed = orgs.len();
            let mut visits = JoinSet::new();
            for org_id in orgs {
                let shared = self.clone();
                visits.spawn(async move { (org_id, shared.visit(org_id).await) });
            }
            while let Some(joined) = visits.join_next().await {
                match joined {
                    Ok((_, Ok(made))) => delivered += made,
                    Ok((org_id, Err(e))) => tracing::warn!(
                        tenant_id = %org_id,
                        error = format!("{e:#}"),
                        "delivering an organization's alerts failed; it is tried again shortly"
                    ),
                    Err(e) => tracing::error!(error = %e, "an alert delivery task failed"),
                }
            }
            if (claimed as i64) < self.config.organizations {
                break;
            }
        }
        Ok(delivered)
    }

    /// Delivers what is due in organization `org_id`, then releases its wakeup.
    async fn visit(self: &Arc<Self>, org_id: Uuid) -> anyhow::Result<usize> {
        let control = self.tenancy.control_db();
        let ctx = match self.tenancy.resolve_id(TenantId::from(org_id)).await {
            Ok(ctx) => ctx,
            Err(TenancyError::NotFound(_)) => {
                wakeups::forget(control, org_id).await?;
                return Ok(0);
            }
            // Suspended or soft-deleted: its alerts are not sent, but kept with the wakeup, and
            // go out once it is active again (a hard delete removes both).
            Err(TenancyError::NotActive { .. }) => {
                wakeups::postpone(control, org_id, self.id, self.config.inactive_recheck).await?;
                return Ok(0);
            }
            Err(e) => {
                wakeups::postpone(control, org_id, self.id, RETRY_VISIT).await?;
                return Err(e.into());
            }
        };
        match self.deliver_in(&ctx).await {
            Ok((made, next)) => {
                wakeups::finish(control, org_id, self.id, next, self.config.note_grace).await?;
                Ok(made)
            }
            Err(e) => {
                wakeups::postpone(control, org_id, self.id, RETRY_VISIT).await?;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_ten_seconds_up_to_an_hour() {
        let retry = AlertRetry::default();
        assert_eq!(retry.delay(1), Duration::from_secs(10));
        assert_eq!(retry.delay(2), Duration::from_secs(20));
        assert_eq!(retry.delay(9), Duration::from_secs(2560));
        assert_eq!(retry.delay(10), Duration::from_secs(3600));
        assert_eq!(retry.delay(i32::MAX), Duration::from_secs(3600));
        assert!(retry.give_up_after >= Duration::from_secs(3600));
    }
}
