//! The packet threads and the sockets they run over, in one of two back ends:
//!
//! - `socket` ([`PacketSocket`], `recvmmsg`): one socket and one packet thread per interface;
//! - `ring` ([`RingSocket`], TPACKET_V3): per interface, N sockets in one `PACKET_FANOUT`
//!   group and N packet threads. The kernel hashes each flow to one member (so a flow's
//!   frames stay in order); the two directions of a connection cross different interfaces
//!   with different addresses, so they generally land on different threads, which is fine
//!   because the connection table is shared by every [`Worker`].
//!
//! Each thread receives on its own socket, hands frames to its own core [`Worker`] and sends
//! what comes out on the socket of the right side (in ring mode, the one with its own
//! index). Nothing here allocates or logs per packet: the receive buffers are allocated
//! once, send failures are counted and reported by the housekeeping loop at most once a
//! second.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use masq_core::director::{FrameMeta, MAX_FRAME};
use masq_core::{Director, DropReason};
use masq_core::{Side, Verdict, Worker};
use masq_io::{
    FrameIo, Interface, IoError, Offload, PacketSocket, RecvBatch, RingOptions, RingSocket,
    SendBatch, SocketOptions, VNET_HDR_LEN,
};

use crate::clock::Clock;

/// How long a packet thread waits for a frame before doing its idle work (releasing frames
/// whose next hop got resolved, checking for stop).
const IDLE_POLL: Duration = Duration::from_millis(20);

/// Frames taken from the kernel per receive call (`recvmmsg`, or one pass over the ring):
/// one syscall at most for up to this many frames under load.
const BATCH: usize = 32;

/// The socket receive buffer masqd asks for: deep enough to absorb a burst of GSO
/// super-frames while a packet thread is busy.
pub const RECV_BUFFER: usize = 32 << 20;

/// Ring blocks per interface, shared out among its workers: 128 blocks of 256 KiB is the
/// socket back end's 32 MiB, so memory does not grow with the worker count…
const RING_BLOCKS_PER_SIDE: u32 = 128;
/// …except that each ring keeps at least this many (4 MiB), enough for a burst of 16
/// super-frames.
const RING_MIN_BLOCKS: u32 = 16;

/// How frames are read from the interfaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IoBackend {
    /// One `AF_PACKET` socket per interface, `recvmmsg`/`sendmmsg`, one packet thread each.
    Socket,
    /// TPACKET_V3 receive rings in a `PACKET_FANOUT` group, `--workers` threads per
    /// interface, `sendmmsg`.
    Ring,
}

/// The sockets of one packet thread (or of the housekeeping loop), by side.
pub struct Ports<P: ?Sized> {
    pub vip: Arc<P>,
    pub dip: Arc<P>,
}

impl<P: ?Sized> Ports<P> {
    /// The socket of `side`.
    pub fn get(&self, side: Side) -> &P {
        match side {
            Side::Vip => self.vip.as_ref(),
            Side::Dip => self.dip.as_ref(),
        }
    }
}

/// The running data path: its threads, and one socket per side for the frames the
/// director sends on its own (ARP probes, gratuitous ARP).
pub struct Datapath {
    pub threads: Vec<JoinHandle<()>>,
    pub control: Arc<Ports<dyn FrameIo>>,
}

/// Opens the sockets of `backend` on both interfaces and starts the packet threads
/// (`workers` per interface for `ring`; one for `socket`).
///
/// # Errors
///
/// A socket could not be opened (the error names the call and interface) or a thread not
/// started.
#[allow(clippy::too_many_arguments)]
pub fn start(
    backend: IoBackend,
    workers: usize,
    vip: &Interface,
    dip: &Interface,
    director: &Arc<Director>,
    clock: Clock,
    stop: &Arc<AtomicBool>,
    errors: &Arc<IoErrors>,
) -> Result<Datapath> {
    let mut threads = Vec::new();
    match backend {
        IoBackend::Socket => {
            let options = SocketOptions {
                recv_buffer: Some(RECV_BUFFER),
                ..SocketOptions::default()
            };
            let ports = Arc::new(Ports {
                vip: Arc::new(PacketSocket::open(vip, &options).context("opening the VIP side")?),
                dip: Arc::new(PacketSocket::open(dip, &options).context("opening the DIP side")?),
            });
            for side in [Side::Vip, Side::Dip] {
                threads.push(
                    spawn(
                        side,
                        0,
                        ports.clone(),
                        director.worker(),
                        clock,
                        stop,
                        errors,
                    )
                    .context("starting a packet thread")?,
                );
            }
            let control = Arc::new(Ports::<dyn FrameIo> {
                vip: ports.vip.clone(),
                dip: ports.dip.clone(),
            });
            Ok(Datapath { threads, control })
        }
        IoBackend::Ring => {
            let workers = workers.max(1);
            let blocks = (RING_BLOCKS_PER_SIDE / workers as u32).max(RING_MIN_BLOCKS);
            let open = |iface: &Interface, what: &str| -> Result<Vec<Arc<RingSocket>>> {
                let options = RingOptions {
                    block_count: blocks,
                    fanout_group: Some(fanout_group(iface)),
                    ..RingOptions::default()
                };
                (0..workers)
                    .map(|_| {
                        RingSocket::open(iface, &options)
                            .map(Arc::new)
                            .with_context(|| format!("opening the {what} side"))
                    })
                    .collect()
            };
            let vips = open(vip, "VIP")?;
            let dips = open(dip, "DIP")?;
            for (index, (vip, dip)) in vips.iter().zip(&dips).enumerate() {
                let ports = Arc::new(Ports {
                    vip: vip.clone(),
                    dip: dip.clone(),
                });
                for side in [Side::Vip, Side::Dip] {
                    threads.push(
                        spawn(
                            side,
                            index,
                            ports.clone(),
                            director.worker(),
                            clock,
                            stop,
                            errors,
                        )
                        .context("starting a packet thread")?,
                    );
                }
            }
            // Any member can send; the kernel never loops a group's sends back to it.
            let control = Arc::new(Ports::<dyn FrameIo> {
                vip: vips[0].clone(),
                dip: dips[0].clone(),
            });
            Ok(Datapath { threads, control })
        }
    }
}

/// The fanout group id for `iface`'s rings. Ids are per network namespace: mixing in the
/// process id keeps two masqd (or a masqd and a capture tool) on one host from joining
/// each other's group, and the interface index keeps the two sides apart.
fn fanout_group(iface: &Interface) -> u16 {
    (std::process::id() as u16) ^ ((iface.index as u16) << 10)
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

/// Starts the packet thread for `side`, number `index` of that side, over `ports`.
fn spawn<P: FrameIo + 'static>(
    side: Side,
    index: usize,
    ports: Arc<Ports<P>>,
    mut worker: Worker,
    clock: Clock,
    stop: &Arc<AtomicBool>,
    errors: &Arc<IoErrors>,
) -> std::io::Result<JoinHandle<()>> {
    let (stop, errors) = (stop.clone(), errors.clone());
    std::thread::Builder::new()
        .name(format!("masq-{}-{index}", side.name()))
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
