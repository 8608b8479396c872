//! ARP for IPv4 over Ethernet (RFC 826) — the only kind a director needs.

use std::net::Ipv4Addr;

use crate::ethernet::{self, MacAddr};
use crate::{get_u16, put_u16, Malformed};

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;
/// ARP request.
pub const OP_REQUEST: u16 = 1;
/// ARP reply.
pub const OP_REPLY: u16 = 2;

/// A view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone)]
pub struct ArpPacket<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps `buffer` after checking it is a whole Ethernet/IPv4 ARP packet.
    ///
    /// # Errors
    /// [`Malformed::Truncated`] if shorter than 28 bytes, [`Malformed::Unsupported`] for
    /// other hardware or protocol types.
    pub fn new_checked(buffer: T) -> Result<Self, Malformed> {
        let b = buffer.as_ref();
        if b.len() < PACKET_LEN {
            return Err(Malformed::Truncated);
        }
        if get_u16(b, 0) != 1 || get_u16(b, 2) != ethernet::ETHERTYPE_IPV4 || b[4] != 6 || b[5] != 4
        {
            return Err(Malformed::Unsupported);
        }
        Ok(ArpPacket { buffer })
    }

    /// Operation (request or reply).
    pub fn operation(&self) -> u16 {
        get_u16(self.buffer.as_ref(), 6)
    }

    /// Sender hardware address.
    pub fn sender_mac(&self) -> MacAddr {
        mac_at(self.buffer.as_ref(), 8)
    }

    /// Sender protocol address.
    pub fn sender_ip(&self) -> Ipv4Addr {
        ip_at(self.buffer.as_ref(), 14)
    }

    /// Target hardware address.
    pub fn target_mac(&self) -> MacAddr {
        mac_at(self.buffer.as_ref(), 18)
    }

    /// Target protocol address.
    pub fn target_ip(&self) -> Ipv4Addr {
        ip_at(self.buffer.as_ref(), 24)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Writes a complete ARP packet (all fields).
    pub fn fill(
        &mut self,
        operation: u16,
        sender: (MacAddr, Ipv4Addr),
        target: (MacAddr, Ipv4Addr),
    ) {
        let b = self.buffer.as_mut();
        put_u16(b, 0, 1);
        put_u16(b, 2, ethernet::ETHERTYPE_IPV4);
        b[4] = 6;
        b[5] = 4;
        put_u16(b, 6, operation);
        b[8..14].copy_from_slice(&sender.0 .0);
        b[14..18].copy_from_slice(&sender.1.octets());
        b[18..24].copy_from_slice(&target.0 .0);
        b[24..28].copy_from_slice(&target.1.octets());
    }
}

fn mac_at(b: &[u8], at: usize) -> MacAddr {
    let mut m = [0; 6];
    m.copy_from_slice(&b[at..at + 6]);
    MacAddr(m)
}

fn ip_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// Length of a whole Ethernet frame carrying ARP, padded to the 60-byte Ethernet minimum.
pub const FRAME_LEN: usize = 60;

/// Writes an Ethernet frame with an ARP packet into `buf` (at least [`FRAME_LEN`] bytes)
/// and returns its length. Requests go to the broadcast address, replies to the target.
///
/// # Panics
/// If `buf` is shorter than [`FRAME_LEN`] — a programming error, buffers are fixed-size.
pub fn write_frame(
    buf: &mut [u8],
    operation: u16,
    sender: (MacAddr, Ipv4Addr),
    target: (MacAddr, Ipv4Addr),
) -> usize {
    let frame = &mut buf[..FRAME_LEN];
    frame.fill(0);
    let dst = if operation == OP_REQUEST {
        MacAddr::BROADCAST
    } else {
        target.0
    };
    frame[0..6].copy_from_slice(&dst.0);
    frame[6..12].copy_from_slice(&sender.0 .0);
    put_u16(frame, 12, ethernet::ETHERTYPE_ARP);
    let mut arp = ArpPacket {
        buffer: &mut frame[ethernet::HEADER_LEN..ethernet::HEADER_LEN + PACKET_LEN],
    };
    arp.fill(operation, sender, target);
    FRAME_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    // "who-has 192.168.0.10 tell 192.168.0.101" as a client sends it.
    static REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, // htype ptype hlen plen op
        0x02, 0xc1, 0x00, 0x00, 0x00, 0x65, 192, 168, 0, 101, // sender
        0, 0, 0, 0, 0, 0, 192, 168, 0, 10, // target
    ];

    #[test]
    fn parses_request() {
        let arp = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(arp.operation(), OP_REQUEST);
        assert_eq!(arp.sender_ip(), Ipv4Addr::new(192, 168, 0, 101));
        assert_eq!(arp.sender_mac(), MacAddr([2, 0xc1, 0, 0, 0, 0x65]));
        assert_eq!(arp.target_ip(), Ipv4Addr::new(192, 168, 0, 10));
        assert_eq!(arp.target_mac(), MacAddr::ZERO);
    }

    #[test]
    fn rejects_other_protocols_and_short_packets() {
        let mut other = REQUEST;
        other[2] = 0x86; // IPv6 protocol type
        assert_eq!(
            ArpPacket::new_checked(&other[..]).unwrap_err(),
            Malformed::Unsupported
        );
        assert_eq!(
            ArpPacket::new_checked(&REQUEST[..27]).unwrap_err(),
            Malformed::Truncated
        );
    }

    #[test]
    fn writes_a_reply_frame_etherparse_accepts() {
        let mut buf = [0u8; 64];
        let me = (
            MacAddr([2, 0xd1, 0, 0, 0, 1]),
            Ipv4Addr::new(192, 168, 0, 10),
        );
        let peer = (
            MacAddr([2, 0xc1, 0, 0, 0, 0x65]),
            Ipv4Addr::new(192, 168, 0, 101),
        );
        let len = write_frame(&mut buf, OP_REPLY, me, peer);
        assert_eq!(len, FRAME_LEN);
        let parsed = etherparse::SlicedPacket::from_ethernet(&buf[..len]).unwrap();
        match parsed.net {
            Some(etherparse::NetSlice::Arp(arp)) => {
                assert_eq!(arp.operation(), etherparse::ArpOperation::REPLY);
                assert_eq!(arp.sender_protocol_addr(), &[192, 168, 0, 10]);
                assert_eq!(arp.target_hw_addr(), &peer.0 .0);
            }
            other => panic!("not ARP: {other:?}"),
        }
        let eth = crate::ethernet::EthernetFrame::new_checked(&buf[..len]).unwrap();
        assert_eq!(eth.dst_addr(), peer.0);
    }
}
