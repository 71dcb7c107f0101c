//! The background sender. Each pass claims due emails in a transaction
//! (`FOR UPDATE SKIP LOCKED`, so several server instances never claim the same one), delivers
//! each, and records the outcome before committing: sent (body erased), kept in the dev mailbox,
//! retried later with exponential backoff, or given up. It wakes on the outbox's notification
//! (sent when an enqueuing transaction commits) and polls as a fallback.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::PgListener;
use uuid::Uuid;

use crate::config::{MailConfig, RetryPolicy};
use crate::delivery::{Delivery, Failure};
use crate::outbox::{CHANNEL, Outbox};
use tenantry_base::seal::Sealed;

/// Sends what the outbox holds.
#[derive(Debug)]
pub struct Sender {
    outbox: Outbox,
    delivery: Delivery,
    retry: RetryPolicy,
    batch: i64,
    poll: Duration,
}

impl Sender {
    /// A sender for `outbox`. A malformed `smtp_url` or `from` is an error saying what to fix.
    pub fn new(outbox: Outbox, config: &MailConfig) -> anyhow::Result<Sender> {
        Ok(Sender {
            outbox,
            delivery: Delivery::new(config)?,
            retry: RetryPolicy::default(),
            batch: 10,
            poll: Duration::from_secs(5),
        })
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// How often the outbox is looked at when no notification arrives (default 5 s).
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll.max(Duration::from_millis(10));
        self
    }

    /// How many emails one transaction claims (default 10). Should the process die between an
    /// SMTP server accepting an email and the commit, those of the batch already sent are sent
    /// again, with the same `Message-ID`.
    pub fn with_batch_size(mut self, batch: i64) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Sends due emails until `shutdown` completes; an email being sent then is finished first.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        tokio::pin!(shutdown);
        if self.delivery.is_dev_mailbox() {
            tracing::info!(
                "TENANTRY_SMTP_URL is not set: emails are kept in the dev mailbox, read them with `tenantry mail list`"
            );
        }
        let stopping = AtomicBool::new(false);
        // Listening before the first pass: an email committed after that pass wakes the sender.
        let mut listener = tokio::select! {
            listener = self.listen() => listener,
            () = &mut shutdown => return,
        };
        loop {
            let pass = self.send_pending(&stopping);
            tokio::pin!(pass);
            let (result, stop) = tokio::select! {
                result = &mut pass => (result, false),
                () = &mut shutdown => {
                    stopping.store(true, Ordering::Relaxed);
                    (pass.await, true)
                }
            };
            if let Err(e) = result {
                tracing::error!(error = format!("{e:#}"), "failed to send queued emails");
            }
            if stop {
                break;
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = self.wait(&mut listener) => {}
            }
        }
        tracing::info!("email sender stopped");
    }

    /// One pass: sends every email due now. Returns how many were delivered (to the SMTP server
    /// or the dev mailbox).
    pub async fn send_due(&self) -> anyhow::Result<usize> {
        self.send_pending(&AtomicBool::new(false)).await
    }

    async fn send_pending(&self, stopping: &AtomicBool) -> anyhow::Result<usize> {
        let mut delivered = 0;
        while !stopping.load(Ordering::Relaxed) {
            let (claimed, sent) = self.send_batch(stopping).await?;
            delivered += sent;
            if claimed < self.batch as usize {
                break;
            }
        }
        Ok(delivered)
    }

    /// Claims up to a batch of due emails, delivers them and records each outcome, in one
    /// transaction. Returns how many were claimed and how many delivered.
    async fn send_batch(&self, stopping: &AtomicBool) -> anyhow::Result<(usize, usize)> {
        let mut tx = self
            .outbox
            .pool
            .begin()
            .await
            .context("failed to begin claiming emails")?;
        let rows: Vec<Claimed> = sqlx::query_as(
            "SELECT id, recipient, subject, key_id, nonce, body, attempts FROM mail.outbox
             WHERE status = 'queued' AND next_attempt_at <= now()
             ORDER BY next_attempt_at, id
             LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(self.batch)
        .fetch_all(&mut *tx)
        .await
        .context("failed to claim due emails")?;
        let claimed = rows.len();
        let mut delivered = 0;
        for row in rows {
            if stopping.load(Ordering::Relaxed) {
                break;
            }
            if self.deliver(&mut tx, row).await? {
                delivered += 1;
            }
        }
        tx.commit().await.context("failed to record sent emails")?;
        Ok((claimed, delivered))
    }

    /// Delivers one claimed email and records the outcome; true when it was delivered.
    async fn deliver(&self, conn: &mut sqlx::PgConnection, row: Claimed) -> anyhow::Result<bool> {
        let attempts = row.attempts + 1;
        let text = match self.outbox.keys.open(row.id, &row.sealed()) {
            Ok(text) => text,
            Err(e) => {
                self.give_up(conn, &row, attempts, &format!("{e:#}"))
                    .await?;
                return Ok(false);
            }
        };
        let result = self
            .delivery
            .send(row.id, &row.recipient, &row.subject, text)
            .await;
        match result {
            Ok(true) => {
                sqlx::query(
                    "UPDATE mail.outbox SET status = 'sent', sent_at = now(), attempts = $2,
                            last_error = NULL, key_id = NULL, nonce = NULL, body = NULL
                     WHERE id = $1",
                )
                .bind(row.id)
                .bind(attempts)
                .execute(&mut *conn)
                .await
                .context("failed to mark an email sent")?;
                tracing::info!(id = %row.id, to = %row.recipient, "email sent");
            }
            Ok(false) => {
                sqlx::query(
                    "UPDATE mail.outbox SET status = 'dev_mailbox', sent_at = now(),
                            attempts = $2, last_error = NULL
                     WHERE id = $1",
                )
                .bind(row.id)
                .bind(attempts)
                .execute(&mut *conn)
                .await
                .context("failed to mark an email kept in the dev mailbox")?;
                tracing::info!(
                    id = %row.id,
                    to = %row.recipient,
                    subject = %row.subject,
                    "email kept in the dev mailbox (no TENANTRY_SMTP_URL): read it with `tenantry mail list`"
                );
            }
            Err(Failure::Permanent(error)) => {
                self.give_up(conn, &row, attempts, &error).await?;
                return Ok(false);
            }
            Err(Failure::Transient(error)) if attempts >= self.retry.max_attempts => {
                self.give_up(conn, &row, attempts, &error).await?;
                return Ok(false);
            }
            Err(Failure::Transient(error)) => {
                let delay = self.retry.delay(attempts);
                sqlx::query(
                    "UPDATE mail.outbox SET attempts = $2, last_error = $3,
                            next_attempt_at = now() + make_interval(secs => $4)
                     WHERE id = $1",
                )
                .bind(row.id)
                .bind(attempts)
                .bind(truncate(&error))
                .bind(delay.as_secs_f64())
                .execute(&mut *conn)
                .await
                .context("failed to schedule an email's next attempt")?;
                tracing::warn!(
                    id = %row.id,
                    to = %row.recipient,
                    attempts,
                    retry_in_seconds = delay.as_secs(),
                    %error,
                    "email not sent; it is tried again later"
                );
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn give_up(
        &self,
        conn: &mut sqlx::PgConnection,
        row: &Claimed,
        attempts: i32,
        error: &str,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE mail.outbox SET status = 'failed', attempts = $2, last_error = $3
             WHERE id = $1",
        )
        .bind(row.id)
        .bind(attempts)
        .bind(truncate(error))
        .execute(&mut *conn)
        .await
        .context("failed to mark an email failed")?;
        tracing::error!(
            id = %row.id,
            to = %row.recipient,
            attempts,
            %error,
            "email given up"
        );
        Ok(())
    }

    /// Waits for a notification from the outbox or the poll interval, whichever comes first.
    async fn wait(&self, listener: &mut Option<PgListener>) {
        if listener.is_none() {
            *listener = self.listen().await;
        }
        let Some(active) = listener.as_mut() else {
            tokio::time::sleep(self.poll).await;
            return;
        };
        match tokio::time::timeout(self.poll, active.recv()).await {
            Ok(Ok(_)) => {
                // Notifications that arrived meanwhile are covered by the coming pass.
                while active.next_buffered().is_some() {}
            }
            Err(_) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "lost the outbox notifications; polling meanwhile");
                *listener = None;
                tokio::time::sleep(self.poll).await;
            }
        }
    }

    async fn listen(&self) -> Option<PgListener> {
        let listened = async {
            let mut listener = self.outbox.pool.listener().await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        }
        .await;
        listened
            .inspect_err(|e| {
                tracing::warn!(error = %e, "failed to listen for outbox notifications; polling")
            })
            .ok()
    }
}

