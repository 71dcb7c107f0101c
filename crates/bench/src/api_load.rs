//! The load of benchmark (i): a fixed number of clients, each sending one operation at a time
//! for a warm-up and then a measured duration, and an HTTP/1.1 client for them that keeps one
//! connection alive per client.
//!
//! The same driver runs the HTTP clients and the ceiling's database clients, so both are timed
//! alike: an operation belongs to the phase in which it started, every client finishes the
//! operation it has in flight when the time is up (no request is cancelled), and the measured
//! rate is the measured operations over the time from the end of the warm-up to the last of them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long one operation may take before it counts as failed (and its connection is replaced):
/// keeps a stuck server from stretching the benchmark.
pub const OP_TIMEOUT: Duration = Duration::from_secs(10);

/// What one operation came to.
#[derive(Debug)]
pub enum Answer {
    /// What the benchmark expects (`200` with the monitor, or the monitor's row).
    Ok,
    /// Something else was answered, named (`status 500`, `no row`). The connection stays.
    Wrong(String),
    /// The operation failed (the connection broke, the query failed); the client reconnects.
    Failed(String),
}

/// One client of the load: one connection, one operation at a time.
pub trait Client: Send + 'static {
    fn op(&mut self) -> impl Future<Output = Answer> + Send;
    /// Forgets the connection after an operation was abandoned half-way (a timeout); the next
    /// operation opens a new one.
    fn reset(&mut self);
}

/// What the clients did in one run.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Operations started during the warm-up, whatever they answered.
    pub warmup_ops: u64,
    /// Operations started after the warm-up, whatever they answered.
    pub measured_ops: u64,
    /// The latency of every measured operation answered as expected.
    pub latencies: Vec<Duration>,
    /// Measured and warm-up operations not answered as expected, by what they got.
    pub wrong: BTreeMap<String, u64>,
    /// From the end of the warm-up to the end of the last measured operation.
    pub measured_for: Duration,
}

impl Outcome {
    /// Measured operations per second.
    pub fn rate(&self) -> f64 {
        self.measured_ops as f64 / self.measured_for.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// Operations not answered as expected, in both phases.
    pub fn wrong_count(&self) -> u64 {
        self.wrong.values().sum()
    }

    /// `none`, or `12 × status 500, 1 × timeout`.
    pub fn wrong_line(&self) -> String {
        if self.wrong.is_empty() {
            return "none".to_string();
        }
        let parts: Vec<String> = self
            .wrong
            .iter()
            .map(|(what, n)| format!("{n} × {what}"))
            .collect();
        parts.join(", ")
    }
}

/// Runs every client for `warmup`, then for `measured`; returns when all have finished.
pub async fn drive<C: Client>(
    clients: Vec<C>,
    warmup: Duration,
    measured: Duration,
) -> anyhow::Result<Outcome> {
    let start = Instant::now();
    let warm_until = start + warmup;
    let until = warm_until + measured;
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| tokio::spawn(one_client(client, warm_until, until)))
        .collect();
    let mut outcome = Outcome::default();
    let mut last_end = warm_until;
    for task in tasks {
        let part = task.await.context("a load client panicked")?;
        outcome.warmup_ops += part.warmup_ops;
        outcome.measured_ops += part.measured_ops;
        outcome.latencies.extend(part.latencies);
        for (what, n) in part.wrong {
            *outcome.wrong.entry(what).or_default() += n;
        }
        last_end = last_end.max(part.last_end);
    }
    outcome.measured_for = last_end - warm_until;
    Ok(outcome)
}

struct ClientResult {
    warmup_ops: u64,
    measured_ops: u64,
    latencies: Vec<Duration>,
    wrong: BTreeMap<String, u64>,
    last_end: Instant,
}

