//! The plan features monitoring obeys at run time: `webhook_alerts` and `email_alerts` (a
//! channel of a kind the plan no longer includes sends nothing) and `private_targets` (checks and
//! webhooks of an organization allowed private targets are not held to the SSRF guard). Read
//! from the plans and overrides the organization crate keeps in the control database, cached in
//! process and forgotten on the same invalidations as the organization crate's own cache.

use std::sync::Arc;

use tenantry_tenancy::{Cache, Tenancy};
use uuid::Uuid;

use crate::checks::Targets;

/// The cached reader of plan features.
#[derive(Clone)]
pub(crate) struct PlanFeatures {
    tenancy: Tenancy,
    cache: Arc<Cache<(Uuid, &'static str), bool>>,
}

impl PlanFeatures {
    pub(crate) fn new(tenancy: &Tenancy) -> Self {
        let cache = Cache::new(
            tenancy.caches(),
            |(org, _): &(Uuid, &str), _, topic, id| match topic {
                "tenant" => id == org.to_string(),
                "plan" => true,
                _ => false,
            },
        );
        Self {
            tenancy: tenancy.clone(),
            cache,
        }
    }

    /// Whether the organization's plan, or its own override, turns `feature` on (off when set
    /// nowhere). A deployment without plans (the monitoring crate used alone) limits nothing, and
    /// allows no private targets unless the whole server does.
    pub(crate) async fn includes(&self, org_id: Uuid, feature: &'static str) -> sqlx::Result<bool> {
        let load = async {
            let has_plans: bool =
                sqlx::query_scalar("SELECT to_regclass('orgs.plans') IS NOT NULL")
                    .fetch_one(self.tenancy.control_db())
                    .await?;
            if !has_plans {
                return Ok(feature != "private_targets");
            }
            let on: Option<Option<bool>> = sqlx::query_scalar(
                "SELECT CASE WHEN o.features ? $2 THEN (o.features ->> $2)::boolean
                             ELSE (p.features ->> $2)::boolean END
                 FROM control.tenants t
                 LEFT JOIN orgs.plans p ON p.name = t.plan
                 LEFT JOIN orgs.plan_overrides o ON o.org_id = t.id
                 WHERE t.id = $1",
            )
            .bind(org_id)
            .bind(feature)
            .fetch_optional(self.tenancy.control_db())
            .await?;
            Ok(on.flatten().unwrap_or(false))
        };
        self.cache
            .get_or_load(&(org_id, feature), |_| true, load)
            .await
    }

    /// What the organization's checks and webhooks may reach. A failed read holds them to the
    /// guard.
    pub(crate) async fn targets(&self, org_id: Uuid) -> Targets {
        match self.includes(org_id, "private_targets").await {
            Ok(true) => Targets::Any,
            Ok(false) => Targets::Public,
            Err(e) => {
                tracing::warn!(%org_id, error = %e, "cannot read the private_targets feature; the SSRF guard applies");
                Targets::Public
            }
        }
    }
}
