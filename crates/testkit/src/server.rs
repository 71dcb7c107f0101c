//! A second PostgreSQL server, for tests of tenants placed over several servers: a throwaway
//! managed cluster of its own (Unix socket only), stopped and removed when dropped.

use std::path::Path;

use tenantry_pg::{ClusterOptions, ManagedCluster, Supervisor};

pub struct SecondServer {
    cluster: Option<ManagedCluster>,
    supervisor: Supervisor,
    dir: Option<tempfile::TempDir>,
}

impl SecondServer {
    /// Creates and starts the cluster (a few seconds: `initdb`).
    pub async fn start() -> Self {
        tokio::task::spawn_blocking(|| {
            // A short path: PostgreSQL's socket path must fit in 107 bytes.
            let dir = tempfile::Builder::new()
                .prefix("tenantry-test-b-")
                .tempdir_in("/tmp")
                .expect("create a folder for the second cluster");
            let cluster = ManagedCluster::acquire(
                dir.path(),
                &ClusterOptions {
                    // Durable: a test kills it and counts on what it acknowledged.
                    ephemeral: false,
                    max_connections: 100,
                    ..ClusterOptions::default()
                },
            )
            .expect("start the second cluster");
            let supervisor = cluster.supervisor();
            Self {
                cluster: Some(cluster),
                supervisor,
                dir: Some(dir),
            }
        })
        .await
        .expect("the second cluster's start")
    }

    /// Its superuser's URL on the `postgres` database, as `tenantry server add` takes it.
    pub fn url(&self) -> String {
        self.cluster().superuser_url("postgres")
    }

    /// Kills every PostgreSQL process of the cluster with SIGKILL, as a crash would.
    pub fn kill(&self) {
        for pid in ManagedCluster::processes(self.data_dir()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        while self.supervisor.is_running() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Starts it again after [`SecondServer::kill`].
    pub async fn restart(&self) {
        let supervisor = self.supervisor.clone();
        tokio::task::spawn_blocking(move || supervisor.restart())
            .await
            .expect("the second cluster's restart")
            .expect("restart the second cluster");
    }

    fn cluster(&self) -> &ManagedCluster {
        self.cluster.as_ref().expect("the cluster is running")
    }

    fn data_dir(&self) -> &Path {
        self.cluster().data_dir()
    }
}

impl Drop for SecondServer {
    fn drop(&mut self) {
        if let Some(cluster) = self.cluster.take() {
            let _ = cluster.release();
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}
