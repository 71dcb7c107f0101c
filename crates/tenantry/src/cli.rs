//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tenantry_tenancy::Isolation;

#[derive(Debug, Parser)]
#[command(
    name = "tenantry",
    version,
    about = "Multi-tenant uptime monitoring with provable tenant isolation"
)]
pub struct Cli {
    /// Configuration file (default: ./tenantry.toml when it exists)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data folder holding the managed PostgreSQL (default: ./tenantry-data)
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (starting a managed PostgreSQL when no database URL is set)
    Serve {
        /// HTTP listen address (default: 127.0.0.1:8080)
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Apply pending tenant-schema migrations to the shared schema and every tenant
    Migrate {
        /// Tenants migrated at once
        #[arg(long, value_name = "N")]
        jobs: Option<usize>,
        /// Report each tenant's version and drift instead of migrating
        #[arg(long)]
        status: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Manage tenants
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// The PostgreSQL servers database-tier tenants are placed on
    #[command(subcommand)]
    Server(ServerCommand),
    /// Manage users
    #[command(subcommand)]
    User(UserCommand),
    /// Read the email outbox (and the dev mailbox, when no SMTP server is configured)
    #[command(subcommand)]
    Mail(MailCommand),
    /// Check the hash-chained audit log
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The `/metrics` endpoint's access
    #[command(subcommand)]
    Metrics(MetricsCommand),
    /// Run an organization's checks from this machine: claim the due checks of the monitors
    /// assigned to this agent from a Tenantry server, run them here and post their results
    /// (no database needed; Ctrl-C finishes the running checks and stops)
    Agent(AgentArgs),
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The Tenantry server's URL (https://…; http:// only on a trusted network)
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// The agent's token (`tagt_…`), shown once when the agent was registered
    /// (POST /api/v1/agents); better given as TENANTRY_AGENT_TOKEN, which other users of the
    /// machine cannot read from the process list
    #[arg(
        long,
        value_name = "TOKEN",
        env = "TENANTRY_AGENT_TOKEN",
        hide_env_values = true
    )]
    pub token: String,
    /// Checks run at once
    #[arg(
        long,
        value_name = "N",
        default_value_t = 8,
        value_parser = clap::value_parser!(u16).range(1..=1000)
    )]
    pub workers: u16,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute a tenant's audit chains (or the platform's) and name every altered or missing
    /// entry; exits with status 1 when there is one
    #[command(group(clap::ArgGroup::new("chain").required(true).args(["slug", "platform"])))]
    Verify {
        /// The tenant (slug or id)
        slug: Option<String>,
        /// The platform's own audit log instead of a tenant's
        #[arg(long)]
        platform: bool,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Add a PostgreSQL server for database-tier tenants
    Add {
        /// Its name in the registry (lowercase letters, digits, _)
        name: String,
        /// postgres://USER:PASSWORD@HOST:PORT/postgres for a role with CREATEDB and CREATEROLE
        /// there; stored sealed, never printed. Better given as TENANTRY_SERVER_URL, which other
        /// users of the machine cannot read from the process list
        #[arg(long, env = "TENANTRY_SERVER_URL", hide_env_values = true)]
        url: String,
        /// The most connections one server instance's tenant pools may hold there (default:
        /// the tenant_connection_budget setting)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
        max_connections: Option<u32>,
        #[command(flatten)]
        output: Output,
    },
    /// List the servers: tenants by tier, tenant connections in use, whether each answers
    List {
        #[command(flatten)]
        output: Output,
    },
    /// Place no new tenants on a server (its tenants stay; move them with `tenant move --server`)
    Drain {
        name: String,
        /// Take the mark away: the server takes new tenants again
        #[arg(long)]
        undo: bool,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// List emails, newest first, with their bodies while they are kept
    List {
        /// How many emails to show
        #[arg(
            long,
            value_name = "N",
            default_value_t = 20,
            value_parser = clap::value_parser!(i64).range(1..=10_000)
        )]
        limit: i64,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (for example the first platform admin)
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password: String,
        #[arg(long)]
        name: String,
        /// May use the platform administration API
        #[arg(long)]
        platform_admin: bool,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant (or finish one whose creation was interrupted)
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        slug: String,
        #[arg(long, value_enum)]
        isolation: Tier,
        #[arg(long)]
        plan: Option<String>,
        /// The PostgreSQL server of a database-tier tenant (`tenantry server list`); by default
        /// the least-loaded one that is not draining
        #[arg(long, value_name = "NAME")]
        server: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// List tenants
    List {
        #[command(flatten)]
        output: Output,
    },
    /// Show one tenant
    Show {
        slug: String,
        #[command(flatten)]
        output: Output,
    },
    /// Suspend an active tenant
    Suspend {
        slug: String,
        #[command(flatten)]
        output: Output,
    },
    /// Activate a suspended tenant
    Activate {
        slug: String,
        #[command(flatten)]
        output: Output,
    },
    /// Delete a tenant: restorable, or with --hard everything it owns is removed
    Delete {
        slug: String,
        /// Remove the tenant's database or schema, and every row it owns, for good
        #[arg(long, requires = "confirm")]
        hard: bool,
        /// The slug again, to confirm a hard delete
        #[arg(long, value_name = "SLUG", requires = "hard")]
        confirm: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// Restore a deleted tenant
    Restore {
        slug: String,
        #[command(flatten)]
        output: Output,
    },
    /// Put a tenant on another plan (free, pro, enterprise)
    SetPlan {
        slug: String,
        plan: String,
        #[command(flatten)]
        output: Output,
    },
    /// Move a tenant to another isolation tier while it stays in use (or resume or abandon an
    /// interrupted move)
    Move {
        slug: String,
        /// The tier to move to
        #[arg(
            long,
            value_enum,
            required_unless_present_any = ["abort", "server"],
            conflicts_with = "abort"
        )]
        to: Option<Tier>,
        /// Abandon an interrupted move that has not switched yet
        #[arg(long)]
        abort: bool,
        /// Seconds to keep the old copy after the switch, for reads already in flight
        #[arg(long, default_value_t = 10)]
        drain: u64,
        /// The PostgreSQL server to move a database-tier tenant to (`tenantry server list`);
        /// implies --to database
        #[arg(long, value_name = "NAME", conflicts_with = "abort")]
        server: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// Write an archive (.tar.gz) of everything a tenant owns: its tables, members, plan and
    /// audit trail, never a secret hash
    Export {
        slug: String,
        /// The archive to write (must not exist)
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        output: Output,
    },
    /// Restore an archive into a new tenant of any tier
    Import {
        /// An archive from `tenant export` or the export route
        file: PathBuf,
        /// The new tenant's slug
        #[arg(long)]
        slug: String,
        #[arg(long, value_enum)]
        isolation: Tier,
        /// The new tenant's name (default: the archived one)
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// Override one limit of a tenant's plan: a whole number, or `unlimited`
    SetLimit {
        slug: String,
        /// max_users, max_monitors, max_agents, max_api_keys, min_check_interval_s,
        /// api_requests_per_minute or retention_days
        key: String,
        value: String,
        #[command(flatten)]
        output: Output,
    },
    /// Turn one feature of a tenant's plan on or off for that tenant alone
    SetFeature {
        slug: String,
        /// agents, status_pages, webhook_alerts, email_alerts, audit_log, export or
        /// private_targets (checks and webhooks may reach private addresses despite the SSRF
        /// guard)
        key: String,
        #[arg(value_parser = ["on", "off"])]
        value: String,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum MetricsCommand {
    /// Print the token a Prometheus scraper sends as `Authorization: Bearer <token>` (made now
    /// if the server has not started yet)
    Token,
}

#[derive(Debug, Args, Clone, Copy)]
pub struct Output {
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Tier {
    Shared,
    Schema,
    Database,
}

impl From<Tier> for Isolation {
    fn from(t: Tier) -> Self {
        match t {
            Tier::Shared => Isolation::Shared,
            Tier::Schema => Isolation::Schema,
            Tier::Database => Isolation::Database,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn audit_verify_takes_a_tenant_or_the_platform() {
        let parse =
            |args: &[&str]| Cli::try_parse_from(["tenantry", "audit", "verify"].iter().chain(args));
        assert!(parse(&["acme"]).is_ok());
        assert!(parse(&["--platform", "--json"]).is_ok());
        assert!(parse(&[]).is_err());
        assert!(parse(&["acme", "--platform"]).is_err());
    }

    #[test]
    fn a_hard_delete_needs_a_confirmation() {
        assert!(Cli::try_parse_from(["tenantry", "tenant", "delete", "acme", "--hard"]).is_err());
        assert!(
            Cli::try_parse_from([
                "tenantry",
                "tenant",
                "delete",
                "acme",
                "--hard",
                "--confirm",
                "acme"
            ])
            .is_ok()
        );
    }
}
