//! The `struct virtio_net_hdr` that precedes every frame on a `PACKET_VNET_HDR` socket,
//! as a plain Rust value.
//!
//! With it the kernel hands masq GSO super-frames (one frame standing for many
//! MTU-sized segments) and frames whose L4 checksum holds only the pseudo-header sum, and
//! takes them back the same way: on transmit it segments and finishes the checksums (in
//! software, or in the NIC when the NIC can). Layout (`include/uapi/linux/virtio_net.h`):
//!
//! ```text
//! offset 0  u8  flags        NEEDS_CSUM = 1, DATA_VALID = 2
//! offset 1  u8  gso_type     NONE 0, TCPV4 1, UDP 3, TCPV6 4, UDP_L4 5, | ECN 0x80
//! offset 2  u16 hdr_len      length of the headers (Ethernet to L4) of a GSO frame
//! offset 4  u16 gso_size     payload bytes per segment
//! offset 6  u16 csum_start   where checksumming starts, from the Ethernet header
//! offset 8  u16 csum_offset  where the checksum goes, from csum_start
//! ```
//!
//! Byte order: AF_PACKET uses the legacy virtio convention, which is the host's own order
//! (`vio_le()` in `net/packet/af_packet.c` is little-endian only on little-endian hosts).

/// Length of the `struct virtio_net_hdr` in front of every frame.
pub const VNET_HDR_LEN: usize = 10;

const F_NEEDS_CSUM: u8 = 1;
const F_DATA_VALID: u8 = 2;
const GSO_ECN: u8 = 0x80;

/// How a GSO super-frame is to be cut into segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GsoType {
    /// Not a super-frame: the frame goes out as it is.
    None,
    /// TCP over IPv4 (TSO).
    TcpV4,
    /// UDP fragmentation offload (UFO): one datagram cut into IP fragments.
    Udp,
    /// TCP over IPv6 (TSO).
    TcpV6,
    /// UDP segmentation (USO): one UDP datagram per segment.
    UdpL4,
    /// A value this crate does not know; such a frame cannot be forwarded safely.
    Other(u8),
}

impl GsoType {
    fn from_raw(raw: u8) -> GsoType {
        match raw {
            0 => GsoType::None,
            1 => GsoType::TcpV4,
            3 => GsoType::Udp,
            4 => GsoType::TcpV6,
            5 => GsoType::UdpL4,
            other => GsoType::Other(other),
        }
    }

    fn to_raw(self) -> u8 {
        match self {
            GsoType::None => 0,
            GsoType::TcpV4 => 1,
            GsoType::Udp => 3,
            GsoType::TcpV6 => 4,
            GsoType::UdpL4 => 5,
            GsoType::Other(raw) => raw & !GSO_ECN,
        }
    }
}

/// The offload state of one frame: which checksum and segmentation work is left to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Offload {
    /// The L4 checksum at `csum_start + csum_offset` holds only the pseudo-header sum (not
    /// complemented); the kernel or NIC completes it over `csum_start..` on transmit. A
    /// NAT rewrite updates that partial sum like a full one (RFC 1624).
    pub needs_csum: bool,
    /// On receive: the kernel (or NIC) already verified the checksums.
    pub csum_valid: bool,
    /// How the frame is to be segmented; [`GsoType::None`] for a plain frame.
    pub gso_type: GsoType,
    /// The TCP ECN (CWR) flag must be kept on the first segment only.
    pub gso_ecn: bool,
    /// Length of the headers copied into every segment (Ethernet to L4); a hint.
    pub hdr_len: u16,
    /// Payload bytes per segment (the MSS for TCP).
    pub gso_size: u16,
    /// Offset of the L4 header from the start of the Ethernet frame.
    pub csum_start: u16,
    /// Offset of the checksum field from `csum_start` (16 for TCP, 6 for UDP).
    pub csum_offset: u16,
}

impl Offload {
    /// A complete, MTU-sized frame: no work left.
    pub const NONE: Offload = Offload {
        needs_csum: false,
        csum_valid: false,
        gso_type: GsoType::None,
        gso_ecn: false,
        hdr_len: 0,
        gso_size: 0,
        csum_start: 0,
        csum_offset: 0,
    };

