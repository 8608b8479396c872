//! [`XdpPort`]: an `AF_XDP` back end for one interface, with a tiny XDP program of our
//! own that steals only the director's service traffic.
//!
//! How a frame travels:
//!
//! ```text
//!  wire ─► XDP program (on the interface) ──steal──► XSKMAP[rx queue] ─► AF_XDP RX ring ─┐
//!                    │ pass (ARP, the host's own traffic, other queues)                   ├─► recv_batch
//!                    └──────────► kernel stack ─► AF_PACKET tap (PacketSocket) ───────────┘
//!  send_batch ─► UMEM frame ─► AF_XDP TX ring ─► sendto() kick ─► driver
//!            └─ frames with GSO / partial checksum ─► PacketSocket (PACKET_VNET_HDR)
//! ```
//!
//! The program (assembled below, no compiler involved) looks the IPv4 addresses of a frame
//! up in the hash map `addrs` (key: the address as it is on the wire, value: flags
//! VIP = 1, RIP = 2, LOCAL = 4). On the VIP side it steals a frame whose destination is
//! a VIP; when that VIP is also one of the host's own addresses (LOCAL, as in the classic
//! lab), only the frames masqd serves: TCP/UDP to a port in the `services` map (key: VIP,
//! port, protocol), ICMP errors, and later fragments; the host keeps the rest of its
//! traffic to that address (ssh, ping, a closed port answered with RST). On the DIP side it
//! steals a frame whose source is a real server and whose destination is not one of the
//! host's own addresses (so replies to the host's own health checks reach its sockets).
//! Everything else goes to the kernel, where the port's [`PacketSocket`] still sees it:
//! AF_PACKET taps run after XDP. The maps are filled by [`XdpPort::set_addresses`] and
//! [`XdpPort::set_service_ports`].
//!
//! Invariants:
//! - the UMEM is cut in two halves: receive frames circulate fill ring → RX ring → fill
//!   ring, transmit frames free list → TX ring → completion ring → free list; each half
//!   is only touched under its own lock, so the halves never mix;
//! - frames are copied out of the UMEM into the caller's buffers (and into the UMEM from
//!   the caller's frames): simplest, and it lets the core rewrite a plain `&mut [u8]`;
//!   receive frames go back to the fill ring at the end of each batch;
//! - receiving and sending allocate nothing and make no syscall per frame: one `poll`
//!   when both paths are empty, one `recvmmsg` on the kernel path when the XDP path did
//!   not fill the batch, one `sendto` kick per 32 transmitted frames (copy mode sends at
//!   most 32 per kick);
//! - the program is attached through a BPF link: closing the port detaches it.
//!
//! Limits (see also [`XdpPort::open`]):
//! - this binds copy mode (`XDP_COPY`), the only mode veth has; zero-copy, on NICs that
//!   offer it, is not attempted;
//! - AF_XDP frames carry no virtio-net header: received frames are reported with
//!   [`Offload::NONE`]; frames to send that still need segmentation or a checksum go out
//!   through the [`PacketSocket`] instead (in order with the others), and frames longer
//!   than the MTU plus the Ethernet header are refused (`EMSGSIZE`);
//! - XDP on a veth caps the MTU at about a page (a frame must fit one buffer) and turns
//!   off the peer's GSO/TSO, so the peer sends MTU-sized frames; but not the peer's
//!   transmit checksum offload: a kernel socket behind a veth peer with `tx` checksumming
//!   on hands over frames whose L4 checksum holds only the pseudo-header sum, and the
//!   port cannot tell (measured, see `xdp_netns_tests`). In a veth lab, turn the senders'
//!   `tx` checksumming off; frames from a real wire are complete;
//! - one socket, with its own UMEM (16 MiB by default, pinned memory), per receive queue
//!   the interface has when the port opens; a frame arriving on a queue without a socket
//!   (one added later) finds none in the XSKMAP and falls back to the kernel path (the
//!   redirect's default action is pass).

use std::collections::HashMap;
use std::ffi::CStr;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use crate::error::IoError;
use crate::iface::Interface;
use crate::offload::Offload;
use crate::socket::{poll_timeout_ms, PacketType, Received, RecvBatch, SendBatch};
use crate::sys::xdp::{self as xsys, RingKind, UmemRegion, XdpDesc};
use crate::{FrameIo, PacketSocket, SocketOptions};

/// Flag in the `addrs` map: the address is a virtual service address.
const VIP: u32 = 1;
/// Flag in the `addrs` map: the address is a real server's.
const RIP: u32 = 2;
/// Flag in the `addrs` map: the address is one of this host's own.
const LOCAL: u32 = 4;

/// Which traffic the XDP program steals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XdpSide {
    /// The client side: frames to a VIP.
    Vip,
    /// The real-server side: frames from a real server, unless addressed to this host.
    Dip,
}

/// How the XDP program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XdpMode {
    /// In the driver (`XDP_FLAGS_DRV_MODE`), before any socket buffer is built.
    Native,
    /// In the generic stack hook (`XDP_FLAGS_SKB_MODE`): slower, works on any device.
    Generic,
}

/// Options for [`XdpPort::open`].
#[derive(Clone, Debug)]
pub struct XdpOptions {
    /// Which traffic to steal.
    pub side: XdpSide,
    /// How many receive queues to bind, from queue 0 (one AF_XDP socket with its own
    /// UMEM per queue); `None`: every receive queue the interface has (`ETHTOOL_GCHANNELS`,
    /// 1 when the driver does not say). At most 64.
    pub queues: Option<u32>,
    /// UMEM frames per queue, half for receiving and half for sending; a power of two,
    /// 64 to 65536.
    pub frame_count: u32,
    /// Bytes per UMEM frame: 2048 or 4096. The largest frame is this less the 256 bytes
    /// of headroom the kernel keeps.
    pub frame_size: u32,
    /// Attach in generic mode even when the driver supports native XDP.
    pub force_generic: bool,
}

impl XdpOptions {
    /// Every queue, 4096 frames of 4096 bytes (16 MiB) per queue, native mode when
    /// possible.
    pub fn new(side: XdpSide) -> XdpOptions {
        XdpOptions {
            side,
            queues: None,
            frame_count: 4096,
            frame_size: 4096,
            force_generic: false,
        }
    }
}

/// Counters of an [`XdpPort`] since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpStats {
    /// Frames received through the AF_XDP sockets (stolen by the program).
    pub rx_xdp: u64,
    /// Frames received through the packet socket (passed to the kernel).
    pub rx_kernel: u64,
    /// Frames sent through the AF_XDP sockets.
    pub tx_xdp: u64,
    /// Frames sent through the packet socket (they needed GSO or a checksum).
    pub tx_kernel: u64,
    /// Kernel: stolen frames dropped because an RX ring was full (`rx_ring_full`) or no
    /// fill-ring frame was free (`rx_fill_ring_empty_descs`), or for another reason
    /// (`rx_dropped`), summed over the sockets.
    pub rx_dropped: u64,
    /// Kernel: TX descriptors it refused (`tx_invalid_descs`).
    pub tx_invalid: u64,
    /// RX descriptors that pointed outside the receive half of the UMEM (never seen).
    pub malformed: u64,
}

/// How many full XDP batches in a row before a slot is kept for the kernel path, so ARP
/// replies are not starved under load.
const FAIRNESS_STREAK: u32 = 8;

/// The most batches between two reads of the packet socket while the thread, busy with
/// XDP frames, does not `poll` (which would say when the socket has frames).
const KERNEL_CHECK_EVERY: u32 = 8;
/// The headroom the kernel keeps in front of a frame it copies into the UMEM.
const XDP_PACKET_HEADROOM: u32 = 256;
/// Longest wait for a free transmit frame before a send fails.
const TX_STALL: Duration = Duration::from_secs(1);
/// Entries of the `addrs` and `services` maps.
const MAP_ENTRIES: u32 = 4096;

