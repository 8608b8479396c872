//! IPv4 headers (RFC 791).

use std::net::Ipv4Addr;

use crate::checksum;
use crate::{get_u16, put_u16, Malformed};

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// Protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// Protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// Protocol number of UDP.
pub const PROTO_UDP: u8 = 17;

/// A view of an IPv4 packet. The buffer may be longer than the packet (Ethernet padding);
/// [`Ipv4Packet::payload`] stops at the total length.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buffer` after checking version, header length and total length.
    ///
    /// # Errors
    /// [`Malformed::Truncated`] if shorter than 20 bytes, [`Malformed::NotIpv4`],
    /// [`Malformed::BadHeaderLength`] for IHL < 5 or beyond the total length,
    /// [`Malformed::BadLength`] if the total length exceeds the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, Malformed> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Malformed::Truncated);
        }
        if b[0] >> 4 != 4 {
            return Err(Malformed::NotIpv4);
        }
        let header_len = usize::from(b[0] & 0x0f) * 4;
        let total_len = usize::from(get_u16(b, 2));
        if header_len < MIN_HEADER_LEN || header_len > total_len {
            return Err(Malformed::BadHeaderLength);
        }
        if total_len > b.len() {
            return Err(Malformed::BadLength);
        }
        Ok(Ipv4Packet { buffer })
    }

    /// Wraps `buffer` without checking it, for bytes already checked with
    /// [`Ipv4Packet::new_checked`] whose version, header length and total length have not
    /// changed since (a caller that parses a packet once and then reads or rewrites it
    /// through this view; address, TTL and checksum setters keep it valid).
    ///
    /// # Panics
    /// The accessors panic where `new_checked` would have refused the buffer.
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Header length in bytes (20..=60).
    pub fn header_len(&self) -> usize {
        usize::from(self.b()[0] & 0x0f) * 4
    }

    /// Total length field: header plus payload.
    pub fn total_len(&self) -> u16 {
        get_u16(self.b(), 2)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        get_u16(self.b(), 4)
    }

    /// Don't Fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.b()[6] & 0x40 != 0
    }

    /// More Fragments flag: another fragment of this datagram follows this one.
    pub fn more_fragments(&self) -> bool {
        self.b()[6] & 0x20 != 0
    }

    /// Whether this is a fragment (More Fragments set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        get_u16(self.b(), 6) & 0x3fff != 0
    }

    /// Fragment offset in bytes (0 for the first fragment or a whole packet).
    pub fn frag_offset(&self) -> usize {
        usize::from(get_u16(self.b(), 6) & 0x1fff) * 8
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.b()[8]
    }

    /// Protocol number of the payload.
    pub fn protocol(&self) -> u8 {
        self.b()[9]
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.b(), 10)
    }

    /// Whether the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::accumulate(0, &self.b()[..self.header_len()])) == 0xffff
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[12], b[13], b[14], b[15])
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[16], b[17], b[18], b[19])
    }

    /// Whether the options (if any) are well formed, as the kernel's `ip_options_compile`
    /// requires before it lets a packet in: every option but End and No-Operation has a
    /// length of at least 2 that stays within the header, and the options that carry a
    /// pointer (record route, timestamp, source routes) are at least 3 bytes long.
    pub fn options_valid(&self) -> bool {
        let options = &self.b()[MIN_HEADER_LEN..self.header_len()];
        let mut at = 0;
        while at < options.len() {
            match options[at] {
                0 => return true,
                1 => at += 1,
                kind => {
                    let Some(&len) = options.get(at + 1) else {
                        return false;
                    };
                    let len = usize::from(len);
                    let min = if matches!(kind, 7 | 68 | 131 | 137) {
                        3
                    } else {
                        2
                    };
                    if len < min || at + len > options.len() {
                        return false;
                    }
                    at += len;
                }
            }
        }
        true
    }

    /// The header, options included.
    pub fn header(&self) -> &[u8] {
        &self.b()[..self.header_len()]
    }

    /// The payload, up to the total length.
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..usize::from(self.total_len())]
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn b_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Sets the source address (the header checksum is not touched).
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.b_mut()[12..16].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address (the header checksum is not touched).
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.b_mut()[16..20].copy_from_slice(&addr.octets());
    }

    /// Sets the TTL (the header checksum is not touched).
    pub fn set_ttl(&mut self, ttl: u8) {
        self.b_mut()[8] = ttl;
    }

    /// Recomputes the header checksum, as the kernel's `ip_send_check` does after NAT.
    pub fn fill_checksum(&mut self) {
        let header_len = self.header_len();
        put_u16(self.b_mut(), 10, 0);
        let sum = checksum::checksum(&self.b()[..header_len]);
        put_u16(self.b_mut(), 10, sum);
    }

    /// The payload, up to the total length, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.header_len(), usize::from(self.total_len()));
        &mut self.b_mut()[start..end]
    }

    /// Header and payload at once, for rewrites that touch both.
    pub fn split_mut(&mut self) -> (&mut [u8], &mut [u8]) {
        let (start, end) = (self.header_len(), usize::from(self.total_len()));
        let (header, rest) = self.b_mut()[..end].split_at_mut(start);
        (header, rest)
    }
}

