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
//! The program (`steering_prog`, assembled by `crate::bpf::asm`, no compiler involved)
//! looks the IPv4 addresses of a frame up in the hash map `addrs` (key: the address as it
//! is on the wire, value: flags VIP = 1, RIP = 2, LOCAL = 4). On the VIP side it steals a
//! frame whose destination is a VIP; when that VIP is also one of the host's own addresses
//! (LOCAL, as in the classic lab), only the frames masqd serves: TCP/UDP to a port in the
//! `services` map (key: VIP, port, protocol), ICMP errors, and later fragments; the host
//! keeps the rest of its traffic to that address (ssh, ping, a closed port answered with
//! RST). On the DIP side it steals a frame whose source is a real server and whose
//! destination is not one of the host's own addresses (so replies to the host's own
//! health checks reach its sockets). Everything else goes to the kernel, where the port's
//! [`crate::PacketSocket`] still sees it: AF_PACKET taps run after XDP. The maps (`maps`)
//! are filled by [`XdpPort::set_addresses`] and [`XdpPort::set_service_ports`].
//!
//! Invariants:
//! - the UMEM is cut in two halves: receive frames circulate fill ring → RX ring → fill
//!   ring, transmit frames free list → TX ring → completion ring → free list; each half
//!   is only touched under its own lock, so the halves never mix (`queue`);
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
//!   [`crate::Offload::NONE`]; frames to send that still need segmentation or a checksum
//!   go out through the [`crate::PacketSocket`] instead (in order with the others), and
//!   frames longer than the MTU plus the Ethernet header are refused (`EMSGSIZE`);
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
//!
//! Files: `port` (the port and its receive and send paths), `queue` (one queue's sockets,
//! UMEM halves and rings), `maps` (what the program reads), `steering_prog` (the
//! program), `attach` (loading and attaching it).

mod attach;
mod maps;
mod port;
mod queue;
mod steering_prog;

pub use port::XdpPort;

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
