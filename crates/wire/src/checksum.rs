//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! A NAT rewrite changes a few 16-bit words of a header; recomputing a TCP checksum over a
//! 64 KiB GSO frame for that would be absurd, so the rewrite adjusts the stored checksum by
//! the difference instead (RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')`).
//!
//! Two kinds of stored L4 checksum exist on Linux. A *full* checksum is the complement of
//! the sum over pseudo-header, header and payload. A *partial* one (CHECKSUM_PARTIAL, what a
//! sender with checksum offload hands over) holds only the pseudo-header sum, *not*
//! complemented; the device or the kernel finishes it on transmit. Updating a partial
//! checksum is the same arithmetic on the complement, and only pseudo-header fields
//! (addresses, length) may be folded into it — ports are summed later with the header.

use std::net::Ipv4Addr;

/// Adds `data` as big-endian 16-bit words to a running one's-complement sum (unfolded).
pub fn accumulate(mut sum: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for pair in &mut chunks {
        sum += u64::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

/// Folds a running sum to 16 bits with end-around carry.
pub fn fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The Internet checksum of `data`: the complement of its folded one's-complement sum.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(accumulate(0, data))
}

/// The unfolded sum of the IPv4 pseudo-header (RFC 793 §3.1, RFC 768).
pub fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, l4_len: u16) -> u64 {
    let mut sum = accumulate(0, &src.octets());
    sum = accumulate(sum, &dst.octets());
    sum + u64::from(protocol) + u64::from(l4_len)
}

/// How an L4 checksum field is to be interpreted when it is updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L4Checksum {
    /// A complete checksum (what a wire delivers).
    Full,
    /// Only the pseudo-header sum, uncomplemented (CHECKSUM_PARTIAL from an offloading
    /// sender); the transmit path completes it.
    Partial,
}

/// RFC 1624 eqn. 3 for one 16-bit word: the full checksum `check` after `old` became `new`.
pub fn update_u16(check: u16, old: u16, new: u16) -> u16 {
    !fold(u64::from(!check) + u64::from(!old) + u64::from(new))
}

/// [`update_u16`] for a 32-bit field (an IPv4 address), as two words.
pub fn update_u32(check: u16, old: u32, new: u32) -> u16 {
    let sum = u64::from(!check)
        + u64::from(!(old >> 16) as u16)
        + u64::from(!(old as u16))
        + u64::from((new >> 16) as u16)
        + u64::from(new as u16);
    !fold(sum)
}

/// The partial (uncomplemented pseudo-header) checksum `partial` after the 32-bit
/// pseudo-header field `old` became `new`.
pub fn update_partial_u32(partial: u16, old: u32, new: u32) -> u16 {
    !update_u32(!partial, old, new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (before complement).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(accumulate(0, &data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(
            checksum(&[0x12, 0x34, 0x56]),
            checksum(&[0x12, 0x34, 0x56, 0x00])
        );
    }

    #[test]
    fn update_matches_recomputation_for_a_word() {
        let mut data = [0x45u8, 0x00, 0x12, 0x34, 0xab, 0xcd, 0x00, 0x00];
        let before = checksum(&data);
        data[2..4].copy_from_slice(&0xbeefu16.to_be_bytes());
        assert_eq!(update_u16(before, 0x1234, 0xbeef), checksum(&data));
    }
}
