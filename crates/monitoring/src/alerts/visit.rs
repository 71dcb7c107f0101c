//! One visit of the [`super::Deliverer`] to an organization: its due deliveries claimed in
//! batches, each batch sent concurrently outside any transaction (webhooks POSTed, emails queued
//! once in the mail outbox), and each outcome recorded.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tenantry_mail::Email;
use tenantry_tenancy::{TenantCtx, TenantTx};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::channels::{self, Destination};
use super::deliverer::Shared;
use super::outbox::{self, Claimed};
use super::send::{email_text, webhook_body};

/// Batches one visit claims at most, so that one busy organization does not hold a pass.
const BATCHES_PER_VISIT: usize = 5;

/// How one attempt went.
struct Attempt {
    id: Uuid,
    channel_id: Uuid,
    attempts: i32,
    outcome: Result<(), String>,
}

impl Shared {
    /// Claims, sends and records batches of the tenant's due deliveries; returns how many were
    /// made and when the next pending one is due.
    pub(super) async fn deliver_in(
        self: &Arc<Self>,
        ctx: &TenantCtx,
    ) -> anyhow::Result<(usize, Option<DateTime<Utc>>)> {
        let mut made = 0;
        for _ in 0..BATCHES_PER_VISIT {
            if self.stopping.load(Ordering::Relaxed) {
                break;
            }
            let mut tx = ctx.begin().await?;
            let claimed = outbox::claim(&mut tx, self.id, self.config.batch, self.config.lease)
                .await
                .context("failed to claim due deliveries")?;
            let mut channel_ids: Vec<Uuid> = claimed.iter().map(|c| c.channel_id).collect();
            channel_ids.sort_unstable();
            channel_ids.dedup();
            let destinations = channels::destinations(&mut tx, &channel_ids).await?;
            tx.commit().await?;
            if claimed.is_empty() {
                break;
            }
            let full = claimed.len() as i64 >= self.config.batch;
            let attempts = self.send_all(ctx, claimed, destinations).await;
            let mut tx = ctx.begin().await?;
            for attempt in attempts {
                made += usize::from(self.record(&mut tx, ctx, attempt).await?);
            }
            tx.commit().await?;
            if !full {
                break;
            }
        }
        let mut tx = ctx.begin().await?;
        outbox::prune(&mut tx).await?;
        let next = outbox::next_due(&mut tx).await?;
        tx.commit().await?;
        Ok((made, next))
    }

    /// Sends the claimed deliveries concurrently.
    async fn send_all(
        self: &Arc<Self>,
        ctx: &TenantCtx,
        claimed: Vec<Claimed>,
        destinations: Vec<Destination>,
    ) -> Vec<Attempt> {
        let destinations: Vec<Arc<Destination>> = destinations.into_iter().map(Arc::new).collect();
        let mut sends = JoinSet::new();
        let mut sent = Vec::new();
        for delivery in claimed {
            let destination = destinations
                .iter()
                .find(|d| d.id == delivery.channel_id)
                .cloned();
            let shared = self.clone();
            let org_id = ctx.tenant_id().as_uuid();
            let slug = ctx.slug().to_string();
            let (id, channel_id, attempts) = (delivery.id, delivery.channel_id, delivery.attempts);
            sent.push((id, channel_id, attempts));
            sends.spawn(async move {
                let outcome = match destination {
                    Some(destination) => shared.send(org_id, &slug, &delivery, &destination).await,
                    None => Err("the alert channel no longer exists".to_string()),
                };
                Attempt {
                    id,
                    channel_id,
                    attempts,
                    outcome,
                }
            });
        }
        let mut done = Vec::new();
        while let Some(joined) = sends.join_next().await {
            match joined {
                Ok(attempt) => done.push(attempt),
                Err(e) => tracing::error!(error = %e, "an alert send task failed"),
            }
        }
        // A task that panicked counts as a failed attempt, so its delivery is tried again.
        for (id, channel_id, attempts) in sent {
            if !done.iter().any(|a| a.id == id) {
                done.push(Attempt {
                    id,
                    channel_id,
                    attempts,
                    outcome: Err("the attempt failed unexpectedly".to_string()),
                });
            }
        }
        done
    }

