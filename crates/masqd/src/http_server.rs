//! The HTTP/1.1 server under `--metrics` and `--web`: hyper on masqd's control-plane
//! runtime, with the limits a port that local users (and other hosts, if it is bound so)
//! can reach needs. HTTP clients must never cost masqd its descriptors, tasks or memory,
//! and a client that sends nothing, or too little, must not keep a connection.
//!
//! Each limit is a field of [`Limits`]; at the limit:
//!
//! - **connections**: a permit is taken *before* `accept`, so past `max_connections` the
//!   next connections wait, unaccepted, in the kernel's listen backlog: no descriptor, no
//!   task, and they are served in turn as others close.
//! - **accept errors** (EMFILE, ENFILE, ENOBUFS…): the loop sleeps 10 ms, doubling up to
//!   1 s while they last, and logs once per episode; it never spins.
//! - **request body**: announced by `Content-Length` (else 411: no chunked uploads) and
//!   at most `max_body_bytes` (else 413), checked before any handler runs.
//! - **request head**: at most `max_head_bytes` (else 431 and close), and complete within
//!   `header_timeout` of the accept or of the end of the previous response, else the
//!   connection is closed. This is hyper's `header_read_timeout`, whose timer (hyper 1.13)
//!   starts when hyper starts waiting for a head, not at the first byte: it closes a
//!   connection that never sends a byte, a slowloris, and an idle keep-alive connection.
//! - **response**: from the end of the head, the response (the request body read and the
//!   work done) must be ready within `response_timeout`, and once ready, written out
//!   within `response_timeout` again (a client that does not read is dropped); else the
//!   connection is closed.
//! - **streams** (a response marked [`Streaming`]): no response deadline, but hyper must
//!   ask the stream for more at least every `response_timeout` — it stops asking when the
//!   client stops reading and the buffers are full — and data left unacknowledged that
//!   long (a client that vanished without a FIN) ends the connection (`TCP_USER_TIMEOUT`).
//!   A client that closes is seen at once: hyper reads the end of file.
//! - **Host**: every request must name this server (see [`AllowedHosts`]): 421 or 400.
//! - **closing after a refusal**: FIN first, then what the client still sends is read
//!   and dropped (at most 64 KiB, 1 s), so that the refusal arrives instead of a reset.
//!
//! Every refusal and every connection closed at a deadline is counted ([`Counters`]).

mod hosts;

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, Result};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

pub use hosts::HostName;
use hosts::{AllowedHosts, HostRefusal};

/// A response body: a whole one ([`full`]) or a stream.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// What a response body's `poll_frame` returns.
pub type PolledFrame = Poll<Option<Result<Frame<Bytes>, Infallible>>>;

/// How much one endpoint lets its clients take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// From the accept, or the end of the previous response, to the end of a request head.
    pub header_timeout: Duration,
    /// From the end of a head to its response being ready, and from then to its last
    /// byte written; for a stream, the longest the client may leave it unread.
    pub response_timeout: Duration,
    /// Largest request head (request line and headers).
    pub max_head_bytes: usize,
    /// Largest request body (a command for the admin page is far smaller).
    pub max_body_bytes: u64,
}

impl Limits {
    /// What `--metrics` and `--web` use.
    pub const DEFAULT: Limits = Limits {
        max_connections: 64,
        header_timeout: Duration::from_secs(5),
        response_timeout: Duration::from_secs(10),
        max_head_bytes: 8 * 1024,
        max_body_bytes: 4 * 1024,
    };
}

/// hyper's read buffer for a connection (at least 8 KiB, hyper's minimum): room for the
/// largest head and what follows it.
const READ_BUFFER: usize = 16 * 1024;

