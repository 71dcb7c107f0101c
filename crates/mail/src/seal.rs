//! Bodies at rest: sealed with ChaCha20-Poly1305 under a key kept in `mail.keys`, a random nonce
//! per email, and the email's id as associated data (a sealed body moved to another row does
//! not open). The first key is made at first start; concurrent starts end up with the same one.

use std::collections::BTreeMap;

use anyhow::Context;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use rand::RngCore;
use sqlx::PgPool;
use uuid::Uuid;

/// A sealed body: the key that sealed it, the nonce, and the ciphertext with its tag.
pub(crate) struct Sealed {
    pub key_id: i16,
    pub nonce: Vec<u8>,
    pub body: Vec<u8>,
}

/// Every key in `mail.keys`; the newest seals, any opens.
pub(crate) struct Keyring {
    keys: BTreeMap<i16, ChaCha20Poly1305>,
    current: i16,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// Loads the keys, creating the first one when there is none.
    pub async fn load_or_create(pool: &PgPool) -> anyhow::Result<Self> {
        let mut rows = load(pool).await?;
        if rows.is_empty() {
            let mut secret = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut secret);
            // A fixed id: two processes starting at once insert the same row, one of them wins.
            sqlx::query(
                "INSERT INTO mail.keys (id, algorithm, secret) VALUES (1, 'chacha20poly1305', $1)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(secret.as_slice())
            .execute(pool)
            .await
            .context("failed to store the mail key")?;
            rows = load(pool).await?;
        }
        let mut keys = BTreeMap::new();
        for (id, secret) in rows {
            let cipher = ChaCha20Poly1305::new_from_slice(&secret)
                .map_err(|_| anyhow::anyhow!("mail key {id} is not 32 bytes long"))?;
            keys.insert(id, cipher);
        }
        let current = *keys
            .keys()
            .next_back()
            .context("no mail key after creating one")?;
        Ok(Self { keys, current })
    }

    pub fn seal(&self, id: Uuid, text: &str) -> anyhow::Result<Sealed> {
        let cipher = self
            .keys
            .get(&self.current)
            .context("the current mail key is missing")?;
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
            .map_err(|_| anyhow::anyhow!("failed to seal an email body"))?;
        Ok(Sealed {
            key_id: self.current,
            nonce: nonce.to_vec(),
            body,
        })
    }

    pub fn open(&self, id: Uuid, sealed: &Sealed) -> anyhow::Result<String> {
        let cipher = self
            .keys
            .get(&sealed.key_id)
            .with_context(|| format!("mail key {} is missing", sealed.key_id))?;
        anyhow::ensure!(sealed.nonce.len() == 12, "the nonce is not 12 bytes long");
        let plain = cipher
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.body,
                    aad: id.as_bytes(),
                },
            )
            .map_err(|_| anyhow::anyhow!("the body of email {id} does not open with its key"))?;
        String::from_utf8(plain).context("an opened email body is not UTF-8")
    }
}

async fn load(pool: &PgPool) -> anyhow::Result<Vec<(i16, Vec<u8>)>> {
    sqlx::query_as("SELECT id, secret FROM mail.keys ORDER BY id")
        .fetch_all(pool)
        .await
        .context("failed to load the mail keys")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Keyring {
        let mut keys = BTreeMap::new();
        keys.insert(1, ChaCha20Poly1305::new_from_slice(&[7u8; 32]).unwrap());
        Keyring { keys, current: 1 }
    }

    #[test]
    fn a_sealed_body_opens_for_its_own_row_only() {
        let ring = ring();
        let id = Uuid::now_v7();
        let sealed = ring.seal(id, "token: s3cret").unwrap();
        assert!(!sealed.body.windows(b"s3cret".len()).any(|w| w == b"s3cret"));
        assert_eq!(ring.open(id, &sealed).unwrap(), "token: s3cret");
        assert!(ring.open(Uuid::now_v7(), &sealed).is_err());
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
