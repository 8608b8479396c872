//! Typed, zero-copy views over the bytes of the frames a NAT director handles.
//!
//! One module per protocol — [`ethernet`], [`arp`], [`ipv4`], [`tcp`], [`udp`], [`icmp`], and
//! [`ipvs_sync`] (the kernel's connection-sync messages), [`tunnel`] (IPIP encapsulation),
//! [`tcp_segment`] (cutting a TCP GSO super-frame into its segments in software) — plus
//! [`checksum`] (RFC 1071 sums and RFC 1624 incremental updates) and [`nat`] (the
//! LVS-NAT rewrite: an address/port setter plus the matching checksum updates).
//!
//! Every view wraps a buffer `T: AsRef<[u8]>`. `new_checked` validates lengths once; after
//! that no accessor can panic or read out of bounds. Setters exist only when
//! `T: AsMut<[u8]>`. Nothing here allocates or does I/O, so the same code serves the
//! packet path, the tests and the fuzz targets.
#![forbid(unsafe_code)]

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipvs_sync;
pub mod nat;
pub mod tcp;
pub mod tcp_segment;
pub mod tunnel;
pub mod udp;

/// Why a buffer could not be viewed as a packet of some protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Malformed {
    /// Shorter than the fixed header.
    Truncated,
    /// A length field points past the end of the buffer or below the header.
    BadLength,
    /// IP version other than 4.
    NotIpv4,
    /// IPv4 header length (IHL) below 5 words or beyond the packet.
    BadHeaderLength,
    /// A field holds a value this view does not handle (e.g. ARP for another protocol).
    Unsupported,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Malformed::Truncated => "truncated header",
            Malformed::BadLength => "length field does not match the buffer",
            Malformed::NotIpv4 => "not IPv4",
            Malformed::BadHeaderLength => "bad IPv4 header length",
            Malformed::Unsupported => "unsupported field value",
        })
    }
}

impl std::error::Error for Malformed {}

/// Reads a big-endian u16 at `at`. Callers have checked the length.
#[inline]
pub(crate) fn get_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

/// Writes a big-endian u16 at `at`. Callers have checked the length.
#[inline]
pub(crate) fn put_u16(buf: &mut [u8], at: usize, value: u16) {
    buf[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// Reads a big-endian u32 at `at`. Callers have checked the length.
#[inline]
pub(crate) fn get_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}