    /// Whether this frame stands for several segments.
    pub fn is_gso(&self) -> bool {
        self.gso_type != GsoType::None
    }

    /// Reads a `struct virtio_net_hdr` as the kernel wrote it.
    pub fn decode(raw: &[u8; VNET_HDR_LEN]) -> Offload {
        let u16_at = |at: usize| u16::from_ne_bytes([raw[at], raw[at + 1]]);
        Offload {
            needs_csum: raw[0] & F_NEEDS_CSUM != 0,
            csum_valid: raw[0] & F_DATA_VALID != 0,
            gso_type: GsoType::from_raw(raw[1] & !GSO_ECN),
            gso_ecn: raw[1] & GSO_ECN != 0,
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        }
    }

    /// Writes the `struct virtio_net_hdr` the kernel expects in front of a frame.
    pub fn encode(&self) -> [u8; VNET_HDR_LEN] {
        let mut raw = [0u8; VNET_HDR_LEN];
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        raw[0] = flag(self.needs_csum, F_NEEDS_CSUM) | flag(self.csum_valid, F_DATA_VALID);
        raw[1] = self.gso_type.to_raw() | flag(self.gso_ecn, GSO_ECN);
        raw[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        raw[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        raw[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        raw[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        raw
    }
}

impl Default for Offload {
    fn default() -> Self {
        Offload::NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TSO frame as the kernel reports it for a TCP/IPv4 super-frame with timestamps:
    /// NEEDS_CSUM, TCPV4, hdr_len 66, gso_size 1448, csum_start 34, csum_offset 16.
    #[cfg(target_endian = "little")]
    const TSO_V4: [u8; VNET_HDR_LEN] = [0x01, 0x01, 66, 0, 0xa8, 0x05, 34, 0, 16, 0];

    #[cfg(target_endian = "little")]
    #[test]
    fn decodes_kernel_tso_header() {
        let offload = Offload::decode(&TSO_V4);
        assert_eq!(
            offload,
            Offload {
                needs_csum: true,
                csum_valid: false,
                gso_type: GsoType::TcpV4,
                gso_ecn: false,
                hdr_len: 66,
                gso_size: 1448,
                csum_start: 34,
                csum_offset: 16,
            }
        );
        assert!(offload.is_gso());
        assert_eq!(offload.encode(), TSO_V4);
    }

    #[test]
    fn none_is_all_zero() {
        assert_eq!(Offload::NONE.encode(), [0; VNET_HDR_LEN]);
        assert_eq!(Offload::decode(&[0; VNET_HDR_LEN]), Offload::NONE);
        assert!(!Offload::NONE.is_gso());
    }

    #[test]
    fn flags_and_ecn_bits() {
        let mut raw = [0u8; VNET_HDR_LEN];
        raw[0] = F_DATA_VALID;
        raw[1] = 4 | GSO_ECN;
        let offload = Offload::decode(&raw);
        assert!(offload.csum_valid && !offload.needs_csum);
        assert_eq!(offload.gso_type, GsoType::TcpV6);
        assert!(offload.gso_ecn);
        assert_eq!(offload.encode(), raw);
    }

    #[test]
    fn every_gso_type_round_trips() {
        for raw_type in 0..=0x7f {
            let mut raw = [0u8; VNET_HDR_LEN];
            raw[1] = raw_type;
            raw[2..4].copy_from_slice(&0x1234u16.to_ne_bytes());
            raw[8..10].copy_from_slice(&6u16.to_ne_bytes());
            let offload = Offload::decode(&raw);
            assert_eq!(offload.encode(), raw, "gso_type {raw_type}");
            assert_eq!(offload.hdr_len, 0x1234);
            assert_eq!(offload.csum_offset, 6);
        }
        assert_eq!(
            Offload::decode(&[0, 5, 0, 0, 0, 0, 0, 0, 0, 0]).gso_type,
            GsoType::UdpL4
        );
        assert_eq!(
            Offload::decode(&[0, 3, 0, 0, 0, 0, 0, 0, 0, 0]).gso_type,
            GsoType::Udp
        );
        assert_eq!(
            Offload::decode(&[0, 2, 0, 0, 0, 0, 0, 0, 0, 0]).gso_type,
            GsoType::Other(2)
        );
    }
}
