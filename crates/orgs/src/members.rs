//! Creating organizations (a tenant plus its first owner), membership lookups, a user's
//! organizations, and their profiles.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tenantry_audit::{AuditContext, Change};
use tenantry_tenancy::{Isolation, NewTenant, Slug, TenancyError, TenantRecord, TenantStatus};
use uuid::Uuid;

use crate::error::OrgsError;
use crate::orgs::Orgs;
use crate::roles::Role;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Membership {
    pub org_id: Uuid,
    pub user_id: Uuid,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub joined_at: DateTime<Utc>,
}

/// An organization as its members see it.
#[derive(Debug, Clone, Serialize)]
pub struct OrgSummary {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub plan: String,
    pub isolation: Isolation,
    pub status: TenantStatus,
    /// The caller's role in it.
    pub role: Role,
    pub logo_url: Option<String>,
    pub billing_email: Option<String>,
    /// The organization's own settings, as it stored them.
    pub settings: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A change to an organization's profile; absent fields stay as they are.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileChange {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub logo_url: Option<String>,
    pub billing_email: Option<String>,
    pub settings: Option<serde_json::Value>,
}

impl OrgSummary {
    fn new(record: &TenantRecord, role: Role) -> Self {
        Self {
            id: record.id.as_uuid(),
            slug: record.slug.clone(),
            name: record.name.clone(),
            plan: record.plan.clone(),
            isolation: record.isolation,
            status: record.status,
            role,
            logo_url: text_setting(record, "logo_url"),
            billing_email: text_setting(record, "billing_email"),
            settings: record
                .settings
                .get("settings")
                .cloned()
                .unwrap_or_else(|| serde_json::json!({})),
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

fn text_setting(record: &TenantRecord, key: &str) -> Option<String> {
    record
        .settings
        .get(key)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

impl Orgs {
    /// Creates an organization with `owner` as its owner. Without a slug, one is derived from the
    /// name (with a numeric suffix when taken).
    pub async fn create(
        &self,
        owner: Uuid,
        name: &str,
        slug: Option<&str>,
        isolation: Isolation,
        audit: &AuditContext,
    ) -> Result<OrgSummary, OrgsError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(OrgsError::Invalid {
                field: "name",
                detail: "1 to 200 characters".to_string(),
            });
        }
        let slug = slug
            .map(Slug::parse)
            .transpose()
            .map_err(|e| OrgsError::Invalid {
                field: "slug",
                detail: e.to_string(),
            })?;
        // One creation at a time per user, so the cap holds under concurrency.
        let mut tx = self.runtime().begin().await?;
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtextextended('tenantry:user:' || $1::text, 0))",
        )
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if let Some(cap) = self.organization_cap {
            let owned: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM orgs.memberships m JOIN control.tenants t ON t.id = m.org_id
                 WHERE m.user_id = $1 AND m.role = 'owner' AND t.status <> 'deleted'",
            )
            .bind(owner)
            .fetch_one(&mut *tx)
            .await?;
            if owned >= cap {
                return Err(OrgsError::LimitExceeded {
                    limit: "max_organizations_per_user",
                    detail: format!(
                        "You own {owned} organizations, the most this server allows: delete one, or ask a platform admin."
                    ),
                });
            }
        }
        let record = match slug {
            Some(slug) => self.create_tenant(name, slug, isolation).await?,
            None => self.create_with_derived_slug(name, isolation).await?,
        };
        let inserted = async {
            sqlx::query(
                "INSERT INTO orgs.memberships (org_id, user_id, role) VALUES ($1, $2, 'owner')",
            )
            .bind(record.id.as_uuid())
            .bind(owner)
            .execute(&mut *tx)
            .await?;
            let change = Change {
                action: tenantry_audit::AuditAction::OrganizationCreated,
                target_kind: "organization",
                target_id: Some(record.id.to_string()),
                before: None,
                after: Some(serde_json::json!({
                    "name": record.name,
                    "slug": record.slug,
                    "isolation": record.isolation,
                    "owner": owner,
                })),
            };
            tenantry_audit::record(&mut tx, Some(record.id.as_uuid()), audit, &change).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = inserted {
            // No organization without an owner: undo the tenant.
            if let Err(undo) = self.tenancy.hard_delete(&record.slug, &record.slug).await {
                tracing::error!(slug = %record.slug, error = %undo, "failed to remove an organization left without owner");
            }
            return Err(e.into());
        }
        Ok(OrgSummary::new(&record, Role::Owner))
    }

