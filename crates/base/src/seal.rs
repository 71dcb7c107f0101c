//! Text at rest: sealed with ChaCha20-Poly1305 under a key kept in a table of the control
//! database ([`KeyTable`], named by each user: the email outbox's `mail.keys`, the webhook
//! secrets' `monitoring.alert_keys`), a random nonce per seal, and the row's id as associated
//! data (a sealed text moved to another row does not open). The first key is made at first use;
//! concurrent first uses end up with the same one.

use std::collections::BTreeMap;

use anyhow::Context;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use rand::RngCore;
use tenantry_tenancy::Operator;
use uuid::Uuid;

/// Where a keyring's keys live (a table with `id smallint`, `algorithm text` and `secret
/// bytea`), and what its errors call them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTable {
    pub table: &'static str,
    pub what: &'static str,
}

/// A sealed text: the key that sealed it, the nonce, and the ciphertext with its tag. Its
/// `Debug` shows only the key.
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

/// Every key of one [`KeyTable`]; the newest seals, any opens. Its `Debug` shows no key.
pub struct Keyring {
    keys: BTreeMap<i16, ChaCha20Poly1305>,
    current: i16,
    what: &'static str,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("what", &self.what)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// Loads the keys of `table`, creating the first one when there is none: with the owner
    /// role, since key tables are owner-only (the runtime role cannot read them).
    pub async fn load_or_create(operator: &Operator, table: KeyTable) -> anyhow::Result<Self> {
        let pool = operator.control();
        let what = table.what;
        let mut rows = load(pool, table).await?;
        if rows.is_empty() {
            let mut secret = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut secret);
            // A fixed id: two processes starting at once insert the same row, one of them wins.
            sqlx::query(&format!(
                "INSERT INTO {} (id, algorithm, secret) VALUES (1, 'chacha20poly1305', $1)
                 ON CONFLICT (id) DO NOTHING",
                table.table
            ))
            .bind(secret.as_slice())
            .execute(pool)
            .await
            .with_context(|| format!("failed to store the {what}"))?;
            rows = load(pool, table).await?;
        }
        let mut keys = BTreeMap::new();
        for (id, secret) in rows {
            let cipher = ChaCha20Poly1305::new_from_slice(&secret)
                .map_err(|_| anyhow::anyhow!("{what} {id} is not 32 bytes long"))?;
            keys.insert(id, cipher);
        }
        let current = *keys
            .keys()
            .next_back()
            .with_context(|| format!("no {what} after creating one"))?;
        Ok(Self {
            keys,
            current,
            what,
        })
    }

    /// Seals `text` for the row `id`.
    pub fn seal(&self, id: Uuid, text: &str) -> anyhow::Result<Sealed> {
        let cipher = self
            .keys
            .get(&self.current)
            .with_context(|| format!("the current {} is missing", self.what))?;
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let body = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: text.as_bytes(),
                    aad: id.as_bytes(),
                },
            )
            .map_err(|_| anyhow::anyhow!("failed to seal under {} {}", self.what, self.current))?;
        Ok(Sealed {
            key_id: self.current,
            nonce: nonce.to_vec(),
            body,
        })
    }

    /// Opens the text sealed for the row `id`.
    pub fn open(&self, id: Uuid, sealed: &Sealed) -> anyhow::Result<String> {
        let what = self.what;
        let cipher = self
            .keys
            .get(&sealed.key_id)
            .with_context(|| format!("{what} {} is missing", sealed.key_id))?;
        anyhow::ensure!(sealed.nonce.len() == 12, "the nonce is not 12 bytes long");
        let plain = cipher
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.body,
                    aad: id.as_bytes(),
                },
            )
            .map_err(|_| {
                anyhow::anyhow!(
                    "the text sealed for {id} does not open with {what} {}",
                    sealed.key_id
                )
            })?;
        String::from_utf8(plain)
            .with_context(|| format!("a text opened with a {what} is not UTF-8"))
    }
}

async fn load(pool: &sqlx::PgPool, table: KeyTable) -> anyhow::Result<Vec<(i16, Vec<u8>)>> {
    sqlx::query_as(&format!(
        "SELECT id, secret FROM {} ORDER BY id",
        table.table
    ))
    .fetch_all(pool)
    .await
    .with_context(|| format!("failed to load the {}s", table.what))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Keyring {
        let mut keys = BTreeMap::new();
        keys.insert(1, ChaCha20Poly1305::new_from_slice(&[7u8; 32]).unwrap());
        Keyring {
            keys,
            current: 1,
            what: "test key",
        }
    }

    #[test]
    fn a_sealed_text_opens_for_its_own_row_only() {
        let ring = ring();
        let id = Uuid::now_v7();
        let sealed = ring.seal(id, "token: s3cret").unwrap();
        assert!(!sealed.body.windows(b"s3cret".len()).any(|w| w == b"s3cret"));
        assert_eq!(ring.open(id, &sealed).unwrap(), "token: s3cret");
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
