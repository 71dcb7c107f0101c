//! Benchmark (i): an authenticated read through the HTTP API of a real `tenantry serve`, against
//! what PostgreSQL can do for the same read.
//!
//! The release server runs with no configuration on a data folder of its own; it gets one
//! organization per isolation tier, each with one monitor and an API key (see `api_setup`). Per
//! tier, 32 keep-alive connections send `GET /api/v1/monitors/{id}` with the key, one request at
//! a time each, for a warm-up and then a measured duration. Right after each tier's HTTP run, its
//! two ceilings run (see `api_ceiling`): the read's door transaction sent straight to the same
//! PostgreSQL by 32 clients, as the role the server's requests use, once as the server sends it
//! and once a round trip per statement, as `pgbench -M prepared` would. They run next to the
//! load because a VM's speed drifts over minutes, and a ratio of two runs minutes apart measures
//! the drift as much as the server.
//!
//! Database transactions per request come from `pg_stat_database`. Each backend flushes its
//! counters at most once a second, and an idle one only after PostgreSQL's idle flush interval
//! (10 s); `pg_stat_force_next_flush()` reaches only the backend that calls it, not the
//! server's. So every count is read after a settling pause longer than that interval, the
//! window of each tier runs from the settled count before its warm-up to the settled count
//! after its ceilings, and the window's transactions less the ceilings' (one per operation,
//! counted by their clients) are divided by every request sent in the window (warm-up
//! included). What the server does meanwhile on its own (the scheduler, the mail sender, the
//! request counters' flush) is measured in an idle window of the same kind before the first run,
//! and that rate is subtracted; the figure before subtraction is printed too.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, ensure};
use futures::future::try_join_all;
use hyper::{Method, StatusCode};

use crate::api_ceiling::{DoorClient, Protocol, TransactionCounter};
use crate::api_cpu::Cpu;
use crate::api_load::{Client, HttpClient, Outcome, drive};
use crate::api_serve::{Serve, binary};
use crate::api_setup::{Org, call, expect};
use crate::report::Row;
use crate::setup::QUICK_VAR;
use crate::stats::{Summary, fmt};

pub const CONNECTIONS_VAR: &str = "TENANTRY_BENCH_HTTP_CONNECTIONS";
pub const WARMUP_VAR: &str = "TENANTRY_BENCH_HTTP_WARMUP";
pub const SECONDS_VAR: &str = "TENANTRY_BENCH_HTTP_SECONDS";
pub const SETTLE_VAR: &str = "TENANTRY_BENCH_HTTP_SETTLE";

const RATIO_TARGET: f64 = 0.6;
const P99_TARGET: Duration = Duration::from_millis(10);
const TRANSACTIONS_TARGET: f64 = 2.0;
/// The owner role of the zero-configuration server, which may read `pg_stat_database` in
/// `postgres`.
const OWNER_ROLE: &str = "tenantry_owner";

/// How the benchmark runs: `TENANTRY_BENCH_HTTP_*`, else the defaults (shorter runs in quick
/// mode).
#[derive(Debug, Clone)]
pub struct Options {
    pub binary: PathBuf,
    pub connections: usize,
    pub warmup: Duration,
    pub measured: Duration,
    /// The pause before each read of the transaction counters.
    pub settle: Duration,
    pub quick: bool,
}

impl Options {
    /// Reads the settings and finds the server binary (before anything else starts, so a
    /// missing binary fails at once).
    pub fn from_env(quick: bool) -> anyhow::Result<Self> {
        let connections = match std::env::var(CONNECTIONS_VAR) {
            Ok(n) => n
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=1_000).contains(n))
                .ok_or_else(|| anyhow!("{CONNECTIONS_VAR} must be a number from 1 to 1000"))?,
            Err(_) => 32,
        };
        Ok(Self {
            binary: binary()?,
            connections,
            warmup: seconds(WARMUP_VAR, if quick { 1.0 } else { 2.0 })?,
            measured: seconds(SECONDS_VAR, if quick { 3.0 } else { 10.0 })?,
            settle: seconds(SETTLE_VAR, 11.0)?,
            quick,
        })
    }
}

fn seconds(var: &str, default: f64) -> anyhow::Result<Duration> {
    let Ok(text) = std::env::var(var) else {
        return Ok(Duration::from_secs_f64(default));
    };
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 600.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| anyhow!("{var} must be a number of seconds from 0 to 600"))
}

/// The rows of the results table, and what went wrong if any request was not answered as
/// expected (the figures are then not to be trusted: the program fails after printing them).
pub struct Report {
    pub rows: Vec<Row>,
    pub failure: Option<String>,
}

