//! The server's connections: HTTP/1.1 on the bound listener, at most [`MAX_CONNECTIONS`] at
//! once (more wait in the listen backlog), each closed when a request's headers take longer than
//! [`HEADER_READ_TIMEOUT`] to arrive, so a slow or silent client holds a connection for no longer
//! than that, and request bodies given [`BODY_READ_TIMEOUT`] ([`body_deadline`]). A client that
//! accepts no bytes of a response for [`SEND_TIMEOUT`] is dropped ([`SendDeadline`]), so a stalled
//! download frees what it holds. On shutdown, listening stops, idle connections close and
//! requests in flight are finished.
//!
//! A request answered without its body being read (refused before its handler: no credentials,
//! an unknown path, a rate limit, a body past the limit) must neither lose its answer nor break
//! the client's next request on the connection. So what is left of such a body is read before
//! the answer goes out, up to [`DRAIN_LIMIT`] ([`Leftover`]); a body past that, or one the client
//! waits to be asked for (`Expect: 100-continue`), gets its answer with `Connection: close`. A
//! closed connection lingers ([`linger`]): the server stops writing, then reads and discards what
//! the client still sends for up to [`LINGER_TIME`]. Closing a socket with unread bytes would
//! reset it, and the client would see the reset instead of the answer.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, HttpBody as _};
use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderValue;
use axum::http::header::{CONNECTION, EXPECT};
use futures::StreamExt as _;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

/// A request's head (request line and headers) must arrive within this, counted from the
/// connection's start or the end of its previous response; also how long an idle keep-alive
/// connection stays open.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A request's body must have arrived this long after its head.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// A response's next bytes must be accepted by the client within this, or the connection is
/// closed (and the response's work, such as an export, ends with it).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 4096;
/// At most this much of a body left unread is read before the answer, so the connection can
/// serve the next request: the largest body a request may have.
pub const DRAIN_LIMIT: usize = crate::server::BODY_LIMIT;
/// How long a closed connection reads and discards what its client still sends.
pub const LINGER_TIME: Duration = Duration::from_secs(5);

/// Serves `router` on `listener` until `shutdown` completes, then until every connection ended.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = accept(&listener, &slots) => accepted,
            () = &mut shutdown => break,
        };
        // Tasks of connections that ended are collected as new ones come.
        while connections.try_join_next().is_some() {}
        let Some((stream, peer, slot)) = accepted else {
            continue;
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let router = router.clone();
            async move {
                let (mut request, leftover) = Leftover::track(request);
                request.extensions_mut().insert(ConnectInfo(peer));
                let deadline = tokio::time::Instant::now() + BODY_READ_TIMEOUT;
                let mut response = router.oneshot(request).await?;
                let reusable = match leftover {
                    Some(leftover) => leftover.drain(deadline).await,
                    None => true,
                };
                if !reusable {
                    response
                        .headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let socket = SendDeadline::new(stream, slot);
        let connection = http.serve_connection(TokioIo::new(socket), service);
        let mut stopping = stopping.clone();
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                // A client that goes away, or a timeout, ends it with an error: nothing to do.
                _ = connection.as_mut() => return,
                _ = stopping.wait_for(|stop| *stop) => {}
            }
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        });
    }
    drop(listener);
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
}

/// A request's body, shared between the request (which reads it, or drops it unread) and its
/// connection, which finds what is left of it once the request is answered.
struct Leftover {
    slot: Arc<Mutex<Option<Incoming>>>,
    /// The client waits for `100 Continue` before it sends the body.
    expects_continue: bool,
}

impl Leftover {
    /// `request` with its body tracked: dropped before its end, the body comes back here. A
    /// request without a body (most of them) is left as it is.
    fn track(request: hyper::Request<Incoming>) -> (Request, Option<Self>) {
        if request.body().is_end_stream() {
            return (request.map(Body::new), None);
        }
        let expects_continue = request
            .headers()
            .get(EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let slot = Arc::new(Mutex::new(None));
        let request = request.map(|body| {
            Body::new(Tracked {
                body: Some(body),
                slot: slot.clone(),
            })
        });
        let leftover = Self {
            slot,
            expects_continue,
        };
        (request, Some(leftover))
    }

    /// Reads what the request left of its body, up to [`DRAIN_LIMIT`] bytes and until
    /// `deadline`; whether the connection can serve another request. A client waiting for
    /// `100 Continue` is not asked for a body nobody reads.
    async fn drain(self, deadline: tokio::time::Instant) -> bool {
        let Some(body) = self.slot.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return true;
        };
        if self.expects_continue || body.size_hint().lower() > DRAIN_LIMIT as u64 {
            return false;
        }
        let mut data = Body::new(body).into_data_stream();
        let mut read = 0;
        let drained = tokio::time::timeout_at(deadline, async {
            while let Some(chunk) = data.next().await {
                match chunk {
                    Ok(chunk) => read += chunk.len(),
                    Err(_) => return false,
                }
                if read > DRAIN_LIMIT {
                    return false;
                }
            }
            true
        });
        drained.await.unwrap_or(false)
    }
}