/// Headers every answer carries: nothing is cached (the state changes every second), the
/// browser must not guess types, and no other site may frame a page.
const COMMON_HEADERS: [(HeaderName, &str); 4] = [
    (header::CACHE_CONTROL, "no-store"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
];

/// Put in a response's extensions by a handler whose body is a long-lived stream.
#[derive(Debug, Clone, Copy)]
pub struct Streaming;

/// What one endpoint's server has seen, for `/metrics`.
#[derive(Debug)]
pub struct Counters {
    /// The endpoint, as `/metrics` labels it: `metrics` or `web`.
    pub endpoint: &'static str,
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// Failed accepts (descriptors or buffers exhausted, …).
    pub accept_errors: AtomicU64,
    /// Connections closed at a deadline: head, response or stream.
    pub timed_out: AtomicU64,
    /// Requests refused for their `Host`: none or a malformed one.
    pub malformed_host: AtomicU64,
    /// Requests refused for their `Host`: a name this server does not answer to.
    pub foreign_host: AtomicU64,
    /// Changes refused for a missing or wrong admin token (`--web-admin`).
    pub bad_token: AtomicU64,
}

impl Counters {
    fn new(endpoint: &'static str) -> Counters {
        Counters {
            endpoint,
            accepted: AtomicU64::new(0),
            open: AtomicU64::new(0),
            accept_errors: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            malformed_host: AtomicU64::new(0),
            foreign_host: AtomicU64::new(0),
            bad_token: AtomicU64::new(0),
        }
    }
}

/// A bound endpoint, ready to serve.
pub struct Server {
    listener: TcpListener,
    /// How the log names it, e.g. `lab page`.
    name: &'static str,
    limits: Limits,
    hosts: AllowedHosts,
    counters: Arc<Counters>,
}

impl Server {
    /// Binds `addr` for the endpoint `endpoint` (the `/metrics` label), which the log
    /// calls `name`, answering to the `Host` names `allowed` adds to its own.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn bind(
        addr: SocketAddr,
        endpoint: &'static str,
        name: &'static str,
        limits: Limits,
        allowed: &[HostName],
    ) -> Result<Server> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the {name} {addr}"))?;
        let port = listener
            .local_addr()
            .with_context(|| format!("the {name}'s address"))?
            .port();
        Ok(Server {
            listener,
            name,
            limits,
            hosts: AllowedHosts::new(port, allowed),
            counters: Arc::new(Counters::new(endpoint)),
        })
    }

    /// The endpoint's counters.
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Answers every request that names this server with `handler`, until the task is
    /// cancelled.
    pub async fn serve<F, Fut>(self, handler: F)
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout)
            .max_header_size(self.limits.max_head_bytes)
            .max_buf_size(READ_BUFFER);
        let permits = Arc::new(Semaphore::new(self.limits.max_connections));
        let shared = Arc::new(Shared {
            name: self.name,
            limits: self.limits,
            hosts: self.hosts,
            counters: self.counters,
            http,
            handler,
        });
        let mut backoff = AcceptBackoff::default();
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return; // never closed
            };
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    let failed = backoff.succeeded();
                    if failed > 0 {
                        tracing::info!(
                            "{}: accepting again after {failed} failed accepts",
                            self.name
                        );
                    }
                    shared.counters.accepted.fetch_add(1, Relaxed);
                    tokio::spawn(connection(stream, peer, shared.clone(), permit));
                }
                // The client gave up before the accept: nothing is short, try the next one.
                Err(e) if is_per_connection(&e) => {}
                Err(e) => {
                    shared.counters.accept_errors.fetch_add(1, Relaxed);
                    let (delay, first) = backoff.failed();
                    if first {
                        tracing::warn!(
                            "{}: accept failed ({e}); retrying with a growing delay up to {:?}",
                            self.name,
                            AcceptBackoff::MAX
                        );
                    }
                    drop(permit);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

/// Errors of `accept` that concern only the connection being accepted.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted};
    matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted)
}

/// How long the accept loop sleeps after a failed accept, so that running out of
/// descriptors or buffers never turns into a busy loop: 10 ms, doubled after each failure
/// in a row, at most [`AcceptBackoff::MAX`].
#[derive(Debug, Default)]
struct AcceptBackoff {
    failures: u32,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    /// After a failure: how long to wait, and whether it is the first of an episode.
    fn failed(&mut self) -> (Duration, bool) {
        self.failures = self.failures.saturating_add(1);
        let delay = Self::FIRST.saturating_mul(1 << (self.failures - 1).min(16));
        (delay.min(Self::MAX), self.failures == 1)
    }

    /// After a success: how many failures in a row it ends.
    fn succeeded(&mut self) -> u32 {
        std::mem::take(&mut self.failures)
    }
}

/// What every connection of one endpoint shares.
struct Shared<F> {
    name: &'static str,
    limits: Limits,
    hosts: AllowedHosts,
    counters: Arc<Counters>,
    http: http1::Builder,
    handler: F,
}

/// Counts a connection as open while it lives.
struct OpenConnection(Arc<Counters>);

