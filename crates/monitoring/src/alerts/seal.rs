//! Webhook secrets at rest: sealed with ChaCha20-Poly1305 under a key kept in the control
//! database's `monitoring.alert_keys`, a random nonce per seal, and the channel's id as
//! associated data (a sealed secret copied to another channel does not open). The same scheme as
//! the mail outbox's bodies (`tenantry_mail`'s `seal.rs`), with keys of its own. The first key is
//! made at first use; concurrent first uses end up with the same one.

use std::collections::BTreeMap;

use anyhow::Context;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use rand::RngCore;
use sqlx::PgPool;
use uuid::Uuid;

/// A sealed secret: the key that sealed it, the nonce, and the ciphertext with its tag.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: i16,
    pub nonce: Vec<u8>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Every key in `monitoring.alert_keys`; the newest seals, any opens. Cheap to share behind an
/// `Arc`; its `Debug` shows no key.
pub struct SecretKeys {
    keys: BTreeMap<i16, ChaCha20Poly1305>,
    current: i16,
}

impl std::fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKeys")
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl SecretKeys {
    /// Loads the keys from the control database (`control` is its runtime pool), creating the
    /// first one when there is none.
    pub async fn load_or_create(control: &PgPool) -> anyhow::Result<Self> {
        let mut rows = load(control).await?;
        if rows.is_empty() {
            let mut secret = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut secret);
            // A fixed id: two processes starting at once insert the same row, one of them wins.
            sqlx::query(
                "INSERT INTO monitoring.alert_keys (id, algorithm, secret)
                 VALUES (1, 'chacha20poly1305', $1)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(secret.as_slice())
            .execute(control)
            .await
            .context("failed to store the alert secret key")?;
            rows = load(control).await?;
        }
        let mut keys = BTreeMap::new();
        for (id, secret) in rows {
            let cipher = ChaCha20Poly1305::new_from_slice(&secret)
                .map_err(|_| anyhow::anyhow!("alert secret key {id} is not 32 bytes long"))?;
            keys.insert(id, cipher);
        }
        let current = *keys
            .keys()
            .next_back()
            .context("no alert secret key after creating one")?;
        Ok(Self { keys, current })
    }

    /// Seals `secret` for channel `channel_id`.
    pub fn seal(&self, channel_id: Uuid, secret: &str) -> anyhow::Result<Sealed> {
        let cipher = self
            .keys
            .get(&self.current)
            .context("the current alert secret key is missing")?;
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let body = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: channel_id.as_bytes(),
                },
            )
            .map_err(|_| anyhow::anyhow!("failed to seal a webhook secret"))?;
        Ok(Sealed {
            key_id: self.current,
            nonce: nonce.to_vec(),
            body,
        })
    }

    /// Opens the secret of channel `channel_id`.
    pub fn open(&self, channel_id: Uuid, sealed: &Sealed) -> anyhow::Result<String> {
        let cipher = self
            .keys
            .get(&sealed.key_id)
            .with_context(|| format!("alert secret key {} is missing", sealed.key_id))?;
        anyhow::ensure!(sealed.nonce.len() == 12, "the nonce is not 12 bytes long");
        let plain = cipher
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.body,
                    aad: channel_id.as_bytes(),
                },
            )
            .map_err(|_| {
                anyhow::anyhow!(
                    "the secret of alert channel {channel_id} does not open with its key"
                )
            })?;
        String::from_utf8(plain).context("an opened webhook secret is not UTF-8")
    }
}

async fn load(pool: &PgPool) -> anyhow::Result<Vec<(i16, Vec<u8>)>> {
    sqlx::query_as("SELECT id, secret FROM monitoring.alert_keys ORDER BY id")
        .fetch_all(pool)
        .await
        .context("failed to load the alert secret keys")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> SecretKeys {
        let mut keys = BTreeMap::new();
        keys.insert(1, ChaCha20Poly1305::new_from_slice(&[7u8; 32]).unwrap());
        SecretKeys { keys, current: 1 }
    }

    #[test]
    fn a_sealed_secret_opens_for_its_own_channel_only() {
        let ring = ring();
        let id = Uuid::now_v7();
        let sealed = ring.seal(id, "whsec_s3cret").unwrap();
        assert!(!sealed.body.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(ring.open(id, &sealed).unwrap(), "whsec_s3cret");
        assert!(ring.open(Uuid::now_v7(), &sealed).is_err());
        assert!(!format!("{sealed:?} {ring:?}").contains("s3cret"));
    }

    #[test]
    fn each_seal_uses_a_new_nonce() {
        let ring = ring();
        let id = Uuid::now_v7();
        let (a, b) = (ring.seal(id, "x").unwrap(), ring.seal(id, "x").unwrap());
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.body, b.body);
    }
}
