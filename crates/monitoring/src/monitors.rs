//! Monitors: what they check, how often, and their current status. Every query runs inside a
//! `TenantTx`, so it sees the caller's tenant only.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_tenancy::TenantTx;
use uuid::Uuid;

/// What a monitor checks: a URL answering 2xx/3xx (`http`), a URL whose body holds a keyword
/// (`keyword`), a TCP port accepting connections (`tcp`), or pings arriving in time
/// (`heartbeat`). Parsed once where a monitor comes in; an unknown kind is refused there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MonitorKind {
    Http,
    Keyword,
    Tcp,
    Heartbeat,
}

impl MonitorKind {
    pub const ALL: [MonitorKind; 4] = [Self::Http, Self::Keyword, Self::Tcp, Self::Heartbeat];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Keyword => "keyword",
            Self::Tcp => "tcp",
            Self::Heartbeat => "heartbeat",
        }
    }

    /// Whether checks of this kind reach out to a target (every kind but a heartbeat, which is
    /// pinged).
    pub fn has_target(&self) -> bool {
        *self != Self::Heartbeat
    }
}

impl FromStr for MonitorKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not one of http, keyword, tcp, heartbeat"))
    }
}

impl TryFrom<String> for MonitorKind {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for MonitorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Monitor {
    pub id: Uuid,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub kind: MonitorKind,
    #[schema(examples("https://example.com/health", "db.example.com:5432"))]
    pub target: Option<String>,
    #[schema(example = 60)]
    pub interval_seconds: i32,
    #[schema(example = 30)]
    pub timeout_seconds: i32,
    pub keyword: Option<String>,
    pub enabled: bool,
    #[schema(examples("up", "down", "pending"))]
    pub status: String,
    /// Consecutive failed checks that confirm an outage (open an incident), 1 to 10.
    #[schema(minimum = 1, maximum = 10, example = 1)]
    pub confirmations: i32,
    /// When the latest check ran (`null` until the first).
    pub last_checked_at: Option<DateTime<Utc>>,
    /// Heartbeat monitors: when the latest ping arrived (`null` until the first).
    pub last_ping_at: Option<DateTime<Utc>>,
    /// The agent of this organization that runs the checks (`tenantry agent`); `null`: the
    /// servers run them.
    pub agent_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, name, kind, target, interval_seconds, timeout_seconds, keyword, enabled, \
    status, confirmations, last_checked_at, last_ping_at, agent_id, created_at, updated_at";

/// A monitor as a client sends it (create and full update).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitorInput {
    #[schema(min_length = 1, max_length = 200, example = "Homepage")]
    pub name: String,
    #[schema(pattern = "^(http|keyword|tcp|heartbeat)$", example = "http")]
    pub kind: String,
    #[serde(default)]
    #[schema(examples("https://example.com/health", "db.example.com:5432"))]
    pub target: Option<String>,
    #[serde(default)]
    #[schema(minimum = 10, maximum = 86_400, default = 60)]
    pub interval_seconds: Option<i32>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 120, default = 30)]
    pub timeout_seconds: Option<i32>,
    #[serde(default)]
    pub keyword: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Consecutive failed checks that open an incident.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10, default = 1)]
    pub confirmations: Option<i32>,
    /// The agent of this organization that runs the checks (`tenantry agent`, from another
    /// machine); absent or `null`: the servers run them. Not for heartbeat monitors, which are
    /// pinged.
    #[serde(default)]
    pub agent_id: Option<Uuid>,
}

/// A field the input got wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub detail: String,
}

fn invalid(field: &'static str, detail: impl Into<String>) -> Invalid {
    Invalid {
        field,
        detail: detail.into(),
    }
}

/// The shortest interval allowed until plans set their own.
pub const MIN_INTERVAL_SECONDS: i32 = 10;
/// The interval of a monitor created without one.
pub const DEFAULT_INTERVAL_SECONDS: i32 = 60;
const MAX_INTERVAL_SECONDS: i32 = 86_400;
/// Failures that confirm an outage when the input names none.
pub const DEFAULT_CONFIRMATIONS: i32 = 1;
const MAX_CONFIRMATIONS: i32 = 10;

impl MonitorInput {
    /// The monitor's kind, or what is wrong with it.
    pub fn parsed_kind(&self) -> Result<MonitorKind, Invalid> {
        self.kind.parse().map_err(|e: String| invalid("kind", e))
    }