pub async fn run(options: &Options) -> anyhow::Result<Report> {
    println!();
    println!(
        "[i] HTTP reads: GET /api/v1/monitors/{{id}} with an API key on {} keep-alive connections, \
         {} s warm-up + {} s per tier; the ceiling: the door transaction straight to PostgreSQL, {} clients",
        options.connections,
        options.warmup.as_secs_f64(),
        options.measured.as_secs_f64(),
        options.connections
    );
    if options.quick {
        println!("    QUICK MODE ({QUICK_VAR}): shorter runs, figures not comparable");
    }
    println!(
        "    server binary: {}{}",
        options.binary.display(),
        built(&options.binary)
    );
    let serve = Serve::start(&options.binary).await?;
    println!("    tenantry serve listening on http://{}", serve.addr);
    let measured = measure(&serve, options).await;
    let failed = match &measured {
        Ok(measured) => measured.wrong() > 0,
        Err(_) => true,
    };
    if failed {
        eprintln!("    the server's log ended with:\n{}", serve.log_tail());
    }
    let stopped = tokio::task::spawn_blocking(move || serve.stop())
        .await
        .context("stopping the server panicked")?;
    let measured = measured?;
    stopped?;
    println!("    the server stopped (SIGTERM) and its folder was removed");
    Ok(report(&measured, options))
}

/// One run of the load, and the CPU it took.
struct Run {
    outcome: Outcome,
    cpu: Cpu,
}

impl Run {
    /// Per operation of both phases: the server's, PostgreSQL's and this program's CPU time.
    fn cpu_line(&self, bench_is: &str) -> String {
        let ops = u32::try_from(self.outcome.warmup_ops + self.outcome.measured_ops)
            .unwrap_or(u32::MAX)
            .max(1);
        format!(
            "server {}, PostgreSQL {}, {bench_is} {}",
            fmt(self.cpu.server / ops),
            fmt(self.cpu.postgres / ops),
            fmt(self.cpu.bench / ops)
        )
    }
}

/// Runs `clients`, reading the CPU used around the run.
async fn timed<C: Client>(
    serve: &Serve,
    clients: Vec<C>,
    options: &Options,
) -> anyhow::Result<Run> {
    let pid = serve
        .pid()
        .ok_or_else(|| anyhow!("the server is not running"))?;
    let before = Cpu::read(pid, serve.data_dir())?;
    let outcome = drive(clients, options.warmup, options.measured).await?;
    let cpu = Cpu::read(pid, serve.data_dir())?.since(&before);
    Ok(Run { outcome, cpu })
}

/// The figures of one tier.
struct Tier {
    org: Org,
    http: Run,
    /// The door's transaction as the server sends it (three round trips).
    ceiling: Run,
    /// The same five statements one round trip each, as `pgbench -M prepared` sends them.
    statements: Run,
    /// Transactions counted in the tier's window per request, before and after taking the
    /// background out.
    transactions_raw: f64,
    transactions: f64,
    /// Requests sent in the window (warm-up included).
    requests: u64,
}

struct Measured {
    tiers: Vec<Tier>,
    /// `GET /healthz`: the HTTP stack and the load generator, without the database.
    healthz: Run,
}

impl Measured {
    fn wrong(&self) -> u64 {
        let tiers: u64 = self
            .tiers
            .iter()
            .map(|t| {
                t.http.outcome.wrong_count()
                    + t.ceiling.outcome.wrong_count()
                    + t.statements.outcome.wrong_count()
            })
            .sum();
        tiers + self.healthz.outcome.wrong_count()
    }
}

