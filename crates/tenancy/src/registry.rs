//! The tenant registry in the control database: one row per tenant with its tier, placement,
//! status, provisioning progress and schema version.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::error::{TenancyError, sqlstate};
use crate::ids::{Isolation, ProvisionStep, TenantId, TenantStatus};
use crate::schema::SchemaVersions;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TenantRecord {
    #[sqlx(try_from = "Uuid")]
    pub id: TenantId,
    pub slug: String,
    pub name: String,
    pub plan: String,
    #[sqlx(try_from = "String")]
    pub isolation: Isolation,
    /// Placement: the PostgreSQL server (by name), database and schema holding the rows.
    pub server: String,
    pub database_name: String,
    pub schema_name: String,
    #[sqlx(try_from = "String")]
    pub status: TenantStatus,
    #[sqlx(try_from = "String")]
    pub provision_step: ProvisionStep,
    pub last_error: Option<String>,
    pub purging: bool,
    /// The tenant schema's version in each migration set.
    #[sqlx(json)]
    pub schema_versions: SchemaVersions,
    pub settings: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

pub(crate) const COLUMNS: &str = "id, slug, name, plan, isolation, server, database_name, schema_name, \
    status, provision_step, last_error, purging, coalesce(schema_versions, '{}') AS schema_versions, \
    settings, created_at, \
    updated_at, deleted_at";

/// A row to insert for a new tenant.
#[derive(Debug, Clone)]
pub struct NewRecord<'a> {
    pub id: TenantId,
    pub slug: &'a str,
    pub name: &'a str,
    pub plan: &'a str,
    pub isolation: Isolation,
    pub server: &'a str,
    pub database_name: &'a str,
    pub schema_name: &'a str,
}

/// Looks a tenant up by id (when `key` is a UUID) or slug.
pub async fn find<'e>(
    pool: impl sqlx::PgExecutor<'e>,
    key: &str,
) -> Result<Option<TenantRecord>, TenancyError> {
    let record = match key.parse::<Uuid>() {
        Ok(id) => {
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM control.tenants WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(pool)
            .await?
        }
        Err(_) => {
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM control.tenants WHERE slug = $1"
            ))
            .bind(key)
            .fetch_optional(pool)
            .await?
        }
    };
    Ok(record)
}

pub async fn get<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    id: TenantId,
) -> Result<TenantRecord, TenancyError> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM control.tenants WHERE id = $1"
    ))
    .bind(id.as_uuid())
    .fetch_optional(executor)
    .await?
    .ok_or_else(|| TenancyError::NotFound(id.to_string()))
}

pub async fn list(pool: &PgPool) -> Result<Vec<TenantRecord>, TenancyError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM control.tenants ORDER BY slug"
    ))
    .fetch_all(pool)
    .await?)
}

/// Inserts the tenant's row; `None` when the slug is already registered.
pub async fn insert(
    pool: &PgPool,
    new: &NewRecord<'_>,
) -> Result<Option<TenantRecord>, TenancyError> {
    let result = sqlx::query_as(&format!(
        "INSERT INTO control.tenants (id, slug, name, plan, isolation, database_name, schema_name, server)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (slug) DO NOTHING
         RETURNING {COLUMNS}"
    ))
    .bind(new.id.as_uuid())
    .bind(new.slug)
    .bind(new.name)
    .bind(new.plan)
    .bind(new.isolation.as_str())
    .bind(new.database_name)
    .bind(new.schema_name)
    .bind(new.server)
    .fetch_optional(pool)
    .await;
    match result {
        Ok(row) => Ok(row),
        // A slug released by another tenant less than 30 days ago (0004_slug_quarantine.sql).
        Err(e) if sqlstate(&e).as_deref() == Some("23505") => {
            Err(TenancyError::SlugTaken(new.slug.to_string()))
        }
        Err(e) if sqlstate(&e).as_deref() == Some("23514") => Err(TenancyError::Invalid(format!(
            "the tenant {:?} does not satisfy the registry's rules (name 1 to 200 characters, plan a lowercase word)",
            new.slug
        ))),
        Err(e) => Err(e.into()),
    }
}

pub async fn record_step(
    pool: &PgPool,
    id: TenantId,
    step: ProvisionStep,
) -> Result<(), TenancyError> {
    sqlx::query("UPDATE control.tenants SET provision_step = $2, updated_at = now() WHERE id = $1")
        .bind(id.as_uuid())
        .bind(step.as_str())
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn record_failure(pool: &PgPool, id: TenantId, error: &str) -> Result<(), TenancyError> {
    sqlx::query(
        "UPDATE control.tenants SET status = 'failed', last_error = $2, updated_at = now()
         WHERE id = $1 AND status IN ('provisioning', 'failed')",
    )
    .bind(id.as_uuid())
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// Moves a tenant from one of `from` to `to`; `None` when its status is not one of `from`.
pub async fn transition(
    conn: &mut PgConnection,
    id: TenantId,
    from: &[TenantStatus],
    to: TenantStatus,
) -> Result<Option<TenantRecord>, TenancyError> {
    let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    let row = sqlx::query_as(&format!(
        "UPDATE control.tenants SET
             status = $3,
             status_before_delete = CASE WHEN $3 = 'deleted' THEN status ELSE NULL END,
             deleted_at = CASE WHEN $3 = 'deleted' THEN now() ELSE NULL END,
             last_error = CASE WHEN $3 = 'active' THEN NULL ELSE last_error END,
             updated_at = now()
         WHERE id = $1 AND status = ANY($2) AND NOT purging
         RETURNING {COLUMNS}"
    ))
    .bind(id.as_uuid())
    .bind(&from)
    .bind(to.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row)
}

/// Number of tenants per tier and status, for metrics.
pub async fn counts(pool: &PgPool) -> Result<Vec<(Isolation, TenantStatus, i64)>, TenancyError> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT isolation, status, count(*) FROM control.tenants GROUP BY isolation, status",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(tier, status, n)| {
            let tier = tier.parse().map_err(anyhow::Error::msg)?;
            let status = status.parse().map_err(anyhow::Error::msg)?;
            Ok((tier, status, n))
        })
        .collect()
}

/// Schema- and database-tier tenants with storage whose recorded versions lack a migration of
/// `latest`.
pub async fn behind(
    pool: &PgPool,
    latest: &SchemaVersions,
) -> Result<Vec<TenantRecord>, TenancyError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM control.tenants
         WHERE isolation <> 'shared' AND NOT purging
           AND EXISTS (SELECT 1 FROM jsonb_each_text($1) l
                       WHERE coalesce((schema_versions ->> l.key)::int, 0) < l.value::int)
           AND status IN ('active', 'suspended', 'deleted')
         ORDER BY slug"
    ))
    .bind(sqlx::types::Json(latest))
    .fetch_all(pool)
    .await?)
}
