//! What the director sent, as captured on each side: every frame must be well formed,
//! and those of the corpus are told apart by their markers.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use masq::wire::icmp;
use masq::wire::ipv4::Ipv4Packet;

use crate::corpus::{Defect, PassThrough, DIP_BASE, EPHEMERAL, PER_KIND, VIP_BASE};
use crate::results::KindResult;

/// Checks every frame the director sent, in the capture file of each side: the failures,
/// the frames of each (side, kind) it sent, and how many normal frames it checked.
pub fn check_captures(
    captures: [(&'static str, &Path); 2],
    results: &[KindResult],
    failures: &mut Vec<String>,
) -> (BTreeMap<(&'static str, &'static str), usize>, usize) {
    let kind_of = |marker: u32| {
        results
            .iter()
            .find(|r| (r.base..r.base + PER_KIND as u32).contains(&marker))
    };
    let defect_of = |marker: u32| match kind_of(marker)?.expect {
        PassThrough(defect) => Some(defect),
        _ => None,
    };
    let mut seen = BTreeMap::new();
    let mut normal_frames = 0;
    for (side, pcap) in captures {
        for frame in read_pcap(pcap) {
            match classify(&frame, &defect_of) {
                Sent::Malformed(why) => failures.push(format!(
                    "{side} side: the director sent a malformed frame ({why}): {frame:02x?}"
                )),
                Sent::Unexpected(what) => failures.push(format!(
                    "{side} side: the director sent a frame of nobody's flow: {what}"
                )),
                Sent::Marked(marker) => match kind_of(marker) {
                    Some(r) => *seen.entry((side, r.kind)).or_default() += 1,
                    None => failures.push(format!("{side} side: unknown marker {marker}")),
                },
                Sent::Normal => normal_frames += 1,
                Sent::Arp | Sent::Other => {}
            }
        }
    }
    (seen, normal_frames)
}

/// The frames of a pcap file (tcpdump -w), checked not cut by the snap length.
fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert!(data.len() >= 24, "{} is not a pcap file", path.display());
    let magic = u32::from_le_bytes(data[0..4].try_into().expect("4 bytes"));
    let le = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        other => panic!("{}: pcap magic {other:#x}", path.display()),
    };
    let u32_at = |at: usize| {
        let b: [u8; 4] = data[at..at + 4].try_into().expect("4 bytes");
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    assert_eq!(u32_at(20), 1, "link type Ethernet");
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let (incl, orig) = (u32_at(at + 8) as usize, u32_at(at + 12) as usize);
        assert_eq!(incl, orig, "a frame cut by the capture's snap length");
        frames.push(data[at + 16..at + 16 + incl].to_vec());
        at += 16 + incl;
    }
    frames
}

/// The one's-complement sum of `data` (RFC 1071), folded.
fn ones_sum(mut sum: u32, data: &[u8]) -> u16 {
    for pair in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Whether the TCP/UDP checksum of a whole (unfragmented) IPv4 packet is right.
fn l4_checksum_right(ip: &Ipv4Packet<&[u8]>) -> bool {
    let l4 = ip.payload();
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&ip.src_addr().octets());
    pseudo.extend_from_slice(&ip.dst_addr().octets());
    pseudo.extend_from_slice(&[0, ip.protocol()]);
    pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    ones_sum(u32::from(ones_sum(0, &pseudo)), l4) == 0xffff
}

/// What a frame the director sent is, or why it is not well formed.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Sent {
    Arp,
    /// The normal client's connections, either way.
    Normal,
    /// A frame carrying a corpus marker (client port, IP identification or ICMP
    /// rest-of-header): which kind it belongs to, by marker.
    Marked(u32),
    /// Well formed and nobody's marker: ICMP of the director's kernel, say.
    Other,
    /// A TCP or UDP flow that is neither the normal client's nor the corpus's.
    Unexpected(String),
    Malformed(String),
}