/// Entries of the XSKMAP, so the most queues a port binds.
const MAX_QUEUES: u32 = 64;

/// The receive half of one queue: RX and fill rings and the receive frames.
struct RxPath {
    rx: xsys::Ring,
    fill: xsys::Ring,
    umem: UmemRegion,
    /// Frames copied out and not yet back on the fill ring (never above the half's size).
    returned: Vec<u64>,
}

/// Everything the receiving thread uses.
struct Receiver {
    paths: Vec<RxPath>,
    /// Scratch for reading the packet socket.
    kernel_batch: RecvBatch,
    full_streak: u32,
    /// The queue read first by the next call (round robin).
    next: usize,
    /// Whether the packet socket may hold frames: the last `poll` said so, or the last
    /// read of it filled all the room it had. Saves a `recvmmsg` that would find nothing
    /// on every batch, twice per wake-up under request/response traffic.
    kernel_ready: bool,
    /// Batches since the packet socket was last read; it is read at least every
    /// [`KERNEL_CHECK_EVERY`] batches while the XDP path keeps the thread from polling.
    batches_since_kernel: u32,
}

/// The transmit half of one queue: TX and completion rings, the free transmit frames.
struct TxPath {
    queue: usize,
    tx: xsys::Ring,
    completion: xsys::Ring,
    umem: UmemRegion,
    /// Transmit frames owned by us (never above the half's size).
    free: Vec<u64>,
}

/// An AF_XDP receive/transmit port on one interface. See the module documentation.
///
/// `Send + Sync`: one thread at a time receives (from every queue); senders take the
/// first transmit queue no other sender holds.
pub struct XdpPort {
    // Field order is drop order: the link first, so the program is detached before the
    // sockets it redirects to are closed.
    link: OwnedFd,
    sockets: Vec<Socket>,
    /// Per queue, the transmit socket sharing the receive socket's UMEM.
    tx_sockets: Vec<Socket>,
    rx: Mutex<Receiver>,
    tx: Vec<Mutex<TxPath>>,
    kernel: PacketSocket,
    addrs: OwnedFd,
    /// The VIP side's `(VIP, protocol, port)` keys, see [`XdpPort::set_service_ports`].
    services: OwnedFd,
    _xsks: OwnedFd,
    _prog: OwnedFd,
    control: Mutex<()>,
    iface: String,
    mac: [u8; 6],
    mode: XdpMode,
    frame_size: u64,
    max_tx_len: usize,
    rx_xdp: AtomicU64,
    rx_kernel: AtomicU64,
    tx_xdp: AtomicU64,
    tx_kernel: AtomicU64,
    malformed: AtomicU64,
}

impl std::fmt::Debug for XdpPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpPort")
            .field("iface", &self.iface)
            .field("queues", &self.sockets.len())
            .field("mode", &self.mode)
            .field("link", &self.link.as_raw_fd())
            .finish_non_exhaustive()
    }
}

/// How long [`bind_when_free`] waits for a queue an earlier socket still holds.
const BIND_BUSY_WAIT: Duration = Duration::from_secs(2);

