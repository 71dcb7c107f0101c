//! Agents: processes (`tenantry agent`) that run an organization's checks from another machine.
//! An agent is a row of the tenant's `agents` table, read and written through a `TenantTx`; its
//! token (`tagt_` + 256 random bits, base64url) is the capability to claim the checks of the
//! monitors assigned to it and to post their results. The token leads to the organization
//! before any tenant is known, so it lives in the control database (`monitoring.agent_tokens`,
//! only its SHA-256), written in a transaction of its own: callers issue it before the agent
//! commits and forget it after the agent is deleted, so what can be left behind is a token
//! naming no agent, which is refused like an unknown one.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore as _;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tenantry_tenancy::ControlDb;
use tenantry_tenancy::TenantTx;
use uuid::Uuid;

use crate::monitors::Invalid;

/// What every agent token starts with.
pub const AGENT_TOKEN_PREFIX: &str = "tagt_";

/// An agent token: a secret, so `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct AgentToken(String);

impl std::fmt::Debug for AgentToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentToken(…)")
    }
}

impl AgentToken {
    fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(format!(
            "{AGENT_TOKEN_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(bytes)
        ))
    }

    /// A token as presented (by `tenantry agent --token`).
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into().trim().to_string())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether this could be a token we issued (the prefix and 43 base64url characters):
    /// anything else is not looked up.
    pub fn well_formed(&self) -> bool {
        self.0.strip_prefix(AGENT_TOKEN_PREFIX).is_some_and(|rest| {
            rest.len() == 43
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    }

    fn digest(&self) -> Vec<u8> {
        Sha256::digest(self.0.as_bytes()).to_vec()
    }
}

/// Who a presented token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentIdentity {
    pub org_id: Uuid,
    pub agent_id: Uuid,
}

/// A new token for agent `agent_id` of organization `org_id`, replacing its previous one, if
/// any (which stops working).
pub async fn issue_agent_token(
    control: &ControlDb,
    org_id: Uuid,
    agent_id: Uuid,
) -> sqlx::Result<AgentToken> {
    let token = AgentToken::generate();
    sqlx::query(
        "INSERT INTO monitoring.agent_tokens (token_hash, org_id, agent_id) VALUES ($1, $2, $3)
         ON CONFLICT (org_id, agent_id)
         DO UPDATE SET token_hash = excluded.token_hash, created_at = now()",
    )
    .bind(token.digest())
    .bind(org_id)
    .bind(agent_id)
    .execute(control)
    .await?;
    Ok(token)
}

/// The organization and agent `token` was issued for, if it is a current token.
pub async fn find_agent_token(
    control: &ControlDb,
    token: &AgentToken,
) -> sqlx::Result<Option<AgentIdentity>> {
    if !token.well_formed() {
        return Ok(None);
    }
    let row: Option<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT org_id, agent_id FROM monitoring.agent_tokens WHERE token_hash = $1",
    )
    .bind(token.digest())
    .fetch_optional(control)
    .await?;
    Ok(row.map(|(org_id, agent_id)| AgentIdentity { org_id, agent_id }))
}

/// Removes the token of agent `agent_id` of organization `org_id`; whether there was one.
pub async fn forget_agent_token(
    control: &ControlDb,
    org_id: Uuid,
    agent_id: Uuid,
) -> sqlx::Result<bool> {
    let done =
        sqlx::query("DELETE FROM monitoring.agent_tokens WHERE org_id = $1 AND agent_id = $2")
            .bind(org_id)
            .bind(agent_id)
            .execute(control)
            .await?;
    Ok(done.rows_affected() > 0)
}

/// An agent as the API shows it (never its token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Agent {
    pub id: Uuid,
    #[schema(example = "datacenter-1")]
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// When the agent last asked for checks or posted results (`null`: never).
    pub last_seen_at: Option<DateTime<Utc>>,
    /// The monitors it runs (`agent_id` of each), oldest first.
    pub monitor_ids: Vec<Uuid>,
    /// Who registered it, from its `agent.created` audit entry: a user, an API key, or the
    /// system (`null` when the entry is not there, such as an agent restored from an archive
    /// without it). An agent belongs to the organization: it keeps working when the person who
    /// registered it leaves.
    #[sqlx(json)]
    pub registered_by: Option<Registrar>,
}

/// Who registered an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Registrar {
    /// `user`, `api_key` or `system`.
    #[schema(examples("user", "api_key"))]
    pub kind: String,
    /// The user's or the API key's id (`null` for the system).
    pub id: Option<Uuid>,
}

const COLUMNS: &str = "a.id, a.name, a.created_at, a.last_seen_at,
    ARRAY(SELECT m.id FROM monitors m WHERE m.tenant_id = a.tenant_id AND m.agent_id = a.id
          ORDER BY m.created_at, m.id) AS monitor_ids,
    coalesce((SELECT jsonb_build_object('kind', l.actor_kind, 'id', l.actor_id) FROM audit_log l
      WHERE l.tenant_id = a.tenant_id AND l.target_kind = 'agent' AND l.target_id = a.id::text
        AND l.action = 'agent.created'
      ORDER BY l.seq LIMIT 1), 'null'::jsonb) AS registered_by";