    /// One attempt of `delivery` to its channel.
    async fn send(
        &self,
        org_id: Uuid,
        slug: &str,
        delivery: &Claimed,
        destination: &Destination,
    ) -> Result<(), String> {
        // A channel whose kind the organization's plan no longer includes is kept, but sends
        // nothing (`webhook_alerts`, `email_alerts`).
        let feature = match destination.kind.as_str() {
            "email" => "email_alerts",
            _ => "webhook_alerts",
        };
        if !self
            .features
            .includes(org_id, feature)
            .await
            .map_err(|e| format!("{e:#}"))?
        {
            return Err(format!(
                "the organization's plan does not include {feature}: nothing sent"
            ));
        }
        match destination.kind.as_str() {
            "webhook" => {
                let url = destination
                    .url
                    .as_deref()
                    .ok_or("the webhook channel has no URL")?;
                let sealed = destination
                    .sealed()
                    .ok_or("the webhook channel has no secret")?;
                let secret = self
                    .keys
                    .open(destination.id, &sealed)
                    .map_err(|e| format!("{e:#}"))?;
                let body = webhook_body(&delivery.payload, org_id, slug);
                let t = Utc::now().timestamp();
                let targets = self.features.targets(org_id).await;
                self.webhooks
                    .post(url, targets, delivery.id, &secret, t, body)
                    .await
            }
            "email" => self
                .queue_email(org_id, slug, delivery, destination)
                .await
                .map_err(|e| format!("{e:#}")),
            other => Err(format!("unknown alert channel kind {other:?}")),
        }
    }

    /// Queues the email of `delivery` in the mail outbox, once: the delivery's id is recorded in
    /// `monitoring.alert_emails` in the same transaction, so an attempt made again after a crash
    /// (the email queued, the delivery not yet recorded as made) queues nothing more.
    async fn queue_email(
        &self,
        org_id: Uuid,
        slug: &str,
        delivery: &Claimed,
        destination: &Destination,
    ) -> anyhow::Result<()> {
        let to = destination
            .email
            .clone()
            .context("the email channel has no address")?;
        let (subject, text) = email_text(
            &delivery.payload,
            slug,
            &destination.name,
            &self.config.public_url,
        );
        let mut tx = self.tenancy.control_db().begin().await?;
        let email_id = self
            .outbox
            .enqueue(
                &mut tx,
                &Email {
                    to,
                    subject,
                    text,
                    tenant_id: Some(org_id),
                },
            )
            .await
            .context("failed to queue an alert email")?;
        let first = sqlx::query(
            "INSERT INTO monitoring.alert_emails (delivery_id, org_id, email_id)
             VALUES ($1, $2, $3) ON CONFLICT (delivery_id) DO NOTHING",
        )
        .bind(delivery.id)
        .bind(org_id)
        .bind(email_id)
        .execute(&mut *tx)
        .await
        .context("failed to record an alert email")?
        .rows_affected()
            == 1;
        if first {
            tx.commit().await?;
        } else {
            // Queued by an earlier attempt already.
            tx.rollback().await?;
        }
        Ok(())
    }

    /// Records how an attempt went; true when the delivery was made.
    async fn record(
        &self,
        tx: &mut TenantTx,
        ctx: &TenantCtx,
        attempt: Attempt,
    ) -> anyhow::Result<bool> {
        let tenant = ctx.tenant_id();
        match attempt.outcome {
            Ok(()) => {
                outbox::delivered(tx, attempt.id).await?;
                tracing::info!(
                    tenant_id = %tenant,
                    delivery_id = %attempt.id,
                    channel_id = %attempt.channel_id,
                    "alert delivered"
                );
                Ok(true)
            }
            Err(error) => {
                let attempts = attempt.attempts.saturating_add(1);
                let retry_in = self.config.retry.delay(attempts);
                let given_up = outbox::attempt_failed(
                    tx,
                    attempt.id,
                    self.id,
                    &error,
                    retry_in,
                    self.config.retry.give_up_after,
                )
                .await?;
                if given_up {
                    tracing::error!(
                        tenant_id = %tenant,
                        delivery_id = %attempt.id,
                        channel_id = %attempt.channel_id,
                        attempts,
                        %error,
                        "alert given up"
                    );
                } else {
                    tracing::warn!(
                        tenant_id = %tenant,
                        delivery_id = %attempt.id,
                        channel_id = %attempt.channel_id,
                        attempts,
                        retry_in_seconds = retry_in.as_secs_f64(),
                        %error,
                        "alert not delivered; it is tried again later"
                    );
                }
                Ok(false)
            }
        }
    }
}
