//! The frames simulated hosts send, built byte by byte with full checksums, and what a host
//! reads back out of a frame it receives.
//!
//! Every IPv4 packet is what a Linux host would put on the wire for it: a 20-byte header
//! without options, DF set, TTL 64, an identification that counts up per host; TCP
//! segments carry a 20-byte header (no options) and a 64240-byte window. The checksums are
//! computed over the whole packet, so a frame the director rewrote is checked by the host
//! that receives it exactly as a real stack would check it.

use std::net::{Ipv4Addr, SocketAddrV4};

use masq_wire::checksum;
use masq_wire::ethernet::{self, EthernetFrame, MacAddr};
use masq_wire::icmp::{self, IcmpPacket};
use masq_wire::ipv4::{self, Ipv4Packet, PROTO_ICMP, PROTO_TCP, PROTO_UDP};
use masq_wire::tcp::{self, TcpSegment};
use masq_wire::udp::{self, UdpDatagram};

/// The TTL simulated hosts send with (Linux's default).
pub const TTL: u8 = 64;
/// The receive window simulated TCP endpoints advertise.
const WINDOW: u16 = 64240;

/// One TCP segment's header fields, as a host sends or receives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpHeader {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub seq: u32,
    pub ack: u32,
    /// Of [`masq_wire::tcp::flags`].
    pub flags: u8,
}

/// An IPv4 packet's transport, as a host reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Tcp(TcpHeader, Vec<u8>),
    Udp {
        src: SocketAddrV4,
        dst: SocketAddrV4,
        payload: Vec<u8>,
    },
    /// An ICMP message, whole.
    Icmp {
        dst: Ipv4Addr,
        message: Vec<u8>,
    },
}

/// Builds the Ethernet frame of one IPv4 packet from `macs.0` to `macs.1`, with `ident` as
/// its identification; `l4` is the transport header and payload, whose checksum field
/// (at `checksum_at`, if any) is filled over the pseudo-header.
fn ipv4_frame(
    macs: (MacAddr, MacAddr),
    addrs: (Ipv4Addr, Ipv4Addr),
    protocol: u8,
    ident: u16,
    mut l4: Vec<u8>,
    checksum_at: Option<usize>,
) -> Vec<u8> {
    let l4_len = l4.len() as u16;
    if let Some(at) = checksum_at {
        let sum = checksum::pseudo_header_sum(addrs.0, addrs.1, protocol, l4_len);
        let check = !checksum::fold(checksum::accumulate(sum, &l4));
        // A computed UDP checksum of 0 is sent as all ones (RFC 768).
        let check = if protocol == PROTO_UDP && check == 0 {
            0xffff
        } else {
            check
        };
        l4[at..at + 2].copy_from_slice(&check.to_be_bytes());
    }
    let mut frame = vec![0u8; ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN];
    {
        let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
        eth.set_dst_addr(macs.1);
        eth.set_src_addr(macs.0);
        eth.set_ethertype(ethernet::ETHERTYPE_IPV4);
    }
    let ip = &mut frame[ethernet::HEADER_LEN..];
    ipv4::write_header(ip, addrs.0, addrs.1, protocol, l4_len, TTL);
    ip[4..6].copy_from_slice(&ident.to_be_bytes());
    // Don't fragment, as Linux sends with path MTU discovery on.
    ip[6] = 0x40;
    Ipv4Packet::new_unchecked(&mut ip[..]).fill_checksum();
    frame.extend_from_slice(&l4);
    frame
}

/// A TCP segment in an Ethernet frame.
pub fn tcp_frame(macs: (MacAddr, MacAddr), ident: u16, h: &TcpHeader, payload: &[u8]) -> Vec<u8> {
    let mut l4 = vec![0u8; tcp::MIN_HEADER_LEN];
    l4[0..2].copy_from_slice(&h.src.port().to_be_bytes());
    l4[2..4].copy_from_slice(&h.dst.port().to_be_bytes());
    l4[4..8].copy_from_slice(&h.seq.to_be_bytes());
    l4[8..12].copy_from_slice(&h.ack.to_be_bytes());
    l4[12] = (tcp::MIN_HEADER_LEN as u8 / 4) << 4;
    l4[13] = h.flags;
    l4[14..16].copy_from_slice(&WINDOW.to_be_bytes());
    l4.extend_from_slice(payload);
    let addrs = (*h.src.ip(), *h.dst.ip());
    ipv4_frame(
        macs,
        addrs,
        PROTO_TCP,
        ident,
        l4,
        Some(tcp::CHECKSUM_OFFSET),
    )
}

/// A UDP datagram in an Ethernet frame.
pub fn udp_frame(
    macs: (MacAddr, MacAddr),
    ident: u16,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: &[u8],
) -> Vec<u8> {
    let mut l4 = vec![0u8; udp::HEADER_LEN];
    l4[0..2].copy_from_slice(&src.port().to_be_bytes());
    l4[2..4].copy_from_slice(&dst.port().to_be_bytes());
    l4[4..6].copy_from_slice(&((udp::HEADER_LEN + payload.len()) as u16).to_be_bytes());
    l4.extend_from_slice(payload);
    let addrs = (*src.ip(), *dst.ip());
    ipv4_frame(
        macs,
        addrs,
        PROTO_UDP,
        ident,
        l4,
        Some(udp::CHECKSUM_OFFSET),
    )
}