impl OpenConnection {
    fn new(counters: &Arc<Counters>) -> OpenConnection {
        counters.open.fetch_add(1, Relaxed);
        OpenConnection(counters.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}

async fn connection<F, Fut>(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared<F>>,
    _permit: OwnedSemaphorePermit,
) where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let _open = OpenConnection::new(&shared.counters);
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let _ = stream.set_nodelay(true);
    // A client that vanished without a FIN or a reset leaves what masqd sent it
    // unacknowledged: give it up then rather than after TCP's minutes of retries.
    let _ =
        socket2::SockRef::from(&stream).set_tcp_user_timeout(Some(shared.limits.response_timeout));
    let deadline = Arc::new(Deadline::default());
    let service = {
        let (shared, deadline) = (shared.clone(), deadline.clone());
        service_fn(move |request| {
            let (shared, deadline) = (shared.clone(), deadline.clone());
            // Boxed, so that the connection can be polled without giving up the socket.
            Box::pin(async move {
                Ok::<_, Infallible>(answer(request, local.ip(), &shared, deadline).await)
            })
        })
    };
    let mut served = shared.http.serve_connection(TokioIo::new(stream), service);
    let name = shared.name;
    let ended = tokio::select! {
        ended = std::future::poll_fn(|cx| served.poll_without_shutdown(cx)) => ended,
        () = deadline.passed() => {
            shared.counters.timed_out.fetch_add(1, Relaxed);
            tracing::debug!("{name}: closing the connection from {peer}: its response or stream stalled");
            return;
        }
    };
    match ended {
        Ok(()) => {}
        Err(e) if e.is_parse() => tracing::debug!("{name}: {peer} sent a malformed request: {e}"),
        Err(e) => {
            if e.is_timeout() {
                shared.counters.timed_out.fetch_add(1, Relaxed);
            }
            tracing::debug!("{name}: connection from {peer}: {e}");
            return;
        }
    }
    linger(served.into_parts().io.into_inner()).await;
}

/// Closes a connection whose client may still be sending (a request refused before its
/// body was read, the rest of a head too large): the end of file first, then what comes
/// meanwhile is read and dropped for a moment. Closing with unread data would make the
/// kernel send a reset, which can destroy the answer before the client has read it.
async fn linger(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const MOMENT: Duration = Duration::from_secs(1);
    const MOST: usize = 64 * 1024;
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let mut left = MOST;
    let _ = tokio::time::timeout(MOMENT, async {
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

/// Checks the `Host`, runs the handler and marks the response for the deadline.
async fn answer<F, Fut>(
    request: Request<Incoming>,
    local: IpAddr,
    shared: &Shared<F>,
    deadline: Arc<Deadline>,
) -> Response<Watched>
where
    F: Fn(Request<Incoming>) -> Fut,
    Fut: Future<Output = Response<Body>>,
{
    deadline.set(Some(Instant::now() + shared.limits.response_timeout));
    let response = match shared.hosts.check(&request, local) {
        Err(refusal) => refuse_host(refusal, &shared.counters),
        Ok(()) => match body_refusal(&request, shared.limits.max_body_bytes) {
            Some(refused) => refused,
            None => (shared.handler)(request).await,
        },
    };
    let (mut parts, body) = response.into_parts();
    for (name, value) in COMMON_HEADERS {
        parts
            .headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    let stream = parts.extensions.remove::<Streaming>().is_some();
    Response::from_parts(
        parts,
        Watched {
            body,
            deadline,
            limit: shared.limits.response_timeout,
            stream,
        },
    )
}

fn refuse_host(refusal: HostRefusal, counters: &Counters) -> Response<Body> {
    match refusal {
        HostRefusal::Malformed => {
            counters.malformed_host.fetch_add(1, Relaxed);
            text(
                StatusCode::BAD_REQUEST,
                "a request needs one Host header naming this server\n",
            )
        }
        HostRefusal::Foreign => {
            counters.foreign_host.fetch_add(1, Relaxed);
            text(
                StatusCode::MISDIRECTED_REQUEST,
                "this server does not answer to that host name (masqd --http-allow-host NAME[:PORT] adds one)\n",
            )
        }
    }
}

/// The answer to a request whose body is not announced or too large, if it is one.
fn body_refusal<B>(request: &Request<B>, max: u64) -> Option<Response<Body>> {
    let headers = request.headers();
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return Some(text(
            StatusCode::LENGTH_REQUIRED,
            "send the body with a Content-Length\n",
        ));
    }
    // hyper has refused a malformed or repeated length already.
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    length
        .is_some_and(|n| n > max)
        .then(|| text(StatusCode::PAYLOAD_TOO_LARGE, "the body is too large\n"))
}

/// A whole response.
pub fn full(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed_unsync());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A whole plain-text response.
pub fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    full(status, "text/plain; charset=utf-8", body)
}

/// When the connection must be done with what it does now: making or writing a response,
/// or taking a stream's next chunk; `None` until the first head, when hyper's own timer
/// is in charge. Its task closes the connection when the deadline passes.
#[derive(Debug, Default)]
struct Deadline {
    at: Mutex<Option<Instant>>,
    earlier: Notify,
}

impl Deadline {
    fn set(&self, at: Option<Instant>) {
        let mut current = self.at.lock().unwrap_or_else(PoisonError::into_inner);
        let sooner = match (*current, at) {
            (None, Some(_)) => true,
            (Some(old), Some(new)) => new < old,
            (_, None) => false,
        };
        *current = at;
        drop(current);
        // A later or no deadline needs no wake-up: the watcher finds it when it wakes.
        if sooner {
            self.earlier.notify_one();
        }
    }

    /// Resolves once the deadline in force has passed.
    async fn passed(&self) {
        loop {
            let at = *self.at.lock().unwrap_or_else(PoisonError::into_inner);
            match at {
                Some(at) if Instant::now() >= at => return,
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = self.earlier.notified() => {}
                    }
                }
                None => self.earlier.notified().await,
            }
        }
    }
}

/// A response body that keeps the connection's [`Deadline`]: once hyper has taken all of
/// it (it is dropped then), what is left must be written within `limit`; a stream moves
/// the deadline `limit` on each time hyper asks it for more.
struct Watched {
    body: Body,
    deadline: Arc<Deadline>,
    limit: Duration,
    stream: bool,
}

impl hyper::body::Body for Watched {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> PolledFrame {
        let this = self.get_mut();
        if this.stream {
            this.deadline.set(Some(Instant::now() + this.limit));
        }
        Pin::new(&mut this.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.deadline.set(Some(Instant::now() + self.limit));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant as StdInstant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Short limits, so that the tests measure them in well under a second each.
    const TEST: Limits = Limits {
        max_connections: 2,
        header_timeout: Duration::from_millis(300),
        response_timeout: Duration::from_millis(400),
        max_head_bytes: 8 * 1024,
        max_body_bytes: 16,
    };

    /// Starts a server on a free loopback port with `handler`; its address and counters.
    async fn start<F, Fut>(limits: Limits, handler: F) -> (SocketAddr, Arc<Counters>)
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let server = Server::bind("127.0.0.1:0".parse().unwrap(), "test", "test", limits, &[])
            .await
            .unwrap();
        let addr = server.listener.local_addr().unwrap();
        let counters = server.counters();
        tokio::spawn(server.serve(handler));
        (addr, counters)
    }

