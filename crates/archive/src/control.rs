//! The organization's control-side rows (registry profile, plan overrides, members,
//! invitations, API keys, API usage, its audit chain): the queries that export them, each
//! naming the columns it takes so that no secret hash can slip in, and the writes that restore
//! what can be restored.

use std::collections::HashMap;

use anyhow::Context;
use serde::Deserialize;
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::manifest::{
    API_KEYS, API_USAGE, AUDIT, INVITATIONS, MEMBERS, ORGANIZATION, PLAN_OVERRIDES,
};

/// Each control-side file and the query giving its lines (`$1` = the organization's id), in
/// archive order. Timestamps come out in UTC: the connection's TimeZone is set so.
pub(crate) const EXPORTS: [(&str, &str); 7] = [
    (
        ORGANIZATION,
        "SELECT jsonb_build_object('name', name, 'slug', slug, 'plan', plan,
                'settings', settings, 'created_at', created_at)::text
         FROM control.tenants WHERE id = $1",
    ),
    (
        PLAN_OVERRIDES,
        "SELECT coalesce((SELECT jsonb_build_object('limits', limits, 'features', features,
                'updated_at', updated_at)
             FROM orgs.plan_overrides WHERE org_id = $1), 'null'::jsonb)::text",
    ),
    (
        MEMBERS,
        "SELECT jsonb_build_object('user_id', u.id, 'email', u.email, 'name', u.name,
                'role', m.role, 'joined_at', m.joined_at)::text
         FROM orgs.memberships m JOIN identity.users u ON u.id = m.user_id
         WHERE m.org_id = $1 ORDER BY m.joined_at, u.id",
    ),
    (
        INVITATIONS,
        "SELECT jsonb_build_object('id', id, 'email', email, 'role', role,
                'invited_by', invited_by, 'created_at', created_at, 'sent_at', sent_at,
                'expires_at', expires_at, 'accepted_at', accepted_at,
                'accepted_by', accepted_by, 'revoked_at', revoked_at)::text
         FROM orgs.invitations WHERE org_id = $1 ORDER BY created_at, id",
    ),
    (
        API_KEYS,
        "SELECT jsonb_build_object('id', id, 'name', name, 'prefix', prefix, 'role', role,
                'created_by', created_by, 'created_at', created_at,
                'last_used_at', last_used_at, 'revoked_at', revoked_at,
                'requests_per_minute', requests_per_minute)::text
         FROM orgs.api_keys WHERE org_id = $1 ORDER BY created_at, id",
    ),
    (
        API_USAGE,
        "SELECT jsonb_build_object('period_start', period_start,
                'api_requests', api_requests)::text
         FROM orgs.api_usage WHERE org_id = $1 ORDER BY period_start",
    ),
    (
        AUDIT,
        "SELECT (to_jsonb(e) - 'org_id')::text FROM audit.entries e
         WHERE org_id = $1 ORDER BY seq",
    ),
];

/// `organization.json`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Profile {
    pub name: String,
    pub plan: String,
    pub settings: Value,
}

/// `plan_overrides.json` (when not `null`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PlanOverrides {
    pub limits: Value,
    pub features: Value,
}

/// A line of `members.jsonl`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct MemberLine {
    pub email: String,
    pub role: String,
    pub joined_at: chrono::DateTime<chrono::Utc>,
}

/// A line of `api_usage.jsonl`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct UsageLine {
    pub period_start: chrono::NaiveDate,
    pub api_requests: i64,
}

/// Whether the plan exists on this server.
pub(crate) async fn plan_exists(conn: &mut PgConnection, plan: &str) -> anyhow::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM orgs.plans WHERE name = $1)")
        .bind(plan)
        .fetch_one(conn)
        .await
        .context("failed to look the plan up")
}

pub(crate) async fn restore_overrides(
    conn: &mut PgConnection,
    org_id: Uuid,
    overrides: &PlanOverrides,
) -> anyhow::Result<()> {
    sqlx::query("INSERT INTO orgs.plan_overrides (org_id, limits, features) VALUES ($1, $2, $3)")
        .bind(org_id)
        .bind(&overrides.limits)
        .bind(&overrides.features)
        .execute(conn)
        .await
        .context("failed to restore the plan overrides")?;
    Ok(())
}

/// Adds the members whose email belongs to a user of this server; returns the emails restored
/// and those skipped (no such user here).
pub(crate) async fn restore_members(
    conn: &mut PgConnection,
    org_id: Uuid,
    members: &[MemberLine],
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let emails: Vec<String> = members.iter().map(|m| m.email.to_lowercase()).collect();
    let users: HashMap<String, Uuid> = sqlx::query_as::<_, (String, Uuid)>(
        "SELECT lower(email), id FROM identity.users WHERE lower(email) = ANY($1)",
    )
    .bind(&emails)
    .fetch_all(&mut *conn)
    .await
    .context("failed to look the members up")?
    .into_iter()
    .collect();
    let (mut restored, mut skipped) = (Vec::new(), Vec::new());
    for member in members {
        match users.get(&member.email.to_lowercase()) {
            Some(user_id) => {
                sqlx::query(
                    "INSERT INTO orgs.memberships (org_id, user_id, role, joined_at)
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(org_id)
                .bind(user_id)
                .bind(&member.role)
                .bind(member.joined_at)
                .execute(&mut *conn)
                .await
                .with_context(|| format!("failed to restore the member {}", member.email))?;
                restored.push(member.email.clone());
            }
            None => skipped.push(member.email.clone()),
        }
    }
    Ok((restored, skipped))
}

pub(crate) async fn restore_usage(
    conn: &mut PgConnection,
    org_id: Uuid,
    usage: &[UsageLine],
) -> anyhow::Result<()> {
    for line in usage {
        sqlx::query(
            "INSERT INTO orgs.api_usage (org_id, period_start, api_requests) VALUES ($1, $2, $3)",
        )
        .bind(org_id)
        .bind(line.period_start)
        .bind(line.api_requests)
        .execute(&mut *conn)
        .await
        .context("failed to restore the API usage")?;
    }
    Ok(())
}

/// Inserts rebuilt control-side audit entries (JSON objects with every column of
/// `audit.entries`) and sets the chain's head to the last one.
pub(crate) async fn restore_audit(
    conn: &mut PgConnection,
    org_id: Uuid,
    entries: &[String],
    head: Option<(i64, Vec<u8>)>,
) -> anyhow::Result<()> {
    const COLUMNS: &str = "id, org_id, seq, at, actor_kind, actor_id, action, target_kind, \
        target_id, before, after, ip, user_agent, request_id, prev_hash, hash";
    for chunk in entries.chunks(1_000) {
        sqlx::query(&format!(
            "INSERT INTO audit.entries ({COLUMNS})
             SELECT {COLUMNS} FROM jsonb_populate_recordset(NULL::audit.entries,
                 (SELECT jsonb_agg(r::jsonb) FROM unnest($1::text[]) AS r))"
        ))
        .bind(chunk)
        .execute(&mut *conn)
        .await
        .context("failed to restore the organization's audit entries")?;
    }
    if let Some((seq, hash)) = head {
        sqlx::query("INSERT INTO audit.heads (org_id, seq, hash) VALUES ($1, $2, $3)")
            .bind(org_id)
            .bind(seq)
            .bind(hash)
            .execute(&mut *conn)
            .await
            .context("failed to set the audit chain's head")?;
    }
    Ok(())
}
