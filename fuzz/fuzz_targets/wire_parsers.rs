//! Every view of masq-wire over the input — as a whole frame, and its payload at each
//! layer — with every accessor, then the writers on whatever parsed: the NAT rewrite
//! (whose incremental checksum update must agree with a recomputation, and which must
//! change nothing when it refuses), the rewrite of an ICMP quote, the ICMP error writer,
//! the TTL decrement and the checksum helpers.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use masq_wire::arp::{self, ArpPacket};
use masq_wire::checksum::{self, L4Checksum};
use masq_wire::ethernet::{self, EthernetFrame};
use masq_wire::icmp::{self, IcmpPacket};
use masq_wire::ipv4::{Ipv4Packet, PROTO_TCP, PROTO_UDP};
use masq_wire::nat::{self, Endpoint};
use masq_wire::tcp::TcpSegment;
use masq_wire::udp::UdpDatagram;

fuzz_target!(|data: &[u8]| {
    if let Ok(eth) = EthernetFrame::new_checked(data) {
        let _ = (eth.dst_addr().is_multicast(), eth.src_addr().to_string());
        assert_eq!(eth.payload().len(), data.len() - ethernet::HEADER_LEN);
        match eth.ethertype() {
            ethernet::ETHERTYPE_ARP => arp_views(eth.payload()),
            _ => ip_views(eth.payload()),
        }
    }
    arp_views(data);
    ip_views(data);
    l4_views(data);
    checksum_helpers(data);
});

fn arp_views(b: &[u8]) {
    let Ok(arp) = ArpPacket::new_checked(b) else {
        return;
    };
    let sender = (arp.sender_mac(), arp.sender_ip());
    let target = (arp.target_mac(), arp.target_ip());
    let op = arp.operation();
    let mut frame = [0u8; arp::FRAME_LEN];
    assert_eq!(
        arp::write_frame(&mut frame, op, sender, target),
        arp::FRAME_LEN
    );
    let again = ArpPacket::new_checked(&frame[ethernet::HEADER_LEN..]).expect("our own ARP");
    assert_eq!(
        (again.operation(), again.sender_mac(), again.sender_ip()),
        (op, sender.0, sender.1)
    );
    assert_eq!((again.target_mac(), again.target_ip()), target);
}

fn l4_views(b: &[u8]) {
    if let Ok(tcp) = TcpSegment::new_checked(b) {
        let h = tcp.header_len();
        assert!((20..=60).contains(&h) && h <= b.len());
        let _ = (tcp.src_port(), tcp.dst_port(), tcp.seq(), tcp.ack_number());
        let _ = (tcp.flags(), tcp.checksum());
    }
    if let Ok(udp) = UdpDatagram::new_checked(b) {
        assert_eq!(udp.datagram().len(), usize::from(udp.len()));
        assert_eq!(udp.is_empty(), udp.len() == 8);
        let _ = (udp.src_port(), udp.dst_port(), udp.checksum());
    }
    if let Ok(msg) = IcmpPacket::new_checked(b) {
        let _ = (msg.msg_type(), msg.code(), msg.checksum(), msg.is_error());
        let _ = (msg.verify_checksum(), msg.payload().len());
    }
    if let Ok(q) = icmp::quoted_flow(b) {
        let mut copy = b.to_vec();
        let rip = Ipv4Addr::new(192, 168, 100, 7);
        icmp::rewrite_quoted(&mut copy, Endpoint::Source, rip, 8080)
            .expect("a quote quoted_flow read can be rewritten");
        let after = icmp::quoted_flow(&copy).expect("still a quote");
        assert_eq!((after.src, after.sport), (rip, 8080));
        assert_eq!(
            (after.dst, after.dport, after.protocol),
            (q.dst, q.dport, q.protocol)
        );
        assert!(IcmpPacket::new_checked(&copy[..])
            .expect("whole")
            .verify_checksum());
    }
}