/// An agent's name, trimmed: 1 to 200 characters.
pub fn agent_name(name: &str) -> Result<&str, Invalid> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(Invalid {
            field: "name",
            detail: "1 to 200 characters".to_string(),
        });
    }
    Ok(name)
}

/// Locks the tenant's set of agents until the transaction ends, so that concurrent creates see
/// one another, and counts it.
pub async fn lock_and_count_agents(tx: &mut TenantTx) -> sqlx::Result<i64> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('tenantry:agents:' || $1::text, 0))",
    )
    .bind(tx.tenant_id().as_uuid())
    .execute(&mut **tx)
    .await?;
    count_agents(tx).await
}

/// How many agents the tenant has.
pub async fn count_agents(tx: &mut TenantTx) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM agents")
        .fetch_one(&mut **tx)
        .await
}

/// Stores a new agent with an id chosen beforehand (its token is issued for the id before the
/// agent commits). `name` must have passed [`agent_name`].
pub async fn create_agent(tx: &mut TenantTx, id: Uuid, name: &str) -> sqlx::Result<Agent> {
    let tenant_id = tx.tenant_id().as_uuid();
    sqlx::query_as(
        "INSERT INTO agents (tenant_id, id, name) VALUES ($1, $2, $3)
         RETURNING id, name, created_at, last_seen_at, ARRAY[]::uuid[] AS monitor_ids,
                   'null'::jsonb AS registered_by",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(name)
    .fetch_one(&mut **tx)
    .await
}

pub async fn get_agent(tx: &mut TenantTx, id: Uuid) -> sqlx::Result<Option<Agent>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM agents a WHERE a.id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
}

/// Up to `limit` agents in creation order, after `cursor`.
pub async fn list_agents(
    tx: &mut TenantTx,
    limit: i64,
    cursor: Option<crate::results::After>,
) -> sqlx::Result<Vec<Agent>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM agents a
         WHERE ($1::timestamptz IS NULL OR (a.created_at, a.id) > ($1, $2))
         ORDER BY a.created_at, a.id LIMIT $3"
    ))
    .bind(cursor.map(|c| c.at))
    .bind(cursor.map(|c| c.id))
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}

/// Whether agent `id` exists, keeping it so until the transaction ends (`FOR KEY SHARE`: a
/// concurrent delete waits), for a monitor about to name it.
pub async fn hold_agent(tx: &mut TenantTx, id: Uuid) -> sqlx::Result<bool> {
    let found: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM agents WHERE id = $1 FOR KEY SHARE")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(found.is_some())
}

/// Deletes agent `id`, first putting its monitors back on the servers (`agent_id = NULL`);
/// the agent as it was (with the monitors it ran), or `None` when there is no such agent.
pub async fn delete_agent(tx: &mut TenantTx, id: Uuid) -> sqlx::Result<Option<Agent>> {
    // Locked first: a monitor being assigned to it meanwhile (which holds it `FOR KEY SHARE`)
    // commits before, and is released below, or waits and then finds no agent.
    let agent: Option<Agent> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM agents a WHERE a.id = $1 FOR UPDATE OF a"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(agent) = agent else {
        return Ok(None);
    };
    sqlx::query("UPDATE monitors SET agent_id = NULL, updated_at = now() WHERE agent_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM agents WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(Some(agent))
}

/// Notes that agent `id` was just seen; `false` when there is no such agent (deleted: its
/// token, if still found, is no longer good).
pub async fn touch_agent(tx: &mut TenantTx, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query("UPDATE agents SET last_seen_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// When agent `id` was last seen: `None` when there is no such agent, `Some(None)` when never.
pub async fn agent_last_seen(
    tx: &mut TenantTx,
    id: Uuid,
) -> sqlx::Result<Option<Option<DateTime<Utc>>>> {
    sqlx::query_scalar("SELECT last_seen_at FROM agents WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_the_prefix_and_43_url_safe_characters_and_differ() {
        let a = AgentToken::generate();
        let b = AgentToken::generate();
        assert!(a.expose().starts_with("tagt_"), "{}", a.expose());
        assert!(a.well_formed());
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "AgentToken(…)");
    }

    #[test]
    fn malformed_tokens_are_not_looked_up() {
        for bad in [
            "",
            "tagt_",
            &format!("tagt_{}", "a".repeat(42)),
            &format!("tnt_{}", "a".repeat(43)),
            &format!("tagt_{}/", "a".repeat(42)),
        ] {
            assert!(!AgentToken::new(bad).well_formed(), "{bad}");
        }
        assert!(AgentToken::new(format!(" tagt_{} ", "a-_".repeat(14) + "Z")).well_formed());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(agent_name("  dc-1 "), Ok("dc-1"));
        assert_eq!(agent_name("   ").unwrap_err().field, "name");
        assert_eq!(agent_name(&"x".repeat(201)).unwrap_err().field, "name");
    }
}
