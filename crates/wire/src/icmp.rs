//! ICMPv4 (RFC 792): reading the errors that quote a connection, and writing the ones a
//! director originates (port unreachable when no real server is available, time exceeded).

use std::net::Ipv4Addr;

use crate::checksum;
use crate::ipv4;
use crate::{get_u16, put_u16, Malformed};

/// Length of the ICMP header (type, code, checksum, 4 bytes of rest-of-header).
pub const HEADER_LEN: usize = 8;
/// Destination Unreachable.
pub const TYPE_DEST_UNREACHABLE: u8 = 3;
/// Source Quench.
pub const TYPE_SOURCE_QUENCH: u8 = 4;
/// Time Exceeded.
pub const TYPE_TIME_EXCEEDED: u8 = 11;
/// Code of Destination Unreachable: port unreachable.
pub const CODE_PORT_UNREACHABLE: u8 = 3;
/// Code of Destination Unreachable: fragmentation needed and DF set.
pub const CODE_FRAG_NEEDED: u8 = 4;

/// A view of an ICMPv4 message.
#[derive(Debug, Clone)]
pub struct IcmpPacket<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Wraps `buffer` (the IP payload).
    ///
    /// # Errors
    /// [`Malformed::Truncated`] if shorter than 8 bytes.
    pub fn new_checked(buffer: T) -> Result<Self, Malformed> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Malformed::Truncated);
        }
        Ok(IcmpPacket { buffer })
    }

    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// Message code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), 2)
    }

    /// Whether the checksum over the whole message is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::accumulate(0, self.buffer.as_ref())) == 0xffff
    }

    /// Whether IPVS treats this type as an error about a connection (3, 4 and 11).
    pub fn is_error(&self) -> bool {
        matches!(
            self.msg_type(),
            TYPE_DEST_UNREACHABLE | TYPE_SOURCE_QUENCH | TYPE_TIME_EXCEEDED
        )
    }

    /// The bytes after the 8-byte header: for errors, the quoted IP header and at least
    /// 8 bytes of its payload.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

/// The connection an ICMP error is about, read from the IP header and the first 8 bytes of
/// L4 header it quotes (as the offending packet was sent: source is its sender).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotedFlow {
    pub protocol: u8,
    pub src: Ipv4Addr,
    pub sport: u16,
    pub dst: Ipv4Addr,
    pub dport: u16,
}

/// Offset of the quoted IP header within an ICMP message.
const QUOTE_OFFSET: usize = HEADER_LEN;

/// Reads the quoted flow of an ICMP error message (`icmp` = the whole ICMP message). The
/// quote is usually cut short, so its total length is not checked; only that the quoted
/// IPv4 header and 4 bytes of ports are present.
///
/// # Errors
/// [`Malformed::Truncated`], [`Malformed::NotIpv4`] or [`Malformed::BadHeaderLength`].
pub fn quoted_flow(icmp: &[u8]) -> Result<QuotedFlow, Malformed> {
    let q = icmp.get(QUOTE_OFFSET..).ok_or(Malformed::Truncated)?;
    if q.len() < ipv4::MIN_HEADER_LEN {
        return Err(Malformed::Truncated);
    }
    if q[0] >> 4 != 4 {
        return Err(Malformed::NotIpv4);
    }
    let ihl = usize::from(q[0] & 0x0f) * 4;
    if ihl < ipv4::MIN_HEADER_LEN {
        return Err(Malformed::BadHeaderLength);
    }
    if q.len() < ihl + 4 {
        return Err(Malformed::Truncated);
    }
    Ok(QuotedFlow {
        protocol: q[9],
        src: Ipv4Addr::new(q[12], q[13], q[14], q[15]),
        dst: Ipv4Addr::new(q[16], q[17], q[18], q[19]),
        sport: get_u16(q, ihl),
        dport: get_u16(q, ihl + 2),
    })
}

/// Rewrites one endpoint of the packet quoted in an ICMP error (`icmp` = the whole ICMP
/// message, already checked by [`quoted_flow`]), then recomputes the quoted IP header's
/// checksum and the ICMP checksum. As in the kernel's `ip_vs_nat_icmp`, the quoted L4
/// checksum is left alone: the quote is partial and nobody verifies it.
///
/// # Errors
/// As [`quoted_flow`].
pub fn rewrite_quoted(
    icmp: &mut [u8],
    which: crate::nat::Endpoint,
    addr: Ipv4Addr,
    port: u16,
) -> Result<(), Malformed> {
    quoted_flow(icmp)?;
    let q = &mut icmp[QUOTE_OFFSET..];
    let ihl = usize::from(q[0] & 0x0f) * 4;
    let (addr_at, port_at) = match which {
        crate::nat::Endpoint::Source => (12, ihl),
        crate::nat::Endpoint::Destination => (16, ihl + 2),
    };
    q[addr_at..addr_at + 4].copy_from_slice(&addr.octets());
    put_u16(q, port_at, port);
    if q.len() >= ihl {
        put_u16(q, 10, 0);
        let sum = checksum::checksum(&q[..ihl]);
        put_u16(q, 10, sum);
    }
    fill_checksum(icmp);
    Ok(())
}

/// Recomputes the checksum of a whole ICMP message.
pub fn fill_checksum(icmp: &mut [u8]) {
    if icmp.len() < HEADER_LEN {
        return;
    }
    put_u16(icmp, 2, 0);
    let sum = checksum::checksum(icmp);
    put_u16(icmp, 2, sum);
}

