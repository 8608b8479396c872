//! The packet threads and the sockets they run over, in one of four back ends:
//!
//! - `socket` ([`PacketSocket`], `recvmmsg`): one socket and one packet thread per interface;
//! - `pnet` ([`PnetPort`], a `pnet_datalink` channel): the same shape, one `recvfrom` and
//!   one `sendto` per frame (each after a `poll`) and no offload metadata, so it needs
//!   MTU-sized frames (GRO/LRO off here, TSO/GSO off on the senders). It is the simple,
//!   portable path the other two are measured against, not one to run in production;
//! - `ring` ([`RingSocket`], TPACKET_V2 slots or V3 blocks): per interface, N sockets in one `PACKET_FANOUT`
//!   group and N packet threads. The kernel hashes each flow to one member (so a flow's
//!   frames stay in order); the two directions of a connection cross different interfaces
//!   with different addresses, so they generally land on different threads, which is fine
//!   because the connection table is shared by every [`Worker`];
//! - `xdp` ([`XdpPort`], AF_XDP in copy mode): one port and one packet thread per
//!   interface; an XDP program hands service traffic to the port's AF_XDP sockets before
//!   the kernel builds a socket buffer for it, everything else goes on to the kernel. Its
//!   frames carry no offload metadata: senders must not leave checksums to offloads (see
//!   [`partial_checksums`]).
//!
//! Each thread receives on its own socket, hands frames to its own core [`Worker`] and sends
//! what comes out on the socket of the right side (in ring mode, the one with its own
//! index). Nothing here allocates or logs per packet: the receive buffers are allocated
//! once, send failures are counted and reported by the housekeeping loop at most once a
//! second.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use masq_core::director::{FrameMeta, MAX_FRAME};
use masq_core::{Director, DropReason};
use masq_core::{Side, Verdict, Worker};
use masq_io::host::Offloads;
use masq_io::{
    FrameIo, GsoType, Interface, IoError, Offload, PacketSocket, PnetOptions, PnetPort, RecvBatch,
    RingFormat, RingOptions, RingSocket, SendBatch, SocketOptions, XdpOptions, XdpPort, XdpSide,
    V2_SLOT, VNET_HDR_LEN,
};

use crate::clock::Clock;
use crate::startup_findings::Finding;
use crate::stop::Stop;

/// How long a packet thread waits for a frame before doing its idle work (releasing frames
/// whose next hop got resolved, checking for stop).
const IDLE_POLL: Duration = Duration::from_millis(20);

/// Frames taken from the kernel per receive call (`recvmmsg`, or one pass over the ring):
/// one syscall at most for up to this many frames under load.
const BATCH: usize = 32;

/// The socket receive buffer masqd asks for: deep enough to absorb a burst of GSO
/// super-frames while a packet thread is busy.
pub const RECV_BUFFER: usize = 32 << 20;

/// Ring memory per interface, shared out among its workers: the socket back end's 32 MiB
/// (128 V3 blocks of 256 KiB, or 16 384 V2 slots of 2 KiB), so memory does not grow with
/// the worker count…
const RING_BYTES_PER_SIDE: u32 = 32 << 20;
/// The V3 block size: room for a few 64 KiB super-frames or ~170 MTU frames.
const V3_BLOCK: u32 = 256 << 10;
/// …except that each ring keeps at least 4 MiB, enough for a burst of 16 super-frames in
/// V3 blocks, or 2048 MTU frames in V2 slots (V2 super-frames wait on the socket's queue).
const RING_MIN_BYTES: u32 = 4 << 20;

/// The ring layout of `--io ring` (`--ring-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RingLayout {
    /// TPACKET_V2: one frame per slot, each handed over as soon as it is written.
    V2,
    /// TPACKET_V3: frames packed into blocks, handed over when full or after 1 ms.
    V3,
}

