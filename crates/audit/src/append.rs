//! Writing entries: [`record`] on the control side, [`record_in_tenant`] in the tenant's own
//! storage, each inside the caller's transaction and behind a per-chain advisory lock.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use tenantry_tenancy::TenantTx;
use uuid::Uuid;

use crate::chain::{Chain, GENESIS, Link, now_micros};
use crate::context::{AuditContext, Change};

/// Longest `ip`, `user_agent` and `request_id` kept, in characters.
const MAX_IP: usize = 64;
const MAX_USER_AGENT: usize = 512;
const MAX_REQUEST_ID: usize = 128;

/// Appends to an organization's control-side chain (`Some(org)`) or the platform's (`None`), in
/// the caller's transaction (a runtime-pool transaction at the default isolation level). Holds
/// the chain's lock until that transaction ends, so keep it short after this call. A hard delete
/// of the organization removes its chain: record it in the platform's.
pub async fn record(
    conn: &mut PgConnection,
    org_id: Option<Uuid>,
    ctx: &AuditContext,
    change: &Change,
) -> Result<(), sqlx::Error> {
    let chain = org_id.map_or(Chain::Platform, Chain::Organization);
    let pending = prepare(
        conn,
        chain,
        "SELECT seq, hash FROM audit.entries
         WHERE coalesce(org_id, '00000000-0000-0000-0000-000000000000'::uuid) = $1
         ORDER BY coalesce(org_id, '00000000-0000-0000-0000-000000000000'::uuid) DESC, seq DESC
         LIMIT 1",
        ctx,
        change,
    )
    .await?;
    // The entry and the chain's head, in one statement.
    pending
        .bind(
            sqlx::query(
                "WITH e AS (
                 INSERT INTO audit.entries (org_id, seq, id, at, actor_kind, actor_id, action,
                     target_kind, target_id, before, after, ip, user_agent, request_id,
                     prev_hash, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::jsonb,
                     $11::text::jsonb, $12, $13, $14, $15, $16)
                 RETURNING org_id, seq, hash)
             INSERT INTO audit.heads (org_id, seq, hash)
             SELECT org_id, seq, hash FROM e
             ON CONFLICT ((coalesce(org_id, '00000000-0000-0000-0000-000000000000'::uuid)))
             DO UPDATE SET seq = excluded.seq, hash = excluded.hash, updated_at = now()",
            ),
            org_id,
        )
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Appends to the tenant-side chain in the tenant's own storage, in its [`TenantTx`]. Holds the
/// chain's lock until the transaction ends.
pub async fn record_in_tenant(
    tx: &mut TenantTx,
    ctx: &AuditContext,
    change: &Change,
) -> Result<(), sqlx::Error> {
    let tenant = tx.tenant_id().as_uuid();
    let pending = prepare(
        tx,
        Chain::Tenant(tenant),
        "SELECT seq, hash FROM audit_log WHERE tenant_id = $1 ORDER BY tenant_id, seq DESC LIMIT 1",
        ctx,
        change,
    )
    .await?;
    pending
        .bind(
            sqlx::query(
                "INSERT INTO audit_log (tenant_id, seq, id, at, actor_kind, actor_id, action,
                 target_kind, target_id, before, after, ip, user_agent, request_id, prev_hash,
                 hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::jsonb, $11::text::jsonb,
                 $12, $13, $14, $15, $16)",
            ),
            Some(tenant),
        )
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// An entry ready to insert: numbered, normalised and hashed.
struct Pending {
    seq: i64,
    id: Uuid,
    at: DateTime<Utc>,
    actor_kind: &'static str,
    actor_id: Option<Uuid>,
    action: &'static str,
    target_kind: &'static str,
    target_id: Option<String>,
    /// `before` and `after` as PostgreSQL's `jsonb` writes them back: what is stored and hashed.
    before: Option<String>,
    after: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    prev_hash: Vec<u8>,
    hash: [u8; 32],
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

impl Pending {
    /// Binds `$1` (the chain's column: `org_id` or `tenant_id`) to `$16`.
    fn bind(self, query: PgQuery<'_>, chain_id: Option<Uuid>) -> PgQuery<'_> {
        query
            .bind(chain_id)
            .bind(self.seq)
            .bind(self.id)
            .bind(self.at)
            .bind(self.actor_kind)
            .bind(self.actor_id)
            .bind(self.action)
            .bind(self.target_kind)
            .bind(self.target_id)
            .bind(self.before)
            .bind(self.after)
            .bind(self.ip)
            .bind(self.user_agent)
            .bind(self.request_id)
            .bind(self.prev_hash)
            .bind(self.hash.to_vec())
    }
}

/// Locks the chain, reads its last entry with `last_sql` (`$1` = the chain's key), has
/// PostgreSQL normalise `before` and `after`, and hashes the next entry.
async fn prepare(
    conn: &mut PgConnection,
    chain: Chain,
    last_sql: &str,
    ctx: &AuditContext,
    change: &Change,
) -> Result<Pending, sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(chain.lock_key())
        .execute(&mut *conn)
        .await?;
    // A statement of its own after the lock, so its snapshot sees the entry committed by
    // whoever held the lock before.
    let (last_seq, last_hash, before, after): (
        Option<i64>,
        Option<Vec<u8>>,
        Option<String>,
        Option<String>,
    ) = sqlx::query_as(&format!(
        "SELECT last.seq, last.hash, $2::text::jsonb::text, $3::text::jsonb::text
         FROM (SELECT 1) AS one LEFT JOIN LATERAL ({last_sql}) AS last ON true"
    ))
    .bind(chain.control_key())
    .bind(change.before.as_ref().map(Value::to_string))
    .bind(change.after.as_ref().map(Value::to_string))
    .fetch_one(&mut *conn)
    .await?;
    let seq = last_seq.unwrap_or(0) + 1;
    let prev_hash = last_hash.unwrap_or_else(|| GENESIS.to_vec());
    let parse = |text: &Option<String>| -> Result<Option<Value>, sqlx::Error> {
        text.as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))
    };
    let (before_value, after_value) = (parse(&before)?, parse(&after)?);
    let ip = clip(ctx.ip.as_deref(), MAX_IP);
    let user_agent = clip(ctx.user_agent.as_deref(), MAX_USER_AGENT);
    let request_id = clip(ctx.request_id.as_deref(), MAX_REQUEST_ID);
    let id = Uuid::now_v7();
    let at = now_micros();
    let link = Link {
        chain,
        seq,
        id,
        at,
        actor_kind: ctx.actor.kind.as_str(),
        actor_id: ctx.actor.id,
        action: change.action.as_str(),
        target_kind: change.target_kind,
        target_id: change.target_id.as_deref(),
        before: before_value.as_ref(),
        after: after_value.as_ref(),
        ip: ip.as_deref(),
        user_agent: user_agent.as_deref(),
        request_id: request_id.as_deref(),
    };
    let hash = link.hash(&prev_hash);
    Ok(Pending {
        seq,
        id,
        at,
        actor_kind: ctx.actor.kind.as_str(),
        actor_id: ctx.actor.id,
        action: change.action.as_str(),
        target_kind: change.target_kind,
        target_id: change.target_id.clone(),
        before,
        after,
        ip,
        user_agent,
        request_id,
        prev_hash,
        hash,
    })
}

/// At most `max` characters of `text`.
fn clip(text: Option<&str>, max: usize) -> Option<String> {
    text.map(|t| match t.char_indices().nth(max) {
        Some((end, _)) => t[..end].to_string(),
        None => t.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_clipped_on_a_character_boundary() {
        assert_eq!(clip(Some("ééé"), 2).as_deref(), Some("éé"));
        assert_eq!(clip(Some("ab"), 2).as_deref(), Some("ab"));
        assert_eq!(clip(None, 2), None);
    }
}
