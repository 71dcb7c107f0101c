//! API keys: `tnt_`-prefixed secrets of one organization, shown once and stored only as their
//! SHA-256. A key carries a role and acts in its organization only; revoking it takes effect on
//! the next request. A key may have a rate limit of its own (`requests_per_minute`), applied on
//! top of its organization's.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use tenantry_audit::{AuditContext, Change};

use std::time::Instant;

use crate::auth_cache::CachedKey;
use crate::error::OrgsError;
use crate::orgs::Orgs;
use crate::roles::{Action, Role};

pub const KEY_PREFIX: &str = "tnt_";

/// A key as lists show it: never the secret.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// The key's own budget, requests per minute, on top of its organization's (`None`: only
    /// the organization's applies).
    pub requests_per_minute: Option<i32>,
}

/// A key just made, with its secret (returned once).
#[derive(Debug, Clone, Serialize)]
pub struct NewKey {
    #[serde(flatten)]
    pub key: ApiKey,
    pub secret: String,
}

/// Who a presented key is.
#[derive(Debug, Clone, Copy)]
pub struct KeyIdentity {
    pub key_id: Uuid,
    pub org_id: Uuid,
    pub role: Role,
    /// The key's own budget (requests per minute), if it has one.
    pub requests_per_minute: Option<i32>,
}

/// What a new key is made with.
#[derive(Debug, Clone)]
pub struct KeySpec<'a> {
    pub name: &'a str,
    pub role: Role,
    /// The key's own budget, requests per minute (at least 1); `None`: only the organization's.
    pub requests_per_minute: Option<i64>,
}

const COLUMNS: &str =
    "id, name, prefix, role, created_by, created_at, last_used_at, requests_per_minute";

/// The largest budget a key may have (requests per minute), so it fits the column.
pub const MAX_KEY_REQUESTS_PER_MINUTE: i64 = i32::MAX as i64;

/// A key's budget, checked: at least 1 request per minute, at most [`MAX_KEY_REQUESTS_PER_MINUTE`].
fn key_budget(requests_per_minute: Option<i64>) -> Result<Option<i32>, OrgsError> {
    requests_per_minute
        .map(|n| {
            i32::try_from(n)
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| OrgsError::Invalid {
                    field: "requests_per_minute",
                    detail: format!(
                        "a whole number of requests per minute from 1 to {MAX_KEY_REQUESTS_PER_MINUTE}, or null for the organization's budget only"
                    ),
                })
        })
        .transpose()
}

/// A key as authentication reads it: id, organization, role, own budget, creator, and the
/// creator's current role (`None` once they are no member).
type KeyRow = (
    Uuid,
    Uuid,
    String,
    Option<i32>,
    Option<Uuid>,
    Option<String>,
);

/// How precisely `last_used_at` follows a key's use.
const KEY_USE_PRECISION: std::time::Duration = std::time::Duration::from_secs(60);

fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