/// A request body that, dropped before its end, returns to its [`Leftover`].
struct Tracked {
    body: Option<Incoming>,
    slot: Arc<Mutex<Option<Incoming>>>,
}

impl axum::body::HttpBody for Tracked {
    type Data = hyper::body::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let Some(body) = self.body.as_mut() else {
            return Poll::Ready(None);
        };
        let poll = Pin::new(body).poll_frame(cx);
        // At its end, or broken (the client went away): nothing is left to read.
        if matches!(poll, Poll::Ready(None | Some(Err(_)))) {
            self.body = None;
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| hyper::body::SizeHint::with_exact(0), Incoming::size_hint)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(body) = self.body.take().filter(|b| !b.is_end_stream()) {
            *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(body);
        }
    }
}

/// A connection whose writes fail with `TimedOut` once the client has accepted nothing for
/// [`SEND_TIMEOUT`]: a write (or flush) that cannot proceed arms a timer, any progress disarms it.
/// Dropped, the socket [`linger`]s, holding the connection's slot until it closes.
pub(crate) struct SendDeadline {
    stream: Option<TcpStream>,
    slot: Option<OwnedSemaphorePermit>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl SendDeadline {
    fn new(stream: TcpStream, slot: OwnedSemaphorePermit) -> Self {
        Self {
            stream: Some(stream),
            slot: Some(slot),
            deadline: None,
        }
    }

    /// `io` on the stream (which is taken only when this is dropped).
    fn on_stream<T>(
        &mut self,
        io: impl FnOnce(Pin<&mut TcpStream>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match self.stream.as_mut() {
            Some(stream) => io(Pin::new(stream)),
            None => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    /// After a write or flush returned `poll`: disarm on progress; on `Pending`, arm the timer
    /// (or find it fired).
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.deadline = None;
            return poll;
        }
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(SEND_TIMEOUT)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client accepted no bytes for 30 s",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for SendDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.on_stream(|s| s.poll_read(cx, buf))
    }
}

impl AsyncWrite for SendDeadline {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = self.on_stream(|s| s.poll_write(cx, buf));
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = self.on_stream(|s| s.poll_write_vectored(cx, bufs));
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(AsyncWrite::is_write_vectored)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = self.on_stream(|s| s.poll_flush(cx));
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.on_stream(|s| s.poll_shutdown(cx))
    }
}

impl Drop for SendDeadline {
    fn drop(&mut self) {
        if let (Some(stream), Ok(runtime)) =
            (self.stream.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(linger(stream, self.slot.take()));
        }
    }
}

/// Closes a connection without resetting it: stops writing (the client reads the end of the
/// answer), then reads and discards what the client still sends until it closes too, for at
/// most [`LINGER_TIME`]. The connection's slot is held until then.
async fn linger(mut stream: TcpStream, slot: Option<OwnedSemaphorePermit>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let _slot = slot;
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = vec![0; 16 * 1024];
    let _ = tokio::time::timeout(LINGER_TIME, async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// The next connection, once a slot is free; `None` when accepting failed (after a pause when
/// the process is out of file descriptors or memory, rather than spinning).
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let slot = slots.clone().acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, peer)) => {
            // Responses are written whole; waiting to coalesce them only adds latency.
            let _ = stream.set_nodelay(true);
            Some((stream, peer, slot))
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
            ) =>
        {
            None
        }
        Err(error) => {
            tracing::error!(%error, "failed to accept a connection");
            tokio::time::sleep(Duration::from_millis(100)).await;
            None
        }
    }
}

/// The body did not arrive within [`BODY_READ_TIMEOUT`].
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} s", BODY_READ_TIMEOUT.as_secs())]
struct BodyTimedOut;

/// `request` with its body bound to arrive within [`BODY_READ_TIMEOUT`] from now: past it, reading
/// the body fails and the returned flag is set (the caller answers `408` and closes the
/// connection). A request without a body is left as it is.
pub(crate) fn body_deadline(request: Request) -> (Request, Arc<AtomicBool>) {
    let expired = Arc::new(AtomicBool::new(false));
    if request.body().is_end_stream() {
        return (request, expired);
    }
    let deadline = tokio::time::Instant::now() + BODY_READ_TIMEOUT;
    let (parts, body) = request.into_parts();
    let flag = expired.clone();
    let chunks = futures::stream::unfold(Some(body.into_data_stream()), move |data| {
        let flag = flag.clone();
        async move {
            let mut data = data?;
            match tokio::time::timeout_at(deadline, data.next()).await {
                Ok(Some(chunk)) => Some((chunk, Some(data))),
                Ok(None) => None,
                Err(_) => {
                    flag.store(true, Ordering::Relaxed);
                    Some((Err(axum::Error::new(BodyTimedOut)), None))
                }
            }
        }
    });
    (
        Request::from_parts(parts, Body::from_stream(chunks)),
        expired,
    )
}