/// An email claimed for sending.
#[derive(sqlx::FromRow)]
struct Claimed {
    id: Uuid,
    recipient: String,
    subject: String,
    key_id: Option<i16>,
    nonce: Option<Vec<u8>>,
    body: Option<Vec<u8>>,
    attempts: i32,
}

impl Claimed {
    fn sealed(&self) -> Sealed {
        // A queued row always has its body (a CHECK of the table); empty parts fail to open.
        Sealed {
            key_id: self.key_id.unwrap_or_default(),
            nonce: self.nonce.clone().unwrap_or_default(),
            body: self.body.clone().unwrap_or_default(),
        }
    }
}

/// Errors are kept short in the table.
fn truncate(error: &str) -> String {
    error.chars().take(1000).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_ten_seconds_up_to_an_hour_for_about_a_day() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(1), Duration::from_secs(10));
        assert_eq!(policy.delay(2), Duration::from_secs(20));
        assert_eq!(policy.delay(9), Duration::from_secs(2560));
        assert_eq!(policy.delay(10), Duration::from_secs(3600));
        assert_eq!(policy.delay(1000), Duration::from_secs(3600));
        let total: Duration = (1..policy.max_attempts).map(|a| policy.delay(a)).sum();
        assert!(
            (Duration::from_secs(20 * 3600)..Duration::from_secs(30 * 3600)).contains(&total),
            "{total:?}"
        );
    }

    #[test]
    fn the_smtp_url_is_redacted() {
        let config = MailConfig {
            smtp_url: Some("smtps://u:hunter2@h".into()),
            ..MailConfig::default()
        };
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