    async fn hello(_: Request<Incoming>) -> Response<Body> {
        text(StatusCode::OK, "hello\n")
    }

    fn get(addr: SocketAddr, path: &str) -> String {
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n")
    }

    /// Reads until the server closes (or `within` passes: then `None`); what came.
    async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
        let mut got = Vec::new();
        let read = tokio::time::timeout(within, async {
            let mut buf = [0u8; 4096];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        });
        read.await.ok()?;
        Some(String::from_utf8_lossy(&got).into_owned())
    }

    #[tokio::test]
    async fn a_connection_that_never_sends_a_byte_is_closed_at_the_header_timeout() {
        let (addr, counters) = start(TEST, hello).await;
        let mut idle = TcpStream::connect(addr).await.unwrap();
        let opened = StdInstant::now();
        let got = read_until_closed(&mut idle, Duration::from_secs(3)).await;
        let lived = opened.elapsed();
        assert_eq!(got.as_deref(), Some(""), "closed without an answer");
        assert!(
            lived >= Duration::from_millis(250) && lived < Duration::from_millis(800),
            "closed after {lived:?}, the header timeout is {:?}",
            TEST.header_timeout
        );
        assert_eq!(counters.timed_out.load(Relaxed), 1);
    }

    #[tokio::test]
    async fn a_slowloris_is_closed_at_the_header_timeout_whatever_it_trickles() {
        let (addr, counters) = start(TEST, hello).await;
        let mut slow = TcpStream::connect(addr).await.unwrap();
        let opened = StdInstant::now();
        // One byte every 50 ms: the head would take more than two seconds.
        for byte in get(addr, "/").bytes() {
            if slow.write_all(&[byte]).await.is_err() {
                break;
            }
            let mut probe = [0u8; 64];
            match tokio::time::timeout(Duration::from_millis(50), slow.read(&mut probe)).await {
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(_)) => panic!("answered a head that was not complete"),
                Err(_) => {}
            }
        }
        let lived = opened.elapsed();
        assert!(
            lived < Duration::from_millis(800),
            "a slowloris lived {lived:?}, the header timeout is {:?}",
            TEST.header_timeout
        );
        assert_eq!(counters.timed_out.load(Relaxed), 1);
    }

