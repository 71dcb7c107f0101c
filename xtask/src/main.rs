//! Project tasks. `cargo xtask test [ARGS]` starts a throwaway PostgreSQL cluster (as an
//! unprivileged user when run as root), runs `cargo test --workspace ARGS` against it, and stops
//! and removes it. With `TENANTRY_TEST_DATABASE_URL` already set, it uses that server instead.

use std::process::{Command, ExitCode};

use anyhow::{Context, bail};
use tenantry_pg::{ClusterOptions, ManagedCluster};

const URL_VAR: &str = "TENANTRY_TEST_DATABASE_URL";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("test") => test(args.collect()),
        _ => bail!("usage: cargo xtask test [ARGS FOR cargo test]"),
    }
}

fn test(args: Vec<String>) -> anyhow::Result<ExitCode> {
    if std::env::var_os(URL_VAR).is_some() {
        return cargo_test(&args, None);
    }
    // A short path: PostgreSQL's socket path must fit in 107 bytes.
    let dir = tempfile::Builder::new()
        .prefix("tenantry-test-")
        .tempdir_in("/tmp")
        .context("failed to create a folder for the test cluster")?;
    eprintln!(
        "xtask: starting a throwaway PostgreSQL in {}",
        dir.path().display()
    );
    let cluster = ManagedCluster::acquire(
        dir.path(),
        &ClusterOptions {
            ephemeral: true,
            max_connections: 500,
            ..ClusterOptions::default()
        },
    )?;
    let url = cluster.superuser_url("postgres");
    let result = cargo_test(&args, Some(&url));
    eprintln!("xtask: stopping the throwaway PostgreSQL");
    cluster.release()?;
    drop(dir);
    result
}

fn cargo_test(args: &[String], url: Option<&str>) -> anyhow::Result<ExitCode> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut command = Command::new(cargo);
    command.arg("test");
    if !args.iter().any(|a| a == "-p" || a.starts_with("--package")) {
        command.arg("--workspace");
    }
    command.args(args);
    if let Some(url) = url {
        command.env(URL_VAR, url);
    }
    let status = command.status().context("failed to run cargo test")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
