//! The outbox table: emails queued inside the caller's transaction (sent only if it commits),
//! and read back for `tenantry mail list`.

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use tenantry_tenancy::{ControlDb, Operator, Tenancy};
use uuid::Uuid;

use tenantry_base::seal::{KeyTable, Keyring, Sealed};

/// The email bodies' keys.
const MAIL_KEYS: KeyTable = KeyTable {
    table: "mail.keys",
    what: "mail key",
};

/// The channel `enqueue` notifies on commit; the sender listens on it.
pub(crate) const CHANNEL: &str = "tenantry_mail";

/// An email to send: plain text, to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    /// The plain-text body. It may carry secrets (invitation tokens): it is stored sealed and
    /// never logged.
    pub text: String,
    /// The organization the email is about, if any; its hard delete removes the email.
    pub tenant_id: Option<Uuid>,
}

/// Where an email stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MailStatus {
    /// Waiting for its first or next attempt.
    Queued,
    /// Accepted by the SMTP server; the body has been erased.
    Sent,
    /// Kept in the dev mailbox (no SMTP server configured); read it with `tenantry mail list`.
    DevMailbox,
    /// Given up: rejected for good, or too many failed attempts (see `last_error`).
    Failed,
}

impl MailStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MailStatus::Queued => "queued",
            MailStatus::Sent => "sent",
            MailStatus::DevMailbox => "dev_mailbox",
            MailStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "queued" => MailStatus::Queued,
            "sent" => MailStatus::Sent,
            "dev_mailbox" => MailStatus::DevMailbox,
            "failed" => MailStatus::Failed,
            other => anyhow::bail!("unknown email status {other:?}"),
        })
    }
}

impl std::fmt::Display for MailStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An email as the outbox holds it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredEmail {
    pub id: Uuid,
    pub to: String,
    pub subject: String,
    /// The body, opened; `None` once an SMTP server accepted the email (it is erased then).
    pub text: Option<String>,
    pub status: MailStatus,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub tenant_id: Option<Uuid>,
}

/// The outbox. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Outbox {
    pub(crate) pool: ControlDb,
    pub(crate) keys: Arc<Keyring>,
}

impl Outbox {
    /// Opens the outbox on the runtime pool of the control database, loading the key that seals
    /// bodies (or creating it at first start) with `keys`, the owner role's handle that the
    /// program's start-up hands over.
    pub async fn open(tenancy: &Tenancy, keys: &Operator) -> anyhow::Result<Outbox> {
        let keys = Keyring::load_or_create(keys, MAIL_KEYS).await?;
        Ok(Outbox {
            pool: tenancy.control_db().clone(),
            keys: Arc::new(keys),
        })
    }

    /// Queues `email` inside the caller's transaction; it is sent only if that transaction
    /// commits (the sender is notified at the commit).
    pub async fn enqueue(
        &self,
        conn: &mut PgConnection,
        email: &Email,
    ) -> Result<Uuid, sqlx::Error> {
        let id = Uuid::now_v7();
        let sealed = self
            .keys
            .seal(id, &email.text)
            .map_err(|e| sqlx::Error::Encode(e.into()))?;
        sqlx::query(
            "INSERT INTO mail.outbox (id, org_id, recipient, subject, key_id, nonce, body)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(email.tenant_id)
        .bind(&email.to)
        .bind(&email.subject)
        .bind(sealed.key_id)
        .bind(&sealed.nonce)
        .bind(&sealed.body)
        .execute(&mut *conn)
        .await?;
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(&mut *conn)
            .await?;
        Ok(id)
    }

    /// The newest `limit` emails, newest first, with their bodies opened where still present.
    pub async fn list(&self, limit: i64) -> anyhow::Result<Vec<StoredEmail>> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, org_id, recipient, subject, key_id, nonce, body, status, attempts,
                    created_at, sent_at, last_error
             FROM mail.outbox ORDER BY created_at DESC, id DESC LIMIT $1",
        )
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await
        .context("failed to list the outbox")?;
        rows.into_iter()
            .map(|row| {
                let text = row.sealed().and_then(|sealed| {
                    self.keys
                        .open(row.id, &sealed)
                        .inspect_err(|e| tracing::warn!(id = %row.id, error = %e, "an email body does not open"))
                        .ok()
                });
                Ok(StoredEmail {
                    id: row.id,
                    to: row.recipient,
                    subject: row.subject,
                    text,
                    status: MailStatus::parse(&row.status)?,
                    attempts: row.attempts,
                    created_at: row.created_at,
                    sent_at: row.sent_at,
                    last_error: row.last_error,
                    tenant_id: row.org_id,
                })
            })
            .collect()
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    org_id: Option<Uuid>,
    recipient: String,
    subject: String,
    key_id: Option<i16>,
    nonce: Option<Vec<u8>>,
    body: Option<Vec<u8>>,
    status: String,
    attempts: i32,
    created_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
}

impl Row {
    fn sealed(&self) -> Option<Sealed> {
        Some(Sealed {
            key_id: self.key_id?,
            nonce: self.nonce.clone()?,
            body: self.body.clone()?,
        })
    }
}
