//! Serves `masqadm --trace` and `masqadm --capture`: subscribes to the director's trace hub
//! and streams formatted events (or frame copies) to the client until `--count`
//! connections were shown or the client goes away.
//!
//! The stream runs on its own thread with blocking writes: a slow reader only fills its
//! own bounded queue in the core (events are then lost and counted), it never slows the
//! packet threads. What a client costs is bounded: at most [`MAX_STREAMS`] clients at
//! once, a queue of [`QUEUE`] events each, `--count` at most [`MAX_COUNT`] (the
//! connections counted for it are the only state that grows), and a reader that takes no
//! data for [`WRITE_TIMEOUT`] is dropped. When masqd stops, every stream ends within
//! [`STOP_POLL`] with a last line saying so.

use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddrV4;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use masq_core::trace::{Stage, Subscription, TraceKind};
use masq_core::Director;
use masq_ctl::request::{CaptureLine, FrameChunk, Request, StreamChunk};
use masq_ctl::trace::{self, TraceArgs};
use masq_ctl::Outcome;
use tokio::net::UnixStream;

use crate::clock::Clock;
use crate::context::ControlContext;
use crate::socket_reply::{error_outcome, reply};
use crate::stop::Stop;
use crate::stream_slots::MAX_STREAMS;

/// Events a trace listener may have queued before it loses some.
const QUEUE: usize = 4096;

/// The largest `--count`: the connections shown are remembered until it is reached.
pub const MAX_COUNT: u64 = 10_000;

/// How often a stream looks at the stop flag while its queue is empty.
const STOP_POLL: Duration = Duration::from_millis(100);

/// A stream with nothing to show sends an empty chunk this often, to find out whether its
/// reader is still there.
const KEEP_ALIVE: Duration = Duration::from_secs(1);

/// Longest a write to a reader that takes nothing may block before the stream ends.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a stream ended, for its last line.
enum End {
    /// `--count` reached, or the trace hub went away.
    Done,
    /// masqd is stopping.
    Stopping,
}

/// Serves one `--trace` or `--capture` request.
pub async fn serve(mut stream: UnixStream, ctx: &ControlContext, request: &Request) -> Result<()> {
    let capture = trace::is_capture(&request.args);
    let args = match trace::parse(&request.args) {
        Ok(a) => a,
        Err(msg) => {
            let msg = format!("{}: {msg}", request.program);
            return reply(&mut stream, &error_outcome(&msg, 2)).await;
        }
    };
    if args.count.is_some_and(|n| n > MAX_COUNT) {
        let msg = format!(
            "{}: {}: --count is at most {MAX_COUNT}",
            request.program, request.args[0]
        );
        return reply(&mut stream, &error_outcome(&msg, 2)).await;
    }
    if let Some((protocol, addr)) = args.filter.service {
        if ctx
            .director
            .services()
            .lookup(protocol, *addr.ip(), addr.port())
            .is_none()
        {
            let proto = if protocol == 6 { "TCP" } else { "UDP" };
            let msg = format!(
                "{}: {}: no such service {proto} {addr}",
                request.program, request.args[0]
            );
            return reply(&mut stream, &error_outcome(&msg, 1)).await;
        }
    }
    let Some(_slot) = ctx.streams.take() else {
        let msg = format!(
            "{}: {}: masqd already serves {MAX_STREAMS} traces and captures, the most it serves at once; try again when one has ended",
            request.program, request.args[0]
        );
        return reply(&mut stream, &error_outcome(&msg, 1)).await;
    };
    let subscription = if capture {
        ctx.director.trace.subscribe_with_frames(args.filter, QUEUE)
    } else {
        ctx.director.trace.subscribe(args.filter, QUEUE)
    };
    let std_stream = stream.into_std().context("taking the trace socket")?;
    std_stream
        .set_nonblocking(false)
        .and_then(|()| std_stream.set_write_timeout(Some(WRITE_TIMEOUT)))
        .context("making the trace socket blocking")?;
    let clock = ctx.clock;
    let director = ctx.director.clone();
    let stop = ctx.stop.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = std_stream;
        let end = if capture {
            stream_frames(&mut out, &subscription, args, clock, &stop)
        } else {
            stream_events(&mut out, &subscription, args, &director, clock, &stop)
        };
        if let Some(end) = end {
            finish(&mut out, &subscription, end);
        }
    })
    .await
    .context("trace thread")
}

