//! Plans and an organization's entitlements: its plan's limits and feature flags, overridden key
//! by key by the organization's own values. A limit of `null` means unlimited.

use serde::Serialize;
use serde_json::{Map, Value};
use tenantry_tenancy::TenantRecord;
use uuid::Uuid;

use crate::entitlements::{Feature, Limit};
use crate::error::OrgsError;
use crate::orgs::Orgs;

/// Every limit a plan sets, by key.
pub const LIMIT_KEYS: [&str; 7] = [
    Limit::MaxUsers.key(),
    Limit::MaxMonitors.key(),
    Limit::MaxAgents.key(),
    Limit::MaxApiKeys.key(),
    Limit::MinCheckIntervalS.key(),
    Limit::ApiRequestsPerMinute.key(),
    Limit::RetentionDays.key(),
];

/// A plan as stored.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Plan {
    pub name: String,
    #[sqlx(json)]
    pub limits: Map<String, Value>,
    #[sqlx(json)]
    pub features: Map<String, Value>,
}

/// What an organization may do: its plan, the effective limits and features, and its own
/// overrides.
#[derive(Debug, Clone, Serialize)]
pub struct Entitlements {
    pub plan: String,
    pub limits: Map<String, Value>,
    pub features: Map<String, Value>,
    pub overrides: Overrides,
}

#[derive(Debug, Clone, Default, Serialize, sqlx::FromRow)]
pub struct Overrides {
    #[sqlx(json)]
    pub limits: Map<String, Value>,
    #[sqlx(json)]
    pub features: Map<String, Value>,
}

impl Entitlements {
    /// A limit's value: `None` when unlimited.
    pub fn limit(&self, key: &str) -> Option<i64> {
        self.limits.get(key).and_then(Value::as_i64)
    }
}

/// A change of plan and overrides; absent parts stay as they are, and the given limits and
/// features merge into the existing overrides key by key.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntitlementChange {
    pub plan: Option<String>,
    pub limits: Option<Map<String, Value>>,
    pub features: Option<Map<String, Value>>,
}

impl EntitlementChange {
    fn check(&self) -> Result<(), OrgsError> {
        for (key, value) in self.limits.iter().flatten() {
            if !LIMIT_KEYS.contains(&key.as_str()) {
                return Err(OrgsError::Invalid {
                    field: "limits",
                    detail: format!("{key:?} is not a limit: {}", LIMIT_KEYS.join(", ")),
                });
            }
            let ok = value.is_null() || value.as_i64().is_some_and(|n| n >= 0);
            if !ok {
                return Err(OrgsError::Invalid {
                    field: "limits",
                    detail: format!("{key} must be a whole number ≥ 0, or null for unlimited"),
                });
            }
        }
        for (key, value) in self.features.iter().flatten() {
            if Feature::parse(key).is_none() || !value.is_boolean() {
                let known: Vec<&str> = Feature::ALL.iter().map(|f| f.key()).collect();
                return Err(OrgsError::Invalid {
                    field: "features",
                    detail: format!(
                        "{key:?}: a feature is one of {} with true or false",
                        known.join(", ")
                    ),
                });
            }
        }
        Ok(())
    }
}

/// An organization with what its plan allows, as `GET /organizations/{id}` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct OrgDetails {
    #[serde(flatten)]
    pub summary: crate::OrgSummary,
    /// The effective limits (`null`: unlimited).
    pub limits: Map<String, Value>,
    pub features: Map<String, Value>,
}

impl Orgs {
    /// The organization as its member with `role` sees it, limits included.
    pub async fn details(
        &self,
        record: &TenantRecord,
        role: crate::Role,
    ) -> Result<OrgDetails, OrgsError> {
        let entitlements = self.entitlements(record).await?;
        Ok(OrgDetails {
            summary: Orgs::summary(record, role),
            limits: entitlements.limits,
            features: entitlements.features,
        })
    }

    /// Every plan, cheapest first.
    pub async fn plans(&self) -> Result<Vec<Plan>, OrgsError> {
        Ok(
            sqlx::query_as("SELECT name, limits, features FROM orgs.plans ORDER BY position")
                .fetch_all(self.runtime())
                .await?,
        )
    }