/// Binds the socket to `queue` in copy mode. A socket closed a moment ago (a port just
/// dropped, masqd restarted) lets go of its queue in deferred kernel work, and until then
/// `bind` answers `EBUSY`; so `EBUSY` is retried for a bounded time before it is reported.
///
/// Without `XDP_USE_NEED_WAKEUP`: copy mode needs a `sendto` kick for every transmit
/// anyway, and never a wake-up for the fill ring.
fn bind_when_free(fd: BorrowedFd<'_>, ifindex: u32, queue: u32) -> io::Result<()> {
    let deadline = Instant::now() + BIND_BUSY_WAIT;
    loop {
        match xsys::bind_xdp(fd, ifindex, queue, libc::XDP_COPY, None) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

/// One queue's receive and transmit sockets and its two halves, as [`open_queue`] builds
/// them.
type QueueParts = (Socket, Socket, RxPath, TxPath);

/// Creates, maps and binds the AF_XDP sockets of queue `queue` and registers the receive
/// one in the XSKMAP. The receive socket owns the queue's UMEM (whose receive half is all
/// on the fill ring) and has RX, fill and completion rings but no TX ring; a second
/// socket shares the UMEM and has only the TX ring.
///
/// Why two: in copy mode every `poll` of a socket with a TX ring also transmits what that
/// ring holds, under the socket's mutex. With one socket per queue, the thread waiting
/// for frames on one side ended up sending the other side's thread's frames out of its
/// interface, while that thread spun on the mutex to kick them itself (10–11 % of masqd's
/// samples in `mutex_spin_on_owner` under an iperf3 load). A socket without a TX ring
/// makes `poll` only wait.
fn open_queue(
    iface: &Interface,
    queue: u32,
    options: &XdpOptions,
    xsks: BorrowedFd<'_>,
) -> Result<QueueParts, IoError> {
    let xsk_err = |call: &'static str| {
        let iface = iface.name.clone();
        move |source| IoError::Xsk {
            call,
            iface,
            queue,
            source,
        }
    };
    let xsk = Socket::new(Domain::from(libc::AF_XDP), Type::RAW, None)
        .map_err(xsk_err("socket(AF_XDP, SOCK_RAW)"))?;
    let fd = xsk.as_fd();
    let frame_count = options.frame_count;
    let frame_size = options.frame_size as usize;
    let half = frame_count / 2;
    // Receive frames are the first half of the UMEM, transmit frames the second.
    let (rx_umem, tx_umem) = xsys::UmemMap::halves(
        frame_count as usize * frame_size,
        half as usize * frame_size,
    )
    .map_err(xsk_err("mmap(UMEM)"))?;
    xsys::umem_register(fd, &rx_umem, options.frame_size)
        .map_err(xsk_err("setsockopt(XDP_UMEM_REG)"))?;
    let rings = [
        (RingKind::Fill, "setsockopt(XDP_UMEM_FILL_RING)"),
        (RingKind::Completion, "setsockopt(XDP_UMEM_COMPLETION_RING)"),
        (RingKind::Rx, "setsockopt(XDP_RX_RING)"),
    ];
    for (kind, call) in rings {
        xsys::set_ring_size(fd, kind, half).map_err(xsk_err(call))?;
    }
    let offsets = xsys::mmap_offsets(fd).map_err(xsk_err("getsockopt(XDP_MMAP_OFFSETS)"))?;
    let map = |kind, call| xsys::Ring::map(fd, kind, &offsets, half).map_err(xsk_err(call));
    let mut fill = map(RingKind::Fill, "mmap(XDP_UMEM_PGOFF_FILL_RING)")?;
    let completion = map(RingKind::Completion, "mmap(XDP_UMEM_PGOFF_COMPLETION_RING)")?;
    let rx = map(RingKind::Rx, "mmap(XDP_PGOFF_RX_RING)")?;

    let tx_xsk = Socket::new(Domain::from(libc::AF_XDP), Type::RAW, None)
        .map_err(xsk_err("socket(AF_XDP, SOCK_RAW) for transmit"))?;
    let tx_fd = tx_xsk.as_fd();
    xsys::set_ring_size(tx_fd, RingKind::Tx, half).map_err(xsk_err("setsockopt(XDP_TX_RING)"))?;
    let tx_offsets = xsys::mmap_offsets(tx_fd).map_err(xsk_err("getsockopt(XDP_MMAP_OFFSETS)"))?;
    let tx = xsys::Ring::map(tx_fd, RingKind::Tx, &tx_offsets, half)
        .map_err(xsk_err("mmap(XDP_PGOFF_TX_RING)"))?;

    // The receive frames all go to the kernel now; the transmit frames are all free.
    let frame_addr = |i: u32| u64::from(i) * frame_size as u64;
    debug_assert_eq!(fill.free(), half);
    for i in 0..half {
        fill.write_addr(i, frame_addr(i));
    }
    fill.submit(half);
    let free = (half..frame_count).map(frame_addr).collect();

    bind_when_free(fd, iface.index, queue).map_err(xsk_err("bind(AF_XDP)"))?;
    xsys::bind_xdp(tx_fd, iface.index, queue, libc::XDP_SHARED_UMEM, Some(fd)).map_err(xsk_err(
        "bind(AF_XDP, XDP_SHARED_UMEM) of the transmit socket",
    ))?;
    xsys::map_update(xsks, queue, fd.as_raw_fd() as u32).map_err(|source| IoError::Bpf {
        call: "bpf(BPF_MAP_UPDATE_ELEM, XSKMAP)",
        iface: iface.name.clone(),
        source,
    })?;
    let index = queue as usize;
    Ok((
        xsk,
        tx_xsk,
        RxPath {
            rx,
            fill,
            umem: rx_umem,
            returned: Vec::with_capacity(half as usize),
        },
        TxPath {
            queue: index,
            tx,
            completion,
            umem: tx_umem,
            free,
        },
    ))
}

impl XdpPort {
    /// Loads the XDP program, creates an AF_XDP socket per receive queue, attaches the
    /// program to `iface` (native mode, else generic) and opens the packet socket for the
    /// frames the program passes. The `addrs` map starts empty: nothing is stolen until
    /// [`XdpPort::set_addresses`].
    ///
    /// # Errors
    ///
    /// [`IoError::XdpOption`] for a bad frame count or size or queue count;
    /// [`IoError::Bpf`] when a map cannot be created (no `CAP_BPF`/`CAP_NET_ADMIN`);
    /// [`IoError::BpfProgLoad`] with the verifier's log; [`IoError::Xsk`] when an AF_XDP
    /// socket cannot be set up (no AF_XDP in the kernel, the queue does not exist,
    /// another socket holds it, not enough locked memory); [`IoError::XdpAttach`] when
    /// neither mode attaches (another XDP program is there, the MTU is too large for
    /// XDP); and the [`PacketSocket::open`] errors.
    pub fn open(iface: &Interface, options: &XdpOptions) -> Result<XdpPort, IoError> {
        let frame_count = options.frame_count;
        if !frame_count.is_power_of_two() || !(64..=65536).contains(&frame_count) {
            return Err(IoError::XdpOption(
                "frame_count must be a power of two from 64 to 65536",
            ));
        }
        if !matches!(options.frame_size, 2048 | 4096) {
            return Err(IoError::XdpOption("frame_size must be 2048 or 4096"));
        }
        if options.queues.is_some_and(|n| n == 0 || n > MAX_QUEUES) {
            return Err(IoError::XdpOption("queues must be from 1 to 64"));
        }
        let name = &iface.name;
        let bpf_err = |call: &'static str| {
            let iface = name.clone();
            move |source| IoError::Bpf {
                call,
                iface,
                source,
            }
        };

        let kernel = PacketSocket::open(iface, &SocketOptions::default())?;
        let queues = options.queues.unwrap_or_else(|| {
            // A driver without ETHTOOL_GCHANNELS has one queue as far as we can tell;
            // frames on any other would still reach us, through the kernel.
            xsys::rx_queue_count(kernel.as_fd(), name)
                .unwrap_or(1)
                .clamp(1, MAX_QUEUES)
        });
        let addrs = xsys::map_create(xsys::BPF_MAP_TYPE_HASH, 4, MAP_ENTRIES, "masq_addrs")
            .map_err(bpf_err("bpf(BPF_MAP_CREATE, HASH)"))?;
        let services = xsys::map_create(xsys::BPF_MAP_TYPE_HASH, 8, MAP_ENTRIES, "masq_services")
            .map_err(bpf_err("bpf(BPF_MAP_CREATE, HASH)"))?;
        let xsks = xsys::map_create(xsys::BPF_MAP_TYPE_XSKMAP, 4, MAX_QUEUES, "masq_xsks")
            .map_err(bpf_err("bpf(BPF_MAP_CREATE, XSKMAP)"))?;
        let maps = ProgramMaps {
            addrs: addrs.as_raw_fd(),
            services: services.as_raw_fd(),
            xsks: xsks.as_raw_fd(),
        };
        let prog = load_insns(name, &steal_program(options.side, maps))?;

        let mut sockets = Vec::new();
        let mut tx_sockets = Vec::new();
        let mut rx_paths = Vec::new();
        let mut tx_paths = Vec::new();
        for queue in 0..queues {
            let (socket, tx_socket, rx, tx) = open_queue(iface, queue, options, xsks.as_fd())?;
            sockets.push(socket);
            tx_sockets.push(tx_socket);
            rx_paths.push(rx);
            tx_paths.push(Mutex::new(tx));
        }
        let (link, mode) = attach(iface, prog.as_fd(), options.force_generic)?;

        let max_tx_len =
            (iface.mtu as usize + 14).min((options.frame_size - XDP_PACKET_HEADROOM) as usize);
        Ok(XdpPort {
            link,
            sockets,
            tx_sockets,
            rx: Mutex::new(Receiver {
                paths: rx_paths,
                kernel_batch: RecvBatch::new(64),
                full_streak: 0,
                next: 0,
                kernel_ready: true,
                batches_since_kernel: 0,
            }),
            tx: tx_paths,
            kernel,
            addrs,
            services,
            _xsks: xsks,
            _prog: prog,
            control: Mutex::new(()),
            iface: name.clone(),
            mac: iface.mac,
            mode,
            frame_size: u64::from(options.frame_size),
            max_tx_len,
            rx_xdp: AtomicU64::new(0),
            rx_kernel: AtomicU64::new(0),
            tx_xdp: AtomicU64::new(0),
            tx_kernel: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
        })
    }

    /// How the program is attached.
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// How many queues have an AF_XDP socket (queues `0..n`).
    pub fn queues(&self) -> usize {
        self.sockets.len()
    }

    /// Replaces the addresses the program steals traffic for: `vips` get the VIP flag,
    /// `rips` RIP, `locals` LOCAL (an address may be in several lists). New entries are
    /// written before stale ones are removed, so an address in both the old and the new
    /// set is never missing. Up to 4096 addresses, counting old and new together while
    /// the swap runs. Control path: allocates, one `bpf()` call per address.
    ///
    /// # Errors
    ///
    /// [`IoError::Bpf`] when the map refuses an update (`E2BIG`: more than 4096
    /// addresses) or a deletion.
    pub fn set_addresses(
        &self,
        vips: &[Ipv4Addr],
        rips: &[Ipv4Addr],
        locals: &[Ipv4Addr],
    ) -> Result<(), IoError> {
        let _one_writer = self.control.lock().unwrap_or_else(|e| e.into_inner());
        let mut wanted: HashMap<u32, u32> = HashMap::new();
        for (list, flag) in [(vips, VIP), (rips, RIP), (locals, LOCAL)] {
            for addr in list {
                *wanted.entry(map_key(*addr)).or_default() |= flag;
            }
        }
        replace_map(self.addrs.as_fd(), &wanted, &self.iface, "addrs")
    }

    /// Replaces the services the VIP side steals for a VIP that is also one of the host's
    /// own addresses (in `locals` of [`XdpPort::set_addresses`]): `(VIP, IP protocol,
    /// port)`, port 0 for a service on every port. To such a VIP only these TCP/UDP
    /// ports, ICMP errors and non-first fragments go to the port; anything else (ssh to the
    /// VIP, a ping, a closed port) stays with the kernel, which answers it as before. A VIP
    /// that is not the host's own has all its traffic stolen. Same swap order and limits
    /// as [`XdpPort::set_addresses`].
    ///
    /// # Errors
    ///
    /// [`IoError::Bpf`] when the map refuses an update (`E2BIG`: more than 4096
    /// services) or a deletion.
    pub fn set_service_ports(&self, services: &[(Ipv4Addr, u8, u16)]) -> Result<(), IoError> {
        let _one_writer = self.control.lock().unwrap_or_else(|e| e.into_inner());
        let wanted: HashMap<[u8; 8], u32> = services
            .iter()
            .map(|&(vip, protocol, port)| (service_key(vip, protocol, port), 1))
            .collect();
        replace_map(self.services.as_fd(), &wanted, &self.iface, "services")
    }

    /// The port's counters, with the kernel's for the AF_XDP sockets.
    ///
    /// # Errors
    ///
    /// [`IoError::GetSockOpt`] if `getsockopt(XDP_STATISTICS)` fails.
    pub fn stats(&self) -> Result<XdpStats, IoError> {
        let mut stats = XdpStats {
            rx_xdp: self.rx_xdp.load(Ordering::Relaxed),
            rx_kernel: self.rx_kernel.load(Ordering::Relaxed),
            tx_xdp: self.tx_xdp.load(Ordering::Relaxed),
            tx_kernel: self.tx_kernel.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            ..XdpStats::default()
        };
        for socket in self.sockets.iter().chain(&self.tx_sockets) {
            let kernel =
                xsys::xdp_statistics(socket.as_fd()).map_err(|source| IoError::GetSockOpt {
                    option: "XDP_STATISTICS",
                    iface: self.iface.clone(),
                    source,
                })?;
            stats.rx_dropped +=
                kernel.rx_dropped + kernel.rx_ring_full + kernel.rx_fill_ring_empty_descs;
            stats.tx_invalid += kernel.tx_invalid_descs;
        }
        Ok(stats)
    }

    fn socket(&self, queue: usize) -> BorrowedFd<'_> {
        self.sockets[queue].as_fd()
    }

    fn tx_socket(&self, queue: usize) -> BorrowedFd<'_> {
        self.tx_sockets[queue].as_fd()
    }

    /// A transmit queue no other sender holds, else queue 0 (waiting for it).
    fn lock_tx(&self) -> MutexGuard<'_, TxPath> {
        for path in &self.tx {
            match path.try_lock() {
                Ok(guard) => return guard,
                Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        self.tx[0].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How the frame's destination MAC addresses it (XDP does not say).
    fn pkttype(&self, frame: &[u8]) -> PacketType {
        match frame.get(..6) {
            Some([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]) => PacketType::Broadcast,
            Some(dst) if dst[0] & 1 == 1 => PacketType::Multicast,
            Some(dst) if *dst == self.mac => PacketType::Host,
            _ => PacketType::OtherHost,
        }
    }

    /// Copies what the RX rings hold (up to `limit`, queues in turn) into `bufs`, then
    /// reads the packet socket into the rest without waiting. Returns the count.
    fn take<B: AsMut<[u8]>>(
        &self,
        receiver: &mut Receiver,
        batch: &mut RecvBatch,
        bufs: &mut [B],
        limit: usize,
    ) -> Result<usize, IoError> {
        let xdp_limit = if receiver.full_streak >= FAIRNESS_STREAK && limit > 1 {
            limit - 1
        } else {
            limit
        };
        let queues = receiver.paths.len();
        let mut count = 0;
        for turn in 0..queues {
            let path = &mut receiver.paths[(receiver.next + turn) % queues];
            count = self.take_queue(path, batch, bufs, count, xdp_limit);
        }
        receiver.next = (receiver.next + 1) % queues;
        if count == limit {
            receiver.full_streak += 1;
            return Ok(count);
        }
        receiver.full_streak = 0;
        if !receiver.kernel_ready && receiver.batches_since_kernel < KERNEL_CHECK_EVERY {
            receiver.batches_since_kernel += 1;
            return Ok(count);
        }
        receiver.batches_since_kernel = 0;
        let kernel_batch = &mut receiver.kernel_batch;
        let room = limit - count;
        let got = self
            .kernel
            .recv_batch(kernel_batch, &mut bufs[count..limit], Duration::ZERO)?;
        receiver.kernel_ready = got == room.min(kernel_batch.capacity());
        for received in &kernel_batch.received()[..got] {
            batch.push(*received);
        }
        self.rx_kernel.fetch_add(got as u64, Ordering::Relaxed);
        Ok(count + got)
    }

    /// Copies what one RX ring holds into `bufs[count..limit]`; returns the new count.
    fn take_queue<B: AsMut<[u8]>>(
        &self,
        path: &mut RxPath,
        batch: &mut RecvBatch,
        bufs: &mut [B],
        mut count: usize,
        limit: usize,
    ) -> usize {
        let ready = path.rx.available().min((limit - count) as u32);
        if ready == 0 {
            return count;
        }
        let first = count;
        for i in 0..ready {
            let desc = path.rx.read_desc(i);
            let buf = bufs[count].as_mut();
            let len = desc.len as usize;
            let kept = len.min(buf.len());
            if path.umem.copy_out(desc.addr, &mut buf[..kept]) {
                let pkttype = self.pkttype(&buf[..kept]);
                batch.push(Received {
                    len: kept,
                    truncated: kept < len,
                    offload: Offload::NONE,
                    pkttype,
                });
                count += 1;
            } else {
                self.malformed.fetch_add(1, Ordering::Relaxed);
            }
            // The chunk's start: the kernel put the frame after its headroom.
            let chunk = desc.addr - desc.addr % self.frame_size;
            if path.umem.contains(chunk, 1) && path.returned.len() < path.returned.capacity() {
                path.returned.push(chunk);
            }
        }
        path.rx.release(ready);
        self.refill(path);
        self.rx_xdp
            .fetch_add((count - first) as u64, Ordering::Relaxed);
        count
    }

    /// Puts copied-out receive frames back on the fill ring.
    fn refill(&self, path: &mut RxPath) {
        let room = (path.fill.free() as usize).min(path.returned.len());
        let keep = path.returned.len() - room;
        for (slot, &addr) in path.returned[keep..].iter().enumerate() {
            path.fill.write_addr(slot as u32, addr);
        }
        path.returned.truncate(keep);
        path.fill.submit(room as u32);
    }

    /// Moves finished transmit frames from the completion ring to the free list.
    fn reap(&self, tx: &mut TxPath) {
        let done = tx.completion.available();
        for i in 0..done {
            let addr = tx.completion.read_addr(i);
            let chunk = addr - addr % self.frame_size;
            if tx.umem.contains(chunk, 1) && tx.free.len() < tx.free.capacity() {
                tx.free.push(chunk);
            }
        }
        tx.completion.release(done);
    }

    /// Publishes `written` descriptors and kicks the kernel until it took everything or
    /// refuses to take more for now (the rest goes with the next kick).
    fn flush(&self, tx: &mut TxPath, written: &mut u32) -> Result<(), io::Error> {
        if *written > 0 {
            tx.tx.submit(*written);
            *written = 0;
        }
        // Copy mode sends only inside a kick, at most 32 frames per kick; allow a few
        // refusals beyond that.
        let mut kicks = tx.tx.pending() / 32 + 8;
        while tx.tx.pending() > 0 && kicks > 0 {
            kicks -= 1;
            match xsys::kick_tx(self.tx_socket(tx.queue)) {
                Ok(()) => {}
                // EAGAIN: more to send, or the completion ring is full; EBUSY: the
                // device dropped a frame (counted by the device); ENOBUFS: no memory for
                // a socket buffer right now.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS)
                    ) => {}
                Err(e) => return Err(e),
            }
            self.reap(tx);
        }
        self.reap(tx);
        Ok(())
    }

    /// A free transmit frame, flushing and waiting (up to [`TX_STALL`]) when there is none.
    fn free_frame(&self, tx: &mut TxPath, written: &mut u32) -> Result<u64, io::Error> {
        let mut deadline = None;
        loop {
            if tx.free.is_empty() {
                self.reap(tx);
            }
            if !tx.free.is_empty() && tx.tx.free() > *written {
                if let Some(addr) = tx.free.pop() {
                    return Ok(addr);
                }
            }
            self.flush(tx, written)?;
            // (The TX ring has as many slots as there are transmit frames, so a free
            // frame means a free slot; both are checked all the same.)
            if !tx.free.is_empty() && tx.tx.free() > 0 {
                continue;
            }
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + TX_STALL);
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no transmit frame came back from the kernel",
                ));
            }
            xsys::poll_many(std::iter::once(self.tx_socket(tx.queue)), libc::POLLOUT, 1)?;
        }
    }

    /// The send path behind both `send` and `send_batch`.
    fn send_frames<'a, I>(&self, frames: I) -> Result<usize, IoError>
    where
        I: IntoIterator<Item = (Offload, &'a [u8])>,
    {
        let mut tx = self.lock_tx();
        let mut written = 0u32;
        let mut sent = 0usize;
        // Counted once per call: both packet threads send on every port, and a shared
        // counter touched per frame would bounce its cache line between them.
        let (mut via_xdp, mut via_kernel) = (0u64, 0u64);
        let fail = |sent: usize, call: &'static str, source: io::Error| IoError::BatchSend {
            sent,
            source: Box::new(IoError::Send {
                call,
                iface: self.iface.clone(),
                source,
            }),
        };
        let mut result = Ok(());
        for (offload, frame) in frames {
            if offload.needs_csum || offload.is_gso() {
                // Work left for the kernel: the packet socket's virtio-net header carries
                // it. What is queued on the ring goes first, to keep the order.
                if let Err(e) = self.flush(&mut tx, &mut written) {
                    result = Err(fail(sent, "sendto(AF_XDP)", e));
                    break;
                }
                if let Err(e) = self.kernel.send(&offload, frame) {
                    result = Err(IoError::BatchSend {
                        sent,
                        source: Box::new(e),
                    });
                    break;
                }
                via_kernel += 1;
                sent += 1;
                continue;
            }
            if frame.len() > self.max_tx_len || frame.is_empty() {
                result = Err(fail(
                    sent,
                    "AF_XDP send",
                    io::Error::from_raw_os_error(libc::EMSGSIZE),
                ));
                break;
            }
            let addr = match self.free_frame(&mut tx, &mut written) {
                Ok(addr) => addr,
                Err(e) => {
                    result = Err(fail(sent, "sendto(AF_XDP)", e));
                    break;
                }
            };
            let copied = tx.umem.copy_in(addr, frame);
            debug_assert!(copied, "transmit frames hold max_tx_len bytes");
            tx.tx.write_desc(
                written,
                XdpDesc {
                    addr,
                    len: frame.len() as u32,
                },
            );
            written += 1;
            sent += 1;
            via_xdp += 1;
        }
        self.tx_xdp.fetch_add(via_xdp, Ordering::Relaxed);
        self.tx_kernel.fetch_add(via_kernel, Ordering::Relaxed);
        // Frames accepted before a failure still go out.
        if let Err(e) = self.flush(&mut tx, &mut written) {
            if result.is_ok() {
                result = Err(fail(sent, "sendto(AF_XDP)", e));
            }
        }
        result.map(|()| sent)
    }
}

