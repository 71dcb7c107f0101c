//! Password hashing with argon2id (OWASP parameters: 19 MiB, 2 passes, 1 lane, or stronger when
//! configured), on blocking threads, a bounded number at a time so a burst of logins cannot
//! starve the runtime. An unknown email is verified against a dummy hash, so it costs the same
//! work as a wrong password.

use std::sync::Arc;

use anyhow::Context;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// The weakest parameters accepted: m = 19456 KiB, t = 2, p = 1.
pub const MIN_MEMORY_KIB: u32 = 19_456;
pub const MIN_ITERATIONS: u32 = 2;

#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    slots: Arc<Semaphore>,
    dummy: Arc<String>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("m_cost", &self.params.m_cost())
            .field("t_cost", &self.params.t_cost())
            .finish()
    }
}

/// What verifying a password found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    No,
    Yes,
    /// Correct, but hashed with weaker parameters than configured: store a new hash.
    YesRehash,
}

impl PasswordHasher {
    /// `memory_kib` and `iterations` below the minimum are raised to it; `concurrency` bounds
    /// the hashes computed at once.
    pub fn new(memory_kib: u32, iterations: u32, concurrency: usize) -> anyhow::Result<Self> {
        let params = Params::new(
            memory_kib.max(MIN_MEMORY_KIB),
            iterations.max(MIN_ITERATIONS),
            1,
            None,
        )
        .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        let dummy = hash_with(
            &params,
            "not a password: equalises the cost of unknown emails",
        )?;
        Ok(Self {
            params,
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy: Arc::new(dummy),
        })
    }

    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        let params = self.params.clone();
        let password = password.to_string();
        self.blocking(move || hash_with(&params, &password)).await
    }

    /// Verifies `password` against `hash`, or against the dummy hash when there is none.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> anyhow::Result<Verified> {
        let params = self.params.clone();
        let known = hash.is_some();
        let hash = hash.map_or_else(|| self.dummy.as_str().to_string(), str::to_string);
        let password = password.to_string();
        let ok = self
            .blocking(move || {
                let parsed = PasswordHash::new(&hash)
                    .map_err(|e| anyhow::anyhow!("stored hash is unreadable: {e}"))?;
                let ok = Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok();
                let weaker = Params::try_from(&parsed)
                    .map(|p| p.m_cost() < params.m_cost() || p.t_cost() < params.t_cost())
                    .unwrap_or(true)
                    || parsed.algorithm.as_str() != "argon2id";
                anyhow::Ok((ok, weaker))
            })
            .await?;
        Ok(match (known, ok) {
            (true, (true, true)) => Verified::YesRehash,
            (true, (true, false)) => Verified::Yes,
            _ => Verified::No,
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let _slot = self
            .slots
            .acquire()
            .await
            .context("the password hasher is closed")?;
        tokio::task::spawn_blocking(work)
            .await
            .context("the password hashing task failed")?
    }
}

fn hash_with(params: &Params, password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("failed to hash a password: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hasher = PasswordHasher::new(MIN_MEMORY_KIB, 2, 2).unwrap();
        let hash = hasher.hash("correct horse").await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert_eq!(
            hasher.verify("correct horse", Some(&hash)).await.unwrap(),
            Verified::Yes
        );
        assert_eq!(
            hasher.verify("wrong", Some(&hash)).await.unwrap(),
            Verified::No
        );
        assert_eq!(
            hasher.verify("correct horse", None).await.unwrap(),
            Verified::No
        );
    }

    #[tokio::test]
    async fn weaker_hashes_are_flagged_for_rehash() {
        let old = PasswordHasher::new(MIN_MEMORY_KIB, 2, 1).unwrap();
        let hash = old.hash("pw-123456").await.unwrap();
        let stronger = PasswordHasher::new(MIN_MEMORY_KIB * 2, 3, 1).unwrap();
        assert_eq!(
            stronger.verify("pw-123456", Some(&hash)).await.unwrap(),
            Verified::YesRehash
        );
    }

    #[test]
    fn parameters_below_the_minimum_are_raised() {
        let hasher = PasswordHasher::new(1024, 1, 1).unwrap();
        assert_eq!(hasher.params.m_cost(), MIN_MEMORY_KIB);
        assert_eq!(hasher.params.t_cost(), MIN_ITERATIONS);
    }
}