fn ip_views(b: &[u8]) {
    let Ok(ip) = Ipv4Packet::new_checked(b) else {
        return;
    };
    let header_len = ip.header_len();
    let total = usize::from(ip.total_len());
    assert!((20..=60).contains(&header_len) && header_len <= total && total <= b.len());
    assert_eq!(ip.header().len(), header_len);
    assert_eq!(ip.payload().len(), total - header_len);
    let _ = (
        ip.ident(),
        ip.dont_frag(),
        ip.is_fragment(),
        ip.frag_offset(),
    );
    let _ = (ip.ttl(), ip.checksum(), ip.verify_checksum());
    let _ = (ip.src_addr(), ip.dst_addr(), ip.protocol());
    l4_views(ip.payload());

    // The ICMP error the director would send about this packet.
    let mut out = [0u8; 128];
    let len = icmp::write_error(&mut out, Ipv4Addr::new(192, 168, 0, 10), &ip, 11, 0, 0);
    assert_eq!(len, 20 + 8 + icmp::quote_len(&ip));
    let sent = Ipv4Packet::new_checked(&out[..len]).expect("our own ICMP error parses");
    assert!(sent.verify_checksum());
    assert_eq!(sent.dst_addr(), ip.src_addr());
    assert!(IcmpPacket::new_checked(sent.payload())
        .expect("whole")
        .verify_checksum());

    // Header setters.
    let mut copy = b.to_vec();
    let mut w = Ipv4Packet::new_checked(&mut copy[..]).expect("parsed above");
    let before_ttl = w.ttl();
    assert_eq!(nat::decrement_ttl(&mut w), before_ttl > 1);
    w.set_src_addr(Ipv4Addr::new(10, 1, 2, 3));
    w.fill_checksum();
    assert!(w.verify_checksum());
    let _ = w.split_mut();

    // The NAT rewrite, each way and with each kind of stored checksum.
    let full_ok_before = l4_checksum_ok(&ip);
    for which in [Endpoint::Source, Endpoint::Destination] {
        for l4 in [L4Checksum::Full, L4Checksum::Partial] {
            let mut copy = b.to_vec();
            let mut w = Ipv4Packet::new_checked(&mut copy[..]).expect("parsed above");
            let to = Ipv4Addr::new(192, 168, 100, 9);
            match nat::rewrite(&mut w, which, to, 8080, l4) {
                Err(_) => assert_eq!(copy, b, "a refused rewrite changed the packet"),
                Ok(()) => {
                    w.fill_checksum();
                    let after = Ipv4Packet::new_checked(&copy[..]).expect("still IPv4");
                    assert!(after.verify_checksum());
                    let addr = match which {
                        Endpoint::Source => after.src_addr(),
                        Endpoint::Destination => after.dst_addr(),
                    };
                    assert_eq!(addr, to);
                    if l4 == L4Checksum::Full && full_ok_before == Some(true) {
                        assert_eq!(
                            l4_checksum_ok(&after),
                            Some(true),
                            "incremental update disagrees with a recomputation"
                        );
                    }
                    if l4 == L4Checksum::Full
                        && after.protocol() == PROTO_UDP
                        && !after.is_fragment()
                        && full_ok_before != Some(false)
                    {
                        assert_eq!(
                            l4_checksum_ok(&after),
                            Some(true),
                            "a whole UDP datagram leaves with a right checksum, filled in if absent"
                        );
                    }
                }
            }
        }
    }
}

/// Whether the TCP or UDP checksum is right; `None` for fragments, other protocols, a
/// truncated UDP header or an absent UDP checksum.
fn l4_checksum_ok(ip: &Ipv4Packet<&[u8]>) -> Option<bool> {
    if ip.is_fragment() {
        return None;
    }
    let data = match ip.protocol() {
        PROTO_TCP => ip.payload(),
        PROTO_UDP => {
            let udp = UdpDatagram::new_checked(ip.payload()).ok()?;
            if udp.checksum() == 0 {
                return None;
            }
            &ip.payload()[..usize::from(udp.len())]
        }
        _ => return None,
    };
    let len = u16::try_from(data.len()).ok()?;
    let sum = checksum::pseudo_header_sum(ip.src_addr(), ip.dst_addr(), ip.protocol(), len);
    Some(checksum::fold(checksum::accumulate(sum, data)) == 0xffff)
}

/// RFC 1624: changing one 16-bit word and updating the checksum incrementally gives the
/// checksum a recomputation gives (0x0000 and 0xffff being the same number).
fn checksum_helpers(b: &[u8]) {
    if b.len() < 8 {
        return;
    }
    let original = checksum::checksum(b);
    let (old16, new16) = (
        u16::from_be_bytes([b[0], b[1]]),
        u16::from_be_bytes([b[2], b[3]]),
    );
    let mut changed = b.to_vec();
    changed[0..2].copy_from_slice(&new16.to_be_bytes());
    let want = checksum::checksum(&changed);
    let got = checksum::update_u16(original, old16, new16);
    assert!(
        same_ones_complement(got, want),
        "update_u16 {got:#06x} != {want:#06x}"
    );

    let old32 = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let new32 = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
    let mut changed = b.to_vec();
    changed[0..4].copy_from_slice(&new32.to_be_bytes());
    let want = checksum::checksum(&changed);
    let got = checksum::update_u32(original, old32, new32);
    assert!(
        same_ones_complement(got, want),
        "update_u32 {got:#06x} != {want:#06x}"
    );

    // A partial checksum is the uncomplemented sum.
    let partial = !original;
    let got = checksum::update_partial_u32(partial, old32, new32);
    assert!(same_ones_complement(got, !want), "update_partial_u32");
}

fn same_ones_complement(a: u16, b: u16) -> bool {
    a == b || (a == 0 && b == 0xffff) || (a == 0xffff && b == 0)
}
