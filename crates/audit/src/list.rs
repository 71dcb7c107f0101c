//! Reading the trail: an organization's two chains merged newest first ([`list`]), or the
//! platform's ([`list_platform`]), filtered by actor, action and time, one page at a time.

use crate::action::ActionFilter;
use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use tenantry_tenancy::ControlDb;
use tenantry_tenancy::{Tenancy, TenantCtx};
use uuid::Uuid;

use crate::chain::{Chain, format_at};
use crate::context::ActorKind;

/// The largest page; a larger `limit` is lowered to it.
pub const MAX_LIMIT: i64 = 1000;

/// Which chain an entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The organization's control-side chain (members, invitations, keys, plan, lifecycle).
    Organization,
    /// The tenant's own storage (monitors, and other tenant data).
    Tenant,
    /// The platform's chain (platform administrators' actions).
    Platform,
}

/// One audit entry as read back.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Entry {
    pub id: Uuid,
    /// The entry's position in its chain (1, 2, 3...).
    pub seq: i64,
    pub source: Source,
    pub at: DateTime<Utc>,
    pub actor_kind: ActorKind,
    pub actor_id: Option<Uuid>,
    /// For example `member.added`.
    pub action: String,
    pub target_kind: String,
    pub target_id: Option<String>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

/// Which entries, and which page.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Only this actor's (a user's or an API key's id).
    pub actor: Option<Uuid>,
    /// An action exactly, or a family of them (`member.`).
    pub action: Option<ActionFilter>,
    /// Only entries at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// The page size, 1 to [`MAX_LIMIT`] (values outside are brought inside).
    pub limit: i64,
    /// The cursor a previous page returned; opaque.
    pub cursor: Option<String>,
}

impl Default for Filter {
    fn default() -> Self {
        Self {
            actor: None,
            action: None,
            since: None,
            limit: 50,
            cursor: None,
        }
    }
}

/// A cursor this server did not return. [`list`] and [`list_platform`] return it inside their
/// `anyhow::Error`: `error.downcast_ref::<InvalidCursor>()` tells it apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a cursor this server returned")]
pub struct InvalidCursor;

/// Where a page ends: the last entry's `(at, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    at: DateTime<Utc>,
    id: Uuid,
}

impl Cursor {
    fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}|{}", format_at(self.at), self.id))
    }

    fn decode(text: &str) -> Result<Self, InvalidCursor> {
        let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| InvalidCursor)?;
        let raw = String::from_utf8(raw).map_err(|_| InvalidCursor)?;
        let (at, id) = raw.split_once('|').ok_or(InvalidCursor)?;
        Ok(Self {
            at: DateTime::parse_from_rfc3339(at)
                .map_err(|_| InvalidCursor)?
                .with_timezone(&Utc),
            id: id.parse().map_err(|_| InvalidCursor)?,
        })
    }
}

/// An organization's trail, newest first: both chains merged by (at, id), filtered, one page,
/// and the next cursor (`None` on the last page). Reads as the runtime role: the control side
/// from the runtime pool, the tenant side through a [`TenantCtx`] transaction.
pub async fn list(
    tenancy: &Tenancy,
    ctx: &TenantCtx,
    filter: &Filter,
) -> anyhow::Result<(Vec<Entry>, Option<String>)> {
    let query = Query::new(filter)?;
    let org = ctx.tenant_id().as_uuid();
    let mut conn = tenancy
        .control_db()
        .acquire()
        .await
        .context("failed to reach the control database")?;
    let mut entries = query
        .fetch(&mut conn, Chain::Organization(org))
        .await
        .context("failed to read the organization's audit entries")?;
    drop(conn);
    let mut tx = ctx.begin_read().await?;
    entries.extend(
        query
            .fetch(&mut tx, Chain::Tenant(org))
            .await
            .context("failed to read the tenant's audit entries")?,
    );
    tx.commit().await?;
    Ok(query.page(entries))
}