    /// Checks every field against the monitor's kind, and returns the kind.
    pub fn validate(&self) -> Result<MonitorKind, Invalid> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(invalid("name", "1 to 200 characters"));
        }
        let target = self
            .target
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let kind = self.parsed_kind()?;
        match kind {
            MonitorKind::Http | MonitorKind::Keyword => {
                let url = target.ok_or_else(|| invalid("target", "a URL is required"))?;
                check_url(url)?;
                if kind == MonitorKind::Keyword
                    && self.keyword.as_deref().is_none_or(|k| k.is_empty())
                {
                    return Err(invalid("keyword", "required for keyword monitors"));
                }
            }
            MonitorKind::Tcp => {
                check_host_port(target.ok_or_else(|| invalid("target", "host:port is required"))?)?
            }
            MonitorKind::Heartbeat => {
                if target.is_some() {
                    return Err(invalid(
                        "target",
                        "heartbeat monitors have no target: they are pinged",
                    ));
                }
                if self.agent_id.is_some() {
                    return Err(invalid(
                        "agent_id",
                        "heartbeat monitors are pinged: no agent runs them",
                    ));
                }
            }
        }
        if let Some(k) = &self.keyword
            && (k.is_empty() || k.chars().count() > 1000)
        {
            return Err(invalid("keyword", "1 to 1000 characters"));
        }
        let interval = self.interval_seconds.unwrap_or(DEFAULT_INTERVAL_SECONDS);
        if !(MIN_INTERVAL_SECONDS..=MAX_INTERVAL_SECONDS).contains(&interval) {
            return Err(invalid(
                "interval_seconds",
                format!("{MIN_INTERVAL_SECONDS} to {MAX_INTERVAL_SECONDS} seconds"),
            ));
        }
        let timeout = self.timeout_seconds.unwrap_or(30);
        if !(1..=120).contains(&timeout) {
            return Err(invalid("timeout_seconds", "1 to 120 seconds"));
        }
        let confirmations = self.confirmations.unwrap_or(DEFAULT_CONFIRMATIONS);
        if !(1..=MAX_CONFIRMATIONS).contains(&confirmations) {
            return Err(invalid(
                "confirmations",
                format!("1 to {MAX_CONFIRMATIONS} consecutive failures"),
            ));
        }
        Ok(kind)
    }
}

fn check_url(url: &str) -> Result<(), Invalid> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| invalid("target", "an http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || url.len() > 2000 || url.chars().any(char::is_whitespace) {
        return Err(invalid("target", "an http:// or https:// URL with a host"));
    }
    Ok(())
}

fn check_host_port(target: &str) -> Result<(), Invalid> {
    let (host, port) = target
        .rsplit_once(':')
        .ok_or_else(|| invalid("target", "host:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| invalid("target", "a port from 1 to 65535"))?;
    if host.is_empty() || port == 0 || host.chars().any(char::is_whitespace) {
        return Err(invalid("target", "host:port"));
    }
    Ok(())
}

/// Up to `limit` monitors in creation order, after `cursor`.
pub async fn list(
    tx: &mut TenantTx,
    limit: i64,
    cursor: Option<crate::results::After>,
) -> sqlx::Result<Vec<Monitor>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM monitors
         WHERE ($1::timestamptz IS NULL OR (created_at, id) > ($1, $2))
         ORDER BY created_at, id LIMIT $3"
    ))
    .bind(cursor.map(|c| c.at))
    .bind(cursor.map(|c| c.id))
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}

/// Locks the tenant's set of monitors until the transaction ends, so that concurrent creates
/// see one another, and counts it.
pub async fn lock_and_count(tx: &mut TenantTx) -> sqlx::Result<i64> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('tenantry:monitors:' || $1::text, 0))",
    )
    .bind(tx.tenant_id().as_uuid())
    .execute(&mut **tx)
    .await?;
    sqlx::query_scalar("SELECT count(*) FROM monitors")
        .fetch_one(&mut **tx)
        .await
}

pub async fn create(tx: &mut TenantTx, input: &MonitorInput) -> sqlx::Result<Monitor> {
    create_with_id(tx, Uuid::now_v7(), input).await
}

/// [`create`] with an id chosen beforehand (a heartbeat monitor's token is issued for its id
/// before the monitor commits).
pub async fn create_with_id(
    tx: &mut TenantTx,
    id: Uuid,
    input: &MonitorInput,
) -> sqlx::Result<Monitor> {
    sqlx::query_as(&format!(
        "INSERT INTO monitors (tenant_id, id, name, kind, target, interval_seconds, timeout_seconds, keyword, enabled, confirmations, agent_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {COLUMNS}"
    ))
    .bind(tx.tenant_id().as_uuid())
    .bind(id)
    .bind(input.name.trim())
    .bind(&input.kind)
    .bind(input.target.as_deref().map(str::trim).filter(|t| !t.is_empty()))
    .bind(input.interval_seconds.unwrap_or(DEFAULT_INTERVAL_SECONDS))
    .bind(input.timeout_seconds.unwrap_or(30))
    .bind(&input.keyword)
    .bind(input.enabled.unwrap_or(true))
    .bind(input.confirmations.unwrap_or(DEFAULT_CONFIRMATIONS))
    .bind(input.agent_id)
    .fetch_one(&mut **tx)
    .await
}

