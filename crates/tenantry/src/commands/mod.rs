//! The commands: each opens the engine through [`crate::backend::Backend`], does its work, and
//! always closes it (letting go of the managed cluster) before returning.

mod migrate;
mod serve;
mod tenant;

use crate::backend::Backend;
use crate::cli::Command;
use crate::settings::Settings;

pub async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    let backend = Backend::open(&settings).await?;
    let result = match command {
        Command::Serve { .. } => serve::run(&settings, &backend.tenancy).await,
        Command::Migrate { jobs, status, json } => {
            let jobs = jobs.unwrap_or(settings.migrate_jobs);
            if status {
                migrate::status(&backend.tenancy, jobs, json).await
            } else {
                migrate::run(&backend.tenancy, jobs, json).await
            }
        }
        Command::Tenant(command) => tenant::run(&backend.tenancy, command).await,
    };
    backend.close().await;
    result
}
