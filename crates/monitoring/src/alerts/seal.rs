//! Webhook secrets at rest: sealed with the shared [`Keyring`] under keys of their own in
//! the control database's `monitoring.alert_keys`, the channel's id as associated data (a sealed
//! secret copied to another channel does not open).

use tenantry_base::seal::{KeyTable, Keyring};
use tenantry_tenancy::Operator;
use uuid::Uuid;

pub use tenantry_base::seal::Sealed;

const ALERT_KEYS: KeyTable = KeyTable {
    table: "monitoring.alert_keys",
    what: "alert secret key",
};

/// The keys webhook secrets are sealed with. Its `Debug` shows no key.
#[derive(Debug)]
pub struct SecretKeys(Keyring);

impl SecretKeys {
    /// Loads the keys from the control database with the owner role (the table is owner-only),
    /// creating the first one when there is none.
    pub async fn load_or_create(operator: &Operator) -> anyhow::Result<Self> {
        Ok(Self(Keyring::load_or_create(operator, ALERT_KEYS).await?))
    }

    /// Seals `secret` for channel `channel_id`.
    pub fn seal(&self, channel_id: Uuid, secret: &str) -> anyhow::Result<Sealed> {
        self.0.seal(channel_id, secret)
    }

    /// Opens the secret of channel `channel_id`.
    pub fn open(&self, channel_id: Uuid, sealed: &Sealed) -> anyhow::Result<String> {
        self.0.open(channel_id, sealed)
    }
}