pub async fn get(tx: &mut TenantTx, id: Uuid) -> sqlx::Result<Option<Monitor>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM monitors WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
}

/// The monitors among `ids` that exist, in no particular order.
pub async fn get_many(tx: &mut TenantTx, ids: &[Uuid]) -> sqlx::Result<Vec<Monitor>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM monitors WHERE id = ANY($1)"
    ))
    .bind(ids)
    .fetch_all(&mut **tx)
    .await
}

pub async fn update(
    tx: &mut TenantTx,
    id: Uuid,
    input: &MonitorInput,
) -> sqlx::Result<Option<Monitor>> {
    sqlx::query_as(&format!(
        "UPDATE monitors SET name = $2, kind = $3, target = $4, interval_seconds = $5,
             timeout_seconds = $6, keyword = $7, enabled = $8, confirmations = $9,
             agent_id = $10, updated_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(input.name.trim())
    .bind(&input.kind)
    .bind(
        input
            .target
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty()),
    )
    .bind(input.interval_seconds.unwrap_or(DEFAULT_INTERVAL_SECONDS))
    .bind(input.timeout_seconds.unwrap_or(30))
    .bind(&input.keyword)
    .bind(input.enabled.unwrap_or(true))
    .bind(input.confirmations.unwrap_or(DEFAULT_CONFIRMATIONS))
    .bind(input.agent_id)
    .fetch_optional(&mut **tx)
    .await
}

pub async fn delete(tx: &mut TenantTx, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM monitors WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(kind: &str, target: Option<&str>) -> MonitorInput {
        MonitorInput {
            name: "m".into(),
            kind: kind.into(),
            target: target.map(Into::into),
            interval_seconds: None,
            timeout_seconds: None,
            keyword: None,
            enabled: None,
            confirmations: None,
            agent_id: None,
        }
    }

    #[test]
    fn good_monitors_validate() {
        assert_eq!(
            input("http", Some("https://example.com/health")).validate(),
            Ok(MonitorKind::Http)
        );
        assert_eq!(
            input("tcp", Some("db.internal:5432")).validate(),
            Ok(MonitorKind::Tcp)
        );
        assert_eq!(
            input("heartbeat", None).validate(),
            Ok(MonitorKind::Heartbeat)
        );
        let mut confirmed = input("heartbeat", None);
        confirmed.confirmations = Some(10);
        assert_eq!(confirmed.validate().map(|_| ()), Ok(()));
        let mut k = input("keyword", Some("http://example.com"));
        k.keyword = Some("OK".into());
        assert_eq!(k.validate().map(|_| ()), Ok(()));
        let mut remote = input("tcp", Some("10.0.0.5:22"));
        remote.agent_id = Some(Uuid::now_v7());
        assert_eq!(remote.validate().map(|_| ()), Ok(()));
    }

    #[test]
    fn bad_monitors_name_the_field() {
        let field = |i: MonitorInput| i.validate().unwrap_err().field;
        assert_eq!(field(input("ping", None)), "kind");
        assert_eq!(field(input("http", None)), "target");
        assert_eq!(field(input("http", Some("ftp://x"))), "target");
        assert_eq!(field(input("tcp", Some("nohost"))), "target");
        assert_eq!(field(input("tcp", Some("h:99999"))), "target");
        assert_eq!(field(input("heartbeat", Some("https://x.io"))), "target");
        assert_eq!(field(input("keyword", Some("https://x.io"))), "keyword");
        let mut fast = input("heartbeat", None);
        fast.interval_seconds = Some(1);
        assert_eq!(field(fast), "interval_seconds");
        let mut blank = input("heartbeat", None);
        blank.name = "  ".into();
        assert_eq!(field(blank), "name");
        let mut pinged_by_an_agent = input("heartbeat", None);
        pinged_by_an_agent.agent_id = Some(Uuid::now_v7());
        assert_eq!(field(pinged_by_an_agent), "agent_id");
        for wrong in [0, 11, -1] {
            let mut many = input("heartbeat", None);
            many.confirmations = Some(wrong);
            assert_eq!(field(many), "confirmations");
        }
    }
}
