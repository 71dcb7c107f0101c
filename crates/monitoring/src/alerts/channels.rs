//! Alert channels: where an organization's incidents are announced — a webhook (signed JSON
//! POSTed to a URL) or an email address — for all its monitors or a chosen few. Every query runs
//! inside a `TenantTx`. A webhook's secret is sealed before it is stored ([`SecretKeys`]); reads
//! show only its hint.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tenantry_tenancy::TenantTx;
use uuid::Uuid;

use super::input::{AlertChannelInput, Kind, WebhookSecret, invalid};
use super::seal::{Sealed, SecretKeys};
use crate::monitors::Invalid;
use crate::results::After;

/// Something went wrong with a channel.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The input is not a valid channel; the field at fault and why.
    #[error("{}: {}", .0.field, .0.detail)]
    Invalid(Invalid),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AlertError {
    fn from(e: sqlx::Error) -> Self {
        AlertError::Unexpected(e.into())
    }
}

/// An alert channel as stored and shown: `secret` is the webhook secret's hint.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AlertChannel {
    pub id: Uuid,
    pub name: String,
    #[schema(examples("webhook", "email"))]
    pub kind: String,
    /// Webhooks: where alerts are POSTed (to viewers and members only its scheme, host and
    /// port, such as `https://hooks.example.com/…`); `null` for email channels.
    #[schema(example = "https://hooks.example.com/…")]
    pub url: Option<String>,
    /// Webhooks: the signing secret. In full only in the response that set it (create, or an
    /// update that gave or generated a new one); elsewhere a hint of its end, such as
    /// `whsec_…Ab3x`. `null` for email channels.
    #[schema(example = "whsec_…Ab3x")]
    pub secret: Option<String>,
    /// Email channels: where alerts are sent; `null` for webhooks.
    pub email: Option<String>,
    /// The monitors whose incidents the channel announces (empty with `all_monitors`: all).
    pub monitor_ids: Vec<Uuid>,
    /// Whether the channel announces every monitor's incidents (it was saved with no
    /// `monitor_ids`). A channel whose listed monitors were all deleted announces none.
    pub all_monitors: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "c.id, c.name, c.kind, c.url, c.secret_hint AS secret, c.email, \
    array(SELECT m.monitor_id FROM alert_channel_monitors m \
          WHERE m.tenant_id = c.tenant_id AND m.channel_id = c.id \
          ORDER BY m.monitor_id) AS monitor_ids, \
    c.all_monitors, c.created_at, c.updated_at";

/// A channel just saved, and its secret when this save set a new one (to be shown this once).
#[derive(Debug, Clone)]
pub struct Saved {
    pub channel: AlertChannel,
    pub new_secret: Option<WebhookSecret>,
}

impl AlertChannel {
    /// The channel as someone below admin sees it: a webhook's URL cut to its scheme, host and
    /// port (`https://hooks.example.com/…`), since its path and query often carry a token.
    pub fn with_url_masked(mut self) -> Self {
        if let Some(url) = &self.url {
            self.url = Some(mask_url(url));
        }
        self
    }
}

/// `scheme://host[:port]/…`, or `…` for what does not parse.
fn mask_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => match (parsed.host_str(), parsed.port()) {
            (Some(host), Some(port)) => format!("{}://{host}:{port}/…", parsed.scheme()),
            (Some(host), None) => format!("{}://{host}/…", parsed.scheme()),
            (None, _) => "…".to_string(),
        },
        Err(_) => "…".to_string(),
    }
}

impl Saved {
    /// The channel as the response to this save shows it: with the new secret in full.
    pub fn shown(self) -> AlertChannel {
        let mut channel = self.channel;
        if let Some(secret) = self.new_secret {
            channel.secret = Some(secret.expose().to_string());
        }
        channel
    }
}

/// Refuses monitor ids that are not monitors of this tenant (another tenant's are unknown here).
async fn check_monitors(tx: &mut TenantTx, ids: &[Uuid]) -> Result<(), AlertError> {
    if ids.is_empty() {
        return Ok(());
    }
    let known: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM monitors WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(&mut **tx)
        .await?;
    match ids.iter().find(|id| !known.contains(id)) {
        None => Ok(()),
        Some(unknown) => Err(AlertError::Invalid(invalid(
            "monitor_ids",
            format!("{unknown} is not a monitor of this organization"),
        ))),
    }
}

async fn link_monitors(tx: &mut TenantTx, channel_id: Uuid, ids: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO alert_channel_monitors (tenant_id, channel_id, monitor_id)
         SELECT $1, $2, unnest($3::uuid[])",
    )
    .bind(tx.tenant_id().as_uuid())
    .bind(channel_id)
    .bind(ids)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Creates a channel. A webhook without a secret gets a generated one, returned in