    /// The plan called `name`, read on `executor`.
    async fn plan<'e>(
        executor: impl sqlx::PgExecutor<'e>,
        name: &str,
    ) -> Result<Option<Plan>, OrgsError> {
        Ok(
            sqlx::query_as("SELECT name, limits, features FROM orgs.plans WHERE name = $1")
                .bind(name)
                .fetch_optional(executor)
                .await?,
        )
    }

    /// The organization's effective limits and features.
    pub async fn entitlements(&self, record: &TenantRecord) -> Result<Entitlements, OrgsError> {
        let mut conn = self.runtime().acquire().await?;
        self.entitlements_in(&mut conn, record).await
    }

    /// [`Orgs::entitlements`] read on `conn` (inside a transaction, it sees that transaction's
    /// overrides).
    async fn entitlements_in(
        &self,
        conn: &mut sqlx::PgConnection,
        record: &TenantRecord,
    ) -> Result<Entitlements, OrgsError> {
        // On `conn`: the caller holds it, and a second connection of the pool may not come.
        let plan = Self::plan(&mut *conn, &record.plan)
            .await?
            .unwrap_or_else(|| Plan {
                // A plan removed from the table leaves its tenants with no limits of its own.
                name: record.plan.clone(),
                limits: Map::new(),
                features: Map::new(),
            });
        let overrides: Overrides =
            sqlx::query_as("SELECT limits, features FROM orgs.plan_overrides WHERE org_id = $1")
                .bind(record.id.as_uuid())
                .fetch_optional(&mut *conn)
                .await?
                .unwrap_or_default();
        let mut limits = plan.limits;
        limits.extend(overrides.limits.clone());
        let mut features = plan.features;
        features.extend(overrides.features.clone());
        Ok(Entitlements {
            plan: record.plan.clone(),
            limits,
            features,
            overrides,
        })
    }

    /// Changes the organization's plan and merges overrides (platform admins).
    pub async fn change_entitlements(
        &self,
        org_id: Uuid,
        change: &EntitlementChange,
        audit: &tenantry_audit::AuditContext,
    ) -> Result<(TenantRecord, Entitlements), OrgsError> {
        change.check()?;
        if let Some(plan) = &change.plan
            && Self::plan(self.runtime(), plan).await?.is_none()
        {
            let names: Vec<String> = self.plans().await?.into_iter().map(|p| p.name).collect();
            return Err(OrgsError::Invalid {
                field: "plan",
                detail: format!("{plan:?} is not a plan: {}", names.join(", ")),
            });
        }
        let key = org_id.to_string();
        let mut record = self.tenancy().find(&key).await?;
        let before = self.entitlements(&record).await?;
        // The overrides, the plan and the audit entry commit together, in the registry's
        // transaction.
        let mut tx = self.tenancy().begin_registry().await?;
        let limits = Value::Object(change.limits.clone().unwrap_or_default());
        let features = Value::Object(change.features.clone().unwrap_or_default());
        sqlx::query(
            "INSERT INTO orgs.plan_overrides (org_id, limits, features) VALUES ($1, $2, $3)
             ON CONFLICT (org_id) DO UPDATE SET
                 limits = plan_overrides.limits || excluded.limits,
                 features = plan_overrides.features || excluded.features,
                 updated_at = now()",
        )
        .bind(org_id)
        .bind(&limits)
        .bind(&features)
        .execute(&mut *tx)
        .await?;
        if let Some(plan) = &change.plan
            && *plan != record.plan
        {
            record = self.tenancy().set_plan_in(&mut tx, &key, plan).await?;
        }
        let entitlements = self.entitlements_in(&mut tx, &record).await?;
        let summary = |e: &Entitlements| serde_json::json!({"plan": e.plan, "limits": e.overrides.limits, "features": e.overrides.features});
        let audited = tenantry_audit::Change {
            action: tenantry_audit::AuditAction::PlanChanged,
            target_kind: "organization",
            target_id: Some(org_id.to_string()),
            before: Some(summary(&before)),
            after: Some(summary(&entitlements)),
        };
        tenantry_audit::record(&mut tx, Some(org_id), audit, &audited).await?;
        tx.commit().await?;
        self.changed();
        Ok((record, entitlements))
    }
}