    async fn create_tenant(
        &self,
        name: &str,
        slug: Slug,
        isolation: Isolation,
    ) -> Result<TenantRecord, OrgsError> {
        let new = NewTenant {
            name: name.to_string(),
            slug,
            isolation,
            plan: None,
            server: None,
        };
        Ok(self.tenancy.create_tenant(&new).await?)
    }

    async fn create_with_derived_slug(
        &self,
        name: &str,
        isolation: Isolation,
    ) -> Result<TenantRecord, OrgsError> {
        let base = derive_slug(name);
        for attempt in 1..=20 {
            let candidate = if attempt == 1 {
                base.clone()
            } else {
                format!("{base}-{attempt}")
            };
            let Ok(slug) = Slug::parse(&candidate) else {
                continue;
            };
            match self.create_tenant(name, slug, isolation).await {
                Err(OrgsError::SlugTaken(_)) => continue,
                other => return other,
            }
        }
        let slug = format!("{base}-{}", &Uuid::new_v4().simple().to_string()[..8]);
        self.create_tenant(
            name,
            Slug::parse(&slug).map_err(|e| anyhow::anyhow!("{e}"))?,
            isolation,
        )
        .await
    }

    /// The user's role in the organization, if they are a member.
    pub async fn role_of(&self, org_id: Uuid, user_id: Uuid) -> Result<Option<Role>, OrgsError> {
        self.caches
            .roles
            .get_or_load(&(org_id, user_id), |_| true, async {
                let role: Option<String> = sqlx::query_scalar(
                    "SELECT role FROM orgs.memberships WHERE org_id = $1 AND user_id = $2",
                )
                .bind(org_id)
                .bind(user_id)
                .fetch_optional(self.runtime())
                .await?;
                role.map(|r| {
                    r.parse()
                        .map_err(|e: String| OrgsError::Unexpected(anyhow::anyhow!(e)))
                })
                .transpose()
            })
            .await
    }

    pub(crate) fn auth_caches(&self) -> &crate::auth_cache::AuthCaches {
        &self.caches
    }

    /// Forgets this process's cached authorization data after a change committed (other
    /// instances hear of it from the database; see `tenantry_tenancy::cache`).
    pub(crate) fn changed(&self) {
        self.tenancy.caches().flush();
    }

