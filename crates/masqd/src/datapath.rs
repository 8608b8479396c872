//! The packet threads: one per interface, each receiving on its own socket, handing frames
//! to its core [`Worker`] and sending what comes out on either socket.
//!
//! Nothing here allocates or logs per packet: the receive buffer is allocated once, send
//! failures are counted and reported by the housekeeping loop at most once a second.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use masq_core::director::{FrameMeta, MAX_FRAME};
use masq_core::DropReason;
use masq_core::{Side, Verdict, Worker};
use masq_io::{FrameIo, IoError, Offload, PacketSocket, RecvBatch, SendBatch, VNET_HDR_LEN};

use crate::clock::Clock;

/// How long a packet thread waits for a frame before doing its idle work (releasing frames
/// whose next hop got resolved, checking for stop).
const IDLE_POLL: Duration = Duration::from_millis(20);

/// Frames taken from the kernel per receive call (`recvmmsg`): one syscall for up to this
/// many frames under load.
const BATCH: usize = 32;

/// The socket receive buffer masqd asks for: deep enough to absorb a burst of GSO
/// super-frames while a packet thread is busy.
pub const RECV_BUFFER: usize = 32 << 20;

/// The two sockets, by side.
pub struct Ports {
    pub vip: Arc<PacketSocket>,
    pub dip: Arc<PacketSocket>,
}

impl Ports {
    /// The socket of `side`.
    pub fn get(&self, side: Side) -> &PacketSocket {
        match side {
            Side::Vip => self.vip.as_ref(),
            Side::Dip => self.dip.as_ref(),
        }
    }
}

/// Errors the packet threads met, reported by the housekeeping loop.
#[derive(Debug, Default)]
pub struct IoErrors {
    pub recv: AtomicU64,
    pub send: AtomicU64,
}

/// Converts between the io crate's offload header and the core's opaque frame metadata.
fn meta_of(offload: &Offload) -> FrameMeta {
    let mut io = [0u8; 16];
    io[..VNET_HDR_LEN].copy_from_slice(&offload.encode());
    FrameMeta {
        partial_checksum: offload.needs_csum,
        gso: offload.is_gso(),
        io,
    }
}

/// The offload header a frame must be sent with (all zeros, i.e. none, for frames the
/// director generated itself).
pub fn offload_of(meta: &FrameMeta) -> Offload {
    let mut raw = [0u8; VNET_HDR_LEN];
    raw.copy_from_slice(&meta.io[..VNET_HDR_LEN]);
    let mut offload = Offload::decode(&raw);
    // "Checksums verified" describes a received frame; it means nothing on transmit.
    offload.csum_valid = false;
    offload
}

/// Starts the packet thread for `side`.
pub fn spawn(
    side: Side,
    ports: Arc<Ports>,
    mut worker: Worker,
    clock: Clock,
    stop: Arc<AtomicBool>,
    errors: Arc<IoErrors>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("masq-{}", side.name()))
        .spawn(move || {
            let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; MAX_FRAME]).collect();
            let mut batch = RecvBatch::new(BATCH);
            let mut sends = [SendBatch::new(BATCH), SendBatch::new(BATCH)];
            // Where each received frame goes, decided before any is sent so that each side
            // gets one sendmmsg per batch.
            let mut out: [Option<(Side, Offload)>; BATCH] = [None; BATCH];
            let port = ports.get(side);
            while !stop.load(Relaxed) {
                let n = match port.recv_batch(&mut batch, &mut bufs, IDLE_POLL) {
                    Ok(n) => n,
                    Err(_) => {
                        errors.recv.fetch_add(1, Relaxed);
                        0
                    }
                };
                let now = clock.now();
                for ((rx, buf), dest) in batch.received()[..n]
                    .iter()
                    .zip(bufs.iter_mut())
                    .zip(out.iter_mut())
                {
                    *dest = None;
                    if rx.truncated {
                        worker.counters().count_drop(DropReason::Oversize);
                        continue;
                    }
                    let verdict =
                        worker.handle_frame(now, side, &mut buf[..rx.len], meta_of(&rx.offload));
                    if let Verdict::Forward(to) = verdict {
                        let offload = Offload {
                            csum_valid: false,
                            ..rx.offload
                        };
                        *dest = Some((to, offload));
                    }
                }
                for (to, send) in [Side::Vip, Side::Dip].into_iter().zip(sends.iter_mut()) {
                    let wanted = out[..n]
                        .iter()
                        .filter(|d| matches!(d, Some((s, _)) if *s == to))
                        .count();
                    if wanted == 0 {
                        continue;
                    }
                    let frames = batch.received()[..n]
                        .iter()
                        .zip(&bufs)
                        .zip(&out)
                        .filter_map(|((rx, buf), dest)| match dest {
                            Some((s, offload)) if *s == to => Some((*offload, &buf[..rx.len])),
                            _ => None,
                        });
                    if let Err(e) = ports.get(to).send_batch(send, frames) {
                        // The failed frame and the rest of that batch are lost; count them
                        // all rather than retrying on the packet path.
                        let sent = match e {
                            IoError::BatchSend { sent, .. } => sent,
                            _ => 0,
                        };
                        errors
                            .send
                            .fetch_add((wanted - sent.min(wanted)) as u64, Relaxed);
                    }
                }
                while let Some(tx) = worker.poll_transmit(now) {
                    let offload = offload_of(&tx.meta);
                    if ports.get(tx.side).send(&offload, tx.frame).is_err() {
                        errors.send.fetch_add(1, Relaxed);
                    }
                }
            }
        })
}
