//! Sessions and their refresh tokens. A refresh token is 256 random bits, handed out once and
//! stored as its SHA-256. Using one marks it used and issues the next; presenting a used one
//! again (a stolen copy, or a replay) revokes the whole session.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use tenantry_tenancy::ControlDb;
use uuid::Uuid;

use crate::error::IdentityError;

/// What a valid refresh token stood for.
#[derive(Debug, Clone)]
pub(crate) struct Rotated {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub org_id: Option<Uuid>,
    pub refresh_token: String,
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Issues a refresh token in the session; returns the token (never stored as such).
pub(crate) async fn issue(
    conn: &mut PgConnection,
    session_id: Uuid,
    org_id: Option<Uuid>,
    ttl: Duration,
) -> Result<String, IdentityError> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    sqlx::query(
        "INSERT INTO identity.refresh_tokens (token_hash, session_id, org_id, expires_at)
         VALUES ($1, $2, $3, now() + $4)",
    )
    .bind(digest(&token))
    .bind(session_id)
    .bind(org_id)
    .bind(ttl)
    .execute(&mut *conn)
    .await?;
    Ok(token)
}

/// Starts a session for the user; returns its id and first refresh token.
pub(crate) async fn start(
    pool: &ControlDb,
    user_id: Uuid,
    org_id: Option<Uuid>,
    ttl: Duration,
) -> Result<(Uuid, String), IdentityError> {
    let mut tx = pool.begin().await?;
    let session_id = Uuid::now_v7();
    sqlx::query("INSERT INTO identity.sessions (id, user_id) VALUES ($1, $2)")
        .bind(session_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    let token = issue(&mut tx, session_id, org_id, ttl).await?;
    tx.commit().await?;
    Ok((session_id, token))
}

/// Uses a refresh token: marks it used and issues the next one of its session.
pub(crate) async fn rotate(
    pool: &ControlDb,
    token: &str,
    ttl: Duration,
) -> Result<Rotated, IdentityError> {
    let hash = digest(token);
    let mut tx = pool.begin().await?;
    let used: Option<(Uuid, Uuid, Option<Uuid>)> = sqlx::query_as(
        "UPDATE identity.refresh_tokens r SET used_at = now()
         FROM identity.sessions s
         WHERE r.token_hash = $1 AND r.used_at IS NULL AND r.expires_at > now()
           AND s.id = r.session_id AND s.revoked_at IS NULL AND s.kind = 'api'
         RETURNING s.user_id, s.id, r.org_id",
    )
    .bind(&hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((user_id, session_id, org_id)) = used else {
        drop(tx);
        return Err(refused(pool, &hash).await?);
    };
    let refresh_token = issue(&mut tx, session_id, org_id, ttl).await?;
    tx.commit().await?;
    Ok(Rotated {
        user_id,
        session_id,
        org_id,
        refresh_token,
    })
}

/// Why a refresh token was refused; a token used before revokes its session.
async fn refused(pool: &ControlDb, hash: &[u8]) -> Result<IdentityError, IdentityError> {
    let reused: Option<Uuid> = sqlx::query_scalar(
        "SELECT session_id FROM identity.refresh_tokens WHERE token_hash = $1 AND used_at IS NOT NULL",
    )
    .bind(hash)
    .fetch_optional(pool)
    .await?;
    match reused {
        Some(session_id) => {
            revoke(pool, session_id, "reuse").await?;
            tracing::warn!(%session_id, "a used refresh token was presented again; the session is revoked");
            Ok(IdentityError::RefreshReused)
        }
        None => Ok(IdentityError::InvalidToken),
    }
}

pub(crate) async fn revoke(
    pool: &ControlDb,
    session_id: Uuid,
    reason: &str,
) -> Result<(), IdentityError> {
    sqlx::query(
        "UPDATE identity.sessions SET revoked_at = now(), revoked_reason = $2
         WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(session_id)
    .bind(reason)
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn is_active(pool: &ControlDb, session_id: Uuid) -> Result<bool, IdentityError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM identity.sessions WHERE id = $1 AND revoked_at IS NULL)",
    )
    .bind(session_id)
    .fetch_one(pool)
    .await?)
}