/// The Ethernet frame of the ICMP error `msg_type`/`code` about `offending` (an IPv4
/// packet that arrived at `src`), quoting its header and 8 bytes as RFC 792 asks.
pub fn icmp_error_frame(
    macs: (MacAddr, MacAddr),
    src: Ipv4Addr,
    offending: &Ipv4Packet<&[u8]>,
    msg_type: u8,
    code: u8,
) -> Vec<u8> {
    let mut frame = vec![0u8; ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN + icmp::HEADER_LEN + 68];
    let len = icmp::write_error(
        &mut frame[ethernet::HEADER_LEN..],
        src,
        offending,
        msg_type,
        code,
        0,
    );
    frame.truncate(ethernet::HEADER_LEN + len);
    let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.set_dst_addr(macs.1);
    eth.set_src_addr(macs.0);
    eth.set_ethertype(ethernet::ETHERTYPE_IPV4);
    frame
}

/// Reads an IPv4 packet addressed to a host: `None` for anything a host's stack would
/// discard — a truncated header, a fragment, or a bad IP, TCP, UDP or ICMP checksum.
pub fn read_ipv4(ip: &[u8]) -> Option<Transport> {
    let packet = Ipv4Packet::new_checked(ip).ok()?;
    if !packet.verify_checksum() || packet.is_fragment() {
        return None;
    }
    let (src, dst) = (packet.src_addr(), packet.dst_addr());
    let l4 = packet.payload();
    let l4_sum_ok = |protocol: u8| {
        let sum = checksum::pseudo_header_sum(src, dst, protocol, l4.len() as u16);
        checksum::fold(checksum::accumulate(sum, l4)) == 0xffff
    };
    match packet.protocol() {
        PROTO_TCP if l4_sum_ok(PROTO_TCP) => {
            let seg = TcpSegment::new_checked(l4).ok()?;
            let header = TcpHeader {
                src: SocketAddrV4::new(src, seg.src_port()),
                dst: SocketAddrV4::new(dst, seg.dst_port()),
                seq: seg.seq(),
                ack: seg.ack_number(),
                flags: seg.flags(),
            };
            Some(Transport::Tcp(header, l4[seg.header_len()..].to_vec()))
        }
        PROTO_UDP => {
            let datagram = UdpDatagram::new_checked(l4).ok()?;
            if datagram.checksum() != 0 && !l4_sum_ok(PROTO_UDP) {
                return None;
            }
            Some(Transport::Udp {
                src: SocketAddrV4::new(src, datagram.src_port()),
                dst: SocketAddrV4::new(dst, datagram.dst_port()),
                payload: datagram.datagram()[udp::HEADER_LEN..].to_vec(),
            })
        }
        PROTO_ICMP => {
            let message = IcmpPacket::new_checked(l4).ok()?;
            message.verify_checksum().then(|| Transport::Icmp {
                dst,
                message: l4.to_vec(),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    use masq_wire::tcp::flags::{ACK, PSH};

    use super::*;

    const MACS: (MacAddr, MacAddr) = (MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2]));

    fn addr(last: u8, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(192, 168, 0, last), port)
    }

    /// Whether etherparse, the independent oracle, finds every checksum of `frame` right.
    fn checksums_ok(frame: &[u8]) -> bool {
        let p = SlicedPacket::from_ethernet(frame).expect("a frame etherparse reads");
        let Some(NetSlice::Ipv4(ip)) = &p.net else {
            return false;
        };
        let header = ip.header().to_header();
        let l4_ok = match &p.transport {
            Some(TransportSlice::Tcp(t)) => {
                t.checksum()
                    == t.to_header()
                        .calc_checksum_ipv4(&header, t.payload())
                        .unwrap()
            }
            Some(TransportSlice::Udp(u)) => {
                u.checksum()
                    == u.to_header()
                        .calc_checksum_ipv4(&header, u.payload())
                        .unwrap()
            }
            Some(TransportSlice::Icmpv4(i)) => {
                i.checksum() == i.icmp_type().calc_checksum(i.payload())
            }
            _ => false,
        };
        l4_ok && header.header_checksum == header.calc_header_checksum()
    }

    #[test]
    fn built_frames_carry_the_checksums_etherparse_computes_and_read_back() {
        let h = TcpHeader {
            src: addr(101, 40000),
            dst: addr(10, 80),
            seq: 7,
            ack: 9,
            flags: PSH | ACK,
        };
        let tcp = tcp_frame(MACS, 1, &h, b"GET / HTTP/1.1\r\n\r\n");
        assert!(checksums_ok(&tcp));
        assert_eq!(
            read_ipv4(&tcp[ethernet::HEADER_LEN..]),
            Some(Transport::Tcp(h, b"GET / HTTP/1.1\r\n\r\n".to_vec()))
        );

        let udp = udp_frame(MACS, 2, addr(101, 40001), addr(10, 80), b"ping\n");
        assert!(checksums_ok(&udp));
        let offending = Ipv4Packet::new_checked(&udp[ethernet::HEADER_LEN..]).unwrap();
        let unreachable = icmp_error_frame(
            MACS,
            Ipv4Addr::new(192, 168, 0, 10),
            &offending,
            icmp::TYPE_DEST_UNREACHABLE,
            icmp::CODE_PORT_UNREACHABLE,
        );
        assert!(checksums_ok(&unreachable));
    }

    #[test]
    fn a_host_discards_a_segment_whose_checksum_is_wrong() {
        let h = TcpHeader {
            src: addr(101, 40000),
            dst: addr(10, 80),
            seq: 7,
            ack: 0,
            flags: masq_wire::tcp::flags::SYN,
        };
        let mut frame = tcp_frame(MACS, 1, &h, b"");
        let last = frame.len() - 1;
        frame[last] ^= 1;
        assert_eq!(read_ipv4(&frame[ethernet::HEADER_LEN..]), None);
    }
}