    /// The organization named by `key` (id or slug) and the user's role in it; `NotFound` when it
    /// does not exist, was hard-deleted, or the user is not a member.
    pub async fn for_member(
        &self,
        key: &str,
        user_id: Uuid,
    ) -> Result<(TenantRecord, Role), OrgsError> {
        let record = match self.tenancy.find(key).await {
            Ok(record) => record,
            Err(TenancyError::NotFound(_)) => return Err(OrgsError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let role = self
            .role_of(record.id.as_uuid(), user_id)
            .await?
            .ok_or(OrgsError::NotFound)?;
        Ok((record, role))
    }

    /// The user's organizations (not deleted), with their role in each.
    pub async fn of_user(&self, user_id: Uuid) -> Result<Vec<OrgSummary>, OrgsError> {
        let rows: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT m.org_id, m.role FROM orgs.memberships m
             JOIN control.tenants t ON t.id = m.org_id
             WHERE m.user_id = $1 AND t.status IN ('active', 'suspended')
             ORDER BY t.name, t.slug",
        )
        .bind(user_id)
        .fetch_all(self.runtime())
        .await?;
        let mut orgs = Vec::with_capacity(rows.len());
        for (org_id, role) in rows {
            let record = self.tenancy.find(&org_id.to_string()).await?;
            let role: Role = role
                .parse()
                .map_err(|e: String| OrgsError::Unexpected(anyhow::anyhow!(e)))?;
            orgs.push(OrgSummary::new(&record, role));
        }
        Ok(orgs)
    }

    /// Changes the organization's profile (admins).
    pub async fn update(
        &self,
        actor: Role,
        org_id: Uuid,
        change: &ProfileChange,
        audit: &AuditContext,
    ) -> Result<OrgSummary, OrgsError> {
        actor.require(crate::roles::Action::Administer)?;
        let before = self.tenancy.find(&org_id.to_string()).await?;
        let slug = change
            .slug
            .as_deref()
            .map(Slug::parse)
            .transpose()
            .map_err(|e| OrgsError::Invalid {
                field: "slug",
                detail: e.to_string(),
            })?;
        if let Some(name) = &change.name
            && (name.trim().is_empty() || name.chars().count() > 200)
        {
            return Err(OrgsError::Invalid {
                field: "name",
                detail: "1 to 200 characters".to_string(),
            });
        }
        let mut settings = serde_json::Map::new();
        // An empty logo URL or billing email clears it.
        if change.logo_url.as_deref() == Some("") {
            settings.insert("logo_url".into(), serde_json::Value::Null);
        } else if let Some(url) = &change.logo_url {
            let ok = (url.starts_with("https://") || url.starts_with("http://"))
                && url.len() <= 2000
                && !url.chars().any(char::is_whitespace);
            if !ok {
                return Err(OrgsError::Invalid {
                    field: "logo_url",
                    detail: "an http(s) URL".to_string(),
                });
            }
            settings.insert("logo_url".into(), url.clone().into());
        }
        if change.billing_email.as_deref() == Some("") {
            settings.insert("billing_email".into(), serde_json::Value::Null);
        } else if let Some(email) = &change.billing_email {
            let ok = email.split('@').count() == 2
                && email
                    .split_once('@')
                    .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
                && !email.chars().any(char::is_whitespace);
            if !ok {
                return Err(OrgsError::Invalid {
                    field: "billing_email",
                    detail: "an email address".to_string(),
                });
            }
            settings.insert("billing_email".into(), email.clone().into());
        }
        if let Some(own) = &change.settings {
            if !own.is_object() || own.to_string().len() > 16 * 1024 {
                return Err(OrgsError::Invalid {
                    field: "settings",
                    detail: "a JSON object of at most 16 KiB".to_string(),
                });
            }
            settings.insert("settings".into(), own.clone());
        }
        let settings = serde_json::Value::Object(settings);
        let mut tx = self.tenancy.begin_profile_change().await?;
        let record = self
            .tenancy
            .update_profile_in(
                &mut tx,
                &org_id.to_string(),
                change.name.as_deref(),
                slug.as_ref(),
                Some(&settings),
            )
            .await?;
        let change = Change {
            action: tenantry_audit::AuditAction::OrganizationUpdated,
            target_kind: "organization",
            target_id: Some(org_id.to_string()),
            before: Some(profile_of(&before)),
            after: Some(profile_of(&record)),
        };
        tenantry_audit::record(&mut tx, Some(org_id), audit, &change).await?;
        tx.commit().await?;
        self.changed();
        Ok(OrgSummary::new(&record, actor))
    }

    /// Records a change just after it committed, for the changes that cannot share a transaction
    /// with their entry (a hard delete: dropping a database cannot run in one). A failure to
    /// record is logged, never turned into a failure of the change.
    pub async fn record_after(&self, org_id: Option<Uuid>, audit: &AuditContext, change: &Change) {
        let recorded = async {
            let mut tx = self.runtime().begin().await?;
            tenantry_audit::record(&mut tx, org_id, audit, change).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = recorded {
            tracing::error!(action = %change.action, error = %e, "failed to record an audit entry");
        }
    }

    pub fn summary(record: &TenantRecord, role: Role) -> OrgSummary {
        OrgSummary::new(record, role)
    }
}

/// Serializes, until the end of the transaction, the changes that must see one another in an
/// organization (invitations against members and limits).
pub(crate) async fn lock_org(conn: &mut sqlx::PgConnection, org_id: Uuid) -> Result<(), OrgsError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('tenantry:org:' || $1::text, 0))")
        .bind(org_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The parts of an organization's profile its audit entries summarise.
fn profile_of(record: &TenantRecord) -> serde_json::Value {
    serde_json::json!({
        "name": record.name,
        "slug": record.slug,
        "settings": record.settings,
    })
}

/// A slug from a name: lowercase letters and digits, other runs of characters as one hyphen,
/// starting with a letter, at most 40 characters.
fn derive_slug(name: &str) -> String {
    let mut slug = String::new();
    for c in name.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-').chars().take(40).collect::<String>();
    let slug = slug.trim_end_matches('-').to_string();
    match slug.chars().next() {
        Some(c) if c.is_ascii_lowercase() && slug.len() >= 2 => slug,
        _ => format!("org-{slug}").trim_end_matches('-').to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::derive_slug;

    #[test]
    fn slugs_derive_from_names() {
        assert_eq!(derive_slug("Acme Corp."), "acme-corp");
        assert_eq!(derive_slug("  Ünïcode & Co  "), "n-code-co");
        assert_eq!(derive_slug("42 Labs"), "org-42-labs");
        assert_eq!(derive_slug("!!!"), "org");
        assert!(derive_slug(&"x".repeat(100)).len() <= 40);
    }
}
