//! The `tenantry serve` process benchmark (i) measures: the release binary, started with no
//! configuration on a data folder of its own under `/tmp` and a free loopback port, reached by its
//! HTTP API, by its CLI (which joins the running PostgreSQL) and, for the figures the API does not
//! give, on the managed PostgreSQL's Unix socket. Stopped with SIGTERM, as a user stops it, and its
//! folder removed once no PostgreSQL process works in it any more; also when the benchmark fails
//! or is interrupted (the value is dropped).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sqlx::postgres::PgConnectOptions;
use tempfile::TempDir;

/// Names the `tenantry` binary to run, instead of the one next to this program.
pub const BIN_VAR: &str = "TENANTRY_BENCH_BIN";
/// The managed cluster's port: the number of its socket file in `<data>/run` (it listens on no
/// TCP address).
const PG_PORT: u16 = 5432;
/// Starting includes `initdb` and every migration.
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// One CLI command, joining the running PostgreSQL.
const CLI_TIMEOUT: Duration = Duration::from_secs(120);
/// SIGTERM to exit: the server finishes its requests, then stops PostgreSQL.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// The release `tenantry` binary: `TENANTRY_BENCH_BIN`, else `tenantry` in this program's folder
/// (`target/release` when both were built by `cargo build --release`).
pub fn binary() -> anyhow::Result<PathBuf> {
    let path = match std::env::var_os(BIN_VAR) {
        Some(path) => PathBuf::from(path),
        None => std::env::current_exe()
            .context("failed to find this program's path")?
            .with_file_name("tenantry"),
    };
    ensure!(
        path.is_file(),
        "benchmark (i) runs the server binary, and {} does not exist: build it first with \
         `cargo build --release -p tenantry` (or name one with {BIN_VAR})",
        path.display()
    );
    Ok(path)
}

/// A running `tenantry serve`.
pub struct Serve {
    binary: PathBuf,
    child: Option<Child>,
    /// Holds `data` (the data folder) and `serve.log` (the server's stderr).
    root: Option<TempDir>,
    data: PathBuf,
    log: PathBuf,
    pub addr: SocketAddr,
}