/// Writes a 20-byte IPv4 header without options into `buf` and fills its checksum.
/// Used to build the packets the director originates (ICMP errors).
///
/// # Panics
/// If `buf` is shorter than 20 bytes.
pub fn write_header(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    payload_len: u16,
    ttl: u8,
) {
    let h = &mut buf[..MIN_HEADER_LEN];
    h.fill(0);
    h[0] = 0x45;
    put_u16(h, 2, MIN_HEADER_LEN as u16 + payload_len);
    h[8] = ttl;
    h[9] = protocol;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let sum = checksum::checksum(h);
    put_u16(h, 10, sum);
}

#[cfg(test)]
mod tests {
    use super::*;

    // A TCP SYN from 192.168.0.101 to 192.168.0.10, header only (payload cut off below).
    static HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 192, 168, 0, 101,
        192, 168, 0, 10,
    ];

    fn packet() -> Vec<u8> {
        let mut p = HEADER.to_vec();
        p.resize(0x3c, 0);
        let mut v = Ipv4Packet::new_checked(&mut p[..]).unwrap();
        v.fill_checksum();
        p
    }

    #[test]
    fn reads_fields() {
        let p = packet();
        let v = Ipv4Packet::new_checked(&p[..]).unwrap();
        assert_eq!(v.header_len(), 20);
        assert_eq!(v.total_len(), 60);
        assert_eq!(v.ttl(), 64);
        assert_eq!(v.protocol(), PROTO_TCP);
        assert!(v.dont_frag());
        assert!(!v.is_fragment());
        assert_eq!(v.src_addr(), Ipv4Addr::new(192, 168, 0, 101));
        assert_eq!(v.dst_addr(), Ipv4Addr::new(192, 168, 0, 10));
        assert!(v.verify_checksum());
        assert_eq!(v.payload().len(), 40);
    }

    #[test]
    fn checksum_agrees_with_etherparse() {
        let p = packet();
        let (hdr, _) = etherparse::Ipv4Header::from_slice(&p).unwrap();
        assert_eq!(
            hdr.calc_header_checksum(),
            Ipv4Packet::new_checked(&p[..]).unwrap().checksum()
        );
    }

    #[test]
    fn unchecked_view_reads_and_writes_what_the_checked_one_does() {
        let mut p = packet();
        p.extend_from_slice(&[0xee; 6]);
        let checked = Ipv4Packet::new_checked(&p[..]).unwrap();
        let unchecked = Ipv4Packet::new_unchecked(&p[..]);
        assert_eq!(unchecked.header(), checked.header());
        assert_eq!(unchecked.payload(), checked.payload());
        assert_eq!(unchecked.total_len(), checked.total_len());
        assert_eq!(unchecked.src_addr(), checked.src_addr());
        let mut q = p.clone();
        let mut via_unchecked = Ipv4Packet::new_unchecked(&mut q[..]);
        via_unchecked.set_dst_addr(Ipv4Addr::new(192, 168, 100, 7));
        via_unchecked.fill_checksum();
        let mut via_checked = Ipv4Packet::new_checked(&mut p[..]).unwrap();
        via_checked.set_dst_addr(Ipv4Addr::new(192, 168, 100, 7));
        via_checked.fill_checksum();
        assert_eq!(q, p);
        assert!(Ipv4Packet::new_checked(&q[..]).unwrap().verify_checksum());
    }

    #[test]
    fn rejects_bad_headers() {
        let p = packet();
        assert_eq!(
            Ipv4Packet::new_checked(&p[..19]).unwrap_err(),
            Malformed::Truncated
        );
        let mut v6 = p.clone();
        v6[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&v6[..]).unwrap_err(),
            Malformed::NotIpv4
        );
        let mut short_ihl = p.clone();
        short_ihl[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&short_ihl[..]).unwrap_err(),
            Malformed::BadHeaderLength
        );
        let mut long_ihl = p.clone();
        long_ihl[0] = 0x4f; // 60-byte header in a 60-byte packet is fine...
        long_ihl[2..4].copy_from_slice(&40u16.to_be_bytes()); // ...but not in 40 bytes
        assert_eq!(
            Ipv4Packet::new_checked(&long_ihl[..]).unwrap_err(),
            Malformed::BadHeaderLength
        );
        let mut lying = p.clone();
        lying[2..4].copy_from_slice(&61u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&lying[..]).unwrap_err(),
            Malformed::BadLength
        );
    }

    #[test]
    fn options_are_checked_for_structure() {
        let with_options = |opts: &[u8]| {
            let mut p = packet();
            let mut h = p[..20].to_vec();
            h.extend_from_slice(opts);
            h[0] = 0x40 | (h.len() / 4) as u8;
            let total = (h.len() + p.len() - 20) as u16;
            h[2..4].copy_from_slice(&total.to_be_bytes());
            h.extend_from_slice(&p.split_off(20));
            h
        };
        let valid = |opts: &[u8]| {
            let p = with_options(opts);
            Ipv4Packet::new_checked(&p[..]).unwrap().options_valid()
        };
        assert!(valid(&[]));
        assert!(valid(&[1, 1, 1, 0]), "NOPs and End");
        assert!(
            valid(&[7, 7, 4, 0, 0, 0, 0, 0]),
            "record route with room for one address"
        );
        assert!(valid(&[0x94, 4, 0, 0]), "router alert");
        assert!(
            !valid(&[7, 2, 4, 0]),
            "record route shorter than its pointer"
        );
        assert!(!valid(&[0x94, 1, 0, 0]), "length below 2");
        assert!(!valid(&[0x94, 9, 0, 0]), "length beyond the header");
        assert!(!valid(&[1, 1, 1, 0x94]), "a length byte missing");
    }

    #[test]
    fn padding_is_not_payload() {
        let mut p = packet();
        p.extend_from_slice(&[0xee; 6]);
        let v = Ipv4Packet::new_checked(&p[..]).unwrap();
        assert_eq!(v.payload().len(), 40);
    }

    #[test]
    fn fragments_are_recognised() {
        let mut p = packet();
        p[6] = 0x20; // MF
        assert!(Ipv4Packet::new_checked(&p[..]).unwrap().is_fragment());
        p[6] = 0x00;
        p[7] = 0x10; // offset 16*8
        assert!(Ipv4Packet::new_checked(&p[..]).unwrap().is_fragment());
    }
}
