//! The PostgreSQL servers database-tier tenants live on.
//!
//! `default` is the server of the control database, reached with the engine's own owner options;
//! shared- and schema-tier tenants always live there. Other servers are added with a URL for a
//! role with CREATEDB and CREATEROLE on them ([`Tenancy::add_server`]); the URL is stored sealed
//! with a key derived from the role-password key, and only its address (the URL without the
//! password) is ever shown. A server marked draining takes no new tenants. The registry row of
//! a tenant names its server; nothing else knows where a tenant lives.
//!
//! Each server has its own connection budget for the database-tier pools of one engine, and its
//! own health: a server that refused a connection is treated as down for a moment, so requests
//! for its tenants fail at once with [`TenancyError::Unavailable`] instead of waiting, while
//! every other server's tenants are served as usual.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;

use crate::engine::{Inner, Tenancy};
use crate::error::TenancyError;
use crate::ids::Isolation;

/// The server of the control database.
pub const DEFAULT_SERVER: &str = "default";

/// How long a server that refused a connection is treated as down before it is tried again.
const DOWN_FOR: Duration = Duration::from_secs(1);

/// What [`Tenancy::add_server`] needs.
#[derive(Clone)]
pub struct NewServer {
    pub name: String,
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE` for a role with CREATEDB and CREATEROLE;
    /// the database is the one connected to for DDL (for example `postgres`).
    pub url: String,
    /// The most connections the tenant pools of one engine may hold there (default: the
    /// engine's `tenant_connection_budget`).
    pub max_connections: Option<u32>,
}

impl std::fmt::Debug for NewServer {
    /// Leaves the URL (and its password) out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewServer")
            .field("name", &self.name)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

/// A server as listed by [`Tenancy::servers`].
#[derive(Debug, Clone, Serialize)]
pub struct ServerInfo {
    pub name: String,
    /// Where it is: the URL without its password.
    pub address: String,
    /// The connection budget of one engine's tenant pools there.
    pub max_connections: u32,
    pub draining: bool,
    /// Tenants placed there (deleted ones aside), by tier.
    pub tenants: BTreeMap<String, i64>,
    /// Connections of tenant roles open there now, from every engine (`None` when unreachable).
    pub connections_in_use: Option<i64>,
    pub reachable: bool,
    /// Why it could not be reached.
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A server as the engine reaches it.
pub(crate) struct Server {
    pub name: String,
    /// The owner role there, connected to a database that exists (for DDL).
    pub owner: PgConnectOptions,
    /// The most connections this engine's tenant pools may hold there.
    pub budget: u32,
    down_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("name", &self.name)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl Server {
    pub fn new(name: &str, owner: PgConnectOptions, budget: u32) -> Self {
        Self {
            name: name.to_string(),
            owner: owner.disable_statement_logging(),
            budget,
            down_until: Mutex::new(None),
        }
    }

    /// Whether a connection was refused a moment ago.
    pub fn is_down(&self) -> bool {
        let mut down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        match *down {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                *down = None;
                false
            }
            None => false,
        }
    }

    pub fn mark_down(&self) {
        *self.down_until.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Instant::now() + DOWN_FOR);
    }
}

/// The servers this engine has reached, by name.
#[derive(Debug, Default)]
pub(crate) struct Servers {
    known: RwLock<HashMap<String, Arc<Server>>>,
}

impl Servers {
    pub fn with_default(server: Server) -> Self {
        let servers = Self::default();
        servers.insert(Arc::new(server));
        servers
    }

    fn get(&self, name: &str) -> Option<Arc<Server>> {
        self.known
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    fn insert(&self, server: Arc<Server>) {
        self.known
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(server.name.clone(), server);
    }
}

/// The sealing context of a server's URL: a sealed URL opens only as its own server's.
fn seal_context(name: &str) -> String {
    format!("server url:{name}")
}

/// The URL without its password.
fn address_of(url: &str) -> anyhow::Result<String> {
    let mut parsed = url::Url::parse(url).context("the server URL is not a URL")?;
    anyhow::ensure!(
        matches!(parsed.scheme(), "postgres" | "postgresql"),
        "the server URL must start with postgres://"
    );
    if parsed.password().is_some() {
        parsed
            .set_password(None)
            .map_err(|()| anyhow::anyhow!("the server URL has no host"))?;
    }
    // A password may also come as a parameter.
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(key, _)| key != "password")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    Ok(parsed.to_string())
}

impl Inner {
    /// The server named `name`, as the registry describes it.
    pub async fn server(&self, name: &str) -> Result<Arc<Server>, TenancyError> {
        if let Some(server) = self.servers.get(name) {
            return Ok(server);
        }
        let row: Option<(Option<Vec<u8>>, Option<i32>)> = sqlx::query_as(
            "SELECT url_sealed, max_connections FROM control.servers WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.runtime)
        .await?;
        let Some((Some(sealed), max_connections)) = row else {
            return Err(TenancyError::Invalid(format!(
                "there is no server {name:?}: `tenantry server list` shows them"
            )));
        };
        let url = self.key.open(&seal_context(name), &sealed)?;
        let owner = PgConnectOptions::from_str(&url)
            .with_context(|| format!("the URL of server {name} does not parse"))?;
        let budget =
            max_connections.map_or(self.pool_config.tenant_connection_budget, |n| n as u32);
        let server = Arc::new(Server::new(name, owner, budget));
        self.servers.insert(server.clone());
        Ok(server)
    }
}

impl Tenancy {
    /// Registers a PostgreSQL server for database-tier tenants, after checking that its URL
    /// connects as a role that may create databases and roles.
    pub async fn add_server(&self, new: &NewServer) -> Result<ServerInfo, TenancyError> {
        let name = new.name.trim();
        if !crate::naming::is_plain_identifier(name) || name.len() > 32 || name == DEFAULT_SERVER {
            return Err(TenancyError::Invalid(format!(
                "{name:?} cannot name a server: use lowercase letters, digits and _ (at most 32), not \"default\""
            )));
        }
        if new.max_connections == Some(0) {
            return Err(TenancyError::Invalid(
                "--max-connections must be at least 1".into(),
            ));
        }
        let address = address_of(&new.url).map_err(|e| TenancyError::Invalid(format!("{e:#}")))?;
        let options = PgConnectOptions::from_str(&new.url)
            .map_err(|e| TenancyError::Invalid(format!("the server URL does not parse: {e}")))?;
        let mut conn = Server::new(name, options, 1)
            .owner
            .connect()
            .await
            .map_err(|e| {
                TenancyError::Invalid(format!(
                    "cannot connect to {address}: {e}; check the URL and that the server is up"
                ))
            })?;
        let (create_db, create_role, superuser): (bool, bool, bool) = sqlx::query_as(
            "SELECT rolcreatedb, rolcreaterole, rolsuper FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&mut conn)
        .await?;
        sqlx::Connection::close(conn).await.ok();
        if !(superuser || (create_db && create_role)) {
            return Err(TenancyError::Invalid(format!(
                "the role of {address} needs CREATEDB and CREATEROLE: ALTER ROLE … CREATEDB CREATEROLE there, then add the server again"
            )));
        }
        let inserted = sqlx::query(
            "INSERT INTO control.servers (name, address, url_sealed, max_connections)
             VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(&address)
        .bind(self.inner.key.seal(&seal_context(name), &new.url))
        .bind(new.max_connections.map(|n| n as i32))
        .execute(&self.inner.owner)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(TenancyError::Invalid(format!(
                "there is a server {name} already"
            )));
        }
        tracing::info!(server = name, %address, "server added");
        self.server_info(name).await
    }

    /// Marks a server as draining (no new tenant is placed there) or takes the mark away.
    pub async fn drain_server(
        &self,
        name: &str,
        draining: bool,
    ) -> Result<ServerInfo, TenancyError> {
        let updated = sqlx::query("UPDATE control.servers SET draining = $2 WHERE name = $1")
            .bind(name)
            .bind(draining)
            .execute(&self.inner.owner)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(TenancyError::NotFound(name.to_string()));
        }
        self.server_info(name).await
    }

    /// The names of the servers.
    async fn servers_named(&self) -> Result<Vec<String>, TenancyError> {
        Ok(
            sqlx::query_scalar("SELECT name FROM control.servers ORDER BY name <> 'default', name")
                .fetch_all(&self.inner.runtime)
                .await?,
        )
    }

    /// Every server, with its tenants by tier, the tenant connections open there (from every
    /// engine) and whether it answers, asked of each server as its owner role: for operators.
    pub async fn servers(&self) -> Result<Vec<ServerInfo>, TenancyError> {
        let names = self.servers_named().await?;
        let mut servers = Vec::with_capacity(names.len());
        for name in names {
            servers.push(self.server_info(&name).await?);
        }
        Ok(servers)
    }

    /// Every server as this engine sees it, without connecting to any as its owner (for a
    /// request): the connections of this engine's tenant pools there, and reachable unless a
    /// connection was refused a moment ago.
    pub async fn servers_seen(&self) -> Result<Vec<ServerInfo>, TenancyError> {
        let names = self.servers_named().await?;
        let mut servers = Vec::with_capacity(names.len());
        for name in names {
            servers.push(self.describe_server(&name, false).await?);
        }
        Ok(servers)
    }

    /// The server, asked as its owner role how many tenant connections it has open.
    pub async fn server_info(&self, name: &str) -> Result<ServerInfo, TenancyError> {
        self.describe_server(name, true).await
    }

    async fn describe_server(&self, name: &str, probe: bool) -> Result<ServerInfo, TenancyError> {
        let row: Option<(String, bool, DateTime<Utc>)> = sqlx::query_as(
            "SELECT address, draining, created_at FROM control.servers WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.inner.runtime)
        .await?;
        let Some((address, draining, created_at)) = row else {
            return Err(TenancyError::NotFound(name.to_string()));
        };
        let tenants: Vec<(String, i64)> = sqlx::query_as(
            "SELECT isolation, count(*) FROM control.tenants
             WHERE server = $1 AND status <> 'deleted' GROUP BY isolation",
        )
        .bind(name)
        .fetch_all(&self.inner.runtime)
        .await?;
        let mut by_tier: BTreeMap<String, i64> =
            [Isolation::Shared, Isolation::Schema, Isolation::Database]
                .iter()
                .map(|tier| (tier.as_str().to_string(), 0))
                .collect();
        by_tier.extend(tenants);
        let server = self.inner.server(name).await?;
        let pattern = format!("{}\\_t\\_%", self.naming().prefix());
        let probe_server = async {
            let mut conn = server.owner.connect().await?;
            let count: i64 =
                sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE usename LIKE $1")
                    .bind(&pattern)
                    .fetch_one(&mut conn)
                    .await?;
            sqlx::Connection::close(conn).await.ok();
            Ok::<_, sqlx::Error>(count)
        };
        let (connections_in_use, error) = if !probe {
            match server.is_down() {
                false => (
                    Some(self.inner.tenant_pools.connections_on(name) as i64),
                    None,
                ),
                true => (None, Some("refused a connection a moment ago".to_string())),
            }
        } else {
            match tokio::time::timeout(Duration::from_secs(5), probe_server).await {
                Ok(Ok(count)) => (Some(count), None),
                Ok(Err(e)) => (None, Some(e.to_string())),
                Err(_) => (None, Some("no answer within 5 s".to_string())),
            }
        };
        Ok(ServerInfo {
            name: name.to_string(),
            address,
            max_connections: server.budget,
            draining,
            tenants: by_tier,
            reachable: connections_in_use.is_some(),
            connections_in_use,
            error,
            created_at,
        })
    }

    /// The server a new database-tier tenant goes to: `named` (which must exist and not be
    /// draining), else the one with the fewest database-tier tenants per connection of its
    /// budget among those not draining.
    pub async fn place(&self, named: Option<&str>) -> Result<String, TenancyError> {
        if let Some(name) = named {
            let draining: Option<bool> =
                sqlx::query_scalar("SELECT draining FROM control.servers WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.inner.owner)
                    .await?;
            return match draining {
                None => Err(TenancyError::Invalid(format!(
                    "there is no server {name:?}: `tenantry server list` shows them"
                ))),
                Some(true) => Err(TenancyError::Invalid(format!(
                    "server {name} is draining and takes no new tenants: name another server, or `tenantry server drain {name} --undo`"
                ))),
                Some(false) => Ok(name.to_string()),
            };
        }
        let loads: Vec<(String, i64, Option<i32>)> = sqlx::query_as(
            "SELECT s.name, count(t.id), s.max_connections
             FROM control.servers s
             LEFT JOIN control.tenants t
                    ON t.server = s.name AND t.isolation = 'database' AND t.status <> 'deleted'
             WHERE NOT s.draining
             GROUP BY s.name, s.max_connections
             ORDER BY s.name",
        )
        .fetch_all(&self.inner.owner)
        .await?;
        let budget = self.inner.pool_config.tenant_connection_budget;
        loads
            .into_iter()
            .min_by(|(_, a, a_max), (_, b, b_max)| {
                let load = |n: i64, max: Option<i32>| n as f64 / max.map_or(budget, |m| m as u32) as f64;
                load(*a, *a_max).total_cmp(&load(*b, *b_max))
            })
            .map(|(name, _, _)| name)
            .ok_or_else(|| {
                TenancyError::Invalid(
                    "every server is draining: add a server, or take the mark away with `tenantry server drain NAME --undo`".into(),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_leave_the_password_out() {
        assert_eq!(
            address_of("postgres://owner:s3cret@db.example:5433/postgres").unwrap(),
            "postgres://owner@db.example:5433/postgres"
        );
        assert_eq!(
            address_of("postgres://o@localhost/postgres?host=/tmp/s&password=x&port=5432").unwrap(),
            "postgres://o@localhost/postgres?host=%2Ftmp%2Fs&port=5432"
        );
        assert!(address_of("mysql://a@b/c").is_err());
        assert!(address_of("not a url").is_err());
    }

    #[test]
    fn a_server_refusing_connections_is_down_for_a_moment() {
        let server = Server::new("b", PgConnectOptions::new(), 4);
        assert!(!server.is_down());
        server.mark_down();
        assert!(server.is_down());
    }
}
