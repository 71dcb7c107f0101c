//! A throwaway `redis-server` for tests and the benchmark (feature `test-server`): on a free
//! loopback port, in a temporary folder, persisting nothing; it can be stopped and started again
//! on the same port, and is killed when dropped.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

/// How long a started server has to answer `PING`.
const READY_WITHIN: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "redis-server is not installed (Debian: `apt-get install redis-server`; macOS: `brew install redis`)"
    )]
    NotInstalled,
    #[error("redis-server failed: {0}")]
    Failed(String),
}

#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port, and waits until it answers.
    pub async fn start() -> Result<Self, ServerError> {
        let dir = tempfile::Builder::new()
            .prefix("tenantry-redis-")
            .tempdir()
            .map_err(|e| ServerError::Failed(format!("no temporary folder: {e}")))?;
        let mut server = RedisServer {
            port: 0,
            dir,
            child: None,
        };
        // A port found free may be taken before the server binds it: then another is tried.
        let mut tries = 0;
        loop {
            server.port = TcpListener::bind(("127.0.0.1", 0))
                .and_then(|listener| listener.local_addr())
                .map_err(|e| ServerError::Failed(format!("no free port: {e}")))?
                .port();
            tries += 1;
            match server.restart().await {
                Ok(()) => return Ok(server),
                Err(ServerError::Failed(_)) if tries < 5 => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (as a crash would) and waits until it is gone (a few milliseconds).
    pub async fn stop(&mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (stopping it first if it runs), empty.
    pub async fn restart(&mut self) -> Result<(), ServerError> {
        self.stop().await;
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => ServerError::NotInstalled,
                _ => ServerError::Failed(e.to_string()),
            })?;
        self.child = Some(child);
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> Result<(), ServerError> {
        let client =
            redis::Client::open(self.url()).map_err(|e| ServerError::Failed(e.to_string()))?;
        let deadline = tokio::time::Instant::now() + READY_WITHIN;
        loop {
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(ServerError::Failed(format!(
                    "exited at start ({status}); is port {} taken?",
                    self.port
                )));
            }
            let ping = async {
                let mut connection = client.get_multiplexed_async_connection().await?;
                redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
            };
            match tokio::time::timeout(Duration::from_secs(1), ping).await {
                Ok(Ok(_)) => return Ok(()),
                _ if tokio::time::Instant::now() > deadline => {
                    return Err(ServerError::Failed(format!(
                        "no answer on port {} within {} s",
                        self.port,
                        READY_WITHIN.as_secs()
                    )));
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