fn write_line<T: serde::Serialize>(out: &mut StdUnixStream, msg: &T) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(msg)?;
    line.push(b'\n');
    out.write_all(&line)
}

/// Counts connections shown through stage 4, for `--count`; without one it remembers
/// nothing.
struct Finished {
    seen: HashSet<(SocketAddrV4, SocketAddrV4)>,
    limit: Option<u64>,
}

impl Finished {
    fn new(limit: Option<u64>) -> Finished {
        Finished {
            seen: HashSet::new(),
            limit,
        }
    }

    /// Notes an event; `true` once `--count` connections were shown.
    fn saw(&mut self, stage: Stage, client: SocketAddrV4, vaddr: SocketAddrV4) -> bool {
        let Some(limit) = self.limit else {
            return false;
        };
        if stage == Stage::DirectorToClient {
            self.seen.insert((client, vaddr));
        }
        self.seen.len() as u64 >= limit
    }
}

/// What a stream thread waits for next: an event until `STOP_POLL` passes.
enum Wait<T> {
    Got(T),
    /// Nothing came; `true` when a keep-alive is due.
    Idle(bool),
    Ended(End),
}

/// Waits up to [`STOP_POLL`] on `queue`, noticing a stop and when a keep-alive is due.
fn wait_on<T>(
    queue: &std::sync::mpsc::Receiver<T>,
    stop: &Stop,
    last_write: &mut Instant,
) -> Wait<T> {
    if stop.requested() {
        return Wait::Ended(End::Stopping);
    }
    match queue.recv_timeout(STOP_POLL) {
        Ok(item) => {
            *last_write = Instant::now();
            Wait::Got(item)
        }
        Err(RecvTimeoutError::Timeout) if last_write.elapsed() >= KEEP_ALIVE => {
            *last_write = Instant::now();
            Wait::Idle(true)
        }
        Err(RecvTimeoutError::Timeout) => Wait::Idle(false),
        Err(RecvTimeoutError::Disconnected) => Wait::Ended(End::Done),
    }
}

/// Streams formatted events until `--count`, a stop or the hub's end (`Some`), or until
/// the reader goes away (`None`).
fn stream_events(
    out: &mut StdUnixStream,
    subscription: &Subscription,
    args: TraceArgs,
    director: &Director,
    clock: Clock,
    stop: &Stop,
) -> Option<End> {
    let mut finished = Finished::new(args.count);
    let mut diagnosed: Vec<String> = Vec::new();
    let mut last_check: Option<Instant> = None;
    let mut last_write = Instant::now();
    loop {
        // The diagnosis (wrong gateway, refused connections, ...) goes into the trace too.
        if last_check.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            last_check = Some(Instant::now());
            for f in director.diagnose(clock.now()) {
                let problem = f.problem();
                if diagnosed.contains(&problem) {
                    continue;
                }
                let line = if args.json {
                    serde_json::json!({"event": "diagnosis", "problem": problem, "fix": f.fix()})
                        .to_string()
                } else {
                    format!(
                        "           DIAGNOSIS {problem}\n           fix: {}",
                        f.fix()
                    )
                };
                write_line(out, &StreamChunk { out: line + "\n" }).ok()?;
                diagnosed.push(problem);
            }
        }
        match wait_on(&subscription.events, stop, &mut last_write) {
            Wait::Got(event) => {
                let text = if args.json {
                    trace::json(&event)
                } else {
                    trace::text(&event)
                };
                write_line(out, &StreamChunk { out: text + "\n" }).ok()?;
                if let TraceKind::Stage(stage, _) = event.kind {
                    if finished.saw(stage, event.client, event.vaddr) {
                        return Some(End::Done);
                    }
                }
            }
            // Nothing to show: a keep-alive finds out whether the reader is still there.
            Wait::Idle(true) => write_line(out, &StreamChunk { out: String::new() }).ok()?,
            Wait::Idle(false) => {}
            Wait::Ended(end) => return Some(end),
        }
    }
}

