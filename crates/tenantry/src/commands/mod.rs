//! The commands: each opens the engine through [`crate::backend::Backend`], does its work, and
//! always closes it (letting go of the managed cluster) before returning.

mod agent;
mod archive;
mod audit;
mod mail;
mod migrate;
mod moves;
mod serve;
mod server;
mod tenant;
mod user;

use crate::backend::Backend;
use crate::cli::Command;
use crate::settings::Settings;

pub async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    if let Command::Serve { .. } = command {
        // Signals are caught from before PostgreSQL starts, so any of them ends in a clean stop.
        let shutdown = serve::Shutdown::install()?;
        let backend = Backend::open(&settings).await?;
        let supervision = backend.supervise();
        let result = match crate::metrics_token::access(&settings) {
            Ok(metrics) => serve::run(&settings, &backend.tenancy, metrics, &shutdown).await,
            Err(e) => Err(e),
        };
        if let Some(supervision) = supervision {
            supervision.stop().await;
        }
        backend.close().await;
        return result;
    }
    if let Command::Agent(args) = command {
        // An agent reaches a server over HTTP only: no database, no data folder.
        return agent::run(args).await;
    }
    if let Command::Metrics(crate::cli::MetricsCommand::Token) = command {
        if settings.metrics_public {
            eprintln!("note: metrics_public is set, so /metrics asks for no token");
        }
        println!("{}", crate::metrics_token::token(&settings)?);
        return Ok(());
    }
    let backend = Backend::open(&settings).await?;
    let result = match command {
        Command::Serve { .. } | Command::Agent(_) | Command::Metrics(_) => Ok(()),
        Command::Migrate { jobs, status, json } => {
            let jobs = jobs.unwrap_or(settings.migrate_jobs);
            if status {
                migrate::status(&backend.tenancy, jobs, json).await
            } else {
                migrate::run(&backend.tenancy, jobs, json).await
            }
        }
        Command::Tenant(command) => tenant::run(&backend.tenancy, &settings, command).await,
        Command::Server(command) => server::run(&backend.tenancy, command).await,
        Command::User(command) => user::run(&backend.tenancy, &settings, command).await,
        Command::Mail(command) => mail::run(&backend.tenancy, command).await,
        Command::Audit(command) => audit::run(&backend.tenancy, command).await,
    };
    backend.close().await;
    result
}