impl FrameIo for XdpPort {
    /// One frame through [`FrameIo::recv_batch`]. Allocates a one-slot batch per call:
    /// for tests and slow paths; the packet threads use `recv_batch`.
    fn recv(&self, buf: &mut [u8], timeout: Duration) -> Result<Option<Received>, IoError> {
        let mut batch = RecvBatch::new(1);
        let mut bufs = [buf];
        Ok(match self.recv_batch(&mut batch, &mut bufs, timeout)? {
            0 => None,
            _ => Some(batch.received()[0]),
        })
    }

    /// Through an AF_XDP socket, or the packet socket when `offload` asks for work.
    fn send(&self, offload: &Offload, frame: &[u8]) -> Result<(), IoError> {
        match self.send_frames([(*offload, frame)]) {
            Ok(_) => Ok(()),
            Err(IoError::BatchSend { source, .. }) => Err(*source),
            Err(e) => Err(e),
        }
    }

    /// The XDP RX rings first, then (without waiting) the packet socket for the rest of
    /// the batch; one `poll` on all of them when all are empty. Received XDP frames carry
    /// [`Offload::NONE`] and a packet type derived from their destination MAC.
    fn recv_batch<B: AsMut<[u8]>>(
        &self,
        batch: &mut RecvBatch,
        bufs: &mut [B],
        timeout: Duration,
    ) -> Result<usize, IoError> {
        let limit = batch.start(bufs.len());
        if limit == 0 {
            return Ok(0);
        }
        let mut receiver = self.rx.lock().unwrap_or_else(|e| e.into_inner());
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let count = self.take(&mut receiver, batch, bufs, limit)?;
            if count > 0 {
                return Ok(count);
            }
            let timeout_ms = match deadline {
                None => -1,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(0);
                    }
                    poll_timeout_ms(left)
                }
            };
            let fds = self
                .sockets
                .iter()
                .map(AsFd::as_fd)
                .chain(std::iter::once(self.kernel.as_fd()));
            // The packet socket goes last, so `poll` says whether it has frames.
            receiver.kernel_ready =
                xsys::poll_many(fds, libc::POLLIN, timeout_ms).map_err(|source| IoError::Recv {
                    call: "poll",
                    iface: self.iface.clone(),
                    source,
                })?;
        }
    }

    /// Copies the frames into transmit frames of the UMEM and kicks the kernel once per
    /// 32; frames that need GSO or a checksum go through the packet socket, in order.
    /// The `SendBatch` scratch is not needed.
    fn send_batch<'a, I>(&self, _batch: &mut SendBatch, frames: I) -> Result<usize, IoError>
    where
        I: IntoIterator<Item = (Offload, &'a [u8])>,
    {
        self.send_frames(frames)
    }
}

