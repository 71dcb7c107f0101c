//! Heartbeat tokens: the capability to ping one push monitor, at `/api/v1/heartbeat/<token>`,
//! without authentication. A ping names no tenant, so the token leads to one through a control
//! table (`monitoring.heartbeats`) holding only the token's SHA-256, the organization and the
//! monitor. The token is shown once, in the response that issued it.
//!
//! The monitor lives in the tenant's storage, which for a database-tier tenant is another
//! database: the two rows are written in different transactions. Callers issue the token before
//! the monitor commits and forget it after the monitor is deleted, so what can be left behind is
//! a row naming a monitor that does not exist, which a ping answers like an unknown token.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use tenantry_tenancy::ControlDb;
use uuid::Uuid;

/// The path a heartbeat token is pinged at, after the server's public URL.
pub const HEARTBEAT_PATH: &str = "/api/v1/heartbeat/";

/// A heartbeat token (256 random bits, base64url): a secret, so `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct HeartbeatToken(String);

impl std::fmt::Debug for HeartbeatToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeartbeatToken(…)")
    }
}

impl HeartbeatToken {
    fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL to ping: `<public_url>/api/v1/heartbeat/<token>`.
    pub fn url(&self, public_url: &str) -> String {
        format!(
            "{}{HEARTBEAT_PATH}{}",
            public_url.trim_end_matches('/'),
            self.0
        )
    }
}

/// What a token leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatTarget {
    pub org_id: Uuid,
    pub monitor_id: Uuid,
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Whether `token` could be one we issued (43 base64url characters): anything else is not
/// looked up.
fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A new token for monitor `monitor_id` of organization `org_id`, replacing the monitor's
/// previous one, if any (which stops working).
pub async fn issue(
    pool: &ControlDb,
    org_id: Uuid,
    monitor_id: Uuid,
) -> sqlx::Result<HeartbeatToken> {
    let token = HeartbeatToken::generate();
    sqlx::query(
        "INSERT INTO monitoring.heartbeats (token_hash, org_id, monitor_id) VALUES ($1, $2, $3)
         ON CONFLICT (org_id, monitor_id)
         DO UPDATE SET token_hash = excluded.token_hash, created_at = now()",
    )
    .bind(digest(token.expose()))
    .bind(org_id)
    .bind(monitor_id)
    .execute(pool)
    .await?;
    Ok(token)
}

/// Whether monitor `monitor_id` of organization `org_id` has a token.
pub async fn has_token(pool: &ControlDb, org_id: Uuid, monitor_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM monitoring.heartbeats WHERE org_id = $1 AND monitor_id = $2)",
    )
    .bind(org_id)
    .bind(monitor_id)
    .fetch_one(pool)
    .await
}

/// The organization and monitor `token` was issued for, if it is a current token.
pub async fn find(pool: &ControlDb, token: &str) -> sqlx::Result<Option<HeartbeatTarget>> {
    if !well_formed(token) {
        return Ok(None);
    }
    let row: Option<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT org_id, monitor_id FROM monitoring.heartbeats WHERE token_hash = $1",
    )
    .bind(digest(token))
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(org_id, monitor_id)| HeartbeatTarget { org_id, monitor_id }))
}

/// Removes the token of monitor `monitor_id` of organization `org_id`; whether there was one.
pub async fn forget(pool: &ControlDb, org_id: Uuid, monitor_id: Uuid) -> sqlx::Result<bool> {
    let done =
        sqlx::query("DELETE FROM monitoring.heartbeats WHERE org_id = $1 AND monitor_id = $2")
            .bind(org_id)
            .bind(monitor_id)
            .execute(pool)
            .await?;
    Ok(done.rows_affected() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_43_url_safe_characters_and_differ() {
        let a = HeartbeatToken::generate();
        let b = HeartbeatToken::generate();
        assert!(well_formed(a.expose()), "{}", a.expose());
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "HeartbeatToken(…)");
    }

    #[test]
    fn urls_join_the_public_url_and_the_token() {
        let token = HeartbeatToken("t".repeat(43));
        assert_eq!(
            token.url("https://up.example.com/"),
            format!("https://up.example.com/api/v1/heartbeat/{}", "t".repeat(43))
        );
    }

    #[test]
    fn malformed_tokens_are_not_looked_up() {
        assert!(!well_formed(""));
        assert!(!well_formed(&"a".repeat(42)));
        assert!(!well_formed(&format!("{}/", "a".repeat(42))));
        assert!(well_formed(
            &"a-_".repeat(14).chars().chain(['Z']).collect::<String>()
        ));
    }
}
