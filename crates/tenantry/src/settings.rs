//! Typed settings, loaded in layers: defaults < `tenantry.toml` < `TENANTRY_*` environment <
//! command-line flags. Passed explicitly; there is no global configuration.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use tenantry_identity::IdentityConfig;
use tenantry_mail::MailConfig;
use tenantry_tenancy::PoolConfig;

/// A secret whose `Debug` output is redacted.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where the managed PostgreSQL cluster and local state live.
    pub data_dir: PathBuf,
    /// The HTTP listen address of `tenantry serve`.
    pub listen: SocketAddr,
    /// The address users reach the server at: links in emails, and the issuer of access tokens.
    pub public_url: String,
    /// The SMTP server emails go through: `smtp://HOST:PORT` (plain), `smtps://USER:PASS@HOST:465`
    /// (TLS) or `smtp://USER:PASS@HOST:587?tls=required` (STARTTLS). Unset, emails stay in the dev
    /// mailbox, read with `tenantry mail list`.
    pub smtp_url: Option<Secret>,
    /// The `From` of every email.
    pub smtp_from: String,
    /// A Redis (`redis://[USER:PASSWORD@]HOST[:PORT][/DB]`) through which every instance shares
    /// the organizations' `api_requests_per_minute` budgets. Unset, each instance keeps its own
    /// budgets in process; while Redis is unreachable, the same happens.
    pub redis_url: Option<Secret>,
    /// An existing PostgreSQL server for a role with CREATEDB and CREATEROLE; without it the
    /// server runs a managed PostgreSQL in the data folder.
    pub database_url: Option<Secret>,
    /// The control database's name.
    pub control_database: String,
    /// The prefix of every role and tenant database name.
    pub database_prefix: String,
    /// The folder of `initdb`, `pg_ctl` and `postgres` for the managed cluster (searched when unset).
    pub pg_bindir: Option<PathBuf>,
    /// `max_connections` of the managed cluster.
    pub pg_max_connections: u32,
    pub pool_runtime_max: u32,
    /// Door transactions of shared- and schema-tier tenants open at once.
    pub pool_runtime_tx_max: u32,
    pub pool_owner_max: u32,
    /// The most connections all database-tier tenant pools hold together.
    pub tenant_connection_budget: u32,
    pub tenant_pool_max: u32,
    /// Seconds after which an unused database-tier pool is closed.
    pub tenant_pool_idle_seconds: u64,
    /// The longest wait, in seconds, for a pooled connection (a full pool, or a PostgreSQL that
    /// refuses or does not answer); past it a request gets `503 database_unavailable`.
    pub pool_acquire_timeout_seconds: u64,
    /// How many tenants `migrate` works on at once (also at server start).
    pub migrate_jobs: usize,
    /// The most organizations one user may own (0: no cap).
    pub max_organizations_per_user: i64,
    /// Days a soft-deleted organization is kept (restorable) before it is hard-deleted.
    pub deleted_retention_days: u32,
    /// Checks one instance runs at once (its scheduler's workers).
    pub check_workers: usize,
    /// Refuse check and webhook targets in every non-public address range (loopback, private,
    /// link-local, CGNAT, documentation, …) and at this server's own addresses: the SSRF guard.
    /// On by default; a self-hoster who watches their own network turns it off, and a platform
    /// admin can allow private targets to one organization (the `private_targets` feature).
    pub forbid_private_targets: bool,
    /// The token a scraper of `/metrics` sends (`Authorization: Bearer …`). Unset, one is
    /// generated at first start and kept in the data folder (`metrics-token`, mode 0600);
    /// `tenantry metrics token` prints it.
    pub metrics_token: Option<Secret>,
    /// Serve `/metrics` to anyone, without a token (for a server whose port only the scraper
    /// reaches).
    pub metrics_public: bool,
    /// Log filter, in `tracing` syntax (for example `info` or `tenantry=debug,info`).
    pub log: String,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./tenantry-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: "http://127.0.0.1:8080".to_string(),
            smtp_url: None,
            smtp_from: "Tenantry <no-reply@localhost>".to_string(),
            redis_url: None,
            database_url: None,
            control_database: "tenantry".to_string(),
            database_prefix: "tenantry".to_string(),
            pg_bindir: None,
            pg_max_connections: 200,
            pool_runtime_max: 20,
            pool_runtime_tx_max: PoolConfig::default_runtime_tx_max(),
            pool_owner_max: 8,
            tenant_connection_budget: 64,
            tenant_pool_max: 4,
            tenant_pool_idle_seconds: 300,
            pool_acquire_timeout_seconds: 3,
            migrate_jobs: 4,
            max_organizations_per_user: tenantry_orgs::DEFAULT_ORGANIZATION_CAP,
            deleted_retention_days: 30,
            check_workers: 32,
            forbid_private_targets: true,
            metrics_token: None,
            metrics_public: false,
            log: "info,sqlx=warn".to_string(),
            log_format: LogFormat::Text,
        }
    }
}

