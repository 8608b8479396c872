//! The crate's one error type. Every OS failure names the call that failed and the
//! interface or file it was made on, so a user sees one clear line.

use std::io;
use std::path::PathBuf;

/// An I/O failure in masq's packet layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IoError {
    /// Creating a socket failed.
    #[error("socket({kind}) for {iface}: {source}")]
    Socket {
        /// Which socket, e.g. `AF_PACKET, SOCK_RAW`.
        kind: &'static str,
        /// The interface it was for.
        iface: String,
        /// The OS error.
        source: io::Error,
    },
    /// Setting a socket option failed.
    #[error("setsockopt({option}) on {iface}: {source}")]
    SetSockOpt {
        /// The option, e.g. `PACKET_VNET_HDR`.
        option: &'static str,
        /// The interface the socket is for.
        iface: String,
        /// The OS error.
        source: io::Error,
    },
    /// Reading a socket option failed.
    #[error("getsockopt({option}) on {iface}: {source}")]
    GetSockOpt {
        /// The option, e.g. `PACKET_STATISTICS`.
        option: &'static str,
        /// The interface the socket is bound to.
        iface: String,
        /// The OS error.
        source: io::Error,
    },
    /// Mapping a packet socket's ring into memory failed.
    #[error("mmap(PACKET_RX_RING) on {iface}: {source}")]
    Mmap {
        /// The interface the socket is for.
        iface: String,
        /// The OS error, e.g. `ENOMEM`.
        source: io::Error,
    },
    /// Binding the packet socket to its interface failed.
    #[error("bind(AF_PACKET) to {iface} (index {index}): {source}")]
    Bind {
        /// The interface name.
        iface: String,
        /// The interface index that was bound.
        index: u32,
        /// The OS error.
        source: io::Error,
    },
    /// Waiting for or reading frames failed.
    #[error("{call} on {iface}: {source}")]
    Recv {
        /// The call: `poll`, `recvmsg` or `recvmmsg`.
        call: &'static str,
        /// The interface the socket is bound to.
        iface: String,
        /// The OS error.
        source: io::Error,
    },
    /// Sending a frame failed.
    #[error("{call} on {iface}: {source}")]
    Send {
        /// The call: `sendmsg` or `sendmmsg`.
        call: &'static str,
        /// The interface the socket is bound to.
        iface: String,
        /// The OS error, e.g. `EMSGSIZE` for a frame over the MTU without GSO, or
        /// `ENOBUFS` when the queueing discipline dropped it.
        source: io::Error,
    },
    /// A batch send stopped at a frame that failed.
    #[error("batch send stopped after {sent} frames: {source}")]
    BatchSend {
        /// Frames sent before the one that failed.
        sent: usize,
        /// Why that frame failed.
        source: Box<IoError>,
    },
    /// No interface has this name (in this network namespace).
    #[error("interface {0} not found")]
    InterfaceNotFound(String),
    /// The interface has no Ethernet (MAC) address, so masq cannot use it.
    #[error("interface {0} has no MAC address")]
    NoMacAddress(String),
    /// The name cannot be an interface name (empty, longer than 15 bytes, or with NUL).
    #[error("invalid interface name {0:?}")]
    InvalidInterfaceName(String),
    /// An interface `ioctl` failed.
    #[error("ioctl({request}) on {iface}: {source}")]
    Ioctl {
        /// The request, e.g. `SIOCETHTOOL, ETHTOOL_GGRO`.
        request: &'static str,
        /// The interface.
        iface: String,
        /// The OS error.
        source: io::Error,
    },
    /// Reading a file (under /proc or /sys) failed.
    #[error("read {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A file held something other than what the kernel documents.
    #[error("unexpected content {content:?} in {path}")]
    UnexpectedContent {
        /// The file.
        path: PathBuf,
        /// What it held.
        content: String,
    },
    /// Setting up a pnet datalink channel failed.
    #[error("{call} on {iface}: {source}")]
    Pnet {
        /// The call: `pnet_datalink::channel` (which binds the socket), or `dup` of its
        /// descriptor.
        call: &'static str,
        /// The interface the channel is for.
        iface: String,
        /// The OS error.
        source: io::Error,
    },
    /// The back end cannot do what a frame asks for.
    #[error("{call} on {iface}: {reason}")]
    Unsupported {
        /// The operation, e.g. `pnet send_to`.
        call: &'static str,
        /// The interface.
        iface: String,
        /// What was asked, why it cannot be done and what to change.
        reason: &'static str,
    },
    /// A `bpf()` call of the AF_XDP back end failed (creating or updating a map).
    #[error("{call} for {iface}: {source}")]
    Bpf {
        /// The call, e.g. `bpf(BPF_MAP_CREATE, XSKMAP)` or `bpf(BPF_MAP_UPDATE_ELEM)`.
        call: &'static str,
        /// The interface the map serves.
        iface: String,
        /// The OS error, e.g. `EPERM` without `CAP_BPF`/`CAP_NET_ADMIN`.
        source: io::Error,
    },
    /// The kernel refused the XDP program (the verifier, usually).
    #[error(
        "bpf(BPF_PROG_LOAD) of the XDP program for {iface}: {source}; verifier log: {verifier_log}"
    )]
    BpfProgLoad {
        /// The interface the program was for.
        iface: String,
        /// The OS error (`EACCES` or `EINVAL` from the verifier).
        source: io::Error,
        /// The last lines of the verifier's log.
        verifier_log: String,
    },
    /// Neither native (driver) nor generic XDP could be attached to the interface.
    #[error(
        "bpf(BPF_LINK_CREATE, BPF_XDP) on {iface}: native mode: {native}; generic mode: {source}"
    )]
    XdpAttach {
        /// The interface.
        iface: String,
        /// Why native mode (`XDP_FLAGS_DRV_MODE`) was refused.
        native: io::Error,
        /// Why generic mode (`XDP_FLAGS_SKB_MODE`) was refused.
        source: io::Error,
    },
    /// Setting up the `AF_XDP` socket failed.
    #[error("{call} of the AF_XDP socket on {iface} queue {queue}: {source}")]
    Xsk {
        /// The call, e.g. `setsockopt(XDP_UMEM_REG)`, `mmap(XDP_RX_RING)`, `bind(AF_XDP)`.
        call: &'static str,
        /// The interface.
        iface: String,
        /// The interface queue the socket is for.
        queue: u32,
        /// The OS error.
        source: io::Error,
    },
    /// An [`crate::XdpOptions`] value the back end cannot use.
    #[error("invalid AF_XDP option: {0}")]
    XdpOption(&'static str),
    /// The other port of a [`crate::MemoryLink`] is gone.
    #[error("memory link: the peer port was dropped")]
    PeerGone,
}
