//! IP-in-IP encapsulation (RFC 2003) as the kernel's IPVS tunnelling (`ip_vs_tunnel_xmit`)
//! writes it: an outer IPv4 header of 20 bytes, protocol 4, in front of the client's packet.
//!
//! The outer header copies the inner one's TOS, TTL and DF bit; its identification is 0
//! when DF is set (the kernel's `ip_select_ident` for a packet with no socket) and the
//! caller's counter otherwise. Observed on a real kernel: a SYN of TTL 64 leaves the
//! director as outer TTL 63 around inner TTL 63, ID 0, DF.

use std::net::Ipv4Addr;

use crate::icmp::{self, QuotedFlow};
use crate::ipv4::{self, Ipv4Packet};
use crate::{checksum, put_u16, Malformed};

/// The IP protocol number of an IPv4 packet inside an IPv4 packet.
pub const PROTO_IPIP: u8 = 4;
/// Bytes the IPIP encapsulation adds to a packet: the outer header, without options.
pub const IPIP_OVERHEAD: usize = ipv4::MIN_HEADER_LEN;

/// The outer header's endpoints: the director's address on the real servers' side and
/// the real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelEnds {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
}

/// Writes the outer IPIP header for `inner` into the first [`IPIP_OVERHEAD`] bytes of
/// `outer`, checksum included. `ident` is used only when `inner` may be fragmented.
///
/// # Errors
/// [`Malformed::Truncated`] if `outer` is shorter than the header, and
/// [`Malformed::BadLength`] if the encapsulated packet would exceed 65535 bytes.
pub fn write_ipip_header(
    outer: &mut [u8],
    ends: TunnelEnds,
    inner: &Ipv4Packet<&[u8]>,
    ident: u16,
) -> Result<(), Malformed> {
    let h = outer.get_mut(..IPIP_OVERHEAD).ok_or(Malformed::Truncated)?;
    let total = u16::try_from(IPIP_OVERHEAD + usize::from(inner.total_len()))
        .map_err(|_| Malformed::BadLength)?;
    let dont_frag = inner.dont_frag();
    h[0] = 0x45;
    h[1] = inner.header()[1];
    put_u16(h, 2, total);
    put_u16(h, 4, if dont_frag { 0 } else { ident });
    put_u16(h, 6, if dont_frag { 0x4000 } else { 0 });
    h[8] = inner.ttl();
    h[9] = PROTO_IPIP;
    put_u16(h, 10, 0);
    h[12..16].copy_from_slice(&ends.src.octets());
    h[16..20].copy_from_slice(&ends.dst.octets());
    let sum = checksum::checksum(h);
    put_u16(h, 10, sum);
    Ok(())
}

/// Finishes the L4 checksum of a TCP or UDP packet whose checksum was left to offload
/// (the field holds the pseudo-header sum, as a sender's CHECKSUM_PARTIAL leaves it).
/// Needed before encapsulation: the offload header that would finish it describes offsets
/// in the bare packet, and is not sent with a tunnelled one. Other protocols are left alone.
///
/// # Errors
/// [`Malformed`] if `packet` is not an IPv4 packet with a whole TCP or UDP header.
pub fn complete_partial_checksum(packet: &mut [u8]) -> Result<(), Malformed> {
    let ip = Ipv4Packet::new_checked(&*packet)?;
    let field = match ip.protocol() {
        ipv4::PROTO_TCP => 16,
        ipv4::PROTO_UDP => 6,
        _ => return Ok(()),
    };
    let (start, end) = (ip.header_len(), usize::from(ip.total_len()));
    if end < start + field + 2 {
        return Err(Malformed::Truncated);
    }
    let l4 = &mut packet[start..end];
    // The field's pseudo-header sum takes part in the sum of the segment, as it must.
    let sum = !checksum::fold(checksum::accumulate(0, l4));
    let sum = if sum == 0 && field == 6 { 0xffff } else { sum };
    put_u16(l4, field, sum);
    Ok(())
}

/// What an ICMP error that quotes an IPIP packet is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotedTunnel<'a> {
    /// The tunnelled packet's sender: the director, if it is about one of its tunnels.
    pub outer_src: Ipv4Addr,
    /// The quoted inner packet, from its IP header to the end of the quote: at least its
    /// header and 8 bytes (or all of it, if shorter), as an ICMP error must quote.
    pub inner: &'a [u8],
    /// The inner packet's flow.
    pub flow: QuotedFlow,
}