    #[tokio::test]
    async fn a_kept_alive_connection_is_closed_when_idle_for_the_header_timeout() {
        // Only hyper's head timer, restarted after each response, can close it in time.
        let limits = Limits {
            response_timeout: Duration::from_secs(10),
            ..TEST
        };
        let (addr, _) = start(limits, hello).await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        for _ in 0..3 {
            // Each request comes within the timeout, all of them together after it.
            tokio::time::sleep(Duration::from_millis(150)).await;
            conn.write_all(get(addr, "/").as_bytes()).await.unwrap();
            let mut buf = [0u8; 1024];
            let n = conn.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
        }
        let idle = StdInstant::now();
        assert!(read_until_closed(&mut conn, Duration::from_secs(3))
            .await
            .is_some());
        assert!(
            idle.elapsed() < Duration::from_millis(800),
            "{:?}",
            idle.elapsed()
        );
    }

    #[tokio::test]
    async fn a_head_too_large_is_refused_and_the_refusal_arrives() {
        let (addr, _) = start(TEST, hello).await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nX-Padding: {}\r\n\r\n",
            "a".repeat(20_000)
        );
        let _ = conn.write_all(head.as_bytes()).await;
        let got = read_until_closed(&mut conn, Duration::from_secs(3))
            .await
            .unwrap();
        assert!(got.starts_with("HTTP/1.1 431 "), "{got:?}");
    }

    #[tokio::test]
    async fn past_the_cap_connections_wait_unaccepted_until_one_closes() {
        let (addr, counters) = start(
            Limits {
                header_timeout: Duration::from_secs(10),
                ..TEST
            },
            hello,
        )
        .await;
        let first = TcpStream::connect(addr).await.unwrap();
        let _second = TcpStream::connect(addr).await.unwrap();
        // The kernel completes the handshake; masqd does not accept it yet.
        let mut third = TcpStream::connect(addr).await.unwrap();
        third.write_all(get(addr, "/").as_bytes()).await.unwrap();
        let mut buf = [0u8; 1024];
        let early = tokio::time::timeout(Duration::from_millis(300), third.read(&mut buf)).await;
        assert!(early.is_err(), "answered past the cap");
        assert_eq!(counters.accepted.load(Relaxed), 2);
        assert_eq!(counters.open.load(Relaxed), 2);
        drop(first);
        let n = tokio::time::timeout(Duration::from_secs(2), third.read(&mut buf))
            .await
            .expect("answered once a connection closed")
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert_eq!(counters.accepted.load(Relaxed), 3);
    }

    #[tokio::test]
    async fn a_response_not_ready_in_time_closes_the_connection() {
        let (addr, counters) = start(TEST, |_| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            text(StatusCode::OK, "too late\n")
        })
        .await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(get(addr, "/").as_bytes()).await.unwrap();
        let asked = StdInstant::now();
        let got = read_until_closed(&mut conn, Duration::from_secs(3)).await;
        assert_eq!(got.as_deref(), Some(""));
        let took = asked.elapsed();
        assert!(
            took >= Duration::from_millis(350) && took < Duration::from_millis(900),
            "{took:?}"
        );
        assert_eq!(counters.timed_out.load(Relaxed), 1);
    }

    /// A stream of `chunk`-byte chunks, one every `every` (as fast as taken when zero).
    fn stream(chunk: usize, every: Duration) -> Response<Body> {
        struct Chunks {
            chunk: Bytes,
            tick: Option<tokio::time::Interval>,
        }
        impl hyper::body::Body for Chunks {
            type Data = Bytes;
            type Error = Infallible;
            fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> PolledFrame {
                let this = self.get_mut();
                if let Some(tick) = &mut this.tick {
                    std::task::ready!(tick.poll_tick(cx));
                }
                Poll::Ready(Some(Ok(Frame::data(this.chunk.clone()))))
            }
        }
        let body = Chunks {
            chunk: Bytes::from(vec![b'x'; chunk]),
            tick: (!every.is_zero()).then(|| tokio::time::interval(every)),
        };
        let mut response = Response::new(body.boxed_unsync());
        response.extensions_mut().insert(Streaming);
        response
    }

    #[tokio::test]
    async fn a_stream_outlives_the_response_timeout_while_it_is_read() {
        let (addr, counters) =
            start(TEST, |_| async { stream(16, Duration::from_millis(100)) }).await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(get(addr, "/").as_bytes()).await.unwrap();
        let started = StdInstant::now();
        let mut total = 0;
        let mut buf = [0u8; 4096];
        while started.elapsed() < TEST.response_timeout * 3 {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "the stream ended after {:?}", started.elapsed());
            total += n;
        }
        assert!(total > 10 * 16, "{total} bytes");
        assert_eq!(counters.timed_out.load(Relaxed), 0);
    }

    #[tokio::test]
    async fn a_stream_ends_as_soon_as_its_client_closes() {
        let limits = Limits {
            response_timeout: Duration::from_secs(10),
            ..TEST
        };
        let (addr, counters) =
            start(limits, |_| async { stream(16, Duration::from_secs(3)) }).await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(get(addr, "/").as_bytes()).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = conn.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert_eq!(counters.open.load(Relaxed), 1);
        drop(conn);
        let closed = StdInstant::now();
        while counters.open.load(Relaxed) > 0 {
            assert!(
                closed.elapsed() < Duration::from_millis(500),
                "the stream outlived its client"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_stream_nobody_reads_is_closed() {
        let (addr, counters) = start(TEST, |_| async { stream(64 * 1024, Duration::ZERO) }).await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(get(addr, "/").as_bytes()).await.unwrap();
        // Not reading: the buffers fill, hyper stops asking the stream for more.
        let deadline = StdInstant::now() + Duration::from_secs(5);
        while counters.timed_out.load(Relaxed) == 0 {
            assert!(
                StdInstant::now() < deadline,
                "the stalled stream was not closed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(counters.open.load(Relaxed), 0);
    }

    #[tokio::test]
    async fn requests_must_name_this_server_and_bound_their_bodies() {
        let (addr, counters) = start(TEST, hello).await;
        for (head, status) in [
            (get(addr, "/"), "HTTP/1.1 200 "),
            (
                format!("GET / HTTP/1.1\r\nHost: localhost:{}\r\n\r\n", addr.port()),
                "HTTP/1.1 200 ",
            ),
            (
                format!("GET / HTTP/1.1\r\nHost: evil.example:{}\r\n\r\n", addr.port()),
                "HTTP/1.1 421 ",
            ),
            ("GET / HTTP/1.1\r\n\r\n".to_owned(), "HTTP/1.1 400 "),
            (
                format!("POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 17\r\n\r\n"),
                "HTTP/1.1 413 ",
            ),
            (
                format!("POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 16\r\n\r\n{}", "x".repeat(16)),
                "HTTP/1.1 200 ",
            ),
            (
                format!("POST / HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
                "HTTP/1.1 411 ",
            ),
        ] {
            let mut conn = TcpStream::connect(addr).await.unwrap();
            conn.write_all(head.as_bytes()).await.unwrap();
            let mut buf = [0u8; 1024];
            let n = conn.read(&mut buf).await.unwrap();
            let got = String::from_utf8_lossy(&buf[..n]);
            assert!(got.starts_with(status), "{head:?} got {got:?}");
            assert!(got.contains("x-content-type-options: nosniff\r\n"), "{got}");
        }
        assert_eq!(counters.foreign_host.load(Relaxed), 1);
        assert_eq!(counters.malformed_host.load(Relaxed), 1);
    }

    #[test]
    fn accept_errors_back_off_from_10_ms_to_a_second_and_start_over() {
        let mut backoff = AcceptBackoff::default();
        let delays: Vec<_> = (0..10).map(|_| backoff.failed()).collect();
        assert_eq!(delays[0], (Duration::from_millis(10), true));
        assert_eq!(delays[1], (Duration::from_millis(20), false));
        assert_eq!(delays[6], (Duration::from_millis(640), false));
        assert!(delays[7..]
            .iter()
            .all(|&d| d == (AcceptBackoff::MAX, false)));
        for _ in 0..100 {
            assert!(backoff.failed().0 <= AcceptBackoff::MAX);
        }
        assert_eq!(backoff.succeeded(), 110);
        assert_eq!(backoff.failed(), (Duration::from_millis(10), true));
    }
}
