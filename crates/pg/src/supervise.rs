//! Keeping the cluster up for a process that uses it for long (`serve`): a cheap check that the
//! postmaster still lives, and a restart that clears what a killed one left behind. The loop that
//! calls them lives with the server; everything here blocks, so call it on a blocking thread.

use std::path::Path;

use nix::fcntl::FlockArg;

use crate::cluster::{ClusterError, ManagedCluster, lock};

/// What [`Supervisor::restart`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// PostgreSQL was not running; this process started it.
    Started,
    /// Another process using the data folder had started it again; it is ready.
    AlreadyRunning,
}

/// Watches one managed cluster and starts it again when it died. Cheap to clone; holds no lock.
#[derive(Debug, Clone)]
pub struct Supervisor {
    cluster: std::sync::Arc<ManagedCluster>,
}

impl Supervisor {
    pub(crate) fn new(cluster: ManagedCluster) -> Self {
        Self {
            cluster: std::sync::Arc::new(cluster),
        }
    }

    /// Whether the postmaster named by `postmaster.pid` is alive and working in this cluster.
    /// Reads one file and two links of `/proc`: cheap enough to ask every half second. A killed
    /// postmaster left as a zombie has neither link, so it counts as dead.
    pub fn is_running(&self) -> bool {
        let cluster = &self.cluster;
        let Ok(text) = std::fs::read_to_string(cluster.pgdata.join("postmaster.pid")) else {
            return false;
        };
        let Some(pid) = text
            .lines()
            .next()
            .and_then(|line| line.trim().parse::<i32>().ok())
        else {
            return false;
        };
        works_in(pid, &cluster.pgdata)
    }

    /// Starts PostgreSQL again unless it runs: under the data folder's start lock, so of several
    /// processes noticing the same death one starts it and the others wait for it to be ready.
    /// Orphaned backends and the stale `postmaster.pid` are cleared first.
    pub fn restart(&self) -> Result<Restart, ClusterError> {
        let cluster = &self.cluster;
        let _guard = lock(
            &cluster.owners,
            &cluster.data_dir.join(".cluster.lock"),
            FlockArg::LockExclusive,
        )?;
        if cluster.live_postmaster().is_some() {
            cluster.wait_ready()?;
            return Ok(Restart::AlreadyRunning);
        }
        cluster.start()?;
        Ok(Restart::Started)
    }
}

/// Whether process `pid` is a `postgres` whose working folder is `pgdata`.
fn works_in(pid: i32, pgdata: &Path) -> bool {
    let Ok(pgdata) = std::fs::canonicalize(pgdata) else {
        return false;
    };
    std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == pgdata)
        && std::fs::read_link(format!("/proc/{pid}/exe"))
            .is_ok_and(|exe| exe.file_name().is_some_and(|n| n == "postgres"))
}
