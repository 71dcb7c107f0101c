//! What every authenticated request reads, cached in process and invalidated at once through
//! the engine's [`Caches`] (see `tenantry_tenancy::cache`): API keys by the hash of their
//! secret, each member's role, and each organization's effective limits.

use std::sync::Arc;
use std::time::Instant;

use tenantry_tenancy::{Cache, Caches};
use uuid::Uuid;

use crate::api_keys::KeyIdentity;
use crate::entitlements::{Feature, Limit};
use crate::roles::Role;

/// A key found by its hash, and when this process last recorded its use.
#[derive(Debug, Clone)]
pub(crate) struct CachedKey {
    pub identity: KeyIdentity,
    /// Its creator, whose role caps the key's.
    pub created_by: Option<Uuid>,
    pub recorded_use: Instant,
}

#[derive(Debug, Clone)]
pub(crate) struct AuthCaches {
    /// By the SHA-256 of the secret; unknown secrets are not remembered.
    pub keys: Arc<Cache<Vec<u8>, Option<CachedKey>>>,
    /// By (organization, user); a non-member is remembered as `None`.
    pub roles: Arc<Cache<(Uuid, Uuid), Option<Role>>>,
    /// By (organization, limit); `None` is unlimited.
    pub limits: Arc<Cache<(Uuid, Limit), Option<i64>>>,
    /// By (organization, feature).
    pub features: Arc<Cache<(Uuid, Feature), bool>>,
}

impl AuthCaches {
    pub fn new(caches: &Arc<Caches>) -> Self {
        Self {
            keys: Cache::new(caches, |_, key: &Option<CachedKey>, topic, id| {
                let Some(key) = key else { return true };
                match topic {
                    "key" => key.identity.key_id.to_string() == id,
                    // The creator's role caps the key's.
                    "member" => key
                        .created_by
                        .is_some_and(|c| id == format!("{}:{c}", key.identity.org_id)),
                    "tenant" => key.identity.org_id.to_string() == id,
                    _ => false,
                }
            }),
            roles: Cache::new(caches, |(org, user), _, topic, id| match topic {
                "member" => id == format!("{org}:{user}"),
                "tenant" => id == org.to_string(),
                _ => false,
            }),
            limits: Cache::new(caches, |(org, _), _, topic, id| match topic {
                "tenant" => id == org.to_string(),
                "plan" => true,
                _ => false,
            }),
            features: Cache::new(caches, |(org, _), _, topic, id| match topic {
                "tenant" => id == org.to_string(),
                "plan" => true,
                _ => false,
            }),
        }
    }
}