/// [`Saved::new_secret`] as is any secret the input gave.
pub async fn create_channel(
    tx: &mut TenantTx,
    keys: &SecretKeys,
    input: &AlertChannelInput,
) -> Result<Saved, AlertError> {
    let valid = input.valid().map_err(AlertError::Invalid)?;
    check_monitors(tx, &valid.monitor_ids).await?;
    let id = Uuid::now_v7();
    let secret = match valid.kind {
        Kind::Webhook => Some(valid.secret.clone().unwrap_or_else(WebhookSecret::generate)),
        Kind::Email => None,
    };
    let sealed = secret
        .as_ref()
        .map(|s| keys.seal(id, s.expose()))
        .transpose()?;
    sqlx::query(
        "INSERT INTO alert_channels (tenant_id, id, name, kind, url, email, secret_key_id,
             secret_nonce, secret_sealed, secret_hint, all_monitors)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(tx.tenant_id().as_uuid())
    .bind(id)
    .bind(&valid.name)
    .bind(&input.kind)
    .bind(&valid.url)
    .bind(&valid.email)
    .bind(sealed.as_ref().map(|s| s.key_id))
    .bind(sealed.as_ref().map(|s| s.nonce.clone()))
    .bind(sealed.as_ref().map(|s| s.body.clone()))
    .bind(secret.as_ref().map(WebhookSecret::hint))
    .bind(valid.monitor_ids.is_empty())
    .execute(&mut **tx)
    .await?;
    link_monitors(tx, id, &valid.monitor_ids).await?;
    let channel = get_channel(tx, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("alert channel {id} vanished in its own transaction"))?;
    Ok(Saved {
        channel,
        new_secret: secret,
    })
}

/// Replaces channel `id` (`None` when there is no such channel). A webhook keeps its secret
/// unless the input gives one; a channel that becomes a webhook without one gets a generated
/// one. Either is returned in [`Saved::new_secret`].
pub async fn update_channel(
    tx: &mut TenantTx,
    keys: &SecretKeys,
    id: Uuid,
    input: &AlertChannelInput,
) -> Result<Option<Saved>, AlertError> {
    let valid = input.valid().map_err(AlertError::Invalid)?;
    let has_secret: Option<bool> = sqlx::query_scalar(
        "SELECT secret_sealed IS NOT NULL FROM alert_channels WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(has_secret) = has_secret else {
        return Ok(None);
    };
    check_monitors(tx, &valid.monitor_ids).await?;
    let new_secret = match (valid.kind, valid.secret.clone(), has_secret) {
        (Kind::Webhook, Some(given), _) => Some(given),
        (Kind::Webhook, None, true) => None,
        (Kind::Webhook, None, false) => Some(WebhookSecret::generate()),
        (Kind::Email, _, _) => None,
    };
    let sealed = new_secret
        .as_ref()
        .map(|s| keys.seal(id, s.expose()))
        .transpose()?;
    sqlx::query(
        "UPDATE alert_channels SET name = $2, kind = $3, url = $4, email = $5,
             secret_key_id = CASE WHEN $3 = 'email' THEN NULL ELSE coalesce($6, secret_key_id) END,
             secret_nonce = CASE WHEN $3 = 'email' THEN NULL ELSE coalesce($7, secret_nonce) END,
             secret_sealed = CASE WHEN $3 = 'email' THEN NULL ELSE coalesce($8, secret_sealed) END,
             secret_hint = CASE WHEN $3 = 'email' THEN NULL ELSE coalesce($9, secret_hint) END,
             all_monitors = $10, updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(&valid.name)
    .bind(&input.kind)
    .bind(&valid.url)
    .bind(&valid.email)
    .bind(sealed.as_ref().map(|s| s.key_id))
    .bind(sealed.as_ref().map(|s| s.nonce.clone()))
    .bind(sealed.as_ref().map(|s| s.body.clone()))
    .bind(new_secret.as_ref().map(WebhookSecret::hint))
    .bind(valid.monitor_ids.is_empty())
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM alert_channel_monitors WHERE channel_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    link_monitors(tx, id, &valid.monitor_ids).await?;
    let channel = get_channel(tx, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("alert channel {id} vanished in its own transaction"))?;
    Ok(Some(Saved {
        channel,
        new_secret,
    }))
}

pub async fn get_channel(tx: &mut TenantTx, id: Uuid) -> sqlx::Result<Option<AlertChannel>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM alert_channels c WHERE c.id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

/// Up to `limit` channels in creation order, after `cursor`.
pub async fn list_channels(
    tx: &mut TenantTx,
    limit: i64,
    cursor: Option<After>,
) -> sqlx::Result<Vec<AlertChannel>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM alert_channels c
         WHERE ($1::timestamptz IS NULL OR (c.created_at, c.id) > ($1, $2))
         ORDER BY c.created_at, c.id LIMIT $3"
    ))
    .bind(cursor.map(|c| c.at))
    .bind(cursor.map(|c| c.id))
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}

/// Deletes channel `id` (and its deliveries not made yet); false when there is none.
pub async fn delete_channel(tx: &mut TenantTx, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM alert_channels WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// What a deliverer needs of a channel: where to send, and the sealed secret.
#[derive(sqlx::FromRow)]
pub(crate) struct Destination {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub url: Option<String>,
    pub email: Option<String>,
    secret_key_id: Option<i16>,
    secret_nonce: Option<Vec<u8>>,
    secret_sealed: Option<Vec<u8>>,
}

impl Destination {
    pub fn sealed(&self) -> Option<Sealed> {
        Some(Sealed {
            key_id: self.secret_key_id?,
            nonce: self.secret_nonce.clone()?,
            body: self.secret_sealed.clone()?,
        })
    }
}

/// The destinations of channels `ids`.
pub(crate) async fn destinations(
    tx: &mut TenantTx,
    ids: &[Uuid],
) -> sqlx::Result<Vec<Destination>> {
    sqlx::query_as(
        "SELECT id, name, kind, url, email, secret_key_id, secret_nonce, secret_sealed
         FROM alert_channels WHERE id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(&mut **tx)
    .await
}