impl AsFd for XdpPort {
    /// The AF_XDP socket of queue 0 (readable when its RX ring holds frames).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket(0)
    }
}

/// The `addrs` map key of an address: its four bytes as they are on the wire, which is
/// how the program loads them from the frame.
fn map_key(addr: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(addr.octets())
}

/// The `services` map key of `(vip, protocol, port)`: the bytes the program writes on its
/// stack, i.e. the address and the port as they are on the wire, the protocol, a zero.
fn service_key(vip: Ipv4Addr, protocol: u8, port: u16) -> [u8; 8] {
    let [a, b, c, d] = vip.octets();
    let [p0, p1] = port.to_be_bytes();
    [a, b, c, d, p0, p1, protocol, 0]
}

/// Makes `map` hold exactly `wanted`: new entries are written before stale ones are
/// removed, so a key in both the old and the new set is never missing.
fn replace_map<K>(
    map: BorrowedFd<'_>,
    wanted: &HashMap<K, u32>,
    iface: &str,
    name: &'static str,
) -> Result<(), IoError>
where
    K: xsys::MapKey + Eq + std::hash::Hash,
{
    let err = |call: &'static str| {
        move |source| IoError::Bpf {
            call,
            iface: format!("{iface} ({name} map)"),
            source,
        }
    };
    for (&key, &value) in wanted {
        xsys::map_update(map, key, value).map_err(err("bpf(BPF_MAP_UPDATE_ELEM)"))?;
    }
    let mut stale = Vec::new();
    let mut key = None;
    while let Some(next) = xsys::map_next_key(map, key).map_err(err("bpf(BPF_MAP_GET_NEXT_KEY)"))? {
        if !wanted.contains_key(&next) {
            stale.push(next);
        }
        key = Some(next);
    }
    for key in stale {
        match xsys::map_delete(map, key) {
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => {
                return Err(err("bpf(BPF_MAP_DELETE_ELEM)")(e))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Attaches `prog` to the interface: native mode first, generic when refused.
fn attach(
    iface: &Interface,
    prog: BorrowedFd<'_>,
    force_generic: bool,
) -> Result<(OwnedFd, XdpMode), IoError> {
    let native = if force_generic {
        Err(io::Error::other("not tried (generic mode forced)"))
    } else {
        xsys::link_create_xdp(prog, iface.index, xsys::XDP_FLAGS_DRV_MODE)
    };
    match native {
        Ok(link) => Ok((link, XdpMode::Native)),
        Err(native) => match xsys::link_create_xdp(prog, iface.index, xsys::XDP_FLAGS_SKB_MODE) {
            Ok(link) => Ok((link, XdpMode::Generic)),
            Err(source) => Err(IoError::XdpAttach {
                iface: iface.name.clone(),
                native,
                source,
            }),
        },
    }
}

/// Loads `insns` as an XDP program; on failure loads them again with the verifier's log
/// on, to report its last lines.
fn load_insns(iface: &str, insns: &[[u8; 8]]) -> Result<OwnedFd, IoError> {
    // The helpers the program calls are not GPL-only, so the project's own license does.
    const LICENSE: &CStr = c"Apache-2.0";
    xsys::prog_load_xdp(insns, "masq_steal", LICENSE, &mut []).or_else(|_| {
        let mut log = vec![0u8; 64 << 10];
        xsys::prog_load_xdp(insns, "masq_steal", LICENSE, &mut log).map_err(|source| {
            IoError::BpfProgLoad {
                iface: iface.to_owned(),
                source,
                verifier_log: log_tail(&log, 6),
            }
        })
    })
}

/// The last `lines` non-empty lines of a NUL-terminated verifier log, joined by ` | `.
fn log_tail(log: &[u8], lines: usize) -> String {
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..end]);
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join(" | ")
}

// ---- the XDP program ----
//
// eBPF instructions are 8 bytes: opcode, destination and source register (4 bits each),
// a signed 16-bit offset and a signed 32-bit immediate (include/uapi/linux/bpf.h,
// Documentation/bpf/standardization/instruction-set.rst). Only the handful of opcodes
// the program uses are named here.

/// eBPF registers: r0 return value, r1–r5 arguments (clobbered by calls), r6–r9 kept
/// across calls, r10 the read-only frame pointer.
#[derive(Clone, Copy)]
#[repr(u8)]
enum Reg {
    R0 = 0,
    R1 = 1,
    R2 = 2,
    R3 = 3,
    R4 = 4,
    R5 = 5,
    R6 = 6,
    R7 = 7,
    R8 = 8,
    R9 = 9,
    R10 = 10,
}

// Opcode = operation | source | class.
const BPF_LD: u8 = 0x00;
const BPF_LDX: u8 = 0x01;
const BPF_STX: u8 = 0x03;
const BPF_B: u8 = 0x10; // 8-bit access
const BPF_JMP: u8 = 0x05;
const BPF_ALU64: u8 = 0x07;
const BPF_W: u8 = 0x00; // 32-bit access
const BPF_H: u8 = 0x08; // 16-bit access
const BPF_DW: u8 = 0x18; // 64-bit access
const BPF_IMM: u8 = 0x00; // ld: 64-bit immediate (two slots)
const BPF_MEM: u8 = 0x60; // ldx/stx: memory at reg + off
const BPF_K: u8 = 0x00; // operand: the immediate
const BPF_X: u8 = 0x08; // operand: the source register
const BPF_ADD: u8 = 0x00;
const BPF_AND: u8 = 0x50;
const BPF_LSH: u8 = 0x60;
const BPF_MOV: u8 = 0xb0;
const BPF_JA: u8 = 0x00;
const BPF_JEQ: u8 = 0x10;
const BPF_JGT: u8 = 0x20;
const BPF_JNE: u8 = 0x50;
const BPF_CALL: u8 = 0x80;
const BPF_EXIT: u8 = 0x90;
/// `src_reg` of a 64-bit immediate load whose immediate is a map's file descriptor.
const BPF_PSEUDO_MAP_FD: u8 = 1;

// Helper functions (enum bpf_func_id) and XDP actions.
const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
const XDP_PASS: i32 = 2;

// struct xdp_md field offsets and frame offsets.
const MD_DATA: i16 = 0;
const MD_DATA_END: i16 = 4;
const MD_RX_QUEUE_INDEX: i16 = 16;
const ETH_TYPE_AT: i16 = 12;
const IP_SADDR_AT: i16 = 14 + 12;
const IP_DADDR_AT: i16 = 14 + 16;
const ETH_AND_IP_HDR: i32 = 14 + 20;
const ETH_HDR: i16 = 14;
const IP_FRAG_AT: i16 = 14 + 6;
const IP_PROTO_AT: i16 = 14 + 9;
const IPPROTO_ICMP: i32 = 1;
/// ICMP errors masqd translates for its connections: destination unreachable, source
/// quench, time exceeded (the core's `is_error`).
const ICMP_ERRORS: [i32; 3] = [3, 4, 11];

/// One eBPF instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Insn {
    code: u8,
    dst: u8,
    src: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    fn new(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            dst: dst as u8,
            src: src as u8,
            off,
            imm,
        }
    }

    /// `struct bpf_insn` as the kernel reads it: the register nibbles are a C bitfield,
    /// whose order follows the byte order.
    fn encode(self) -> [u8; 8] {
        let regs = if cfg!(target_endian = "little") {
            self.dst | self.src << 4
        } else {
            self.dst << 4 | self.src
        };
        let [o0, o1] = self.off.to_ne_bytes();
        let [i0, i1, i2, i3] = self.imm.to_ne_bytes();
        [self.code, regs, o0, o1, i0, i1, i2, i3]
    }
}