async fn measure(serve: &Serve, options: &Options) -> anyhow::Result<Measured> {
    let orgs = crate::api_setup::organizations(serve).await?;
    for org in &orgs {
        let path = format!("/api/v1/monitors/{}", org.monitor);
        let monitor = expect(
            call(serve, Method::GET, &path, Some(&org.key), None).await?,
            StatusCode::OK,
            "read the monitor with the API key",
        )?;
        ensure!(
            monitor["id"] == org.monitor.to_string(),
            "GET {path} answered {monitor}"
        );
        println!(
            "    organization {} ({} tier): database {}, schema {}, requests as {}",
            org.slug, org.tier, org.database, org.schema, org.role
        );
    }

    let mut counter = TransactionCounter::connect(serve.pg(OWNER_ROLE, "postgres")?).await?;
    println!("    the server's {}", counter.server().await?);
    println!(
        "    background: pg_stat_database read after {} s idle, then again {} s later",
        options.settle.as_secs_f64(),
        options.settle.as_secs_f64()
    );
    tokio::time::sleep(options.settle).await;
    let idle_start = counter.read().await?;
    let idle_from = Instant::now();
    tokio::time::sleep(options.settle).await;
    let mut before = counter.read().await?;
    let mut before_at = Instant::now();
    let background =
        (before.total() - idle_start.total()) as f64 / idle_from.elapsed().as_secs_f64();
    println!("    background: {background:.1} transactions/s with no request");

    let mut tiers = Vec::new();
    for org in orgs {
        let path = format!("/api/v1/monitors/{}", org.monitor);
        let clients = try_join_all(
            (0..options.connections).map(|_| HttpClient::connect(serve.addr, &path, &org.key)),
        )
        .await?;
        let http = timed(serve, clients, options).await?;
        // The ceilings run right after the load, on the machine as it is then: a VM's speed
        // drifts over minutes. Their transactions, one per operation, are taken out of the
        // window's count below.
        let ceiling = ceiling_run(serve, options, &org, Protocol::AsServer).await?;
        let statements = ceiling_run(serve, options, &org, Protocol::Statements).await?;
        let ceiling_transactions = [&ceiling, &statements]
            .iter()
            .map(|run| (run.outcome.warmup_ops + run.outcome.measured_ops) as i64)
            .sum::<i64>();
        tokio::time::sleep(options.settle).await;
        let after = counter.read().await?;
        let window = before_at.elapsed().as_secs_f64();
        before_at = Instant::now();
        let requests = http.outcome.warmup_ops + http.outcome.measured_ops;
        let raw = (after.total() - before.total() - ceiling_transactions) as f64;
        let transactions = raw - background * window;
        let by_database: Vec<String> = after
            .since(&before)
            .iter()
            .map(|(db, n)| {
                let n = if *db == org.database {
                    n - ceiling_transactions
                } else {
                    *n
                };
                format!("{db} {:.2}", n as f64 / requests.max(1) as f64)
            })
            .collect();
        println!(
            "    {} tier, HTTP: {:.0} requests/s, {} requests in the window ({} warm-up), {raw:.0} \
             transactions in {window:.1} s besides the ceilings' {ceiling_transactions}, answers \
             other than 200: {}; CPU per request: {}",
            org.tier,
            http.outcome.rate(),
            requests,
            http.outcome.warmup_ops,
            http.outcome.wrong_line(),
            http.cpu_line("load generator")
        );
        println!(
            "    {} tier, transactions per request by database: {}",
            org.tier,
            by_database.join(", ")
        );
        before = after;
        let per = |n: f64| n / (requests.max(1) as f64);
        tiers.push(Tier {
            org,
            http,
            ceiling,
            statements,
            transactions_raw: per(raw),
            transactions: per(transactions),
            requests,
        });
    }
    counter.close().await;

    // The same load on a route that reads nothing: what HTTP and this program cost alone.
    let clients = try_join_all(
        (0..options.connections).map(|_| HttpClient::connect(serve.addr, "/healthz", "none")),
    )
    .await?;
    let healthz = timed(serve, clients, options).await?;
    println!(
        "    GET /healthz: {:.0} requests/s, answers other than 200: {}; CPU per request: {}",
        healthz.outcome.rate(),
        healthz.outcome.wrong_line(),
        healthz.cpu_line("load generator")
    );
    Ok(Measured { tiers, healthz })
}

/// One ceiling run for `org`'s tier: as many clients as the load has connections.
async fn ceiling_run(
    serve: &Serve,
    options: &Options,
    org: &Org,
    protocol: Protocol,
) -> anyhow::Result<Run> {
    let options_for = serve.pg(&org.role, &org.database)?;
    let clients = try_join_all(
        (0..options.connections).map(|_| DoorClient::connect(options_for.clone(), org, protocol)),
    )
    .await?;
    let run = timed(serve, clients, options).await?;
    let form = match protocol {
        Protocol::AsServer => "ceiling",
        Protocol::Statements => "ceiling, a round trip per statement",
    };
    println!(
        "    {} tier, {form}: {:.0} transactions/s as {} in {}, failures: {}; CPU per \
         transaction: {}",
        org.tier,
        run.outcome.rate(),
        org.role,
        org.database,
        run.outcome.wrong_line(),
        run.cpu_line("clients")
    );
    Ok(run)
}

/// `p50 1.23 ms, p99 4.56 ms`.
fn spread(outcome: &Outcome) -> String {
    match Summary::of(&outcome.latencies) {
        Ok(s) => format!("p50 {}, p99 {}", fmt(s.p50), fmt(s.p99)),
        Err(_) => "no answer".to_string(),
    }
}

