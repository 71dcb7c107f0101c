//! Creating, starting, sharing and stopping the managed cluster in a data folder.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use nix::fcntl::{Flock, FlockArg};

use crate::binaries::{FindError, PgBinaries};
use crate::os_user::RunAs;
use crate::ownership::Owners;

/// The port number in the socket file's name; nothing listens on TCP.
pub(crate) const PORT: u16 = 5432;
/// The bootstrap superuser `initdb` creates. Used only to create the application's roles.
pub const SUPERUSER: &str = "postgres";
/// Unix socket paths are limited to 107 bytes on Linux.
const MAX_SOCKET_PATH: usize = 107;

#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Where `initdb`, `pg_ctl` and `postgres` are; searched for when absent.
    pub bindir: Option<PathBuf>,
    /// Trades crash safety for speed (`fsync = off`): for tests and benchmarks only.
    pub ephemeral: bool,
    pub max_connections: u32,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            bindir: None,
            ephemeral: false,
            max_connections: 200,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    NoBinaries(#[from] FindError),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// A running cluster this process uses. Dropping it without [`ManagedCluster::release`] keeps the
/// cluster running for the next user (as a crash would).
#[derive(Debug)]
pub struct ManagedCluster {
    pub(crate) data_dir: PathBuf,
    pub(crate) pgdata: PathBuf,
    pub(crate) socket_dir: PathBuf,
    pub(crate) run_as: RunAs,
    pub(crate) owners: Owners,
    pub(crate) bins: PgBinaries,
    users: Option<Flock<File>>,
    started_here: bool,
}

impl ManagedCluster {
    /// Starts the cluster in `data_dir` (creating it first if needed) unless it already runs, and
    /// registers this process as one of its users.
    pub fn acquire(data_dir: &Path, options: &ClusterOptions) -> Result<Self, ClusterError> {
        let existing_major = std::fs::read_to_string(data_dir.join("pg").join("PG_VERSION"))
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok());
        let bins = PgBinaries::find_for(options.bindir.as_deref(), existing_major)?;
        let run_as = RunAs::detect()?;
        let owners = Owners::new(&run_as);
        owners.refuse_link(data_dir)?;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("failed to create the data folder {}", data_dir.display()))?;
        let data_dir = std::fs::canonicalize(data_dir)
            .with_context(|| format!("failed to resolve {}", data_dir.display()))?;
        let socket_dir = data_dir.join("run");
        let socket_path = socket_dir.join(format!(".s.PGSQL.{PORT}"));
        if socket_path.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(anyhow!(
                "the data folder path {} is too long for PostgreSQL's Unix socket (at most {} \
                 bytes for {}): choose a shorter --data-dir",
                data_dir.display(),
                MAX_SOCKET_PATH,
                socket_path.display()
            )
            .into());
        }
        run_as.check_reachable(&data_dir)?;
        owners.open_dir(&data_dir)?;
        let mut cluster = Self {
            pgdata: data_dir.join("pg"),
            socket_dir,
            data_dir,
            run_as,
            owners,
            bins,
            users: None,
            started_here: false,
        };
        let _guard = lock(
            &cluster.owners,
            &cluster.data_dir.join(".cluster.lock"),
            FlockArg::LockExclusive,
        )?;
        cluster.users = Some(lock(
            &cluster.owners,
            &cluster.data_dir.join(".cluster.users"),
            FlockArg::LockShared,
        )?);
        cluster.prepare_folders()?;
        cluster.owners.refuse_link(&cluster.pgdata)?;
        if !cluster.pgdata.join("PG_VERSION").exists() {
            cluster.initdb()?;
        }
        cluster.owners.open_dir(&cluster.pgdata)?;
        cluster.write_config(options)?;
        match cluster.live_postmaster() {
            Some(pid) => {
                tracing::info!(
                    pid,
                    "using the PostgreSQL already running on this data folder"
                );
                cluster.wait_ready()?;
            }
            None => {
                cluster.start()?;
                cluster.started_here = true;
            }
        }
        Ok(cluster)
    }

    /// Unregisters this process; the last user stops the cluster. Returns whether it stopped.
    pub fn release(mut self) -> Result<bool, ClusterError> {
        let _guard = lock(
            &self.owners,
            &self.data_dir.join(".cluster.lock"),
            FlockArg::LockExclusive,
        )?;
        let Some(users) = self.users.take() else {
            return Ok(false);
        };
        let file = users
            .unlock()
            .map_err(|(_, e)| anyhow!("failed to unlock the cluster users file: {e}"))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(_last) => {
                self.stop()?;
                Ok(true)
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                tracing::info!("PostgreSQL stays up: another process still uses this data folder");
                Ok(false)
            }
            Err((_, e)) => Err(anyhow!("failed to lock the cluster users file: {e}").into()),
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    pub fn port(&self) -> u16 {
        PORT
    }

    /// Whether this process started PostgreSQL, rather than joining a running one.
    pub fn started_here(&self) -> bool {
        self.started_here
    }

    /// A connection URL for the bootstrap superuser over the Unix socket.
    pub fn superuser_url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@localhost/{database}?host={}&port={PORT}",
            percent_encode_path(&self.socket_dir)
        )
    }

    /// The ids of the PostgreSQL processes of this cluster (the postmaster and its children):
    /// `postgres` executables working in its data folder, found through `/proc`. Other programs
    /// that happen to sit in the folder (a shell, `tail`) are not among them.
    pub fn processes(data_dir: &Path) -> Vec<i32> {
        let Ok(pgdata) = std::fs::canonicalize(data_dir.join("pg")) else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == pgdata)
                    && std::fs::read_link(format!("/proc/{pid}/exe"))
                        .is_ok_and(|exe| exe.file_name().is_some_and(|n| n == "postgres"))
            })
            .collect()
    }

    /// A handle that tells whether PostgreSQL still runs and starts it again, for a process that
    /// keeps using the cluster (`serve`). It holds no lock: this value keeps the registration.
    pub fn supervisor(&self) -> crate::Supervisor {
        crate::Supervisor::new(Self {
            data_dir: self.data_dir.clone(),
            pgdata: self.pgdata.clone(),
            socket_dir: self.socket_dir.clone(),
            run_as: self.run_as.clone(),
            owners: self.owners.clone(),
            bins: self.bins.clone(),
            users: None,
            started_here: false,
        })
    }

    /// The postmaster's pid, when `postmaster.pid` names a live process working in this cluster.
    pub(crate) fn live_postmaster(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.pgdata.join("postmaster.pid")).ok()?;
        let pid: i32 = text.lines().next()?.trim().parse().ok()?;
        Self::processes(&self.data_dir)
            .contains(&pid)
            .then_some(pid)
    }

    /// Waits for a postmaster started by another process to report itself ready.
    pub(crate) fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let text =
                std::fs::read_to_string(self.pgdata.join("postmaster.pid")).unwrap_or_default();
            if text.lines().nth(7).is_some_and(|s| s.trim() == "ready") {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "PostgreSQL in {} did not become ready in 120 s",
                    self.pgdata.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Clears what a killed cluster leaves behind: orphaned backends and a stale lock file.
    fn clear_stale_state(&self) -> anyhow::Result<()> {
        let orphans = Self::processes(&self.data_dir);
        for pid in &orphans {
            tracing::warn!(
                pid,
                "stopping a PostgreSQL process left by a killed postmaster"
            );
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Self::processes(&self.data_dir).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let pidfile = self.pgdata.join("postmaster.pid");
        if pidfile.exists() {
            tracing::warn!("removing the stale postmaster.pid of a PostgreSQL that is not running");
            std::fs::remove_file(&pidfile).context("failed to remove the stale postmaster.pid")?;
        }
        let socket_lock = self.socket_dir.join(format!(".s.PGSQL.{PORT}.lock"));
        if socket_lock.exists() {
            std::fs::remove_file(&socket_lock).context("failed to remove the stale socket lock")?;
        }
        Ok(())
    }

    pub(crate) fn start(&self) -> anyhow::Result<()> {
        self.clear_stale_state()?;
        let log = self.data_dir.join("log").join("postgres.log");
        tracing::info!(socket_dir = %self.socket_dir.display(), "starting PostgreSQL");
        let mut last = None;
        for attempt in 0..5 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(500));
                // A postmaster still recovering after a timed-out start is waited for, not killed.
                if self.live_postmaster().is_some() {
                    return self.wait_ready();
                }
                self.clear_stale_state()?;
            }
            let output = self
                .pg_ctl()
                .arg("start")
                .arg("--log")
                .arg(&log)
                .args(["--wait", "--timeout", "120", "--silent"])
                .output()
                .context("failed to run pg_ctl start")?;
            if output.status.success() {
                return Ok(());
            }
            last = Some(output);
        }
        let tail = tail_of(&log, 15);
        let output = last.map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
        bail!(
            "PostgreSQL did not start (see {}):\n{}\n{}",
            log.display(),
            output.unwrap_or_default().trim(),
            tail
        )
    }

    fn stop(&self) -> anyhow::Result<()> {
        if self.live_postmaster().is_none() {
            return Ok(());
        }
        tracing::info!("stopping PostgreSQL");
        let output = self
            .pg_ctl()
            .arg("stop")
            .args(["--mode", "fast", "--wait", "--timeout", "120", "--silent"])
            .output()
            .context("failed to run pg_ctl stop")?;
        check(&output, "pg_ctl stop")
    }

    fn pg_ctl(&self) -> Command {
        let mut command = self.run_as.command(self.bins.tool("pg_ctl"));
        command
            .arg("--pgdata")
            .arg(&self.pgdata)
            .current_dir(&self.data_dir)
            .env("LC_ALL", "C");
        command
    }
}

pub(crate) fn lock(owners: &Owners, path: &Path, how: FlockArg) -> anyhow::Result<Flock<File>> {
    let file = owners.open_file(
        path,
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600),
    )?;
    Flock::lock(file, how).map_err(|(_, e)| anyhow!("failed to lock {}: {e}", path.display()))
}

pub(crate) fn check(output: &Output, what: &str) -> anyhow::Result<()> {
    if output.status.success() {
        return Ok(());
    }
    bail!(
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn tail_of(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn percent_encode_path(path: &Path) -> String {
    path.display()
        .to_string()
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_paths_are_percent_encoded() {
        assert_eq!(
            percent_encode_path(Path::new("/tmp/a b/run")),
            "/tmp/a%20b/run"
        );
    }
}
