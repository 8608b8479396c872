//! One connection: hyper serves it under the endpoint's limits, every answer gets the
//! common headers, and the connection is closed when its deadline passes.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::counters::{Counters, OpenConnection};
use super::deadline::{Deadline, Watched};
use super::hosts::AllowedHosts;
use super::limits::Limits;
use super::refusal::{body_refusal, linger, refuse_host};
use super::response::{Body, Streaming};

/// Headers every answer carries: nothing is cached (the state changes every second), the
/// browser must not guess types, and no other site may frame a page.
const COMMON_HEADERS: [(HeaderName, &str); 4] = [
    (header::CACHE_CONTROL, "no-store"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
];

/// What every connection of one endpoint shares.
pub(super) struct Shared<F> {
    pub(super) name: &'static str,
    pub(super) limits: Limits,
    pub(super) hosts: AllowedHosts,
    pub(super) counters: Arc<Counters>,
    pub(super) http: http1::Builder,
    pub(super) handler: F,
}

/// Serves one accepted connection until it ends, the client goes or a deadline passes;
/// it holds `_permit` (a place under the endpoint's connection limit) meanwhile.
pub(super) async fn serve<F, Fut>(
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
