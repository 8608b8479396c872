//! ICMP: errors about a connection translated both ways, and the errors the director sends
//! (port unreachable, time exceeded, fragmentation needed).

use super::*;

#[test]
fn no_destination_sends_port_unreachable() {
    let mut lab = Lab::with_config(config(None));
    lab.ctl()
        .add_service(service(Protocol::Tcp, 80), rr())
        .unwrap();
    let mut syn = from_client(40000, SYN);
    assert_eq!(
        lab.handle(Side::Vip, &mut syn),
        Verdict::Drop(DropReason::NoDestination)
    );
    let out = lab.transmitted();
    assert_eq!(out.len(), 1);
    let p = SlicedPacket::from_ethernet(&out[0].1).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!()
    };
    assert_eq!(ip.header().source_addr(), VIP);
    assert_eq!(ip.header().destination_addr(), CLIENT);
    let Some(TransportSlice::Icmpv4(icmp)) = &p.transport else {
        panic!("not icmp")
    };
    assert!(matches!(
        icmp.icmp_type(),
        etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port
        )
    ));
    assert_eq!(&out[0].1[0..6], &CLIENT_MAC.0);
}

#[test]
fn ttl_one_gets_time_exceeded_and_is_not_forwarded() {
    let mut lab = Lab::seed();
    let mut syn = from_client(40000, SYN);
    syn[14 + 8] = 1;
    // Fix the IP header checksum so only the TTL is at fault.
    let mut ip = masq_wire::ipv4::Ipv4Packet::new_checked(&mut syn[14..]).unwrap();
    ip.fill_checksum();
    assert_eq!(
        lab.handle(Side::Vip, &mut syn),
        Verdict::Drop(DropReason::TtlExpired)
    );
    let out = lab.transmitted();
    assert_eq!(out.len(), 1);
    let p = SlicedPacket::from_ethernet(&out[0].1).unwrap();
    let Some(TransportSlice::Icmpv4(icmp)) = &p.transport else {
        panic!("not icmp")
    };
    assert!(matches!(
        icmp.icmp_type(),
        etherparse::Icmpv4Type::TimeExceeded(_)
    ));
}

/// An ICMP error from `src` to `dst` quoting `quoted` (an IP packet as it was sent).
pub(super) fn icmp_error_frame(
    macs: (MacAddr, MacAddr),
    src: Ipv4Addr,
    quoted: &[u8],
    code: u8,
) -> Vec<u8> {
    let offending = masq_wire::ipv4::Ipv4Packet::new_checked(quoted).unwrap();
    let mut ip = vec![0u8; 256];
    let len = masq_wire::icmp::write_error(&mut ip, src, &offending, 3, code, 1400);
    let mut frame = Vec::with_capacity(14 + len);
    frame.extend_from_slice(&macs.1 .0);
    frame.extend_from_slice(&macs.0 .0);
    frame.extend_from_slice(&0x0800u16.to_be_bytes());
    frame.extend_from_slice(&ip[..len]);
    frame
}