impl Orgs {
    /// Makes a key; `actor` is the caller's role, and a key never outranks its maker.
    pub async fn create_key(
        &self,
        actor: Role,
        org_id: Uuid,
        created_by: Uuid,
        spec: &KeySpec<'_>,
        audit: &AuditContext,
    ) -> Result<NewKey, OrgsError> {
        let KeySpec { name, role, .. } = *spec;
        actor.require(Action::Administer)?;
        if role > actor {
            return Err(OrgsError::Forbidden(format!(
                "Your role ({actor}) cannot make a key with the role {role}."
            )));
        }
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(OrgsError::Invalid {
                field: "name",
                detail: "1 to 200 characters".to_string(),
            });
        }
        let requests_per_minute = key_budget(spec.requests_per_minute)?;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let secret = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
        let mut tx = self.runtime().begin().await?;
        crate::members::lock_org(&mut tx, org_id).await?;
        let limit = crate::limits::limit_of(&mut tx, org_id, crate::Limit::MaxApiKeys).await?;
        let used: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM orgs.api_keys WHERE org_id = $1 AND revoked_at IS NULL",
        )
        .bind(org_id)
        .fetch_one(&mut *tx)
        .await?;
        crate::limits::ensure_room(crate::Limit::MaxApiKeys, limit, used, 1)?;
        let key: ApiKey = sqlx::query_as(&format!(
            "INSERT INTO orgs.api_keys
                 (id, org_id, name, prefix, key_hash, role, created_by, requests_per_minute)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
        ))
        .bind(Uuid::now_v7())
        .bind(org_id)
        .bind(name)
        .bind(&secret[..KEY_PREFIX.len() + 6])
        .bind(digest(&secret))
        .bind(role.as_str())
        .bind(created_by)
        .bind(requests_per_minute)
        .fetch_one(&mut *tx)
        .await?;
        let change = key_change(tenantry_audit::AuditAction::ApiKeyCreated, &key);
        tenantry_audit::record(&mut tx, Some(org_id), audit, &change).await?;
        tx.commit().await?;
        self.changed();
        Ok(NewKey { key, secret })
    }

    /// The organization's keys that are not revoked.
    pub async fn keys(&self, org_id: Uuid) -> Result<Vec<ApiKey>, OrgsError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM orgs.api_keys WHERE org_id = $1 AND revoked_at IS NULL ORDER BY created_at"
        ))
        .bind(org_id)
        .fetch_all(self.runtime())
        .await?)
    }

    /// Revokes a key of the organization; another organization's key is `NotFound`.
    pub async fn revoke_key(
        &self,
        actor: Role,
        org_id: Uuid,
        key_id: Uuid,
        audit: &AuditContext,
    ) -> Result<(), OrgsError> {
        actor.require(Action::Administer)?;
        let mut tx = self.runtime().begin().await?;
        let revoked: Option<ApiKey> = sqlx::query_as(&format!(
            "UPDATE orgs.api_keys SET revoked_at = now()
             WHERE id = $1 AND org_id = $2 AND revoked_at IS NULL RETURNING {COLUMNS}"
        ))
        .bind(key_id)
        .bind(org_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(revoked) = revoked else {
            return Err(OrgsError::NotFound);
        };
        let change = key_change(tenantry_audit::AuditAction::ApiKeyRevoked, &revoked);
        tenantry_audit::record(&mut tx, Some(org_id), audit, &change).await?;
        tx.commit().await?;
        self.changed();
        Ok(())
    }

    /// Revokes, in the caller's transaction, the keys `user_id` created in the organization, each
    /// recorded in the audit log as revoked because its creator lost the right to make keys
    /// (`reason`: `member_removed`, `member_demoted`).
    pub(crate) async fn revoke_keys_of(
        tx: &mut PgConnection,
        org_id: Uuid,
        user_id: Uuid,
        reason: &str,
        audit: &AuditContext,
    ) -> Result<usize, OrgsError> {
        let revoked: Vec<ApiKey> = sqlx::query_as(&format!(
            "UPDATE orgs.api_keys SET revoked_at = now()
             WHERE org_id = $1 AND created_by = $2 AND revoked_at IS NULL RETURNING {COLUMNS}"
        ))
        .bind(org_id)
        .bind(user_id)
        .fetch_all(&mut *tx)
        .await?;
        for key in &revoked {
            let mut change = key_change(tenantry_audit::AuditAction::ApiKeyRevoked, key);
            if let Some(after) = change.after.as_mut().and_then(|a| a.as_object_mut()) {
                after.insert("reason".into(), serde_json::json!(reason));
            }
            tenantry_audit::record(&mut *tx, Some(org_id), audit, &change).await?;
        }
        Ok(revoked.len())
    }

    /// The key behind `secret`, if it exists and is not revoked; records its use (at most once a
    /// minute, so busy keys do not write on every request).
    pub async fn authenticate_key(&self, secret: &str) -> Result<Option<KeyIdentity>, OrgsError> {
        if !secret.starts_with(KEY_PREFIX) {
            return Ok(None);
        }
        let hash = digest(secret);
        let cache = &self.auth_caches().keys;
        let found = cache
            .get_or_load(&hash, Option::is_some, async {
                // A key acts with its own role, never above its creator's current one; a key
                // whose creator is no longer a member acts no more.
                let found: Option<KeyRow> = sqlx::query_as(
                    "SELECT k.id, k.org_id, k.role, k.requests_per_minute, k.created_by, m.role
                         FROM orgs.api_keys k
                         LEFT JOIN orgs.memberships m
                           ON m.org_id = k.org_id AND m.user_id = k.created_by
                         WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
                )
                .bind(&hash)
                .fetch_optional(self.runtime())
                .await?;
                let Some((key_id, org_id, role, requests_per_minute, created_by, creator_role)) =
                    found
                else {
                    return Ok::<_, OrgsError>(None);
                };
                let parse = |r: String| {
                    r.parse::<Role>()
                        .map_err(|e: String| OrgsError::Unexpected(anyhow::anyhow!(e)))
                };
                let mut role = parse(role)?;
                match (created_by, creator_role) {
                    (Some(_), Some(creator)) => role = role.min(parse(creator)?),
                    (Some(_), None) => return Ok(None),
                    (None, _) => {}
                }
                self.record_key_use(key_id);
                Ok(Some(CachedKey {
                    identity: KeyIdentity {
                        key_id,
                        org_id,
                        role,
                        requests_per_minute,
                    },
                    created_by,
                    recorded_use: Instant::now(),
                }))
            })
            .await?;
        let Some(found) = found else {
            return Ok(None);
        };
        // `last_used_at` is kept to the minute, written off the request's path.
        if found.recorded_use.elapsed() >= KEY_USE_PRECISION {
            cache.touch(&hash, |k| {
                if let Some(k) = k {
                    k.recorded_use = Instant::now();
                }
            });
            self.record_key_use(found.identity.key_id);
        }
        Ok(Some(found.identity))
    }

    /// Records that key `key_id` was used now, in the background (at most once a minute per key
    /// and process).
    fn record_key_use(&self, key_id: Uuid) {
        let pool = self.runtime().clone();
        tokio::spawn(async move {
            let recorded = sqlx::query(
                "UPDATE orgs.api_keys SET last_used_at = now()
                 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
            )
            .bind(key_id)
            .execute(&pool)
            .await;
            if let Err(error) = recorded {
                tracing::debug!(%key_id, %error, "could not record an API key's use");
            }
        });
    }
}

/// A key as the audit trail records it: never its secret.
fn key_change(action: tenantry_audit::AuditAction, key: &ApiKey) -> Change {
    Change {
        action,
        target_kind: "api_key",
        target_id: Some(key.id.to_string()),
        before: None,
        after: Some(serde_json::json!({
            "name": key.name,
            "prefix": key.prefix,
            "role": key.role,
            "requests_per_minute": key.requests_per_minute,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_budget_is_at_least_one_request_per_minute() {
        assert_eq!(key_budget(None).unwrap(), None);
        assert_eq!(key_budget(Some(1)).unwrap(), Some(1));
        assert_eq!(
            key_budget(Some(MAX_KEY_REQUESTS_PER_MINUTE)).unwrap(),
            Some(i32::MAX)
        );
        for bad in [0, -1, MAX_KEY_REQUESTS_PER_MINUTE + 1, i64::MIN] {
            match key_budget(Some(bad)) {
                Err(OrgsError::Invalid { field, .. }) => assert_eq!(field, "requests_per_minute"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
