//! `tenantry server add|list|drain`: the PostgreSQL servers database-tier tenants are placed on.
//! The managed cluster (or `TENANTRY_DATABASE_URL`'s server) is the server `default`.

use tenantry_tenancy::{NewServer, ServerInfo, Tenancy, TenancyError};

use crate::cli::ServerCommand;

pub async fn run(tenancy: &Tenancy, command: ServerCommand) -> anyhow::Result<()> {
    match command {
        ServerCommand::Add {
            name,
            url,
            max_connections,
            output,
        } => {
            eprintln!(
                "checking that the server answers and its role may create databases and roles"
            );
            let server = tenancy
                .add_server(&NewServer {
                    name,
                    url,
                    max_connections,
                })
                .await?;
            if output.json {
                println!("{}", serde_json::to_string_pretty(&server)?);
            } else {
                println!(
                    "added server {} ({}); new database-tier tenants may be placed there, or named with `tenant create --server {}`",
                    server.name, server.address, server.name
                );
            }
            Ok(())
        }
        ServerCommand::List { output } => {
            let servers = tenancy.servers().await?;
            if output.json {
                println!("{}", serde_json::to_string_pretty(&servers)?);
            } else {
                print!("{}", render(&servers));
            }
            Ok(())
        }
        ServerCommand::Drain { name, undo, output } => {
            let server = tenancy
                .drain_server(&name, !undo)
                .await
                .map_err(|e| match e {
                    TenancyError::NotFound(name) => anyhow::anyhow!(
                        "there is no server {name:?}: `tenantry server list` shows them"
                    ),
                    other => other.into(),
                })?;
            if output.json {
                println!("{}", serde_json::to_string_pretty(&server)?);
            } else if server.draining {
                println!(
                    "server {} takes no new tenants; its {} database-tier tenants stay until moved (`tenantry tenant move SLUG --server NAME`)",
                    server.name,
                    server.tenants.get("database").copied().unwrap_or(0)
                );
            } else {
                println!("server {} takes new tenants again", server.name);
            }
            Ok(())
        }
    }
}

/// One line per server.
fn render(servers: &[ServerInfo]) -> String {
    let mut out = format!(
        "{:<12} {:<9} {:>7} {:>7} {:>9} {:>14}  {}\n",
        "NAME", "STATE", "SHARED", "SCHEMA", "DATABASE", "CONNECTIONS", "ADDRESS"
    );
    for server in servers {
        let state = match (server.reachable, server.draining) {
            (false, _) => "down",
            (true, true) => "draining",
            (true, false) => "up",
        };
        let count = |tier: &str| server.tenants.get(tier).copied().unwrap_or(0);
        let connections = match server.connections_in_use {
            Some(n) => format!("{n}/{}", server.max_connections),
            None => format!("-/{}", server.max_connections),
        };
        out.push_str(&format!(
            "{:<12} {:<9} {:>7} {:>7} {:>9} {:>14}  {}\n",
            server.name,
            state,
            count("shared"),
            count("schema"),
            count("database"),
            connections,
            server.address
        ));
        if let Some(error) = &server.error {
            out.push_str(&format!("             cannot be reached: {error}\n"));
        }
    }
    out
}