fn report(measured: &Measured, options: &Options) -> Report {
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let n = options.connections;
    for tier in &measured.tiers {
        let name = format!("(i) {} tier", tier.org.tier);
        let (http, ceiling, statements) = (
            &tier.http.outcome,
            &tier.ceiling.outcome,
            &tier.statements.outcome,
        );
        rows.push(Row::info(
            format!("{name}: GET a monitor with an API key, {n} connections"),
            format!(
                "{:.0} requests/s ({} in {}), {}",
                http.rate(),
                http.measured_ops,
                fmt(http.measured_for),
                spread(http)
            ),
        ));
        rows.push(Row::info(
            format!("{name}: ceiling, the door transaction direct, {n} clients"),
            format!("{:.0} transactions/s, {}", ceiling.rate(), spread(ceiling)),
        ));
        rows.push(Row::info(
            format!("{name}: ceiling, a round trip per statement, {n} clients"),
            format!(
                "{:.0} transactions/s, {}",
                statements.rate(),
                spread(statements)
            ),
        ));
        rows.push(Row::info(
            format!("{name}: CPU per request"),
            tier.http.cpu_line("load generator"),
        ));
        let ratio = http.rate() / statements.rate().max(f64::MIN_POSITIVE);
        rows.push(Row::judged(
            format!("{name}: requests/s ÷ ceiling, a round trip per statement"),
            format!("{ratio:.2}x"),
            &format!(">= {RATIO_TARGET:.1}x"),
            ratio >= RATIO_TARGET,
        ));
        let strict = http.rate() / ceiling.rate().max(f64::MIN_POSITIVE);
        rows.push(Row::info(
            format!("{name}: requests/s ÷ ceiling, the door's round trips"),
            format!("{strict:.2}x"),
        ));
        let p99 = Summary::of(&http.latencies).ok().map(|s| s.p99);
        rows.push(Row::judged(
            format!("{name}: p99 latency"),
            p99.map_or_else(|| "no answer".to_string(), fmt),
            &format!("< {}", fmt(P99_TARGET)),
            p99.is_some_and(|p| p < P99_TARGET),
        ));
        rows.push(Row::judged(
            format!("{name}: database transactions per request"),
            format!(
                "{:.2} ({:.2} with the background)",
                tier.transactions, tier.transactions_raw
            ),
            &format!("<= {TRANSACTIONS_TARGET:.0}"),
            tier.transactions <= TRANSACTIONS_TARGET,
        ));
        let wrong = http.wrong_count();
        rows.push(Row::judged(
            format!("{name}: answers other than 200"),
            format!("{wrong} of {}", tier.requests),
            "0",
            wrong == 0,
        ));
        if wrong > 0 {
            failures.push(format!(
                "{} tier: {wrong} of {} requests not answered 200 ({})",
                tier.org.tier,
                tier.requests,
                http.wrong_line()
            ));
        }
        for run in [ceiling, statements] {
            if run.wrong_count() > 0 {
                failures.push(format!(
                    "{} tier: {} ceiling transactions failed ({})",
                    tier.org.tier,
                    run.wrong_count(),
                    run.wrong_line()
                ));
            }
        }
    }
    let healthz = &measured.healthz;
    rows.push(Row::info(
        format!("(i) diagnostic: GET /healthz (no database), {n} connections"),
        format!(
            "{:.0} requests/s, {}; CPU per request: {}",
            healthz.outcome.rate(),
            spread(&healthz.outcome),
            healthz.cpu_line("load generator")
        ),
    ));
    if healthz.outcome.wrong_count() > 0 {
        failures.push(format!(
            "GET /healthz: {} requests not answered 200 ({})",
            healthz.outcome.wrong_count(),
            healthz.outcome.wrong_line()
        ));
    }
    let failure = (!failures.is_empty()).then(|| {
        let text = failures.join("; ");
        eprintln!();
        eprintln!("!!! BENCHMARK (i) FAILED: {text}. Its figures are not valid.");
        text
    });
    Report { rows, failure }
}

/// ` (modified 2025-01-01 12:00:00 UTC)`, so a stale binary is noticed.
fn built(binary: &std::path::Path) -> String {
    std::fs::metadata(binary)
        .and_then(|m| m.modified())
        .map(|t| {
            let t: chrono::DateTime<chrono::Utc> = t.into();
            format!(" (modified {})", t.format("%Y-%m-%d %H:%M:%S UTC"))
        })
        .unwrap_or_default()
}
