//! `cargo run --release -p tenantry-bench`: measures what the tenancy engine promises and prints
//! each figure against its target.
//!
//! (a) provisioning time per isolation tier, (b) a no-op fleet migration over 1,000 tenants,
//! (c) a real migration over 500 schema-tier tenants, (d) the cost of the `TenantTx` door against
//! a plain transaction, (e) the cost of a rate-limit check, in process and against Redis, (f)
//! export and import throughput of a tenant with 100,000 monitors, (g) moves of a 100,000-row
//! tenant between every pair of tiers while it is written. It
//! starts its own throwaway PostgreSQL (or uses `TENANTRY_BENCH_DATABASE_URL`) and
//! `redis-server`, and stops them at the end, also after an error or a Ctrl-C.

mod archive;
mod door;
mod door_paths;
mod fairness;
mod machine;
mod migrate;
mod moves;
mod provisioning;
mod ratelimit;
mod report;
mod seed;
mod setup;
mod stats;

use std::process::ExitCode;

use anyhow::anyhow;

use crate::machine::Machine;
use crate::report::print_table;
use crate::setup::{Bench, SHUTDOWN_GRACE, Server};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tenantry-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let machine = Machine::detect();
    machine.print();
    let server = Server::start()?;
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| {
            let result = runtime.block_on(interruptible(&server));
            // Pools and their connections go away before PostgreSQL is stopped.
            runtime.shutdown_timeout(SHUTDOWN_GRACE);
            result
        });
    let released = server.release();
    match (result, released) {
        (Ok(()), released) => released,
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(release)) => {
            eprintln!("tenantry-bench: {release:#}");
            Err(e)
        }
    }
}

/// Runs the benchmarks until they end or Ctrl-C is pressed.
async fn interruptible(server: &Server) -> anyhow::Result<()> {
    tokio::select! {
        result = benchmarks(server) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    }
}

async fn benchmarks(server: &Server) -> anyhow::Result<()> {
    let bench = Bench::connect(server).await?;
    bench.print_server().await?;
    let wanted = setup::only();
    let mut rows = Vec::new();
    if wanted('a') {
        rows.extend(provisioning::run(&bench).await?);
    }
    if wanted('b') {
        rows.extend(migrate::noop(&bench).await?);
    }
    if wanted('c') {
        rows.extend(migrate::real(&bench).await?);
    }
    if wanted('d') {
        rows.extend(door::run(&bench).await?);
    }
    if wanted('e') {
        rows.extend(ratelimit::run(&bench.sizes).await?);
    }
    if wanted('f') {
        rows.extend(archive::run(&bench).await?);
    }
    if wanted('g') {
        rows.extend(moves::run(&bench).await?);
    }
    if wanted('h') {
        rows.extend(fairness::run(&bench).await?);
    }
    println!();
    println!("Results");
    println!();
    print_table(&rows);
    Ok(())
}
