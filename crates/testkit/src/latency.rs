//! A PostgreSQL proxy that delays every answer of the server: latency injected on the server's
//! side of each round trip, so a test can cancel an operation while a particular round trip is
//! on the wire. It listens on a Unix socket of its own and forwards to the test cluster.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

/// A running proxy; stops when dropped.
pub struct LatencyProxy {
    dir: PathBuf,
    port: u16,
    delay_us: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl std::fmt::Debug for LatencyProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyProxy")
            .field("dir", &self.dir)
            .finish()
    }
}

impl LatencyProxy {
    /// Starts a proxy in front of the server `target` points at (its Unix socket).
    pub async fn start(target: &PgConnectOptions) -> Self {
        let socket_dir = target
            .get_socket()
            .expect("the test cluster is reached through a Unix socket")
            .clone();
        let port = target.get_port();
        let upstream = socket_dir.join(format!(".s.PGSQL.{port}"));
        let dir = std::env::temp_dir().join(format!(
            "tt-proxy-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ));
        std::fs::create_dir_all(&dir).expect("create the proxy's socket folder");
        let listener =
            UnixListener::bind(dir.join(format!(".s.PGSQL.{port}"))).expect("bind the proxy");
        let delay_us = Arc::new(AtomicU64::new(0));
        let accept = tokio::spawn(accept_loop(listener, upstream, delay_us.clone()));
        Self {
            dir,
            port,
            delay_us,
            accept,
        }
    }

    /// `options` pointed at the proxy instead of the server.
    pub fn options(&self, options: PgConnectOptions) -> PgConnectOptions {
        options.socket(&self.dir).port(self.port)
    }

    /// Every answer of the server is held this long before it is passed on.
    pub fn set_delay(&self, delay: Duration) {
        self.delay_us
            .store(delay.as_micros() as u64, Ordering::Relaxed);
    }
}

impl Drop for LatencyProxy {
    fn drop(&mut self) {
        self.accept.abort();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

async fn accept_loop(listener: UnixListener, upstream: PathBuf, delay_us: Arc<AtomicU64>) {
    let mut pipes = tokio::task::JoinSet::new();
    while let Ok((client, _)) = listener.accept().await {
        let Ok(server) = UnixStream::connect(&upstream).await else {
            continue;
        };
        let delay_us = delay_us.clone();
        pipes.spawn(async move {
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            let requests = async {
                tokio::io::copy(&mut client_read, &mut server_write)
                    .await
                    .ok();
                server_write.shutdown().await.ok();
            };
            let answers = async {
                let mut buffer = vec![0u8; 64 * 1024];
                loop {
                    let n = match server_read.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let delay = delay_us.load(Ordering::Relaxed);
                    if delay > 0 {
                        tokio::time::sleep(Duration::from_micros(delay)).await;
                    }
                    if client_write.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
                client_write.shutdown().await.ok();
            };
            tokio::join!(requests, answers);
        });
    }
    // The pipes end with the proxy.
    pipes.abort_all();
}

/// Runs `operation`, dropping it at its `pendings`-th await that does not complete at once
/// (`Some(output)` if it finished first, `None` if it was dropped): sweeping `pendings` from 0
/// up reaches every await point of the operation.
pub async fn cancel_at_pending<F: std::future::Future>(
    pendings: usize,
    operation: F,
) -> Option<F::Output> {
    let mut operation = std::pin::pin!(operation);
    let mut left = pendings;
    std::future::poll_fn(move |cx| match operation.as_mut().poll(cx) {
        std::task::Poll::Ready(output) => std::task::Poll::Ready(Some(output)),
        std::task::Poll::Pending if left == 0 => std::task::Poll::Ready(None),
        std::task::Poll::Pending => {
            left -= 1;
            std::task::Poll::Pending
        }
    })
    .await
}