/// Reads an ICMP error (`icmp_msg` = the whole ICMP message) whose quote is an IPIP packet.
///
/// # Errors
/// [`Malformed::Unsupported`] if the quote is not IPIP, else as [`icmp::quoted_flow`] or
/// [`Malformed::Truncated`] if the inner quote is shorter than an ICMP error needs.
pub fn quoted_tunnel(icmp_msg: &[u8]) -> Result<QuotedTunnel<'_>, Malformed> {
    let outer = icmp::quoted_flow(icmp_msg)?;
    if outer.protocol != PROTO_IPIP {
        return Err(Malformed::Unsupported);
    }
    let outer_len = usize::from(icmp_msg[icmp::HEADER_LEN] & 0x0f) * 4;
    // The inner packet sits where the quote would, shifted by the outer header.
    let flow = icmp::quoted_flow(&icmp_msg[outer_len..])?;
    let inner = &icmp_msg[icmp::HEADER_LEN + outer_len..];
    let view = Ipv4Packet::new_unchecked(inner);
    if inner.len() < icmp::quote_len(&view) {
        return Err(Malformed::Truncated);
    }
    Ok(QuotedTunnel {
        outer_src: outer.src,
        inner,
        flow,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first frame of a real kernel's `-i` capture: director 192.168.100.10 sends a
    /// client's SYN (192.168.0.105:20005 → 192.168.0.10:81) to real server 192.168.100.7.
    static KERNEL_IPIP_FRAME: [u8; 94] = [
        0x72, 0xb6, 0x84, 0x48, 0x00, 0xe6, 0x4e, 0xff, 0x81, 0x72, 0x6f, 0x3b, 0x08, 0x00, 0x45,
        0x00, 0x00, 0x50, 0x00, 0x00, 0x40, 0x00, 0x3f, 0x04, 0xf2, 0x47, 0xc0, 0xa8, 0x64, 0x0a,
        0xc0, 0xa8, 0x64, 0x07, 0x45, 0x00, 0x00, 0x3c, 0x9f, 0xe1, 0x40, 0x00, 0x3f, 0x06, 0x1a,
        0x17, 0xc0, 0xa8, 0x00, 0x69, 0xc0, 0xa8, 0x00, 0x0a, 0x4e, 0x25, 0x00, 0x51, 0x95, 0x72,
        0x76, 0x59, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa, 0xf0, 0x76, 0x53, 0x00, 0x00, 0x02,
        0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0xa5, 0xbc, 0x54, 0xf9, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x03, 0x03, 0x07,
    ];
    const ENDS: TunnelEnds = TunnelEnds {
        src: Ipv4Addr::new(192, 168, 100, 10),
        dst: Ipv4Addr::new(192, 168, 100, 7),
    };

    #[test]
    fn outer_header_matches_the_kernels() {
        let inner = &KERNEL_IPIP_FRAME[14 + IPIP_OVERHEAD..];
        let view = Ipv4Packet::new_checked(inner).unwrap();
        let mut outer = [0u8; IPIP_OVERHEAD];
        write_ipip_header(&mut outer, ENDS, &view, 0x1234).unwrap();
        assert_eq!(outer, KERNEL_IPIP_FRAME[14..14 + IPIP_OVERHEAD]);
    }

    #[test]
    fn a_packet_that_may_be_fragmented_gets_an_ident_and_no_df() {
        let mut inner = KERNEL_IPIP_FRAME[14 + IPIP_OVERHEAD..].to_vec();
        inner[6] = 0;
        inner[1] = 0x10;
        let view = Ipv4Packet::new_checked(&inner[..]).unwrap();
        let mut outer = [0u8; IPIP_OVERHEAD];
        write_ipip_header(&mut outer, ENDS, &view, 0x1234).unwrap();
        let outer_view = Ipv4Packet::new_unchecked(&outer[..]);
        assert_eq!(outer_view.ident(), 0x1234);
        assert!(!outer_view.dont_frag());
        assert_eq!(outer[1], 0x10);
        assert!(outer_view.verify_checksum());
    }

    #[test]
    fn refuses_what_would_not_fit() {
        let view = Ipv4Packet::new_checked(&KERNEL_IPIP_FRAME[14 + IPIP_OVERHEAD..]).unwrap();
        let mut short = [0u8; IPIP_OVERHEAD - 1];
        assert_eq!(
            write_ipip_header(&mut short, ENDS, &view, 0),
            Err(Malformed::Truncated)
        );
    }

    #[test]
    fn completes_a_partial_checksum() {
        let mut inner = KERNEL_IPIP_FRAME[14 + IPIP_OVERHEAD..].to_vec();
        let pseudo = checksum::pseudo_header_sum(
            Ipv4Addr::new(192, 168, 0, 105),
            Ipv4Addr::new(192, 168, 0, 10),
            ipv4::PROTO_TCP,
            40,
        );
        let partial = checksum::fold(pseudo);
        inner[20 + 16..20 + 18].copy_from_slice(&partial.to_be_bytes());
        complete_partial_checksum(&mut inner).unwrap();
        assert_eq!(inner, KERNEL_IPIP_FRAME[14 + IPIP_OVERHEAD..]);
    }

    #[test]
    fn reads_the_kernels_error_about_a_tunnelled_packet() {
        // The real server's protocol unreachable for the frame above, as captured.
        let mut msg = vec![0x03, 0x03, 0x7e, 0xef, 0, 0, 0, 0];
        msg.extend_from_slice(&KERNEL_IPIP_FRAME[14..]);
        let quoted = quoted_tunnel(&msg).unwrap();
        assert_eq!(quoted.outer_src, ENDS.src);
        assert_eq!(quoted.inner, &KERNEL_IPIP_FRAME[14 + IPIP_OVERHEAD..]);
        assert_eq!(
            (quoted.flow.src, quoted.flow.sport),
            (Ipv4Addr::new(192, 168, 0, 105), 20005)
        );
        assert_eq!(
            (quoted.flow.dst, quoted.flow.dport),
            (Ipv4Addr::new(192, 168, 0, 10), 81)
        );
        assert_eq!(
            quoted_tunnel(&msg[..8 + 20 + 20 + 7]),
            Err(Malformed::Truncated)
        );
        msg[8 + 9] = ipv4::PROTO_TCP;
        assert_eq!(quoted_tunnel(&msg), Err(Malformed::Unsupported));
    }
}