async fn one_client<C: Client>(mut client: C, warm_until: Instant, until: Instant) -> ClientResult {
    let mut result = ClientResult {
        warmup_ops: 0,
        measured_ops: 0,
        // Room for a few thousand operations a second, so the vector rarely grows mid-run.
        latencies: Vec::with_capacity(
            (until.saturating_duration_since(warm_until).as_secs() as usize + 1) * 2_000,
        ),
        wrong: BTreeMap::new(),
        last_end: warm_until,
    };
    loop {
        let began = Instant::now();
        if began >= until {
            break;
        }
        let measured = began >= warm_until;
        let answer = match tokio::time::timeout(OP_TIMEOUT, client.op()).await {
            Ok(answer) => answer,
            Err(_) => {
                client.reset();
                Answer::Failed(format!("no answer within {} s", OP_TIMEOUT.as_secs()))
            }
        };
        let ended = Instant::now();
        if measured {
            result.measured_ops += 1;
            result.last_end = ended;
        } else {
            result.warmup_ops += 1;
        }
        match answer {
            Answer::Ok if measured => result.latencies.push(ended - began),
            Answer::Ok => {}
            Answer::Wrong(what) | Answer::Failed(what) => {
                *result.wrong.entry(what).or_default() += 1;
            }
        }
    }
    result
}

/// An HTTP/1.1 connection to the server on loopback, opened by hand so that each client has
/// exactly one and a broken one is seen (not silently replaced by a pool).
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("failed to connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("failed to start HTTP/1.1 on the connection")?;
        // Drives the connection; ends when `sender` is dropped or the server closes it.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self { sender })
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        self.sender
            .ready()
            .await
            .context("the connection was closed")?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// A request to the server at `addr`, with a bearer token and a JSON body when given.
pub fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<&serde_json::Value>,
) -> anyhow::Result<Request<Full<Bytes>>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, addr.to_string());
    if let Some(token) = bearer {
        builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match body {
        Some(json) => {
            builder = builder.header(CONTENT_TYPE, "application/json");
            Full::new(Bytes::from(serde_json::to_vec(json)?))
        }
        None => Full::new(Bytes::new()),
    };
    builder
        .body(body)
        .map_err(|e| anyhow!("bad request {path}: {e}"))
}

/// The benchmark's HTTP client: `GET path` with an API key, on a connection of its own.
pub struct HttpClient {
    addr: SocketAddr,
    path: String,
    host: HeaderValue,
    authorization: HeaderValue,
    conn: Option<Conn>,
}

impl HttpClient {
    /// Opens the client's connection now, so that connecting is not part of the run.
    pub async fn connect(addr: SocketAddr, path: &str, key: &str) -> anyhow::Result<Self> {
        Ok(Self {
            addr,
            path: path.to_string(),
            host: HeaderValue::from_str(&addr.to_string())?,
            authorization: HeaderValue::from_str(&format!("Bearer {key}"))
                .context("the API key is not a header value")?,
            conn: Some(Conn::open(addr).await?),
        })
    }

    fn request(&self) -> Result<Request<Full<Bytes>>, hyper::http::Error> {
        Request::builder()
            .method(Method::GET)
            .uri(&self.path)
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .body(Full::new(Bytes::new()))
    }
}

impl Client for HttpClient {
    async fn op(&mut self) -> Answer {
        let request = match self.request() {
            Ok(r) => r,
            Err(e) => return Answer::Failed(format!("bad request: {e}")),
        };
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => match Conn::open(self.addr).await {
                Ok(conn) => self.conn.insert(conn),
                Err(e) => return Answer::Failed(format!("reconnecting: {e:#}")),
            },
        };
        match conn.send(request).await {
            Ok((StatusCode::OK, _)) => Answer::Ok,
            Ok((status, _)) => Answer::Wrong(format!("status {}", status.as_u16())),
            Err(e) => {
                self.conn = None;
                Answer::Failed(format!("connection error: {e:#}"))
            }
        }
    }

    fn reset(&mut self) {
        self.conn = None;
    }
}