/// Environment variables with the prefix that are not settings but known all the same.
const OTHER_VARIABLES: &[&str] = &[
    "CONFIG",
    "TEST_DATABASE_URL",
    "BENCH_DATABASE_URL",
    "AGENT_TOKEN",
];

/// Settings given on the command line; `None` leaves the lower layers' value.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
}

impl Settings {
    /// Loads the layers. `config` is the file named by `--config`; otherwise `TENANTRY_CONFIG`,
    /// otherwise `./tenantry.toml` when it exists.
    pub fn load(config: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let file = config
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("TENANTRY_CONFIG").map(PathBuf::from));
        let known = known_keys();
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        match &file {
            Some(path) => {
                anyhow::ensure!(
                    path.exists(),
                    "the configuration file {} does not exist",
                    path.display()
                );
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file("tenantry.toml")),
        }
        let settings: Settings = figment
            .merge(
                Env::prefixed("TENANTRY_")
                    .only(&known.iter().map(String::as_str).collect::<Vec<_>>()),
            )
            .merge(Serialized::globals(overrides))
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        Ok(settings)
    }

    /// `TENANTRY_*` variables that name no setting: probably typos.
    pub fn unknown_variables() -> Vec<String> {
        let known: Vec<String> = known_keys().iter().map(|k| k.to_uppercase()).collect();
        std::env::vars()
            .filter_map(|(k, _)| k.strip_prefix("TENANTRY_").map(str::to_owned))
            .filter(|k| !known.contains(k) && !OTHER_VARIABLES.contains(&k.as_str()))
            .map(|k| format!("TENANTRY_{k}"))
            .collect()
    }

    pub fn identity(&self) -> IdentityConfig {
        IdentityConfig {
            issuer: self.public_url.trim_end_matches('/').to_string(),
            ..IdentityConfig::default()
        }
    }

    /// The cap on organizations per user, `None` for none.
    pub fn organization_cap(&self) -> Option<i64> {
        (self.max_organizations_per_user > 0).then_some(self.max_organizations_per_user)
    }

    pub fn mail(&self) -> MailConfig {
        MailConfig {
            smtp_url: self.smtp_url.as_ref().map(|url| url.expose().to_string()),
            from: self.smtp_from.clone(),
        }
    }

    pub fn pools(&self) -> PoolConfig {
        PoolConfig {
            runtime_max: self.pool_runtime_max,
            runtime_tx_max: self.pool_runtime_tx_max,
            owner_max: self.pool_owner_max,
            tenant_connection_budget: self.tenant_connection_budget,
            per_tenant_max: self.tenant_pool_max,
            tenant_pool_idle: Duration::from_secs(self.tenant_pool_idle_seconds),
            acquire_timeout: Duration::from_secs(self.pool_acquire_timeout_seconds.max(1)),
        }
    }
}

