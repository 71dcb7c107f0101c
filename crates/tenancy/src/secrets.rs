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
}
