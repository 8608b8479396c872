//! The answers to requests refused before any handler runs (a `Host` that does not name
//! this server, a body not announced or too large), and the lingering close that lets a
//! refusal arrive.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hyper::header;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpStream;

use super::counters::Counters;
use super::hosts::HostRefusal;
use super::response::{text, Body};

/// The answer to a request whose `Host` is refused, counted by reason.
pub(super) fn refuse_host(refusal: HostRefusal, counters: &Counters) -> Response<Body> {
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
pub(super) fn body_refusal<B>(request: &Request<B>, max: u64) -> Option<Response<Body>> {
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

/// Closes a connection whose client may still be sending (a request refused before its
/// body was read, the rest of a head too large): the end of file first, then what comes
/// meanwhile is read and dropped for a moment. Closing with unread data would make the
/// kernel send a reset, which can destroy the answer before the client has read it.
pub(super) async fn linger(mut stream: TcpStream) {
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
