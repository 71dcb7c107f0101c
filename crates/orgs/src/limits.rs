//! Plan limits, enforced without races: whatever adds to a counted set takes the organization's
//! lock ([`crate::members::lock_org`]) in the transaction that inserts, counts there, and inserts
//! only when there is room — so N parallel creates against room for K make exactly K.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::entitlements::{Feature, Limit};
use crate::error::OrgsError;
use crate::orgs::Orgs;

/// The organization's effective value of the limit `key` (its override, else its plan's):
/// `None` when unlimited.
pub(crate) async fn limit_of(
    conn: &mut PgConnection,
    org_id: Uuid,
    limit: Limit,
) -> Result<Option<i64>, OrgsError> {
    let key = limit.key();
    let value: Option<Option<i64>> = sqlx::query_scalar(
        "SELECT CASE jsonb_typeof(v) WHEN 'number' THEN v::text::bigint END
         FROM (SELECT CASE WHEN o.limits ? $2 THEN o.limits -> $2 ELSE p.limits -> $2 END AS v
               FROM control.tenants t
               LEFT JOIN orgs.plans p ON p.name = t.plan
               LEFT JOIN orgs.plan_overrides o ON o.org_id = t.id
               WHERE t.id = $1) effective",
    )
    .bind(org_id)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(value.flatten())
}

/// Refuses when adding `adding` to `used` would pass `limit`.
pub(crate) fn ensure_room(
    limit_key: Limit,
    limit: Option<i64>,
    used: i64,
    adding: i64,
) -> Result<(), OrgsError> {
    let key = limit_key.key();
    match limit {
        Some(limit) if used + adding > limit => Err(OrgsError::LimitExceeded {
            limit: key,
            detail: format!(
                "The plan allows {limit} ({key}) and {used} are in use: remove some, or ask for a larger plan."
            ),
        }),
        _ => Ok(()),
    }
}

/// Members plus pending invitations (`max_users` counts both), leaving out one invitation.
pub(crate) async fn users_in_use(
    conn: &mut PgConnection,
    org_id: Uuid,
    except_invitation: Option<Uuid>,
) -> Result<i64, OrgsError> {
    Ok(sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM orgs.memberships WHERE org_id = $1)
              + (SELECT count(*) FROM orgs.invitations
                 WHERE org_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL
                   AND expires_at > now() AND id IS DISTINCT FROM $2)",
    )
    .bind(org_id)
    .bind(except_invitation)
    .fetch_one(&mut *conn)
    .await?)
}

/// Checks that one more user (member or invitation) fits, under the organization's lock.
pub(crate) async fn ensure_user_room(
    conn: &mut PgConnection,
    org_id: Uuid,
    except_invitation: Option<Uuid>,
) -> Result<(), OrgsError> {
    let limit = limit_of(conn, org_id, Limit::MaxUsers).await?;
    let used = users_in_use(conn, org_id, except_invitation).await?;
    ensure_room(Limit::MaxUsers, limit, used, 1)
}

impl Orgs {
    /// The organization's effective value of the limit `key`: `None` when unlimited.
    /// Cached (see `crate::auth_cache`): read on every request for the rate limit.
    pub async fn limit(&self, org_id: Uuid, limit: Limit) -> Result<Option<i64>, OrgsError> {
        self.auth_caches()
            .limits
            .get_or_load(&(org_id, limit), |_| true, async {
                let mut conn = self.runtime().acquire().await?;
                limit_of(&mut conn, org_id, limit).await
            })
            .await
    }

    /// Whether the organization's plan (or its own override) turns `feature` on; a feature set
    /// nowhere is off. Cached (see `crate::auth_cache`).
    pub async fn feature(&self, org_id: Uuid, feature: Feature) -> Result<bool, OrgsError> {
        self.auth_caches()
            .features
            .get_or_load(&(org_id, feature), |_| true, async {
                let on: Option<Option<bool>> = sqlx::query_scalar(
                    "SELECT CASE WHEN o.features ? $2 THEN (o.features ->> $2)::boolean
                                 ELSE (p.features ->> $2)::boolean END
                     FROM control.tenants t
                     LEFT JOIN orgs.plans p ON p.name = t.plan
                     LEFT JOIN orgs.plan_overrides o ON o.org_id = t.id
                     WHERE t.id = $1",
                )
                .bind(org_id)
                .bind(feature.key())
                .fetch_optional(self.runtime())
                .await?;
                Ok(on.flatten().unwrap_or(false))
            })
            .await
    }

    /// Refuses with `feature_unavailable` unless the organization has `feature`.
    pub async fn require_feature(&self, org_id: Uuid, feature: Feature) -> Result<(), OrgsError> {
        if self.feature(org_id, feature).await? {
            Ok(())
        } else {
            Err(OrgsError::FeatureUnavailable(feature))
        }
    }

    /// Refuses with `limit_exceeded` when `used + adding` passes the limit `key` (for sets the
    /// caller counts under its own lock, such as a tenant's monitors).
    pub fn ensure_room(
        key: Limit,
        limit: Option<i64>,
        used: i64,
        adding: i64,
    ) -> Result<(), OrgsError> {
        ensure_room(key, limit, used, adding)
    }
}