/// Jump targets of the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Label {
    DipSide,
    Icmp,
    Steal,
    Pass,
}

/// A tiny assembler: appends instructions, resolves forward jumps to labels at the end.
#[derive(Default)]
struct Asm {
    insns: Vec<Insn>,
    /// (index of a jump, its target).
    jumps: Vec<(usize, Label)>,
    labels: Vec<(Label, usize)>,
}

impl Asm {
    fn emit(&mut self, insn: Insn) -> &mut Self {
        self.insns.push(insn);
        self
    }

    /// `dst = src` (64-bit).
    fn mov(&mut self, dst: Reg, src: Reg) -> &mut Self {
        self.emit(Insn::new(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0))
    }

    /// `dst = imm` (64-bit, sign-extended).
    fn mov_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.emit(Insn::new(BPF_ALU64 | BPF_MOV | BPF_K, dst, Reg::R0, 0, imm))
    }

    /// `dst += imm`.
    fn add_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.emit(Insn::new(BPF_ALU64 | BPF_ADD | BPF_K, dst, Reg::R0, 0, imm))
    }

    /// `dst += src` (a packet pointer plus a bounded offset, here).
    fn add(&mut self, dst: Reg, src: Reg) -> &mut Self {
        self.emit(Insn::new(BPF_ALU64 | BPF_ADD | BPF_X, dst, src, 0, 0))
    }

    /// `dst <<= imm`.
    fn lsh_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.emit(Insn::new(BPF_ALU64 | BPF_LSH | BPF_K, dst, Reg::R0, 0, imm))
    }

    /// `dst &= imm`.
    fn and_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.emit(Insn::new(BPF_ALU64 | BPF_AND | BPF_K, dst, Reg::R0, 0, imm))
    }

    /// `dst = *(u32 *)(src + off)`.
    fn load32(&mut self, dst: Reg, src: Reg, off: i16) -> &mut Self {
        self.emit(Insn::new(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0))
    }

    /// `dst = *(u16 *)(src + off)`.
    fn load16(&mut self, dst: Reg, src: Reg, off: i16) -> &mut Self {
        self.emit(Insn::new(BPF_LDX | BPF_MEM | BPF_H, dst, src, off, 0))
    }

    /// `dst = *(u8 *)(src + off)`.
    fn load8(&mut self, dst: Reg, src: Reg, off: i16) -> &mut Self {
        self.emit(Insn::new(BPF_LDX | BPF_MEM | BPF_B, dst, src, off, 0))
    }

    /// `*(u16 *)(dst + off) = src`.
    fn store16(&mut self, dst: Reg, off: i16, src: Reg) -> &mut Self {
        self.emit(Insn::new(BPF_STX | BPF_MEM | BPF_H, dst, src, off, 0))
    }

    /// `*(u8 *)(dst + off) = src`.
    fn store8(&mut self, dst: Reg, off: i16, src: Reg) -> &mut Self {
        self.emit(Insn::new(BPF_STX | BPF_MEM | BPF_B, dst, src, off, 0))
    }

    /// `*(u32 *)(dst + off) = src`.
    fn store32(&mut self, dst: Reg, off: i16, src: Reg) -> &mut Self {
        self.emit(Insn::new(BPF_STX | BPF_MEM | BPF_W, dst, src, off, 0))
    }

    /// `dst = map` (the map's fd, which the kernel replaces by the map's address). A
    /// 64-bit immediate load takes two slots; the second holds the upper 32 bits (0).
    fn load_map(&mut self, dst: Reg, map_fd: i32) -> &mut Self {
        let mut first = Insn::new(BPF_LD | BPF_DW | BPF_IMM, dst, Reg::R0, 0, map_fd);
        first.src = BPF_PSEUDO_MAP_FD;
        self.emit(first);
        self.emit(Insn::new(0, Reg::R0, Reg::R0, 0, 0))
    }

    fn jump(&mut self, code: u8, dst: Reg, src: Reg, imm: i32, to: Label) -> &mut Self {
        self.jumps.push((self.insns.len(), to));
        self.emit(Insn::new(code, dst, src, 0, imm))
    }

    /// `goto to`.
    fn ja(&mut self, to: Label) -> &mut Self {
        self.jump(BPF_JMP | BPF_JA, Reg::R0, Reg::R0, 0, to)
    }

    /// `if dst == imm goto to`.
    fn jeq_imm(&mut self, dst: Reg, imm: i32, to: Label) -> &mut Self {
        self.jump(BPF_JMP | BPF_JEQ | BPF_K, dst, Reg::R0, imm, to)
    }

    /// `if dst != imm goto to`.
    fn jne_imm(&mut self, dst: Reg, imm: i32, to: Label) -> &mut Self {
        self.jump(BPF_JMP | BPF_JNE | BPF_K, dst, Reg::R0, imm, to)
    }

    /// `if dst > src goto to` (unsigned).
    fn jgt(&mut self, dst: Reg, src: Reg, to: Label) -> &mut Self {
        self.jump(BPF_JMP | BPF_JGT | BPF_X, dst, src, 0, to)
    }

    /// `r0 = helper(r1, ..., r5)`; clobbers r1–r5.
    fn call(&mut self, helper: i32) -> &mut Self {
        self.emit(Insn::new(BPF_JMP | BPF_CALL, Reg::R0, Reg::R0, 0, helper))
    }

    /// `return r0`.
    fn exit(&mut self) -> &mut Self {
        self.emit(Insn::new(BPF_JMP | BPF_EXIT, Reg::R0, Reg::R0, 0, 0))
    }

    /// The next instruction is `label`.
    fn label(&mut self, label: Label) -> &mut Self {
        self.labels.push((label, self.insns.len()));
        self
    }

    /// `r0 = addrs[key]` (a pointer to the flags, or 0 when absent), with the key from
    /// register `key` stored on the stack at r10 - 4, where the helper reads it.
    fn lookup(&mut self, addrs_fd: i32, key: Reg) -> &mut Self {
        self.store32(Reg::R10, -4, key) // *(u32 *)(fp - 4) = key
            .lookup_stack_key(addrs_fd, -4)
    }

    /// `r0 = map[key]` for the key already on the stack at r10 + `at`.
    fn lookup_stack_key(&mut self, map_fd: i32, at: i32) -> &mut Self {
        self.load_map(Reg::R1, map_fd) // r1 = &map
            .mov(Reg::R2, Reg::R10) // r2 = fp
            .add_imm(Reg::R2, at) // r2 = the key's address
            .call(BPF_FUNC_MAP_LOOKUP_ELEM) // r0 = bpf_map_lookup_elem(r1, r2)
    }

    /// The encoded program. Jump offsets count from the instruction after the jump.
    fn finish(&self) -> Vec<[u8; 8]> {
        let mut insns = self.insns.clone();
        for &(at, to) in &self.jumps {
            let target = self
                .labels
                .iter()
                .find(|(label, _)| *label == to)
                .map(|&(_, target)| target)
                .expect("every jump target is placed");
            insns[at].off = (target as isize - at as isize - 1) as i16;
        }
        insns.into_iter().map(Insn::encode).collect()
    }
}

