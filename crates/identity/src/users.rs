//! The `identity.users` table.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tenantry_tenancy::ControlDb;
use uuid::Uuid;

use crate::error::IdentityError;

/// A user, without the password hash.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub platform_admin: bool,
    pub default_org_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, email, name, platform_admin, default_org_id, created_at, updated_at";

pub(crate) async fn insert(
    executor: impl sqlx::PgExecutor<'_>,
    email: &str,
    name: &str,
    password_hash: &str,
    platform_admin: bool,
) -> Result<User, IdentityError> {
    let result = sqlx::query_as(&format!(
        "INSERT INTO identity.users (id, email, name, password_hash, platform_admin)
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(email)
    .bind(name)
    .bind(password_hash)
    .bind(platform_admin)
    .fetch_one(executor)
    .await;
    match result {
        Ok(user) => Ok(user),
        Err(sqlx::Error::Database(e)) if e.constraint() == Some("users_email_key") => {
            Err(IdentityError::EmailTaken)
        }
        Err(e) => Err(e.into()),
    }
}

/// The user with this email (any case) and the hash of their password.
pub(crate) async fn with_password(
    pool: &ControlDb,
    email: &str,
) -> Result<Option<(User, String)>, IdentityError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        user: User,
        password_hash: String,
    }
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS}, password_hash FROM identity.users WHERE lower(email) = lower($1)"
    ))
    .bind(email.trim())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| (r.user, r.password_hash)))
}

pub(crate) async fn get(pool: &ControlDb, id: Uuid) -> Result<Option<User>, IdentityError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM identity.users WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

pub(crate) async fn set_password_hash(
    pool: &ControlDb,
    id: Uuid,
    hash: &str,
) -> Result<(), IdentityError> {
    sqlx::query("UPDATE identity.users SET password_hash = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(hash)
        .execute(pool)
        .await?;
    Ok(())
}

pub(crate) async fn set_default_org(
    pool: &ControlDb,
    id: Uuid,
    org_id: Option<Uuid>,
) -> Result<(), IdentityError> {
    sqlx::query("UPDATE identity.users SET default_org_id = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(org_id)
        .execute(pool)
        .await?;
    Ok(())
}
