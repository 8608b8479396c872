//! The LVS-NAT rewrite: change one endpoint (address and port) of a TCP or UDP packet in
//! place and keep every checksum right without summing the payload again.
//!
//! Inbound (client → VIP) the destination becomes the real server; outbound (real server →
//! client) the source becomes the VIP. The L4 checksum covers the pseudo-header, so an
//! address change is folded into it as well as a port change (RFC 1624). For a partial
//! checksum (see [`L4Checksum::Partial`]) only the address is folded in: ports are summed
//! later, when the transmit path completes the checksum over the header.
//!
//! The IP header checksum is not touched here; callers decrement the TTL and call
//! [`Ipv4Packet::fill_checksum`] once, after all header changes.

use std::net::Ipv4Addr;

use crate::checksum::{self, L4Checksum};
use crate::ipv4::{Ipv4Packet, PROTO_TCP, PROTO_UDP};
use crate::tcp::TcpSegment;
use crate::udp::UdpDatagram;
use crate::{get_u16, put_u16, Malformed};

/// Which endpoint of the packet a rewrite changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Source,
    Destination,
}

/// Rewrites `which` endpoint of a TCP or UDP packet to `addr:port`, updating the L4
/// checksum as `l4` says it is stored. The IP header checksum is left for the caller.
///
/// A UDP datagram that carries no checksum (0) gets a full one computed, as the kernel's
/// IPVS does, so the receiver can verify it; a computed 0 is sent as 0xffff.
///
/// # Errors
/// [`Malformed::Unsupported`] for other protocols, or the L4 header's own error when it
/// is truncated. Nothing is changed on error.
pub fn rewrite(
    ip: &mut Ipv4Packet<&mut [u8]>,
    which: Endpoint,
    addr: Ipv4Addr,
    port: u16,
    l4: L4Checksum,
) -> Result<(), Malformed> {
    let old_addr = match which {
        Endpoint::Source => ip.src_addr(),
        Endpoint::Destination => ip.dst_addr(),
    };
    let (old_a, new_a) = (u32::from(old_addr), u32::from(addr));
    match ip.protocol() {
        PROTO_TCP => {
            let mut tcp = TcpSegment::new_checked(ip.payload_mut())?;
            let old_port = match which {
                Endpoint::Source => tcp.src_port(),
                Endpoint::Destination => tcp.dst_port(),
            };
            let check = match l4 {
                L4Checksum::Full => checksum::update_u16(
                    checksum::update_u32(tcp.checksum(), old_a, new_a),
                    old_port,
                    port,
                ),
                L4Checksum::Partial => checksum::update_partial_u32(tcp.checksum(), old_a, new_a),
            };
            tcp.set_checksum(check);
            match which {
                Endpoint::Source => tcp.set_src_port(port),
                Endpoint::Destination => tcp.set_dst_port(port),
            }
        }
        PROTO_UDP => {
            // The first fragment of a fragmented datagram carries the UDP header but not
            // all of the length it announces; its checksum covers the whole datagram, so
            // the incremental update is still right.
            let fragment = ip.is_fragment();
            let payload = ip.payload_mut();
            if !fragment {
                UdpDatagram::new_checked(&*payload)?;
            } else if payload.len() < crate::udp::HEADER_LEN {
                return Err(Malformed::Truncated);
            }
            let port_at = match which {
                Endpoint::Source => 0,
                Endpoint::Destination => 2,
            };
            let old_port = get_u16(payload, port_at);
            put_u16(payload, port_at, port);
            let stored = get_u16(payload, crate::udp::CHECKSUM_OFFSET);
            let check = match l4 {
                L4Checksum::Partial => checksum::update_partial_u32(stored, old_a, new_a),
                // No checksum: filled in below for a whole datagram, and left absent for a
                // fragment, whose data is not all here to be summed.
                L4Checksum::Full if stored == 0 => 0,
                L4Checksum::Full => nonzero_udp(checksum::update_u16(
                    checksum::update_u32(stored, old_a, new_a),
                    old_port,
                    port,
                )),
            };
            put_u16(payload, crate::udp::CHECKSUM_OFFSET, check);
        }
        _ => return Err(Malformed::Unsupported),
    }
    match which {
        Endpoint::Source => ip.set_src_addr(addr),
        Endpoint::Destination => ip.set_dst_addr(addr),
    }
    if ip.protocol() == PROTO_UDP && l4 == L4Checksum::Full && !ip.is_fragment() {
        fill_missing_udp_checksum(ip)?;
    }
    Ok(())
}

/// In UDP a checksum of 0 means "none", so a computed 0 is sent as its other
/// representation, 0xffff (RFC 768).
fn nonzero_udp(check: u16) -> u16 {
    if check == 0 {
        0xffff
    } else {
        check
    }
}

