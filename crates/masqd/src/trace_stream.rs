//! Serves `masqadm --trace` and `masqadm --capture`: subscribes to the director's trace hub
//! and streams formatted events (or frame copies) to the client until `--count`
//! connections were shown or the client goes away.
//!
//! The stream runs on its own thread with blocking writes: a slow reader only fills its
//! own bounded queue in the core (events are then lost and counted), it never slows the
//! packet threads.

use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddrV4;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

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

/// Events a trace listener may have queued before it loses some.
const QUEUE: usize = 4096;

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
    let subscription = if capture {
        ctx.director.trace.subscribe_with_frames(args.filter, QUEUE)
    } else {
        ctx.director.trace.subscribe(args.filter, QUEUE)
    };
    let std_stream = stream.into_std().context("taking the trace socket")?;
    std_stream
        .set_nonblocking(false)
        .context("making the trace socket blocking")?;
    let clock = ctx.clock;
    let director = ctx.director.clone();
    tokio::task::spawn_blocking(move || {
        if capture {
            stream_frames(std_stream, subscription, args, clock)
        } else {
            stream_events(std_stream, subscription, args, &director, clock)
        }
    })
    .await
    .context("trace thread")?
}

fn write_line<T: serde::Serialize>(out: &mut StdUnixStream, msg: &T) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(msg)?;
    line.push(b'\n');
    out.write_all(&line)
}

/// Counts connections shown through stage 4, for `--count`.
struct Finished {
    seen: HashSet<(SocketAddrV4, SocketAddrV4)>,
    limit: Option<u64>,
}

impl Finished {
    fn saw(&mut self, stage: Stage, client: SocketAddrV4, vaddr: SocketAddrV4) -> bool {
        if stage == Stage::DirectorToClient {
            self.seen.insert((client, vaddr));
        }
        self.limit.is_some_and(|n| self.seen.len() as u64 >= n)
    }
}

fn stream_events(
    mut out: StdUnixStream,
    subscription: Subscription,
    args: TraceArgs,
    director: &Director,
    clock: Clock,
) -> Result<()> {
    let mut finished = Finished {
        seen: HashSet::new(),
        limit: args.count,
    };
    let mut diagnosed: Vec<String> = Vec::new();
    let mut last_check: Option<std::time::Instant> = None;
    loop {
        // The diagnosis (wrong gateway, refused connections, ...) goes into the trace too.
        if last_check.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            last_check = Some(std::time::Instant::now());
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
                if write_line(&mut out, &StreamChunk { out: line + "\n" }).is_err() {
                    return Ok(());
                }
                diagnosed.push(problem);
            }
        }
        match subscription.events.recv_timeout(Duration::from_secs(1)) {
            Ok(event) => {
                let text = if args.json {
                    trace::json(&event)
                } else {
                    trace::text(&event)
                };
                if write_line(&mut out, &StreamChunk { out: text + "\n" }).is_err() {
                    return Ok(()); // the reader went away
                }
                if let TraceKind::Stage(stage, _) = event.kind {
                    if finished.saw(stage, event.client, event.vaddr) {
                        break;
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                // Nothing to show: a keep-alive finds out whether the reader is still there.
                if write_line(&mut out, &StreamChunk { out: String::new() }).is_err() {
                    return Ok(());
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    finish(out, &subscription)
}

fn stream_frames(
    mut out: StdUnixStream,
    subscription: Subscription,
    args: TraceArgs,
    clock: Clock,
) -> Result<()> {
    let mut finished = Finished {
        seen: HashSet::new(),
        limit: args.count,
    };
    let Some(frames) = &subscription.frames else {
        return finish(out, &subscription);
    };
    loop {
        // Events are not shown in a capture; drain them so they do not count as lost.
        while subscription.events.try_recv().is_ok() {}
        match frames.recv_timeout(Duration::from_secs(1)) {
            Ok(f) => {
                let line = CaptureLine {
                    frame: FrameChunk {
                        epoch_us: clock.epoch_micros(f.at),
                        stage: f.stage as u8,
                        hex: hex(&f.bytes),
                    },
                };
                if write_line(&mut out, &line).is_err() {
                    return Ok(());
                }
                if finished.saw(f.stage, f.client, f.vaddr) {
                    break;
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if write_line(&mut out, &StreamChunk { out: String::new() }).is_err() {
                    return Ok(());
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    finish(out, &subscription)
}

fn finish(mut out: StdUnixStream, subscription: &Subscription) -> Result<()> {
    let lost = subscription.tap.lost();
    let stderr = if lost > 0 {
        format!("masqadm: {lost} trace events were lost (the reader was too slow)\n")
    } else {
        String::new()
    };
    let _ = write_line(
        &mut out,
        &Outcome {
            stdout: String::new(),
            stderr,
            code: 0,
            ..Default::default()
        },
    );
    Ok(())
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
