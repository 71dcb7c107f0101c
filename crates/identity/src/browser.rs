//! Browser sessions: the console's sign-in. The browser keeps one refresh token of its session in
//! an `HttpOnly` cookie; only its SHA-256 is stored, as for the API's refresh tokens. The token
//! is rotated once it is older than [`ROTATE_AFTER`]: the old one is marked used and the
//! response sets the next. The reuse rule is the API's, with a short grace for the requests a
//! browser already had in flight when the cookie changed: a used token presented within
//! [`REUSE_GRACE`] of its use is still accepted (and not rotated again); later, it revokes the
//! whole session.
//!
//! Each browser session has a random CSRF secret: the console's forms carry it, and a
//! state-changing request without it is refused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tenantry_tenancy::ControlDb;
use uuid::Uuid;

use crate::error::IdentityError;
use crate::sessions;

/// A browser's cookie token is replaced once it is this old.
pub const ROTATE_AFTER: Duration = Duration::minutes(10);

/// A replaced cookie token is still accepted this long after it was replaced.
pub const REUSE_GRACE: Duration = Duration::seconds(60);

/// The signed-in browser behind a valid cookie.
#[derive(Clone)]
pub struct BrowserSession {
    pub session_id: Uuid,
    pub user_id: Uuid,
    /// The token every state-changing form must carry.
    pub csrf_token: String,
    /// The cookie token to set in the response, when this request rotated it.
    pub rotated: Option<String>,
}

impl std::fmt::Debug for BrowserSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserSession")
            .field("session_id", &self.session_id)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

/// A browser session just started: the cookie token to set.
pub struct SignedInBrowser {
    pub session_id: Uuid,
    pub cookie_token: String,
}

impl std::fmt::Debug for SignedInBrowser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedInBrowser")
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

/// One open session of a user, as the "Sessions" list shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionInfo {
    pub id: Uuid,
    /// `browser` (the console) or `api` (tokens).
    pub kind: String,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: Option<DateTime<Utc>>,
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn random() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// A user agent as stored: at most 300 characters.
fn clip(user_agent: Option<&str>) -> Option<String> {
    user_agent.map(|ua| ua.chars().take(300).collect())
}

/// Starts a browser session for `user_id`.
pub(crate) async fn start(
    pool: &ControlDb,
    user_id: Uuid,
    user_agent: Option<&str>,
    ttl: Duration,
) -> Result<SignedInBrowser, IdentityError> {
    let mut tx = pool.begin().await?;
    let session_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO identity.sessions (id, user_id, kind, user_agent, last_seen_at, csrf_secret)
         VALUES ($1, $2, 'browser', $3, now(), $4)",
    )
    .bind(session_id)
    .bind(user_id)
    .bind(clip(user_agent))
    .bind(random().to_vec())
    .execute(&mut *tx)
    .await?;
    let cookie_token = sessions::issue(&mut tx, session_id, None, ttl).await?;
    tx.commit().await?;
    Ok(SignedInBrowser {
        session_id,
        cookie_token,
    })
}

/// The open browser session a cookie token belongs to, rotating the token when it is due.
pub(crate) async fn resume(
    pool: &ControlDb,
    token: &str,
    ttl: Duration,
) -> Result<BrowserSession, IdentityError> {
    #[derive(sqlx::FromRow)]
    struct Found {
        session_id: Uuid,
        user_id: Uuid,
        csrf_secret: Vec<u8>,
        issued: DateTime<Utc>,
        used_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    }
    let hash = digest(token);
    let found: Option<Found> = sqlx::query_as(
        "SELECT s.id AS session_id, s.user_id, s.csrf_secret, r.created_at AS issued, r.used_at,
                now() AS now
         FROM identity.refresh_tokens r JOIN identity.sessions s ON s.id = r.session_id
         WHERE r.token_hash = $1 AND r.expires_at > now() AND s.revoked_at IS NULL
           AND s.kind = 'browser'",
    )
    .bind(&hash)
    .fetch_optional(pool)
    .await?;
    let Some(found) = found else {
        return Err(IdentityError::InvalidToken);
    };
    let mut rotated = None;
    match found.used_at {
        Some(used) if found.now - used > REUSE_GRACE => {
            sessions::revoke(pool, found.session_id, "reuse").await?;
            tracing::warn!(
                session_id = %found.session_id,
                "a replaced browser session cookie was presented again; the session is revoked"
            );
            return Err(IdentityError::RefreshReused);
        }
        Some(_) => {}
        None if found.now - found.issued > ROTATE_AFTER => {
            let mut tx = pool.begin().await?;
            // Only the request that marks the token used issues the next one.
            let marked = sqlx::query(
                "UPDATE identity.refresh_tokens SET used_at = now()
                 WHERE token_hash = $1 AND used_at IS NULL",
            )
            .bind(&hash)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if marked == 1 {
                rotated = Some(sessions::issue(&mut tx, found.session_id, None, ttl).await?);
                sqlx::query("UPDATE identity.sessions SET last_seen_at = now() WHERE id = $1")
                    .bind(found.session_id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
        None => {}
    }
    Ok(BrowserSession {
        session_id: found.session_id,
        user_id: found.user_id,
        csrf_token: URL_SAFE_NO_PAD.encode(&found.csrf_secret),
        rotated,
    })
}

/// The open sessions of `user_id`, the most recently used first.
pub(crate) async fn list(
    pool: &ControlDb,
    user_id: Uuid,
) -> Result<Vec<SessionInfo>, IdentityError> {
    Ok(sqlx::query_as(
        "SELECT s.id, s.kind, s.user_agent, s.created_at,
                greatest(s.last_seen_at, (SELECT max(r.created_at) FROM identity.refresh_tokens r
                                          WHERE r.session_id = s.id)) AS last_seen_at
         FROM identity.sessions s
         WHERE s.user_id = $1 AND s.revoked_at IS NULL
           AND EXISTS (SELECT 1 FROM identity.refresh_tokens r
                       WHERE r.session_id = s.id AND r.expires_at > now())
         ORDER BY last_seen_at DESC NULLS LAST, s.created_at DESC",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await?)
}

/// Revokes session `session_id` if it is one of `user_id`'s; whether it was.
pub(crate) async fn revoke_own(
    pool: &ControlDb,
    user_id: Uuid,
    session_id: Uuid,
) -> Result<bool, IdentityError> {
    Ok(sqlx::query(
        "UPDATE identity.sessions SET revoked_at = now(), revoked_reason = 'user'
         WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
    )
    .bind(session_id)
    .bind(user_id)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}