#[test]
fn icmp_errors_about_a_connection_are_translated_both_ways() {
    let mut lab = Lab::seed();
    let mut syn = from_client(40000, SYN);
    lab.handle(Side::Vip, &mut syn);
    // Path MTU from the real server's side: a router near RS2 (here RS2 itself) says the
    // client's packet to RIP:80 was too big. The client must hear it about VIP:80.
    let as_forwarded = syn[14..].to_vec();
    let mut err = icmp_error_frame((RS2_MAC, DIP_MAC), RS2, &as_forwarded, 4);
    assert_eq!(lab.handle(Side::Dip, &mut err), Verdict::Forward(Side::Vip));
    let p = SlicedPacket::from_ethernet(&err).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!()
    };
    assert_eq!(ip.header().source_addr(), VIP);
    assert_eq!(ip.header().destination_addr(), CLIENT);
    let icmp_bytes = &err[34..];
    let q = masq_wire::icmp::quoted_flow(icmp_bytes).unwrap();
    assert_eq!((q.src, q.sport, q.dst, q.dport), (CLIENT, 40000, VIP, 80));
    assert!(masq_wire::icmp::IcmpPacket::new_checked(icmp_bytes)
        .unwrap()
        .verify_checksum());
    assert_eq!(&err[0..6], &CLIENT_MAC.0);

    // From the client's side, about the server's reply VIP:80 -> client: goes to RS2.
    let mut reply = from_rs(RS2, RS2_MAC, 40000, SYN | ACK);
    lab.handle(Side::Dip, &mut reply);
    let mut err = icmp_error_frame((CLIENT_MAC, VIP_MAC), CLIENT, &reply[14..], 3);
    // The client addresses its error to the VIP.
    assert_eq!(lab.handle(Side::Vip, &mut err), Verdict::Forward(Side::Dip));
    let q = masq_wire::icmp::quoted_flow(&err[34..]).unwrap();
    assert_eq!((q.src, q.sport, q.dst, q.dport), (RS2, 80, CLIENT, 40000));
    assert_eq!(seen_ip_dst(&err), RS2);

    // Errors about unknown flows, and echo, are the host's; a bad checksum is dropped.
    let stray = from_client(1, SYN);
    let mut err = icmp_error_frame((RS1_MAC, DIP_MAC), RS1, &stray[14..], 3);
    assert_eq!(lab.handle(Side::Dip, &mut err), Verdict::NotOurs);
    let mut bad = icmp_error_frame((RS2_MAC, DIP_MAC), RS2, &as_forwarded, 4);
    bad[34 + 2] ^= 0xff;
    assert_eq!(
        lab.handle(Side::Dip, &mut bad),
        Verdict::Drop(DropReason::BadIcmpChecksum)
    );
}

fn seen_ip_dst(frame: &[u8]) -> Ipv4Addr {
    masq_wire::ipv4::Ipv4Packet::new_checked(&frame[14..])
        .unwrap()
        .dst_addr()
}

#[test]
fn a_packet_too_big_for_the_real_servers_link_gets_fragmentation_needed() {
    let mut lab = Lab::seed();
    lab.director.set_mtu(Side::Dip, 1400);
    let mut syn = from_client(40000, SYN);
    lab.handle(Side::Vip, &mut syn);
    // 1460 bytes of data in a 1500-byte packet with DF, as a 1500-MTU client sends it.
    let mut big = tcp_frame(
        (CLIENT_MAC, VIP_MAC),
        (CLIENT, 40000),
        (VIP, 80),
        ACK,
        &[0x61; 1460],
    );
    big[14 + 6] |= 0x40;
    masq_wire::ipv4::Ipv4Packet::new_checked(&mut big[14..])
        .unwrap()
        .fill_checksum();
    let as_sent = big.clone();
    assert_eq!(
        lab.handle(Side::Vip, &mut big),
        Verdict::Drop(DropReason::FragNeeded)
    );
    let out = lab.transmitted();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, Side::Vip);
    let icmp = &out[0].1[34..];
    let packet = masq_wire::icmp::IcmpPacket::new_checked(icmp).unwrap();
    assert_eq!((packet.msg_type(), packet.code()), (3, 4));
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1400, "next-hop MTU");
    assert!(packet.verify_checksum());
    // It quotes the packet as the client sent it, so the client's TCP recognises it.
    assert_eq!(&icmp[8..36], &as_sent[14..42]);
    assert_eq!(&out[0].1[0..6], &CLIENT_MAC.0);
    // A GSO super-frame is cut to size on transmit: it passes.
    let mut gso = as_sent.clone();
    let meta = FrameMeta {
        gso: true,
        ..FrameMeta::default()
    };
    assert_eq!(
        lab.worker.handle_frame(lab.now, Side::Vip, &mut gso, meta),
        Verdict::Forward(Side::Dip)
    );
    // Without DF the packet is dropped and counted (masq does not fragment).
    let mut no_df = as_sent.clone();
    no_df[14 + 6] &= !0x40;
    masq_wire::ipv4::Ipv4Packet::new_checked(&mut no_df[14..])
        .unwrap()
        .fill_checksum();
    assert_eq!(
        lab.handle(Side::Vip, &mut no_df),
        Verdict::Drop(DropReason::TooBig)
    );
}
