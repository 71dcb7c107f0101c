//! Passwords of the roles the engine creates. They are derived from a random key kept in the
//! control database (readable by the owner role only), so no password is ever stored and every
//! server instance computes the same ones.

use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Clone)]
pub struct RoleKey(Vec<u8>);

impl std::fmt::Debug for RoleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoleKey(<redacted>)")
    }
}

impl RoleKey {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn generate() -> Vec<u8> {
        use rand::RngCore;
        let mut bytes = vec![0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        bytes
    }

    /// The password of `role`.
    pub fn password_for(&self, role: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            unreachable!("HMAC accepts keys of any length")
        };
        mac.update(b"tenantry role password\0");
        mac.update(role.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

impl RoleKey {
    /// A key of its own for `purpose`, derived from this one.
    fn derive(&self, purpose: &str) -> [u8; 32] {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            unreachable!("HMAC accepts keys of any length")
        };
        mac.update(b"tenantry derived key\0");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Seals `text` (a server's URL with its password) for storage in the control database:
    /// the nonce, then the ChaCha20-Poly1305 ciphertext, bound to `context`.
    pub fn seal(&self, context: &str, text: &str) -> Vec<u8> {
        use chacha20poly1305::aead::{Aead, KeyInit, Payload};
        use chacha20poly1305::{ChaCha20Poly1305, Nonce};
        use rand::RngCore;
        let cipher = ChaCha20Poly1305::new(&self.derive("sealed secrets").into());
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let Ok(sealed) = cipher.encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: text.as_bytes(),
                aad: context.as_bytes(),
            },
        ) else {
            unreachable!("ChaCha20-Poly1305 seals any message that fits in memory")
        };
        [nonce.as_slice(), &sealed].concat()
    }

    /// Opens what [`RoleKey::seal`] sealed with the same `context`.
    pub fn open(&self, context: &str, sealed: &[u8]) -> anyhow::Result<String> {
        use chacha20poly1305::aead::{Aead, KeyInit, Payload};
        use chacha20poly1305::{ChaCha20Poly1305, Nonce};
        anyhow::ensure!(sealed.len() > 12, "the sealed value is truncated");
        let (nonce, ciphertext) = sealed.split_at(12);
        let cipher = ChaCha20Poly1305::new(&self.derive("sealed secrets").into());
        let text = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| {
                anyhow::anyhow!("the sealed value does not open with this installation's key")
            })?;
        Ok(String::from_utf8(text)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_differ_per_role_and_key() {
        let a = RoleKey::new(vec![1; 32]);
        let b = RoleKey::new(vec![2; 32]);
        assert_eq!(a.password_for("x"), a.password_for("x"));
        assert_ne!(a.password_for("x"), a.password_for("y"));
        assert_ne!(a.password_for("x"), b.password_for("x"));
        assert!(!format!("{a:?}").contains('1'));
    }

    #[test]
    fn sealed_values_open_with_their_key_and_context_only() {
        let a = RoleKey::new(vec![1; 32]);
        let sealed = a.seal("server:b", "postgres://u:secret@h/db");
        assert!(!String::from_utf8_lossy(&sealed).contains("secret"));
        assert_eq!(
            a.open("server:b", &sealed).unwrap(),
            "postgres://u:secret@h/db"
        );
        assert!(a.open("server:c", &sealed).is_err());
        assert!(RoleKey::new(vec![2; 32]).open("server:b", &sealed).is_err());
        assert_ne!(sealed, a.seal("server:b", "postgres://u:secret@h/db"));
    }
}
