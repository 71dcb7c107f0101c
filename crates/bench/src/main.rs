//! `cargo run --release -p tenantry-bench`: measures what the tenancy engine promises and prints
//! each figure against its target.
//!
//! (a) provisioning time per isolation tier, (b) a no-op fleet migration over 1,000 tenants,
//! (c) a real migration over 500 schema-tier tenants, (d) the cost of the `TenantTx` door against
//! a plain transaction, (e) the cost of a rate-limit check, in process and against Redis, (f)
//! export and import throughput of a tenant with 100,000 monitors, (g) moves of a 100,000-row
//! tenant between every pair of tiers while it is written, (h) the check scheduler's fairness,
//! throughput and overhead, (i) an authenticated read through the HTTP API of a real `tenantry
//! serve`, against the same read sent straight to its PostgreSQL, (k) PgBouncer in transaction
//! mode in front of 500 tenant databases, against direct connections, (l) the engine's pools
//! under round-robin reads of 500 database-tier tenants, against as many shared-tier ones. It starts its own throwaway
//! PostgreSQL (or uses `TENANTRY_BENCH_DATABASE_URL`), `redis-server`, for (i) the release
//! `tenantry` binary on a data folder of its own and for (k) `pgbouncer` when installed, and stops
//! them at the end, also after an error or a Ctrl-C.

mod api;
mod api_ceiling;
mod api_cpu;
mod api_load;
mod api_serve;
mod api_setup;
mod archive;
mod churn;
mod door;
mod door_paths;
mod fairness;
mod machine;
mod migrate;
mod moves;
mod pooler;
mod provisioning;
mod ratelimit;
mod report;
mod seed;
mod setup;
mod stats;

use std::process::ExitCode;

use anyhow::anyhow;

use crate::machine::Machine;
use crate::report::{Row, print_table};
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
    let wanted = setup::only();
    // (i) needs the server binary: looked for before anything starts.
    let api = if wanted('i') {
        Some(api::Options::from_env(setup::quick())?)
    } else {
        None
    };
    // (i) brings its own PostgreSQL (the server's); the others share the benchmark cluster.
    let server = if ENGINE_BENCHMARKS.chars().any(&wanted) {
        Some(Server::start()?)
    } else {
        None
    };
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| {
            let result = runtime.block_on(interruptible(server.as_ref(), &wanted, api.as_ref()));
            // Pools and their connections go away before PostgreSQL is stopped.
            runtime.shutdown_timeout(SHUTDOWN_GRACE);
            result
        });
    let released = server.map_or(Ok(()), Server::release);
    match (result, released) {
        (Ok(()), released) => released,
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(release)) => {
            eprintln!("tenantry-bench: {release:#}");
            Err(e)
        }
    }
}

/// The benchmarks that run on the benchmark's own PostgreSQL.
const ENGINE_BENCHMARKS: &str = "abcdefghkl";

/// Runs the benchmarks until they end or Ctrl-C is pressed.
async fn interruptible(
    server: Option<&Server>,
    wanted: &dyn Fn(char) -> bool,
    api: Option<&api::Options>,
) -> anyhow::Result<()> {
    tokio::select! {
        result = benchmarks(server, wanted, api) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    }
}

async fn benchmarks(
    server: Option<&Server>,
    wanted: &dyn Fn(char) -> bool,
    api: Option<&api::Options>,
) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    if let Some(server) = server {
        rows.extend(engine_benchmarks(server, wanted).await?);
    }
    let mut failure = None;
    if let Some(options) = api {
        let report = api::run(options).await?;
        rows.extend(report.rows);
        failure = report.failure;
    }
    println!();
    println!("Results");
    println!();
    print_table(&rows);
    match failure {
        Some(failure) => Err(anyhow!("benchmark (i) failed: {failure}")),
        None => Ok(()),
    }
}

async fn engine_benchmarks(
    server: &Server,
    wanted: &dyn Fn(char) -> bool,
) -> anyhow::Result<Vec<Row>> {
    let bench = Bench::connect(server).await?;
    bench.print_server().await?;
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
    if wanted('k') {
        rows.extend(pooler::run(&bench).await?);
    }
    if wanted('l') {
        rows.extend(churn::run(&bench).await?);
    }
    Ok(rows)
}
