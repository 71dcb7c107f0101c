//! `tenantry`: the server and its command line. Sets up logging, loads the settings, and hands
//! over to the command.

mod backend;
mod cli;
mod commands;
mod metrics_token;
mod settings;
mod supervise;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};
use crate::settings::{LogFormat, Overrides, Settings};

/// A request allocates and frees many small objects on both worker threads; mimalloc's per-thread
/// free lists cost a fraction of glibc's arenas there (see BENCHMARKS.md, benchmark (i)).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let listen = match &cli.command {
        Command::Serve { listen } => *listen,
        _ => None,
    };
    let overrides = Overrides {
        data_dir: cli.data_dir.clone(),
        listen,
    };
    let settings = match Settings::load(cli.config.as_deref(), &overrides) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    // The server and the agent log their progress; other commands only warnings.
    let serving = matches!(cli.command, Command::Serve { .. } | Command::Agent(_));
    init_logging(&settings, serving);
    for name in Settings::unknown_variables() {
        tracing::warn!(variable = %name, "unknown environment variable: no setting has this name");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr: the server logs at the configured level, CLI commands only warnings
/// (`RUST_LOG` overrides both).
fn init_logging(settings: &Settings, serving: bool) {
    let default = if serving {
        settings.log.as_str()
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match settings.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
