//! Project tasks. `cargo xtask test [ARGS]` starts a throwaway PostgreSQL cluster (as an
//! unprivileged user when run as root), runs `cargo test --workspace ARGS` against it (the whole
//! suite as two `cargo test` processes at once, then the tenancy engine's example program), and
//! stops and removes it. With
//! `TENANTRY_TEST_DATABASE_URL` already set, it uses that server instead.
//! `cargo xtask door-lint` checks that only the tenancy engine sets the tenant or reaches its
//! pools (see `door_lint.rs`), and that no query of the tenant schema joins across tenants (see
//! `colocation.rs`). `cargo xtask architecture` checks that every invariant of
//! ARCHITECTURE.md names the tests or lints that enforce it, and that they exist (see
//! `architecture.rs`).

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

mod architecture;
mod colocation;
mod door_lint;

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
        Some("door-lint") => {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .context("xtask has no parent folder")?;
            Ok(if door_lint::run(root)? {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Some("architecture") => {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .context("xtask has no parent folder")?;
            Ok(if architecture::run(root)? {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        _ => bail!(
            "usage: cargo xtask test [ARGS FOR cargo test] | cargo xtask door-lint | cargo xtask architecture"
        ),
    }
}

fn test(args: Vec<String>) -> anyhow::Result<ExitCode> {
    if let Ok(url) = std::env::var(URL_VAR) {
        return cargo_test(&args, None).and_then(|code| run_example(&args, &url, code));
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
    // Ctrl-C reaches cargo test too; this process outlives it to stop PostgreSQL.
    let interrupted = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, interrupted.clone())
        .context("failed to handle SIGINT")?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, interrupted.clone())
        .context("failed to handle SIGTERM")?;
    let result = cargo_test(&args, Some(&url)).and_then(|code| run_example(&args, &url, code));
    eprintln!("xtask: stopping the throwaway PostgreSQL");
    if let Err(e) = cluster.release() {
        // Leave the folder to the PostgreSQL that may still run in it.
        let kept = dir.keep();
        bail!(
            "failed to stop the test PostgreSQL in {}: {e}",
            kept.display()
        );
    }
    drop(dir);
    if interrupted.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    result
}

/// The whole suite runs as two `cargo test` processes at once: the binary's tests (real
/// `tenantry` processes and browsers, mostly waiting on them) beside every other crate's, so
/// the one's waits overlap the other's work. A run naming packages is one process.
const GROUPS: [(&str, &[&str]); 2] = [
    ("the tenantry binary", &["-p", "tenantry"]),
    ("the libraries", &["--workspace", "--exclude", "tenantry"]),
];

fn cargo_test(args: &[String], url: Option<&str>) -> anyhow::Result<ExitCode> {
    let selects = args
        .iter()
        .any(|a| a == "-p" || a.starts_with("--package") || a == "--workspace");
    if selects {
        return run_tests("the selected tests", &[], args, url);
    }
    // Built once, before the groups start, so they do not wait on each other's build.
    let build = Command::new(cargo())
        .args(["test", "--workspace", "--no-run"])
        .args(args.iter().take_while(|a| *a != "--"))
        .status()
        .context("failed to build the tests")?;
    if !build.success() {
        return Ok(ExitCode::FAILURE);
    }
    let results: Vec<anyhow::Result<(bool, Totals, Vec<String>)>> = std::thread::scope(|scope| {
        let runs: Vec<_> = GROUPS
            .iter()
            .map(|(_, select)| scope.spawn(move || group(select, args, url)))
            .collect();
        runs.into_iter()
            .map(|run| {
                run.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a test group panicked")))
            })
            .collect()
    });
    let mut totals = Totals::default();
    let mut success = true;
    for ((name, _), result) in GROUPS.iter().zip(results) {
        let (ok, counted, lines) = result?;
        println!("xtask: the tests of {name}");
        for line in lines {
            println!("{line}");
        }
        totals.merge(&counted);
        success &= ok;
    }
    Ok(summary(&totals, success))
}

/// One `cargo test` run, its output printed as it comes.
fn run_tests(
    name: &str,
    select: &[&str],
    args: &[String],
    url: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let mut command = test_command(select, args, url);
    let mut child = command
        .spawn()
        .with_context(|| format!("failed to run {name}"))?;
    let mut totals = Totals::default();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.context("failed to read cargo test's output")?;
            println!("{line}");
            totals.add(&line);
        }
    }
    let status = child.wait().context("failed to wait for cargo test")?;
    Ok(summary(&totals, status.success()))
}

/// One group of the whole suite, its output kept to be printed once it is done (the progress
/// of each test binary still shows on stderr).
fn group(
    select: &[&str],
    args: &[String],
    url: Option<&str>,
) -> anyhow::Result<(bool, Totals, Vec<String>)> {
    let mut child = test_command(select, args, url)
        .spawn()
        .context("failed to run cargo test")?;
    let (mut totals, mut lines) = (Totals::default(), Vec::new());
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.context("failed to read cargo test's output")?;
            totals.add(&line);
            lines.push(line);
        }
    }
    let status = child.wait().context("failed to wait for cargo test")?;
    Ok((status.success(), totals, lines))
}