impl Serve {
    /// Starts the server on `127.0.0.1:0` and waits for the address it prints.
    pub async fn start(binary: &Path) -> anyhow::Result<Self> {
        // A short path: PostgreSQL's socket path must fit in 107 bytes.
        let root = tempfile::Builder::new()
            .prefix("tenantry-bench-api-")
            .tempdir_in("/tmp")
            .context("failed to create a folder for the server")?;
        let data = root.path().join("data");
        let log = root.path().join("serve.log");
        let stderr = std::fs::File::create(&log).context("failed to create serve.log")?;
        let mut child = command(binary, root.path(), &data)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("failed to run {}", binary.display()))?;
        let stdout = child.stdout.take();
        let mut serve = Self {
            binary: binary.to_path_buf(),
            child: Some(child),
            root: Some(root),
            data,
            log,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let stdout = stdout.ok_or_else(|| anyhow!("the server's stdout was not captured"))?;
        // The first line is the address; the rest is read and dropped so the pipe never fills.
        let (first_line, line) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = first_line.send(lines.next().transpose());
            for _ in lines {}
        });
        let line = match tokio::time::timeout(START_TIMEOUT, line).await {
            Ok(Ok(Ok(Some(line)))) => line,
            Ok(Ok(Ok(None))) | Ok(Err(_)) => bail!(
                "tenantry serve exited before serving; its log:\n{}",
                serve.log_tail()
            ),
            Ok(Ok(Err(e))) => return Err(e).context("failed to read the server's stdout"),
            Err(_) => bail!(
                "tenantry serve did not serve within {} s; its log:\n{}",
                START_TIMEOUT.as_secs(),
                serve.log_tail()
            ),
        };
        let addr = line
            .strip_prefix("listening on http://")
            .ok_or_else(|| anyhow!("tenantry serve printed {line:?}"))?;
        serve.addr = addr
            .trim()
            .parse()
            .with_context(|| format!("tenantry serve printed {line:?}"))?;
        ensure!(
            serve.addr.ip().is_loopback(),
            "the server listens on {}, not on loopback",
            serve.addr
        );
        Ok(serve)
    }

    /// Runs `tenantry ARGS` on the same data folder (it joins the running PostgreSQL); its
    /// stdout, or an error with its stderr.
    pub async fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let root = self.root()?;
        let mut command = tokio::process::Command::from(command(&self.binary, root, &self.data));
        command.args(args).kill_on_drop(true);
        let output = tokio::time::timeout(CLI_TIMEOUT, command.output())
            .await
            .map_err(|_| anyhow!("`tenantry {}` did not finish", args.join(" ")))?
            .with_context(|| format!("failed to run `tenantry {}`", args.join(" ")))?;
        ensure!(
            output.status.success(),
            "`tenantry {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
        String::from_utf8(output.stdout).context("the CLI printed something that is not UTF-8")
    }

    /// Connection options for `role` and `database` on the managed PostgreSQL's socket (local
    /// connections are trusted; the socket's folder is readable by this user only).
    pub fn pg(&self, role: &str, database: &str) -> anyhow::Result<PgConnectOptions> {
        let socket = std::fs::canonicalize(&self.data)
            .context("failed to find the data folder")?
            .join("run");
        Ok(PgConnectOptions::new()
            .socket(socket)
            .port(PG_PORT)
            .username(role)
            .database(database))
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The data folder (the managed PostgreSQL's processes work in `<data>/pg`).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The last lines the server logged.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Stops the server (SIGTERM) and removes its folder.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.shut_down()
    }

    fn root(&self) -> anyhow::Result<&Path> {
        self.root
            .as_ref()
            .map(TempDir::path)
            .ok_or_else(|| anyhow!("the server's folder is gone"))
    }

    fn shut_down(&mut self) -> anyhow::Result<()> {
        let stopped = match self.child.take() {
            Some(child) => terminate(child),
            None => Ok(()),
        };
        let Some(root) = self.root.take() else {
            return stopped;
        };
        // Removing the folder under a running PostgreSQL would lose its files mid-write.
        let remaining = tenantry_pg::ManagedCluster::processes(&self.data);
        if !remaining.is_empty() {
            let kept = root.keep();
            let error = anyhow!(
                "PostgreSQL processes {remaining:?} still work in {}; the folder is kept",
                kept.display()
            );
            return Err(match stopped {
                Ok(()) => error,
                Err(e) => e.context(error),
            });
        }
        let removed = root.close().context("failed to remove the server's folder");
        stopped.and(removed)
    }
}

/// A benchmark that fails or is interrupted still stops the server and removes its folder.
impl Drop for Serve {
    fn drop(&mut self) {
        if (self.child.is_some() || self.root.is_some())
            && let Err(e) = self.shut_down()
        {
            eprintln!("tenantry-bench: {e:#}");
        }
    }
}

/// `BINARY --data-dir DATA`, run in `root` (no `tenantry.toml` there) with no `TENANTRY_*`
/// variable inherited: the zero-configuration server.
fn command(binary: &Path, root: &Path, data: &Path) -> Command {
    let mut command = Command::new(binary);
    command.current_dir(root).arg("--data-dir").arg(data);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TENANTRY_") {
            command.env_remove(key);
        }
    }
    command
}

/// SIGTERM, then waits for the exit; SIGKILL if it does not come.
fn terminate(mut child: Child) -> anyhow::Result<()> {
    if child.try_wait()?.is_some() {
        bail!("tenantry serve had already exited");
    }
    let pid = Pid::from_raw(i32::try_from(child.id())?);
    kill(pid, Signal::SIGTERM).context("failed to send SIGTERM to the server")?;
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            ensure!(status.success(), "tenantry serve exited with {status}");
            return Ok(());
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "tenantry serve did not exit within {} s of SIGTERM; killed",
                STOP_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