/// The descriptors of the maps a program is built over.
#[derive(Clone, Copy)]
struct ProgramMaps {
    addrs: i32,
    services: i32,
    xsks: i32,
}

/// The steal program for `side`, over `maps`. The side is the immediate of one `mov`
/// (r9 = 0 VIP side, 1 DIP side), so both sides are one program text and the verifier
/// checks both paths.
fn steal_program(side: XdpSide, maps: ProgramMaps) -> Vec<[u8; 8]> {
    use Label::{DipSide, Icmp, Pass, Steal};
    use Reg::{R0, R1, R10, R2, R3, R4, R5, R6, R7, R8, R9};
    // Multi-byte constants as the program's loads see the wire bytes.
    let ethertype_ipv4 = i32::from(u16::from_ne_bytes([0x08, 0x00]));
    let fragment_offset = i32::from(u16::from_ne_bytes([0x1f, 0xff]));
    let side_imm = match side {
        XdpSide::Vip => 0,
        XdpSide::Dip => 1,
    };
    let mut asm = Asm::default();
    asm.mov(R6, R1) // r6 = ctx (struct xdp_md *), kept across helper calls
        .load32(R2, R6, MD_DATA) // r2 = ctx->data: the frame's first byte
        .load32(R3, R6, MD_DATA_END) // r3 = ctx->data_end: one past its last
        .mov(R4, R2) // r4 = data
        .add_imm(R4, ETH_AND_IP_HDR) // r4 = data + 34: end of Ethernet + minimal IPv4
        .jgt(R4, R3, Pass) // shorter frame: pass (the bound the verifier needs)
        .load16(R4, R2, ETH_TYPE_AT) // r4 = EtherType
        .jne_imm(R4, ethertype_ipv4, Pass) // not IPv4 (ARP, IPv6, VLAN): pass
        .load32(R7, R2, IP_SADDR_AT) // r7 = source address, wire order
        .load32(R8, R2, IP_DADDR_AT) // r8 = destination address, wire order
        .mov_imm(R9, side_imm) // r9 = side: the immediate chosen at load time
        .jne_imm(R9, 0, DipSide) // DIP side: go there
        // VIP side: steal when flags(daddr) has VIP…
        .lookup(maps.addrs, R8) // r0 = &addrs[daddr]
        .jeq_imm(R0, 0, Pass) // unknown destination: pass
        .load32(R1, R0, 0) // r1 = flags
        .mov(R2, R1) // r2 = flags
        .and_imm(R2, VIP as i32) // r2 &= VIP
        .jeq_imm(R2, 0, Pass) // not a VIP: pass
        .and_imm(R1, LOCAL as i32) // r1 &= LOCAL
        .jeq_imm(R1, 0, Steal) // a VIP the host does not own: all of it is masqd's
        // …and, for a VIP that is also the host's, only service ports, ICMP errors and
        // later fragments: the kernel keeps its own traffic to that address (ssh, ping).
        .load32(R2, R6, MD_DATA) // r2 = data, again (the call clobbered r2 and r3)
        .load32(R3, R6, MD_DATA_END) // r3 = data_end
        .mov(R4, R2) // r4 = data
        .add_imm(R4, ETH_AND_IP_HDR) // r4 = data + 34
        .jgt(R4, R3, Pass) // (cannot happen; the verifier wants it shown again)
        .load16(R4, R2, IP_FRAG_AT) // r4 = flags and fragment offset
        .and_imm(R4, fragment_offset) // r4 = fragment offset
        .jne_imm(R4, 0, Steal) // a later fragment: masqd follows its datagram
        .load8(R4, R2, IP_PROTO_AT) // r4 = protocol
        .load8(R5, R2, ETH_HDR) // r5 = version and header length
        .and_imm(R5, 0x0f) // r5 = header length in words
        .lsh_imm(R5, 2) // r5 = header length in bytes (at most 60)
        .add(R2, R5) // r2 = data + header length: L4 header at r2 + 14
        .mov(R5, R2) // r5 = r2
        .add_imm(R5, i32::from(ETH_HDR) + 4) // r5 = end of the L4 header's first 4 bytes
        .jgt(R5, R3, Pass) // too short for ports or an ICMP type: pass
        .jeq_imm(R4, IPPROTO_ICMP, Icmp) // ICMP: by type
        .load16(R5, R2, ETH_HDR + 2) // r5 = destination port, wire order
        .store32(R10, -8, R8) // key: VIP…
        .store16(R10, -4, R5) // …port…
        .store8(R10, -2, R4) // …protocol…
        .mov_imm(R5, 0) // r5 = 0
        .store8(R10, -1, R5) // …and a zero byte
        .lookup_stack_key(maps.services, -8) // r0 = &services[(daddr, port, protocol)]
        .jne_imm(R0, 0, Steal) // a service: steal
        .mov_imm(R5, 0) // r5 = 0
        .store16(R10, -4, R5) // the same key with port 0: a service on every port
        .lookup_stack_key(maps.services, -8) // r0 = &services[(daddr, 0, protocol)]
        .jne_imm(R0, 0, Steal) // an every-port service: steal
        .ja(Pass) // the host's own traffic: pass
        .label(Icmp)
        .load8(R5, R2, ETH_HDR) // r5 = ICMP type
        .jeq_imm(R5, ICMP_ERRORS[0], Steal) // errors about connections: steal
        .jeq_imm(R5, ICMP_ERRORS[1], Steal)
        .jeq_imm(R5, ICMP_ERRORS[2], Steal)
        .ja(Pass) // echo and the rest: the kernel answers
        // DIP side: steal when flags(saddr) has RIP and flags(daddr) lacks LOCAL.
        .label(DipSide)
        .lookup(maps.addrs, R7) // r0 = &addrs[saddr]
        .jeq_imm(R0, 0, Pass) // unknown source: pass
        .load32(R1, R0, 0) // r1 = flags
        .and_imm(R1, RIP as i32) // r1 &= RIP
        .jeq_imm(R1, 0, Pass) // not from a real server: pass
        .lookup(maps.addrs, R8) // r0 = &addrs[daddr]
        .jeq_imm(R0, 0, Steal) // destination unknown, so not local: steal
        .load32(R1, R0, 0) // r1 = flags
        .and_imm(R1, LOCAL as i32) // r1 &= LOCAL
        .jne_imm(R1, 0, Pass) // to this host (a health-check reply): pass
        // Steal: redirect to the AF_XDP socket of the queue the frame arrived on.
        .label(Steal)
        .load_map(R1, maps.xsks) // r1 = &xsks
        .load32(R2, R6, MD_RX_QUEUE_INDEX) // r2 = ctx->rx_queue_index: the map key
        .mov_imm(R3, XDP_PASS) // r3 = XDP_PASS: the action when no socket is there
        .call(BPF_FUNC_REDIRECT_MAP) // r0 = bpf_redirect_map(r1, r2, r3)
        .exit() // return r0 (XDP_REDIRECT, or XDP_PASS)
        .label(Pass)
        .mov_imm(R0, XDP_PASS) // r0 = XDP_PASS: the kernel takes the frame
        .exit(); // return r0
    asm.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_encode_as_the_kernel_reads_them() {
        // Byte images from the kernel's own encodings (e.g. `bpftool prog dump xlated`).
        let mut asm = Asm::default();
        asm.mov(Reg::R6, Reg::R1)
            .load32(Reg::R2, Reg::R6, 4)
            .add_imm(Reg::R2, -4)
            .load_map(Reg::R1, 7)
            .call(BPF_FUNC_REDIRECT_MAP)
            .exit();
        let code = asm.finish();
        if cfg!(target_endian = "little") {
            assert_eq!(code[0], [0xbf, 0x16, 0, 0, 0, 0, 0, 0]);
            assert_eq!(code[1], [0x61, 0x62, 4, 0, 0, 0, 0, 0]);
            assert_eq!(code[2], [0x07, 0x02, 0, 0, 0xfc, 0xff, 0xff, 0xff]);
            assert_eq!(code[3], [0x18, 0x11, 0, 0, 7, 0, 0, 0]);
            assert_eq!(code[4], [0; 8]);
            assert_eq!(code[5], [0x85, 0, 0, 0, 51, 0, 0, 0]);
            assert_eq!(code[6], [0x95, 0, 0, 0, 0, 0, 0, 0]);
        }
    }

    #[test]
    fn jumps_resolve_to_their_labels() {
        let mut asm = Asm::default();
        asm.jeq_imm(Reg::R0, 0, Label::Pass) // 0: +2 → 3
            .mov_imm(Reg::R0, 1) // 1
            .exit() // 2
            .label(Label::Pass)
            .mov_imm(Reg::R0, XDP_PASS) // 3
            .exit(); // 4
        let code = asm.finish();
        assert_eq!(i16::from_ne_bytes([code[0][2], code[0][3]]), 2);
    }

    #[test]
    fn program_jumps_stay_inside_and_both_sides_differ_only_in_the_side() {
        let maps = ProgramMaps {
            addrs: 3,
            services: 4,
            xsks: 5,
        };
        let vip = steal_program(XdpSide::Vip, maps);
        let dip = steal_program(XdpSide::Dip, maps);
        assert_eq!(vip.len(), dip.len());
        let differ: Vec<usize> = (0..vip.len()).filter(|&i| vip[i] != dip[i]).collect();
        assert_eq!(differ.len(), 1, "only the side immediate differs");
        for (at, insn) in vip.iter().enumerate() {
            let class = insn[0] & 0x07;
            let op = insn[0] & 0xf0;
            if class == BPF_JMP && op != BPF_CALL && op != BPF_EXIT {
                let off = i16::from_ne_bytes([insn[2], insn[3]]);
                let target = at as isize + 1 + off as isize;
                assert!(
                    target > at as isize && (target as usize) < vip.len(),
                    "{at}"
                );
            }
        }
        assert_eq!(vip.last().unwrap()[0], BPF_JMP | BPF_EXIT);
    }

    #[test]
    fn map_keys_are_wire_order() {
        let key = map_key(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(key.to_ne_bytes(), [10, 0, 0, 1]);
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let log = b"0: (bf) r6 = r1\n\n1: invalid access\nprocessed 2 insns\n\0garbage";
        assert_eq!(log_tail(log, 2), "1: invalid access | processed 2 insns");
    }

    #[test]
    fn a_refused_program_reports_the_verifier_log() {
        if !crate::sys::is_root() {
            eprintln!("skipping: loading a BPF program needs root");
            return;
        }
        // `return r0` with r0 never set: the verifier refuses it.
        let mut asm = Asm::default();
        asm.exit();
        let err = load_insns("test0", &asm.finish()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("bpf(BPF_PROG_LOAD) of the XDP program for test0: Permission denied"),
            "{text}"
        );
        assert!(text.contains("R0 !read_ok"), "{text}");
        eprintln!("measured: {text}");
    }

    #[test]
    fn port_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<XdpPort>();
    }
}
