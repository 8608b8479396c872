//! `GET /api/events`: the director's trace (the four stages of each new connection, the
//! scheduler's choices, TCP state changes, drops) as a Server-Sent Events stream, one
//! `masq_ctl::trace::json` object per event.
//!
//! The trace hub hands events out through a blocking `std::sync::mpsc` receiver, so a
//! blocking thread pumps them into a small async queue, and the response body takes them
//! from there as hyper asks for more. Neither ever waits on the packet threads: when the
//! browser reads too slowly the hub's bounded queue fills and events are lost (counted,
//! and reported to the page as `lost` events). The stream ends when the browser goes
//! away — hyper sees the end of file, or the server's stream deadline passes (see
//! `http_server`) — and the pump then drops the subscription within [`PUMP_POLL`], so the
//! data path stops tracing when nobody watches.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Bytes, Frame};
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use masq_core::trace::{TraceFilter, TraceTap};
use masq_core::Director;
use tokio::sync::mpsc;

use super::error;
use crate::http_server::{Body, PolledFrame, Streaming};

/// Events the trace hub may queue for one page before it loses some.
const HUB_QUEUE: usize = 1024;
/// Formatted events waiting for the socket.
const WRITE_QUEUE: usize = 256;
/// Pages that may stream at once (each holds a blocking thread).
pub const MAX_STREAMS: usize = 8;
/// How often the pump looks whether the page is still there when nothing happens (and
/// so how long its thread may outlive the page, e.g. when masqd stops).
const PUMP_POLL: Duration = Duration::from_millis(250);
/// How often an idle stream sends a comment, so proxies and the browser keep it open and
/// the server's stream deadline sees it taken. Also how often losses are reported.
const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// Most bytes of events sent in one chunk.
const MAX_CHUNK: usize = 64 * 1024;

// An idle stream must be taken well within the server's stream deadline.
const _: () = assert!(
    2 * KEEP_ALIVE.as_millis()
        <= crate::http_server::Limits::DEFAULT
            .response_timeout
            .as_millis()
);

/// Counts the open streams; a slot is given back when its guard drops.
pub struct StreamSlot(Arc<AtomicUsize>);

impl StreamSlot {
    /// Takes a slot, or `None` when [`MAX_STREAMS`] are open.
    pub fn take(open: &Arc<AtomicUsize>) -> Option<StreamSlot> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_STREAMS).then_some(n + 1)
        })
        .ok()
        .map(|_| StreamSlot(open.clone()))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The answer to `GET /api/events`: the stream, or 503 when [`MAX_STREAMS`] are open.
pub fn respond(director: &Director, open: &Arc<AtomicUsize>) -> Response<Body> {
    let Some(slot) = StreamSlot::take(open) else {
        let mut busy = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many pages are watching the trace; close one",
        );
        busy.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
        return busy;
    };
    let subscription = director.trace.subscribe(TraceFilter::default(), HUB_QUEUE);
    let tap = subscription.tap.clone();
    let (tx, events) = mpsc::channel::<String>(WRITE_QUEUE);
    tokio::task::spawn_blocking(move || loop {
        match subscription.events.recv_timeout(PUMP_POLL) {
            Ok(event) => {
                if tx.blocking_send(masq_ctl::trace::json(&event)).is_err() {
                    return; // the stream is gone: dropping the subscription unsubscribes
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if tx.is_closed() {
                    return;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        }
    });
    let stream = EventStream {
        // `retry` makes the browser come back after 2 s if masqd restarts.
        opening: Some("retry: 2000\n\n"),
        events,
        tap,
        reported_lost: 0,
        tick: tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE),
        _slot: slot,
    };
    let mut response = Response::new(stream.boxed_unsync());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    response.extensions_mut().insert(Streaming);
    response
}

/// The stream's body: the opening, then events as they come, a keep-alive comment or a
/// loss report every [`KEEP_ALIVE`].
struct EventStream {
    opening: Option<&'static str>,
    events: mpsc::Receiver<String>,
    tap: Arc<TraceTap>,
    reported_lost: u64,
    tick: tokio::time::Interval,
    _slot: StreamSlot,
}

impl hyper::body::Body for EventStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> PolledFrame {
        let this = self.get_mut();
        let chunk = |text: String| Poll::Ready(Some(Ok(Frame::data(Bytes::from(text)))));
        if let Some(opening) = this.opening.take() {
            return chunk(opening.to_owned());
        }
        // The tick first: it must fire while events flow too, so that losses are
        // reported when they happen, under load.
        if this.tick.poll_tick(cx).is_ready() {
            let lost = this.tap.lost();
            return chunk(if lost != this.reported_lost {
                this.reported_lost = lost;
                format!("event: lost\ndata: {lost}\n\n")
            } else {
                ": keep-alive\n\n".to_owned()
            });
        }
        match this.events.poll_recv(cx) {
            Poll::Ready(Some(json)) => {
                let mut text = format!("data: {json}\n\n");
                // Send whatever else is already waiting in the same chunk.
                while text.len() < MAX_CHUNK {
                    let Ok(more) = this.events.try_recv() else {
                        break;
                    };
                    text.push_str("data: ");
                    text.push_str(&more);
                    text.push_str("\n\n");
                }
                chunk(text)
            }
            // The trace hub is gone: masqd is stopping.
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_slots_are_bounded_and_given_back() {
        let open = Arc::new(AtomicUsize::new(0));
        let slots: Vec<_> = (0..MAX_STREAMS)
            .map(|_| StreamSlot::take(&open).expect("a free slot"))
            .collect();
        assert!(StreamSlot::take(&open).is_none());
        drop(slots);
        assert_eq!(open.load(Ordering::Relaxed), 0);
        assert!(StreamSlot::take(&open).is_some());
    }
}
