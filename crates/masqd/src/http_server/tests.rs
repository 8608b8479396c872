//! The server's limits measured from outside: real connections to a server on a loopback
//! port, with limits short enough to measure in well under a second each.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant as StdInstant};

use http_body_util::BodyExt;
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{text, Body, Counters, Limits, PolledFrame, Server, Streaming};

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
    let (addr, counters) = start(TEST, |_| async { stream(16, Duration::from_millis(100)) }).await;
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
    let (addr, counters) = start(limits, |_| async { stream(16, Duration::from_secs(3)) }).await;
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
            format!(
                "GET / HTTP/1.1\r\nHost: evil.example:{}\r\n\r\n",
                addr.port()
            ),
            "HTTP/1.1 421 ",
        ),
        ("GET / HTTP/1.1\r\n\r\n".to_owned(), "HTTP/1.1 400 "),
        (
            format!("POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 17\r\n\r\n"),
            "HTTP/1.1 413 ",
        ),
        (
            format!(
                "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 16\r\n\r\n{}",
                "x".repeat(16)
            ),
            "HTTP/1.1 200 ",
        ),
        (
            format!(
                "POST / HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            ),
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
