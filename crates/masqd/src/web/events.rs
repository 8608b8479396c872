//! `GET /api/events`: the director's trace (the four stages of each new connection, the
//! scheduler's choices, TCP state changes, drops) as a Server-Sent Events stream, one
//! `masq_ctl::trace::json` object per event.
//!
//! The trace hub hands events out through a blocking `std::sync::mpsc` receiver, so a
//! blocking thread pumps them into a small async queue and the connection's task writes
//! them out. Neither ever waits on the packet threads: when the browser reads too slowly the
//! hub's bounded queue fills and events are lost (counted, and reported to the page as
//! `lost` events). The stream ends when the browser goes away — seen at once as end of
//! file on the socket, or at the latest on the next write — and the pump then drops the
//! subscription within a second, so the data path stops tracing when nobody watches.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use masq_core::trace::TraceFilter;
use masq_core::Director;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::http::{event_stream_head, Response, WRITE_TIMEOUT};

/// Events the trace hub may queue for one page before it loses some.
const HUB_QUEUE: usize = 1024;
/// Formatted events waiting for the socket.
const WRITE_QUEUE: usize = 256;
/// Pages that may stream at once (each holds a blocking thread).
pub const MAX_STREAMS: usize = 8;
/// How often the pump looks whether the page is still there when nothing happens.
const PUMP_POLL: Duration = Duration::from_secs(1);
/// How often an idle stream sends a comment, so proxies and the browser keep it open.
/// Also how often losses are reported.
const KEEP_ALIVE: Duration = Duration::from_secs(5);

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

/// Streams trace events to `stream` until the browser goes away.
pub async fn serve(mut stream: TcpStream, director: Arc<Director>, slot: Option<StreamSlot>) {
    let Some(_slot) = slot else {
        let busy = Response::error(
            "503 Service Unavailable",
            "too many pages are watching the trace; close one",
        )
        .with_header("Retry-After: 10");
        let _ = busy.send(&mut stream).await;
        return;
    };
    let subscription = director.trace.subscribe(TraceFilter::default(), HUB_QUEUE);
    let tap = subscription.tap.clone();
    let (tx, mut rx) = mpsc::channel::<String>(WRITE_QUEUE);
    let pump = tokio::task::spawn_blocking(move || loop {
        match subscription.events.recv_timeout(PUMP_POLL) {
            Ok(event) => {
                if tx.blocking_send(masq_ctl::trace::json(&event)).is_err() {
                    return; // the writer is gone: dropping the subscription unsubscribes
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

    let (mut reader, mut writer) = stream.split();
    // `retry` makes the browser come back after 2 s if masqd restarts.
    let mut pending = event_stream_head() + "retry: 2000\n\n";
    let mut reported_lost = 0;
    let mut scratch = [0u8; 256];
    // An interval rather than a sleep in the select: it also fires while events flow, so
    // losses are reported when they happen, under load.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if !pending.is_empty() {
            let written =
                tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(pending.as_bytes())).await;
            if !matches!(written, Ok(Ok(()))) {
                break;
            }
            pending.clear();
        }
        tokio::select! {
            event = rx.recv() => match event {
                Some(json) => {
                    pending = format!("data: {json}\n\n");
                    // Send whatever else is already waiting in the same write.
                    while pending.len() < 64 * 1024 {
                        let Ok(more) = rx.try_recv() else { break };
                        pending.push_str("data: ");
                        pending.push_str(&more);
                        pending.push_str("\n\n");
                    }
                }
                None => break,
            },
            read = reader.read(&mut scratch) => match read {
                // A browser sends nothing after its request: end of file or an error
                // means it has gone; stray bytes are ignored.
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            _ = tick.tick() => {
                let lost = tap.lost();
                pending = if lost != reported_lost {
                    reported_lost = lost;
                    format!("event: lost\ndata: {lost}\n\n")
                } else {
                    ": keep-alive\n\n".to_owned()
                };
            }
        }
    }
    drop(rx);
    let _ = pump.await;
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
