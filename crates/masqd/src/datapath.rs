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
use masq_io::{FrameIo, Offload, PacketSocket, RecvBatch, VNET_HDR_LEN};

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
                for (rx, buf) in batch.received()[..n].iter().zip(bufs.iter_mut()) {
                    if rx.truncated {
                        worker.counters().count_drop(DropReason::Oversize);
                        continue;
                    }
                    let frame = &mut buf[..rx.len];
                    if let Verdict::Forward(out) =
                        worker.handle_frame(now, side, frame, meta_of(&rx.offload))
                    {
                        let offload = Offload {
                            csum_valid: false,
                            ..rx.offload
                        };
                        if ports.get(out).send(&offload, frame).is_err() {
                            errors.send.fetch_add(1, Relaxed);
                        }
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