impl Settings {
    /// The check runners' settings: the SSRF guard, and room for every worker's check.
    pub fn checker(&self) -> tenantry_monitoring::checks::CheckerConfig {
        let defaults = tenantry_monitoring::checks::CheckerConfig::default();
        tenantry_monitoring::checks::CheckerConfig {
            forbid_private_targets: self.forbid_private_targets,
            max_in_flight: defaults.max_in_flight.max(self.check_workers),
            ..defaults
        }
    }

    pub fn scheduler(&self) -> tenantry_monitoring::scheduler::SchedulerConfig {
        let workers = self.check_workers.max(1);
        tenantry_monitoring::scheduler::SchedulerConfig {
            workers,
            prefetch: workers.div_ceil(2),
            ..Default::default()
        }
    }
}

/// The names of the settings, as in the file (lowercase).
fn known_keys() -> Vec<String> {
    serde_json::to_value(Settings::default())
        .ok()
        .and_then(|v| v.as_object().map(|o| o.keys().cloned().collect()))
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail closures return figment::Error
mod tests {
    use super::*;

    #[test]
    fn layers_override_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "tenantry.toml",
                "listen = \"127.0.0.1:9000\"\nmigrate_jobs = 2\nlog = \"debug\"",
            )?;
            jail.set_env("TENANTRY_MIGRATE_JOBS", "3");
            let settings =
                Settings::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(settings.listen.port(), 9000);
            assert_eq!(settings.migrate_jobs, 3);
            assert_eq!(settings.log, "debug");
            assert_eq!(settings.control_database, "tenantry");
            let flags = Overrides {
                listen: Some(SocketAddr::from(([127, 0, 0, 1], 9100))),
                data_dir: Some(PathBuf::from("/srv/t")),
            };
            let settings = Settings::load(None, &flags).map_err(|e| e.to_string())?;
            assert_eq!(settings.listen.port(), 9100);
            assert_eq!(settings.data_dir, PathBuf::from("/srv/t"));
            Ok(())
        });
    }

    #[test]
    fn a_typo_in_the_file_is_an_error_and_in_the_environment_a_warning() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("tenantry.toml", "lisen = \"127.0.0.1:9000\"")?;
            assert!(Settings::load(None, &Overrides::default()).is_err());
            jail.create_file("tenantry.toml", "")?;
            jail.set_env("TENANTRY_LISTN", "x");
            assert!(Settings::unknown_variables().contains(&"TENANTRY_LISTN".to_string()));
            Ok(())
        });
    }

    #[test]
    fn the_redis_url_comes_from_the_environment_and_is_redacted() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TENANTRY_REDIS_URL", "redis://:hunter2@cache.internal:6379");
            let settings =
                Settings::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(
                settings.redis_url.as_ref().map(Secret::expose),
                Some("redis://:hunter2@cache.internal:6379")
            );
            assert!(!format!("{settings:?}").contains("hunter2"));
            assert!(!Settings::unknown_variables().contains(&"TENANTRY_REDIS_URL".to_string()));
            Ok(())
        });
    }

    #[test]
    fn the_database_url_is_redacted() {
        let s = Settings {
            database_url: Some(Secret("postgres://u:hunter2@h/db".into())),
            ..Settings::default()
        };
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn the_smtp_settings_come_from_the_environment_and_the_url_is_redacted() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TENANTRY_SMTP_URL", "smtps://u:hunter2@mail.example.com");
            jail.set_env("TENANTRY_SMTP_FROM", "Acme <ops@example.com>");
            let settings =
                Settings::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            let mail = settings.mail();
            assert_eq!(
                mail.smtp_url.as_deref(),
                Some("smtps://u:hunter2@mail.example.com")
            );
            assert_eq!(mail.from, "Acme <ops@example.com>");
            assert!(!format!("{settings:?}").contains("hunter2"));
            assert!(
                !Settings::unknown_variables()
                    .iter()
                    .any(|v| v.starts_with("TENANTRY_SMTP"))
            );
            Ok(())
        });
    }
}
