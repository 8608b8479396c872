//! A received frame, parsed once.
//!
//! [`Worker::handle_frame`](super::Worker::handle_frame) checks a frame's Ethernet header
//! once and, for IPv4, its IPv4 header once, into an [`Ipv4Frame`]; [`parse_flow`] checks
//! the TCP or UDP header once into a [`Flow`]. Every later step — the NAT rewrite, ICMP
//! errors and replies, the MTU check, the MAC rewrite, traces — reads and writes through
//! them, with the wire crate's unchecked views over offsets that check established. The
//! rewrites change addresses, ports, TTL and checksums, never a length, so what was
//! checked stays true until the frame leaves.

use std::net::SocketAddrV4;

use masq_wire::ethernet::{self, EthernetFrame, MacAddr};
use masq_wire::ipv4::{self, Ipv4Packet, PROTO_TCP, PROTO_UDP};
use masq_wire::tcp::{flags, TcpSegment};
use masq_wire::udp::{self, UdpDatagram};
use masq_wire::Malformed;

use crate::conn::FlowKey;
use crate::frag::{FragKey, FragPiece};
use crate::verdict::DropReason;

/// What the I/O layer knows about a frame and must get back when the frame is sent:
/// whether its L4 checksum is only partial (checksum offload), plus opaque bytes of its
/// own (e.g. the virtio-net header) carried through untouched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameMeta {
    pub partial_checksum: bool,
    /// The frame stands for several segments (GSO): the transmit path cuts it to the
    /// MTU, so it is not held to the MTU here.
    pub gso: bool,
    /// Payload bytes per segment of a TCP-over-IPv4 GSO frame (the offload header's
    /// gso_size), 0 for any other frame: what a tunnel needs to cut the frame itself.
    pub tcp_gso_size: u16,
    pub io: [u8; 16],
}

/// A frame whose Ethernet header and IPv4 header passed their one check: the buffer holds
/// a whole Ethernet header, then an IPv4 header of a valid version and length whose total
/// length fits the buffer (which may be longer: Ethernet padding).
#[derive(Debug)]
pub(super) struct Ipv4Frame<'a> {
    bytes: &'a mut [u8],
}

impl<'a> Ipv4Frame<'a> {
    /// Checks the IPv4 header behind an Ethernet header that was checked already.
    pub fn new(eth: EthernetFrame<&'a mut [u8]>) -> Result<Self, Malformed> {
        Ipv4Packet::new_checked(eth.payload())?;
        Ok(Ipv4Frame {
            bytes: eth.into_inner(),
        })
    }

    /// The whole frame.
    pub fn bytes(&self) -> &[u8] {
        self.bytes
    }

    /// The Ethernet header.
    pub fn eth(&self) -> EthernetFrame<&[u8]> {
        EthernetFrame::new_unchecked(&*self.bytes)
    }

    /// The IPv4 packet.
    pub fn ip(&self) -> Ipv4Packet<&[u8]> {
        Ipv4Packet::new_unchecked(&self.bytes[ethernet::HEADER_LEN..])
    }

    /// The IPv4 packet, writable.
    pub fn ip_mut(&mut self) -> Ipv4Packet<&mut [u8]> {
        Ipv4Packet::new_unchecked(&mut self.bytes[ethernet::HEADER_LEN..])
    }

    /// Addresses the frame from `src` to `dst`.
    pub fn set_macs(&mut self, dst: MacAddr, src: MacAddr) {
        let mut eth = EthernetFrame::new_unchecked(&mut *self.bytes);
        eth.set_dst_addr(dst);
        eth.set_src_addr(src);
    }
}

/// The parts of a TCP/UDP packet the connection logic needs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Flow {
    pub key: FlowKey,
    pub tcp_flags: u8,
    pub ip_len: u16,
    /// Set for the first fragment of a fragmented datagram.
    pub frag: Option<FragKey>,
}

/// What the connection logic makes of a TCP/UDP packet.
pub(super) enum Parsed {
    /// Not TCP or UDP: the host's business.
    Other,
    /// A whole packet, or the first fragment of a datagram (which carries the ports).
    Flow(Flow),
    /// A later fragment: it follows its datagram's first fragment.
    LaterFragment(FragKey, FragPiece, u16),
}

/// Checks the IP header checksum and options and the TCP or UDP header, once, and reads
/// protocol, ports and flags.
pub(super) fn parse_flow(ip: &Ipv4Packet<&[u8]>) -> Result<Parsed, DropReason> {
    let protocol = ip.protocol();
    if protocol != PROTO_TCP && protocol != PROTO_UDP {
        return Ok(Parsed::Other);
    }
    if !ip.verify_checksum() {
        return Err(DropReason::BadIpChecksum);
    }
    // The host's IP input would drop options that do not parse (ip_options_compile)
    // before IPVS saw the packet; masq sees frames first, so it checks them itself.
    if ip.header_len() > ipv4::MIN_HEADER_LEN && !ip.options_valid() {
        return Err(DropReason::Malformed);
    }
    let frag = ip.is_fragment().then(|| FragKey {
        protocol,
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        ident: ip.ident(),
    });
    if let Some(key) = frag {
        if ip.frag_offset() > 0 {
            let piece = FragPiece {
                offset: ip.frag_offset() as u32,
                len: ip.payload().len() as u32,
                last: !ip.more_fragments(),
            };
            return Ok(Parsed::LaterFragment(key, piece, ip.total_len()));
        }
    }
    let (sport, dport, tcp_flags) = if protocol == PROTO_TCP {
        let tcp = TcpSegment::new_checked(ip.payload()).map_err(|_| DropReason::Malformed)?;
        // SYN and FIN together is never a real segment (a scan or an attack); kernel IPVS
        // would pass it and leave it to the real server, masq stops it here.
        if tcp.flags() & (flags::SYN | flags::FIN) == flags::SYN | flags::FIN {
            return Err(DropReason::TcpBadFlags);
        }
        (tcp.src_port(), tcp.dst_port(), tcp.flags())
    } else if frag.is_some() {
        // A first fragment holds the UDP header but not the whole announced length.
        let p = ip.payload();
        if p.len() < udp::HEADER_LEN {
            return Err(DropReason::Malformed);
        }
        (
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
            0,
        )
    } else {
        let udp = UdpDatagram::new_checked(ip.payload()).map_err(|_| DropReason::Malformed)?;
        (udp.src_port(), udp.dst_port(), 0)
    };
    Ok(Parsed::Flow(Flow {
        key: FlowKey {
            protocol,
            src: SocketAddrV4::new(ip.src_addr(), sport),
            dst: SocketAddrV4::new(ip.dst_addr(), dport),
        },
        tcp_flags,
        ip_len: ip.total_len(),
        frag,
    }))
}