/// The platform's trail, newest first, filtered, one page, and the next cursor.
pub async fn list_platform(
    pool: &ControlDb,
    filter: &Filter,
) -> anyhow::Result<(Vec<Entry>, Option<String>)> {
    let query = Query::new(filter)?;
    let mut conn = pool
        .acquire()
        .await
        .context("failed to reach the control database")?;
    let entries = query
        .fetch(&mut conn, Chain::Platform)
        .await
        .context("failed to read the platform's audit entries")?;
    Ok(query.page(entries))
}

/// A validated [`Filter`].
struct Query<'a> {
    filter: &'a Filter,
    limit: i64,
    cursor: Option<Cursor>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    seq: i64,
    at: DateTime<Utc>,
    actor_kind: String,
    actor_id: Option<Uuid>,
    action: String,
    target_kind: String,
    target_id: Option<String>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
    ip: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
}

impl<'a> Query<'a> {
    fn new(filter: &'a Filter) -> anyhow::Result<Self> {
        let cursor = filter.cursor.as_deref().map(Cursor::decode).transpose()?;
        Ok(Self {
            filter,
            limit: filter.limit.clamp(1, MAX_LIMIT),
            cursor,
        })
    }

    /// Up to `limit + 1` entries of one chain, newest first.
    async fn fetch(&self, conn: &mut PgConnection, chain: Chain) -> anyhow::Result<Vec<Entry>> {
        let from = match chain {
            Chain::Tenant(_) => "audit_log WHERE tenant_id = $1",
            Chain::Organization(_) | Chain::Platform => {
                "audit.entries
                 WHERE coalesce(org_id, '00000000-0000-0000-0000-000000000000'::uuid) = $1"
            }
        };
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT id, seq, at, actor_kind, actor_id, action, target_kind, target_id, before,
                 after, ip, user_agent, request_id
             FROM {from}
               AND ($2::uuid IS NULL OR actor_id = $2)
               AND ($3::text IS NULL OR action = $3
                    OR (right($3, 1) = '.' AND starts_with(action, $3)))
               AND ($4::timestamptz IS NULL OR at >= $4)
               AND ($5::timestamptz IS NULL OR (at, id) < ($5, $6::uuid))
             ORDER BY at DESC, id DESC
             LIMIT $7"
        ))
        .bind(chain.control_key())
        .bind(self.filter.actor)
        .bind(self.filter.action.map(|a| a.as_str()))
        .bind(self.filter.since)
        .bind(self.cursor.map(|c| c.at))
        .bind(self.cursor.map(|c| c.id))
        .bind(self.limit + 1)
        .fetch_all(&mut *conn)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(Entry {
                    actor_kind: ActorKind::parse(&row.actor_kind).with_context(|| {
                        format!("unknown actor kind {:?} in the audit log", row.actor_kind)
                    })?,
                    id: row.id,
                    seq: row.seq,
                    source: chain.source(),
                    at: row.at,
                    actor_id: row.actor_id,
                    action: row.action,
                    target_kind: row.target_kind,
                    target_id: row.target_id,
                    before: row.before,
                    after: row.after,
                    ip: row.ip,
                    user_agent: row.user_agent,
                    request_id: row.request_id,
                })
            })
            .collect()
    }

    /// The newest `limit` of `entries` (from one or more chains), and the cursor after them
    /// when more remain.
    fn page(&self, mut entries: Vec<Entry>) -> (Vec<Entry>, Option<String>) {
        entries.sort_by_key(|e| std::cmp::Reverse((e.at, e.id)));
        let limit = usize::try_from(self.limit).unwrap_or(1);
        if entries.len() <= limit {
            return (entries, None);
        }
        entries.truncate(limit);
        let next = entries
            .last()
            .map(|e| Cursor { at: e.at, id: e.id }.encode());
        (entries, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let cursor = Cursor {
            at: DateTime::from_timestamp_micros(1_700_000_000_000_001).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
        for bad in [
            "",
            "!!!",
            &URL_SAFE_NO_PAD.encode("x|y"),
            &URL_SAFE_NO_PAD.encode("no"),
        ] {
            assert_eq!(Cursor::decode(bad), Err(InvalidCursor), "{bad}");
        }
        let filter = Filter {
            cursor: Some("nope".into()),
            ..Filter::default()
        };
        let err = Query::new(&filter).err().unwrap();
        assert!(err.downcast_ref::<InvalidCursor>().is_some());
    }
}