/// How many bytes of the offending packet an ICMP error quotes: its IP header plus 8 bytes
/// of payload (RFC 792), which is all the kernel's IPVS looks at too.
pub fn quote_len(offending: &ipv4::Ipv4Packet<&[u8]>) -> usize {
    (offending.header_len() + 8).min(usize::from(offending.total_len()))
}

/// Writes a complete IPv4 packet carrying an ICMP error into `buf` and returns its length.
/// `offending` is the IP packet that caused it; its first [`quote_len`] bytes are quoted.
/// `rest` is the rest-of-header word (e.g. the next-hop MTU for fragmentation needed).
///
/// # Panics
/// If `buf` cannot hold 20 + 8 + 68 bytes — buffers are fixed-size.
pub fn write_error(
    buf: &mut [u8],
    src: Ipv4Addr,
    offending: &ipv4::Ipv4Packet<&[u8]>,
    msg_type: u8,
    code: u8,
    rest: u32,
) -> usize {
    let quote = quote_len(offending);
    let icmp_len = HEADER_LEN + quote;
    let total = ipv4::MIN_HEADER_LEN + icmp_len;
    ipv4::write_header(
        buf,
        src,
        offending.src_addr(),
        ipv4::PROTO_ICMP,
        icmp_len as u16,
        64,
    );
    let icmp = &mut buf[ipv4::MIN_HEADER_LEN..total];
    icmp[0] = msg_type;
    icmp[1] = code;
    put_u16(icmp, 2, 0);
    icmp[4..8].copy_from_slice(&rest.to_be_bytes());
    let whole = offending.clone().into_inner();
    icmp[HEADER_LEN..].copy_from_slice(&whole[..quote]);
    let sum = checksum::checksum(icmp);
    put_u16(icmp, 2, sum);
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offending_udp() -> Vec<u8> {
        let mut p = vec![0u8; 20 + 8 + 4];
        ipv4::write_header(
            &mut p,
            Ipv4Addr::new(192, 168, 0, 101),
            Ipv4Addr::new(192, 168, 0, 10),
            ipv4::PROTO_UDP,
            12,
            64,
        );
        p[20..28].copy_from_slice(&[0x13, 0x88, 0, 7, 0, 12, 0, 0]);
        p[28..].copy_from_slice(b"ping");
        p
    }

    #[test]
    fn quoted_flow_is_read_and_rewritten() {
        let offending = offending_udp();
        let view = ipv4::Ipv4Packet::new_checked(&offending[..]).unwrap();
        let mut buf = [0u8; 128];
        let len = write_error(
            &mut buf,
            Ipv4Addr::new(192, 168, 0, 10),
            &view,
            TYPE_DEST_UNREACHABLE,
            CODE_FRAG_NEEDED,
            1400,
        );
        let icmp = &mut buf[20..len];
        let q = quoted_flow(icmp).unwrap();
        assert_eq!(
            q,
            QuotedFlow {
                protocol: ipv4::PROTO_UDP,
                src: Ipv4Addr::new(192, 168, 0, 101),
                sport: 5000,
                dst: Ipv4Addr::new(192, 168, 0, 10),
                dport: 7,
            }
        );
        let rip = Ipv4Addr::new(192, 168, 100, 7);
        rewrite_quoted(icmp, crate::nat::Endpoint::Destination, rip, 8007).unwrap();
        let q = quoted_flow(icmp).unwrap();
        assert_eq!(
            (q.dst, q.dport, q.src),
            (rip, 8007, Ipv4Addr::new(192, 168, 0, 101))
        );
        assert!(IcmpPacket::new_checked(&*icmp).unwrap().verify_checksum());
        let quoted_ip = &icmp[8..28];
        assert_eq!(
            checksum::checksum(quoted_ip),
            0,
            "quoted IP header checksum fixed"
        );
        assert_eq!(quoted_flow(&icmp[..20]), Err(Malformed::Truncated));
    }

    #[test]
    fn port_unreachable_quotes_header_and_8_bytes() {
        let offending = offending_udp();
        let view = ipv4::Ipv4Packet::new_checked(&offending[..]).unwrap();
        let mut buf = [0u8; 128];
        let len = write_error(
            &mut buf,
            Ipv4Addr::new(192, 168, 0, 10),
            &view,
            TYPE_DEST_UNREACHABLE,
            CODE_PORT_UNREACHABLE,
            0,
        );
        assert_eq!(len, 20 + 8 + 28);
        let (ip, rest) = etherparse::Ipv4Header::from_slice(&buf[..len]).unwrap();
        assert_eq!(ip.destination, [192, 168, 0, 101]);
        assert_eq!(ip.calc_header_checksum(), ip.header_checksum);
        let icmp = IcmpPacket::new_checked(rest).unwrap();
        assert!(icmp.verify_checksum());
        assert!(icmp.is_error());
        assert_eq!(icmp.code(), CODE_PORT_UNREACHABLE);
        assert_eq!(icmp.payload(), &offending[..28]);
        let (slice, _) = etherparse::Icmpv4Slice::from_slice(rest)
            .map(|s| (s, ()))
            .unwrap();
        assert!(matches!(
            slice.icmp_type(),
            etherparse::Icmpv4Type::DestinationUnreachable(_)
        ));
    }
}
