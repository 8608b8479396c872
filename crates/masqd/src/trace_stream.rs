//! Serves `masqadm --trace`: subscribes to the director's trace hub and streams formatted
//! events to the client until `--count` connections were shown or the client goes away.
//!
//! The stream runs on its own thread with blocking writes: a slow reader only fills its
//! own bounded queue in the core (events are then lost and counted), it never slows the
//! packet threads.

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use masq_core::trace::{Stage, TraceKind};
use masq_ctl::request::{Request, StreamChunk};
use masq_ctl::trace::{self, TraceArgs};
use masq_ctl::Outcome;
use tokio::net::UnixStream;

use crate::control_server::{error_outcome, reply, ControlContext};

/// Events a trace listener may have queued before it loses some.
const QUEUE: usize = 4096;

pub async fn serve(mut stream: UnixStream, ctx: &ControlContext, request: &Request) -> Result<()> {
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
                "{}: --trace: no such service {proto} {addr}",
                request.program
            );
            return reply(&mut stream, &error_outcome(&msg, 1)).await;
        }
    }
    let subscription = ctx.director.trace.subscribe(args.filter, QUEUE);
    let std_stream = stream.into_std().context("taking the trace socket")?;
    std_stream
        .set_nonblocking(false)
        .context("making the trace socket blocking")?;
    tokio::task::spawn_blocking(move || stream_events(std_stream, subscription, args))
        .await
        .context("trace thread")?
}

fn write_line<T: serde::Serialize>(
    out: &mut std::os::unix::net::UnixStream,
    msg: &T,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(msg)?;
    line.push(b'\n');
    out.write_all(&line)
}

fn stream_events(
    mut out: std::os::unix::net::UnixStream,
    subscription: masq_core::trace::Subscription,
    args: TraceArgs,
) -> Result<()> {
    let mut finished = HashSet::new();
    loop {
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
                if matches!(event.kind, TraceKind::Stage(Stage::DirectorToClient, _)) {
                    finished.insert((event.client, event.vaddr));
                }
                if args.count.is_some_and(|n| finished.len() as u64 >= n) {
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                // Nothing to show: a keep-alive finds out whether the reader is still there.
                if write_line(&mut out, &StreamChunk { out: String::new() }).is_err() {
                    return Ok(());
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let lost = subscription.tap.lost();
    let stderr = if lost > 0 {
        format!("masqadm: --trace: {lost} events were lost (the reader was too slow)\n")
    } else {
        String::new()
    };
    let _ = write_line(
        &mut out,
        &Outcome {
            stdout: String::new(),
            stderr,
            code: 0,
        },
    );
    Ok(())
}