fn fill_missing_udp_checksum(ip: &mut Ipv4Packet<&mut [u8]>) -> Result<(), Malformed> {
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let mut udp = UdpDatagram::new_checked(ip.payload_mut())?;
    if udp.checksum() != 0 {
        return Ok(());
    }
    let sum = checksum::pseudo_header_sum(src, dst, PROTO_UDP, udp.len());
    let check = !checksum::fold(checksum::accumulate(sum, udp.datagram()));
    udp.set_checksum(nonzero_udp(check));
    Ok(())
}

/// Decrements the TTL as a router does before forwarding. Returns `false`, changing
/// nothing, when the TTL is 1 or 0: the packet must not be forwarded (the sender is owed an
/// ICMP time exceeded).
pub fn decrement_ttl(ip: &mut Ipv4Packet<&mut [u8]>) -> bool {
    let ttl = ip.ttl();
    if ttl <= 1 {
        return false;
    }
    ip.set_ttl(ttl - 1);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;
    use proptest::prelude::*;

    fn tcp_packet(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let builder = PacketBuilder::ipv4(src, dst, 64)
            .tcp(sport, dport, 1, 64240)
            .syn();
        let mut out = Vec::new();
        builder.write(&mut out, payload).unwrap();
        out
    }

    fn udp_packet(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let builder = PacketBuilder::ipv4(src, dst, 64).udp(sport, dport);
        let mut out = Vec::new();
        builder.write(&mut out, payload).unwrap();
        out
    }

    /// The checksums a full recomputation gives for `packet` (IP header, L4).
    fn recomputed(packet: &[u8]) -> (u16, u16) {
        let sliced = etherparse::SlicedPacket::from_ip(packet).unwrap();
        let ip = match &sliced.net {
            Some(etherparse::NetSlice::Ipv4(v4)) => v4.header().to_header(),
            _ => panic!("not ipv4"),
        };
        let l4 = match &sliced.transport {
            Some(etherparse::TransportSlice::Tcp(t)) => {
                t.to_header().calc_checksum_ipv4(&ip, t.payload()).unwrap()
            }
            Some(etherparse::TransportSlice::Udp(u)) => {
                u.to_header().calc_checksum_ipv4(&ip, u.payload()).unwrap()
            }
            _ => panic!("no transport"),
        };
        (ip.calc_header_checksum(), l4)
    }

    fn stored(packet: &[u8]) -> (u16, u16) {
        let ip = Ipv4Packet::new_checked(packet).unwrap();
        let l4 = ip.payload();
        let off = if ip.protocol() == PROTO_TCP { 16 } else { 6 };
        (ip.checksum(), u16::from_be_bytes([l4[off], l4[off + 1]]))
    }

    #[test]
    fn inbound_rewrite_of_the_seed_lab_syn() {
        let mut p = tcp_packet([192, 168, 0, 101], [192, 168, 0, 10], 40000, 80, b"");
        let mut ip = Ipv4Packet::new_checked(&mut p[..]).unwrap();
        let rip = Ipv4Addr::new(192, 168, 100, 7);
        rewrite(&mut ip, Endpoint::Destination, rip, 8080, L4Checksum::Full).unwrap();
        assert!(decrement_ttl(&mut ip));
        ip.fill_checksum();
        let view = Ipv4Packet::new_checked(&p[..]).unwrap();
        assert_eq!(view.dst_addr(), rip);
        assert_eq!(view.src_addr(), Ipv4Addr::new(192, 168, 0, 101));
        assert_eq!(view.ttl(), 63);
        let tcp = TcpSegment::new_checked(view.payload()).unwrap();
        assert_eq!((tcp.src_port(), tcp.dst_port()), (40000, 8080));
        assert_eq!(stored(&p), recomputed(&p));
    }

    #[test]
    fn ttl_one_is_not_forwarded() {
        let mut p = tcp_packet([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, b"");
        p[8] = 1;
        let mut ip = Ipv4Packet::new_checked(&mut p[..]).unwrap();
        assert!(!decrement_ttl(&mut ip));
        assert_eq!(ip.ttl(), 1);
    }

    #[test]
    fn udp_without_checksum_gets_a_full_one() {
        let mut p = udp_packet([192, 168, 0, 101], [192, 168, 0, 10], 5000, 7, b"hello");
        p[20 + 6] = 0;
        p[20 + 7] = 0;
        let mut ip = Ipv4Packet::new_checked(&mut p[..]).unwrap();
        rewrite(
            &mut ip,
            Endpoint::Destination,
            Ipv4Addr::new(192, 168, 100, 9),
            7,
            L4Checksum::Full,
        )
        .unwrap();
        ip.fill_checksum();
        assert_eq!(stored(&p), recomputed(&p));
    }

    #[test]
    fn first_fragment_of_a_udp_datagram_is_rewritten_incrementally() {
        // A 100-byte datagram; the first fragment carries 48 bytes of it.
        let whole = udp_packet([192, 168, 0, 101], [192, 168, 0, 10], 5000, 7, &[0x42; 92]);
        let mut frag = whole[..20 + 48].to_vec();
        frag[2..4].copy_from_slice(&68u16.to_be_bytes());
        frag[6] = 0x20; // more fragments
        let mut ip = Ipv4Packet::new_checked(&mut frag[..]).unwrap();
        ip.fill_checksum();
        let rip = Ipv4Addr::new(192, 168, 100, 9);
        rewrite(&mut ip, Endpoint::Destination, rip, 8007, L4Checksum::Full).unwrap();
        // Reassembled with the rest, the checksum must match a full recomputation.
        let mut reassembled = whole.clone();
        reassembled[20..68].copy_from_slice(&frag[20..68]);
        reassembled[16..20].copy_from_slice(&rip.octets());
        let mut v = Ipv4Packet::new_checked(&mut reassembled[..]).unwrap();
        v.fill_checksum();
        assert_eq!(stored(&reassembled).1, recomputed(&reassembled).1);
    }

    #[test]
    fn other_protocols_are_refused_untouched() {
        let mut p = udp_packet([1, 1, 1, 1], [2, 2, 2, 2], 1, 2, b"x");
        p[9] = 47; // GRE
        let before = p.clone();
        let mut ip = Ipv4Packet::new_checked(&mut p[..]).unwrap();
        let err = rewrite(
            &mut ip,
            Endpoint::Source,
            Ipv4Addr::new(3, 3, 3, 3),
            1,
            L4Checksum::Full,
        );
        assert_eq!(err, Err(Malformed::Unsupported));
        assert_eq!(p, before);
    }

    proptest! {
        #[test]
        fn incremental_equals_recomputation(
            tcp in any::<bool>(),
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(),
            sport in any::<u16>(), dport in any::<u16>(),
            new_addr in any::<[u8; 4]>(), new_port in any::<u16>(),
            source_side in any::<bool>(),
            payload in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut p = if tcp {
                tcp_packet(src, dst, sport, dport, &payload)
            } else {
                udp_packet(src, dst, sport, dport, &payload)
            };
            let which = if source_side { Endpoint::Source } else { Endpoint::Destination };
            let mut ip = Ipv4Packet::new_checked(&mut p[..]).unwrap();
            rewrite(&mut ip, which, Ipv4Addr::from(new_addr), new_port, L4Checksum::Full).unwrap();
            ip.fill_checksum();
            let (ip_sum, l4_sum) = recomputed(&p);
            let (ip_stored, l4_stored) = stored(&p);
            prop_assert_eq!(ip_stored, ip_sum);
            // UDP's 0 is sent as 0xffff; both are the same one's-complement value.
            if !tcp && l4_sum == 0 {
                prop_assert_eq!(l4_stored, 0xffff);
            } else {
                prop_assert_eq!(l4_stored, l4_sum);
            }
        }

        #[test]
        fn partial_checksum_tracks_the_pseudo_header(
            tcp in any::<bool>(),
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(),
            new_addr in any::<[u8; 4]>(), new_port in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut p = if tcp {
                tcp_packet(src, dst, 1000, 80, &payload)
            } else {
                udp_packet(src, dst, 1000, 53, &payload)
            };
            let (proto, off) = if tcp { (PROTO_TCP, 16) } else { (PROTO_UDP, 6) };
            let l4_len = (p.len() - 20) as u16;
            // What an offloading sender stores: the folded pseudo-header sum, uncomplemented.
            let partial = |s: [u8; 4], d: [u8; 4]| {
                checksum::fold(checksum::pseudo_header_sum(s.into(), d.into(), proto, l4_len))
            };
            p[20 + off..20 + off + 2].copy_from_slice(&partial(src, dst).to_be_bytes());
            let mut ip = Ipv4Packet::new_checked(&mut p[..]).unwrap();
            rewrite(&mut ip, Endpoint::Destination, Ipv4Addr::from(new_addr), new_port, L4Checksum::Partial).unwrap();
            let got = u16::from_be_bytes([p[20 + off], p[21 + off]]);
            let want = partial(src, new_addr);
            // 0x0000 and 0xffff are the same one's-complement number.
            prop_assert!(got == want || (got ^ want) == 0xffff && (got == 0 || want == 0),
                "got {:#06x} want {:#06x}", got, want);
        }
    }
}