/// Checks one frame the director sent: parses as Ethernet/IPv4 (or ARP) without
/// truncation, IPv4 header checksum right, TCP/UDP/ICMP checksum right unless its kind is
/// a pass-through one with a bad checksum (which must then still be wrong).
fn classify(frame: &[u8], defect_of: &dyn Fn(u32) -> Option<Defect>) -> Sent {
    if let Err(e) = etherparse::SlicedPacket::from_ethernet(frame) {
        return Sent::Malformed(format!("etherparse refuses it: {e}"));
    }
    match u16::from_be_bytes([frame[12], frame[13]]) {
        0x0806 => return Sent::Arp,
        0x0800 => {}
        other => return Sent::Malformed(format!("EtherType {other:#06x}")),
    }
    let Ok(ip) = Ipv4Packet::new_checked(&frame[14..]) else {
        return Sent::Malformed("IPv4 header does not parse".into());
    };
    if !ip.verify_checksum() {
        return Sent::Malformed("IPv4 header checksum wrong".into());
    }
    if ip.is_fragment() {
        return Sent::Malformed("a fragment (none is expected)".into());
    }
    let l4 = ip.payload();
    let client = Ipv4Addr::new(192, 168, 0, 101);
    let (marker, l4_right, flags) = match ip.protocol() {
        6 | 17 if l4.len() >= 8 => {
            let port_at = if ip.src_addr() == client { 0 } else { 2 };
            let client_port = u16::from_be_bytes([l4[port_at], l4[port_at + 1]]);
            let right = l4_checksum_right(&ip);
            if (EPHEMERAL.0..=EPHEMERAL.1).contains(&client_port) {
                return if right {
                    Sent::Normal
                } else {
                    Sent::Malformed("the normal client's traffic with a wrong L4 checksum".into())
                };
            }
            let flags = if ip.protocol() == 6 {
                l4.get(13).copied()
            } else {
                None
            };
            (u32::from(client_port), right, flags)
        }
        6 | 17 => return Sent::Malformed("truncated L4 header".into()),
        1 => {
            if ones_sum(0, l4) != 0xffff {
                return Sent::Malformed("ICMP checksum wrong".into());
            }
            match (l4[0], l4[1], icmp::quoted_flow(l4)) {
                // Time exceeded in transit, generated by masqd: the offending packet's
                // client port, or its IP identification when the client port is not a
                // marker (a real server's segment of the held connection).
                (11, 0, Ok(q)) => {
                    let ident = u16::from_be_bytes([l4[12], l4[13]]);
                    let port = if q.src == client { q.sport } else { ident };
                    (u32::from(port), true, None)
                }
                // Fragmentation needed, generated by masqd: the next-hop MTU is the DIP
                // side's, the offending packet's client port the marker.
                (3, 4, Ok(q)) => {
                    let mtu = u16::from_be_bytes([l4[6], l4[7]]);
                    if mtu != 1500 {
                        return Sent::Malformed(format!("fragmentation needed, MTU {mtu}"));
                    }
                    (u32::from(q.sport), true, None)
                }
                // Forwarded errors keep the sender's rest-of-header: the marker.
                (3, _, Ok(_)) => (u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]), true, None),
                (_, _, Ok(_)) => return Sent::Other,
                (_, _, Err(e)) => return Sent::Malformed(format!("ICMP quote: {e}")),
            }
        }
        _ => return Sent::Other,
    };
    if !(VIP_BASE..DIP_BASE + 10_000).contains(&marker) {
        return if ip.protocol() == 1 {
            Sent::Other
        } else {
            Sent::Unexpected(format!(
                "{} {} -> {}, client port {marker}",
                ip.protocol(),
                ip.src_addr(),
                ip.dst_addr()
            ))
        };
    }
    let syn_fin = flags.is_some_and(|f| f & 0x03 == 0x03);
    match (defect_of(marker), l4_right) {
        (None, false) => Sent::Malformed(format!("L4 checksum wrong (marker {marker})")),
        (Some(Defect::BadL4Checksum), true) => Sent::Malformed(format!(
            "a bad checksum was made right on the way (marker {marker})"
        )),
        (_, _) if syn_fin => Sent::Malformed(format!("SYN+FIN (marker {marker})")),
        _ => Sent::Marked(marker),
    }
}
