//! Alerts: alert channels (a webhook or an email address, for all of an organization's
//! monitors or a chosen few) and the delivery of incidents to them through an outbox.
//!
//! The path of an alert: [`crate::record_result`] opens or resolves an incident and, in the same
//! `TenantTx`, [`enqueue`]s one delivery per matching channel (`alert_deliveries`, in the
//! tenant's own storage); its caller [`note_pending`]s the organization in the control database
//! (`monitoring.alert_wakeups`) before committing. A [`Deliverer`] in every server instance
//! claims due wakeups, then the organization's due deliveries (`FOR UPDATE SKIP LOCKED` and a
//! lease), POSTs webhooks signed with the channel's secret (HMAC-SHA256, `Tenantry-Signature`),
//! queues emails in the mail outbox, and retries failures with exponential backoff. Webhook
//! secrets are stored sealed ([`SecretKeys`]) and never logged.

mod channels;
mod deliverer;
mod input;
mod outbox;
mod seal;
mod send;
mod visit;
mod wakeups;

pub use channels::{
    AlertChannel, AlertError, Saved, create_channel, delete_channel, get_channel, list_channels,
    update_channel,
};
pub use deliverer::{AlertRetry, Deliverer, DelivererConfig};
pub use input::{AlertChannelInput, MAX_CHANNEL_MONITORS, SECRET_PREFIX, WebhookSecret};
pub use outbox::{OPENED, RESOLVED, TEST, enqueue, enqueue_test};
pub use seal::SecretKeys;
pub use send::{DELIVERY_HEADER, SIGNATURE_HEADER, WEBHOOK_USER_AGENT, sign};
pub use wakeups::{note_pending, note_pending_in};