/// Streams frame copies, as [`stream_events`] streams events.
fn stream_frames(
    out: &mut StdUnixStream,
    subscription: &Subscription,
    args: TraceArgs,
    clock: Clock,
    stop: &Stop,
) -> Option<End> {
    let mut finished = Finished::new(args.count);
    let Some(frames) = &subscription.frames else {
        return Some(End::Done);
    };
    let mut last_write = Instant::now();
    loop {
        // Events are not shown in a capture; drain them so they do not count as lost.
        while subscription.events.try_recv().is_ok() {}
        match wait_on(frames, stop, &mut last_write) {
            Wait::Got(f) => {
                let line = CaptureLine {
                    frame: FrameChunk {
                        epoch_us: clock.epoch_micros(f.at),
                        stage: f.stage as u8,
                        hex: hex(&f.bytes),
                    },
                };
                write_line(out, &line).ok()?;
                if finished.saw(f.stage, f.client, f.vaddr) {
                    return Some(End::Done);
                }
            }
            Wait::Idle(true) => write_line(out, &StreamChunk { out: String::new() }).ok()?,
            Wait::Idle(false) => {}
            Wait::Ended(end) => return Some(end),
        }
    }
}

/// The stream's last line: the outcome masqadm exits with.
fn finish(out: &mut StdUnixStream, subscription: &Subscription, end: End) {
    let lost = subscription.tap.lost();
    let mut stderr = String::new();
    if lost > 0 {
        stderr.push_str(&format!(
            "masqadm: {lost} trace events were lost (the reader was too slow)\n"
        ));
    }
    let code = match end {
        End::Done => 0,
        End::Stopping => {
            stderr.push_str("masqadm: masqd is stopping; the stream ends here\n");
            1
        }
    };
    let _ = write_line(
        out,
        &Outcome {
            stdout: String::new(),
            stderr,
            code,
            ..Default::default()
        },
    );
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn conn(n: u32) -> (SocketAddrV4, SocketAddrV4) {
        (
            SocketAddrV4::new(Ipv4Addr::from(n), 40_000),
            SocketAddrV4::new(Ipv4Addr::new(192, 168, 0, 10), 80),
        )
    }

    #[test]
    fn without_a_count_nothing_is_remembered() {
        let mut finished = Finished::new(None);
        for n in 0..100_000 {
            let (client, vaddr) = conn(n);
            assert!(!finished.saw(Stage::DirectorToClient, client, vaddr));
        }
        assert!(finished.seen.is_empty());
    }

    #[test]
    fn a_count_remembers_at_most_that_many_connections() {
        let mut finished = Finished::new(Some(MAX_COUNT));
        let mut done_at = None;
        for n in 0..2 * MAX_COUNT as u32 {
            let (client, vaddr) = conn(n);
            // The same connection again, and another stage, count once.
            finished.saw(Stage::ClientToVip, client, vaddr);
            if finished.saw(Stage::DirectorToClient, client, vaddr) {
                done_at = Some(n);
                break;
            }
        }
        assert_eq!(done_at, Some(MAX_COUNT as u32 - 1));
        assert_eq!(finished.seen.len() as u64, MAX_COUNT);
    }

    #[test]
    fn a_waiting_stream_sees_a_stop_within_one_poll() {
        let (_tx, rx) = std::sync::mpsc::sync_channel::<u32>(1);
        let stop = Stop::default();
        let mut last_write = Instant::now();
        assert!(matches!(
            wait_on(&rx, &stop, &mut last_write),
            Wait::Idle(false)
        ));
        stop.request();
        let start = Instant::now();
        assert!(matches!(
            wait_on(&rx, &stop, &mut last_write),
            Wait::Ended(End::Stopping)
        ));
        assert!(start.elapsed() < STOP_POLL);
    }
}