fn test_command(select: &[&str], args: &[String], url: Option<&str>) -> Command {
    let mut command = Command::new(cargo());
    // Every test binary runs even when one fails, so one run shows every failure.
    command.arg("test").arg("--no-fail-fast").args(select);
    if select.is_empty() && !args.iter().any(|a| a == "-p" || a.starts_with("--package")) {
        command.arg("--workspace");
    }
    command.args(args);
    if let Some(url) = url {
        command.env(URL_VAR, url);
    }
    command.stdout(Stdio::piped());
    command
}

/// cargo test's own closing line is that of its last binary (often the doc tests, with 0
/// tests); the sum over every binary is printed last.
fn summary(totals: &Totals, success: bool) -> ExitCode {
    println!(
        "summary: {} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.ignored
    );
    for name in &totals.failures {
        println!("failed: {name}");
    }
    if success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// After the whole suite passed: `cargo run -p tenantry-tenancy --example notes`, the engine
/// used as a library with no product crate, against the same server.
fn run_example(args: &[String], url: &str, tests: ExitCode) -> anyhow::Result<ExitCode> {
    if !args.is_empty() || tests != ExitCode::SUCCESS {
        return Ok(tests);
    }
    println!("xtask: running the tenancy engine's example (crates/tenancy/examples/notes.rs)");
    let status = Command::new(cargo())
        .args([
            "run",
            "--quiet",
            "-p",
            "tenantry-tenancy",
            "--example",
            "notes",
            "--",
            url,
        ])
        .status()
        .context("failed to run the example")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        println!("xtask: the example program failed");
        ExitCode::FAILURE
    })
}

/// Test counts summed over the `test result:` lines of every test binary.
#[derive(Debug, Default)]
struct Totals {
    passed: u64,
    failed: u64,
    ignored: u64,
    /// The names of the tests that failed, from libtest's `test NAME ... FAILED` lines.
    failures: Vec<String>,
}

impl Totals {
    fn merge(&mut self, other: &Totals) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.ignored += other.ignored;
        self.failures.extend(other.failures.iter().cloned());
    }

    fn add(&mut self, line: &str) {
        if let Some(name) = line
            .strip_prefix("test ")
            .and_then(|rest| rest.strip_suffix(" ... FAILED"))
        {
            self.failures.push(name.to_owned());
        }
        let Some(rest) = line.strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(['.', ';']) {
            let mut words = part.split_whitespace();
            if let (Some(n), Some(what)) = (words.next(), words.next())
                && let Ok(n) = n.parse::<u64>()
            {
                match what {
                    "passed" => self.passed += n,
                    "failed" => self.failed += n,
                    "ignored" => self.ignored += n,
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Totals;

    #[test]
    fn result_lines_are_summed() {
        let mut totals = Totals::default();
        totals.add("test result: ok. 5 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s");
        totals
            .add("test result: FAILED. 2 passed; 3 failed; 0 ignored; 0 measured; 0 filtered out");
        totals.add("running 5 tests");
        assert_eq!((totals.passed, totals.failed, totals.ignored), (7, 3, 1));
    }
}