/// How the packet threads and their sockets are set up, beyond the back end.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Packet threads per interface (`ring` only).
    pub workers: usize,
    /// Ring layout (`ring` only).
    pub ring_layout: RingLayout,
    /// How long a packet thread spins on its empty ring before sleeping (`ring` only).
    pub busy_poll: Duration,
    /// `PACKET_QDISC_BYPASS` on every socket.
    pub qdisc_bypass: bool,
}

/// How frames are read from the interfaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IoBackend {
    /// One `AF_PACKET` socket per interface, `recvmmsg`/`sendmmsg`, one packet thread each.
    Socket,
    /// TPACKET_V2 (or V3) receive rings in a `PACKET_FANOUT` group, `--workers` threads
    /// per interface, `sendmmsg`.
    Ring,
    /// A `pnet_datalink` channel per interface, a syscall per frame, one packet thread
    /// each; MTU-sized frames only. For comparison.
    Pnet,
    /// AF_XDP sockets fed by an XDP program that steals only service traffic, one packet
    /// thread per interface; MTU-sized frames with complete checksums only.
    Xdp,
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
    /// With `--io xdp`: the ports, whose programs must learn the service addresses.
    pub xdp: Option<Ports<XdpPort>>,
}

/// Opens the sockets of `backend` on both interfaces and starts the packet threads
/// (`workers` per interface for `ring`; one for `socket` and `pnet`).
///
/// # Errors
///
/// A socket could not be opened (the error names the call and interface) or a thread not
/// started.
#[allow(clippy::too_many_arguments)]
pub fn start(
    backend: IoBackend,
    tuning: &Tuning,
    vip: &Interface,
    dip: &Interface,
    director: &Arc<Director>,
    clock: Clock,
    stop: &Arc<Stop>,
    errors: &Arc<IoErrors>,
) -> Result<Datapath> {
    let mut threads = Vec::new();
    match backend {
        IoBackend::Socket => {
            let options = SocketOptions {
                recv_buffer: Some(RECV_BUFFER),
                qdisc_bypass: tuning.qdisc_bypass,
            };
            let ports = Ports {
                vip: Arc::new(PacketSocket::open(vip, &options).context("opening the VIP side")?),
                dip: Arc::new(PacketSocket::open(dip, &options).context("opening the DIP side")?),
            };
            one_thread_per_side(ports, director, clock, stop, errors)
        }
        IoBackend::Pnet => {
            let options = PnetOptions {
                recv_buffer: Some(RECV_BUFFER),
                qdisc_bypass: tuning.qdisc_bypass,
            };
            let ports = Ports {
                vip: Arc::new(PnetPort::open(vip, &options).context("opening the VIP side")?),
                dip: Arc::new(PnetPort::open(dip, &options).context("opening the DIP side")?),
            };
            one_thread_per_side(ports, director, clock, stop, errors)
        }
        IoBackend::Xdp => {
            let open = |iface: &Interface, side: XdpSide, what: &str| -> Result<Arc<XdpPort>> {
                let port = XdpPort::open(iface, &XdpOptions::new(side))
                    .with_context(|| format!("opening the {what} side"))?;
                tracing::info!(
                    "{}: XDP program attached in {:?} mode, {} AF_XDP socket(s)",
                    iface.name,
                    port.mode(),
                    port.queues()
                );
                Ok(Arc::new(port))
            };
            let ports = Ports {
                vip: open(vip, XdpSide::Vip, "VIP")?,
                dip: open(dip, XdpSide::Dip, "DIP")?,
            };
            let steered = Ports {
                vip: ports.vip.clone(),
                dip: ports.dip.clone(),
            };
            let mut datapath = one_thread_per_side(ports, director, clock, stop, errors)?;
            datapath.xdp = Some(steered);
            Ok(datapath)
        }
        IoBackend::Ring => {
            let workers = tuning.workers.max(1);
            let (format, unit) = match tuning.ring_layout {
                RingLayout::V2 => (RingFormat::V2, V2_SLOT),
                RingLayout::V3 => (RingFormat::V3, V3_BLOCK),
            };
            let bytes = (RING_BYTES_PER_SIDE / workers as u32).max(RING_MIN_BYTES);
            let open = |iface: &Interface, what: &str| -> Result<Vec<Arc<RingSocket>>> {
                let options = RingOptions {
                    format,
                    block_size: unit,
                    block_count: bytes / unit,
                    fanout_group: Some(fanout_group(iface)),
                    qdisc_bypass: tuning.qdisc_bypass,
                    busy_poll: tuning.busy_poll,
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
            Ok(Datapath {
                threads,
                control,
                xdp: None,
            })
        }
    }
}

/// Starts one packet thread per side over `ports`, which also serve the housekeeping loop.
fn one_thread_per_side<P: FrameIo + 'static>(
    ports: Ports<P>,
    director: &Arc<Director>,
    clock: Clock,
    stop: &Arc<Stop>,
    errors: &Arc<IoErrors>,
) -> Result<Datapath> {
    let ports = Arc::new(ports);
    let mut threads = Vec::new();
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
    Ok(Datapath {
        threads,
        control,
        xdp: None,
    })
}

/// What `backend` cannot forward on these interfaces, as start-up findings.
pub fn caveats(backend: IoBackend, vip: &Interface, dip: &Interface) -> Vec<Finding> {
    match backend {
        IoBackend::Pnet => [vip, dip].into_iter().filter_map(super_frames).collect(),
        IoBackend::Xdp => {
            let local_senders: Vec<&str> = [vip, dip]
                .into_iter()
                .map(|iface| iface.name.as_str())
                .filter(|name| has_no_device(name))
                .collect();
            partial_checksums(&local_senders).into_iter().collect()
        }
        IoBackend::Socket | IoBackend::Ring => Vec::new(),
    }
}

/// `--io pnet` has no virtio-net header: a GRO- or LRO-merged super-frame reaches it as
/// one plain frame over the MTU, which the director drops as too big for the outgoing
/// link. masqd leaves GRO as it is, as for the other back ends, which forward
/// super-frames whole; the finding goes once the operator turns merging off.
fn super_frames(iface: &Interface) -> Option<Finding> {
    let state = match masq_io::host::offload_state(&iface.name) {
        Ok(state) => state,
        Err(e) => {
            tracing::debug!("{}: could not read offloads: {e}", iface.name);
            return None;
        }
    };
    let name = iface.name.clone();
    let merges = |state: &Offloads| state.gro || state.lro;
    Some(super_frame_finding(&name, &state)?.while_true(move || {
        masq_io::host::offload_state(&name).map_or(true, |state| merges(&state))
    }))
}

/// What the user of `--io pnet` must know about interface `name` with offloads `state`.
fn super_frame_finding(name: &str, state: &Offloads) -> Option<Finding> {
    let merging = match (state.gro, state.lro) {
        (false, false) => return None,
        (true, false) => "GRO is",
        (false, true) => "LRO is",
        (true, true) => "GRO and LRO are",
    };
    Some(Finding::new(
        format!("{name}: {merging} on: --io pnet cannot forward the super-frames they merge; they will be dropped as frag_needed/too_big"),
        format!("ethtool -K {name} gro off lro off"),
    ))
}

/// AF_XDP frames come without the virtio-net header that says "checksum not filled in
/// yet": a sender on this host (a veth peer, a container) that leaves its TCP/UDP checksum
/// to transmit offload hands over frames masqd cannot tell from complete ones, and the
/// receiver drops them. Frames from a physical wire are always complete, so only
/// interfaces with no device behind them (`local_senders`) are named.
fn partial_checksums(local_senders: &[&str]) -> Option<Finding> {
    if local_senders.is_empty() {
        return None;
    }
    Some(Finding::new(
        format!(
            "--io xdp: frames carry no offload metadata, and {} may have senders on this host: a sender that leaves its TCP/UDP checksum to transmit offload has its frames dropped by the receiver",
            local_senders.join(" and ")
        ),
        "turn transmit checksumming off on the senders' side of each veth pair (ethtool -K PEER tx off), or use --io socket or ring",
    ))
}

/// Whether interface `name` is virtual (veth, tap, bridge…): no device stands behind it
/// in sysfs, so what it receives may come from this very host.
fn has_no_device(name: &str) -> bool {
    !std::path::Path::new("/sys/class/net")
        .join(name)
        .join("device")
        .exists()
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
        tcp_gso_size: if offload.gso_type == GsoType::TcpV4 {
            offload.gso_size
        } else {
            0
        },
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
    stop: &Arc<Stop>,
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
            #[cfg(debug_assertions)]
            let panic_at_first_frame = crate::fault::armed("panic-packet-thread");
            while !stop.requested() {
                let n = match port.recv_batch(&mut batch, &mut bufs, IDLE_POLL) {
                    Ok(n) => n,
                    Err(_) => {
                        errors.recv.fetch_add(1, Relaxed);
                        0
                    }
                };
                #[cfg(debug_assertions)]
                if panic_at_first_frame && n > 0 {
                    panic!("MASQD_FAULT=panic-packet-thread: a packet thread fails on purpose");
                }
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
                // Frames encapsulated for a tunnel were copied out of the batch; they leave
                // in the same sendmmsg as the frames forwarded in place.
                let encapsulated = worker.take_encapsulated();
                for (to, send) in [Side::Vip, Side::Dip].into_iter().zip(sends.iter_mut()) {
                    let in_place = batch.received()[..n]
                        .iter()
                        .zip(&bufs)
                        .zip(&out)
                        .filter_map(|((rx, buf), dest)| match dest {
                            Some((s, offload)) if *s == to => Some((*offload, &buf[..rx.len])),
                            _ => None,
                        });
                    let tunnelled = encapsulated
                        .iter()
                        .filter(|tx| tx.side == to)
                        .map(|tx| (offload_of(&tx.meta), tx.frame));
                    let frames = in_place.chain(tunnelled);
                    let wanted = frames.clone().count();
                    if wanted == 0 {
                        continue;
                    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pnet_warns_only_when_frames_get_merged() {
        let problem =
            |state: &Offloads| super_frame_finding("eth1", state).map(|f| f.problem().to_string());
        let off = Offloads::default();
        assert_eq!(problem(&off), None);
        // Segmentation and checksum offloads on the director do not reach --io pnet.
        let senders_only = Offloads {
            tso: true,
            gso: true,
            tx_csum: true,
            rx_csum: true,
            ..off
        };
        assert_eq!(problem(&senders_only), None);
        let gro = super_frame_finding("eth1", &Offloads { gro: true, ..off }).unwrap();
        assert!(
            gro.problem()
                .starts_with("eth1: GRO is on: --io pnet cannot forward"),
            "{}",
            gro.problem()
        );
        assert_eq!(gro.fix(), "ethtool -K eth1 gro off lro off");
        let both = problem(&Offloads {
            gro: true,
            lro: true,
            ..off
        })
        .unwrap();
        assert!(both.starts_with("eth1: GRO and LRO are on:"), "{both}");
        let lro = problem(&Offloads { lro: true, ..off }).unwrap();
        assert!(lro.starts_with("eth1: LRO is on:"), "{lro}");
    }

    #[test]
    fn xdp_warns_of_partial_checksums_only_for_interfaces_with_local_senders() {
        assert!(partial_checksums(&[]).is_none());
        let finding = partial_checksums(&["veth0", "veth1"]).unwrap();
        assert!(
            finding
                .problem()
                .contains("and veth0 and veth1 may have senders on this host"),
            "{}",
            finding.problem()
        );
        assert!(
            finding.fix().contains("ethtool -K PEER tx off"),
            "{}",
            finding.fix()
        );
    }
}
