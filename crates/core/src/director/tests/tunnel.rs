//! Tunnelling: the client's packet reaches the real server inside an IPIP header from the
//! DIP, one hop older and otherwise unchanged; the answer from the VIP comes back as
//! direct routing's does; the tunnel's overhead is taken off the path MTU; errors about
//! tunnelled packets reach the client about its own packet.

use super::*;
use crate::control::FwdMethod;
use etherparse::{Ipv4Header, TcpHeader};
use masq_wire::ipv4::Ipv4Packet;
use masq_wire::tcp::flags::PSH;
use masq_wire::tunnel::{IPIP_OVERHEAD, PROTO_IPIP};

/// `-i -w 1`.
fn tunnel() -> DestParams {
    DestParams {
        fwd: FwdMethod::Tunnel,
        weight: 1,
        ..DestParams::default()
    }
}

/// `-A -t VIP:80 -s rr` (or `-u`) with RS1 and RS2 tunnelled, neighbours learnt.
fn tunnel_lab(protocol: Protocol, port: u16) -> Lab {
    let mut lab = Lab::with_config(config(None));
    let svc = service(protocol, port);
    lab.ctl().add_service(svc, rr()).unwrap();
    for addr in [RS1, RS2] {
        lab.ctl().add_dest(svc, rs(addr, port), tunnel()).unwrap();
    }
    lab.learn_all();
    lab
}

/// The one frame the director sent, with its side.
fn only_sent(lab: &mut Lab) -> (Side, Vec<u8>) {
    let mut out = lab.transmitted();
    assert_eq!(out.len(), 1, "one frame sent: {out:?}");
    out.remove(0)
}

/// A client's packet with TTL and IP checksum blanked, as tunnelling must leave it.
fn untouched(ip: &[u8]) -> Vec<u8> {
    let mut ip = ip.to_vec();
    ip[8] = 0;
    ip[10..12].fill(0);
    ip
}

#[test]
fn the_clients_packet_goes_inside_an_ipip_header_from_the_dip() {
    let mut lab = tunnel_lab(Protocol::Tcp, 80);
    let mut syn = from_client(40000, SYN);
    let sent = syn[14..].to_vec();
    assert_eq!(
        lab.handle(Side::Vip, &mut syn),
        Verdict::Encapsulated(Side::Dip)
    );
    let (side, out) = only_sent(&mut lab);
    assert_eq!(side, Side::Dip);
    assert_eq!((&out[0..6], &out[6..12]), (&RS2_MAC.0[..], &DIP_MAC.0[..]));
    let outer = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert_eq!(
        (outer.src_addr(), outer.dst_addr(), outer.protocol()),
        (DIP, RS2, PROTO_IPIP)
    );
    assert!(outer.verify_checksum());
    assert_eq!(usize::from(outer.total_len()), sent.len() + IPIP_OVERHEAD);
    let inner = &out[14 + IPIP_OVERHEAD..];
    assert_eq!(untouched(inner), untouched(&sent));
    let inner_ip = Ipv4Packet::new_checked(inner).unwrap();
    assert_eq!((inner_ip.ttl(), outer.ttl()), (63, 63));
    assert!(inner_ip.verify_checksum());
    // The real server answers as the VIP through its gateway: forwarded unchanged.
    let mut syn_ack = tcp_frame(
        (RS2_MAC, DIP_MAC),
        (VIP, 80),
        (CLIENT, 40000),
        SYN | ACK,
        b"",
    );
    assert_eq!(
        lab.handle(Side::Dip, &mut syn_ack),
        Verdict::Forward(Side::Vip)
    );
    let seen_ack = seen(&syn_ack);
    assert_eq!((seen_ack.src, seen_ack.dst), ((VIP, 80), (CLIENT, 40000)));
    let stats = lab.ctl().services()[0].stats;
    assert_eq!((stats.conns, stats.inpkts, stats.outpkts), (1, 1, 1));
    assert_eq!(lab.director.counters().forwarded_in, 1);
}

#[test]
fn rr_alternates_and_udp_goes_both_ways() {
    let mut lab = tunnel_lab(Protocol::Udp, 53);
    let mut dsts = Vec::new();
    for port in 5000..5004 {
        let mut q = udp_frame((CLIENT_MAC, VIP_MAC), (CLIENT, port), (VIP, 53), b"query");
        assert_eq!(
            lab.handle(Side::Vip, &mut q),
            Verdict::Encapsulated(Side::Dip)
        );
        let (_, out) = only_sent(&mut lab);
        dsts.push(Ipv4Packet::new_checked(&out[14..]).unwrap().dst_addr());
    }
    assert_eq!(dsts, [RS2, RS1, RS2, RS1]);
    let mut answer = udp_frame((RS1_MAC, DIP_MAC), (VIP, 53), (CLIENT, 5001), b"answer");
    assert_eq!(
        lab.handle(Side::Dip, &mut answer),
        Verdict::Forward(Side::Vip)
    );
}

#[test]
fn the_tunnel_overhead_comes_off_the_path_mtu() {
    let mut lab = tunnel_lab(Protocol::Tcp, 80);
    lab.director.set_mtu(Side::Dip, 1500);
    let mut syn = from_client(40000, SYN);
    lab.handle(Side::Vip, &mut syn);
    lab.transmitted();
    // 1500 bytes with DF: fits the link, not the link with the outer header.
    let mut big = tcp_frame(
        (CLIENT_MAC, VIP_MAC),
        (CLIENT, 40000),
        (VIP, 80),
        ACK,
        &[7; 1460],
    );
    big[14 + 6] |= 0x40;
    refill_ip_checksum(&mut big);
    assert_eq!(
        lab.handle(Side::Vip, &mut big),
        Verdict::Drop(DropReason::FragNeeded)
    );
    let (side, icmp) = only_sent(&mut lab);
    assert_eq!(side, Side::Vip);
    let ip = Ipv4Packet::new_checked(&icmp[14..]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), (VIP, CLIENT));
    let msg = ip.payload();
    assert_eq!((msg[0], msg[1]), (3, 4));
    assert_eq!(u16::from_be_bytes([msg[6], msg[7]]), 1480);
    // One that fits with the overhead goes.
    let mut fits = tcp_frame(
        (CLIENT_MAC, VIP_MAC),
        (CLIENT, 40000),
        (VIP, 80),
        ACK,
        &[7; 1440],
    );
    fits[14 + 6] |= 0x40;
    refill_ip_checksum(&mut fits);
    assert_eq!(
        lab.handle(Side::Vip, &mut fits),
        Verdict::Encapsulated(Side::Dip)
    );
}

#[test]
fn an_error_quoting_the_outer_header_reaches_the_client_about_its_packet() {
    let mut lab = tunnel_lab(Protocol::Tcp, 80);
    let mut syn = from_client(40000, SYN);
    lab.handle(Side::Vip, &mut syn);
    let (_, tunnelled) = only_sent(&mut lab);
    // A router on the way to RS2 says the tunnelled packet was too big for 1400, quoting
    // all of it as Linux does.
    let quoted = &tunnelled[14..];
    let mut msg = vec![3, 4, 0, 0, 0, 0, 0x05, 0x78];
    msg.extend_from_slice(quoted);
    masq_wire::icmp::fill_checksum(&mut msg);
    let mut err = vec![0u8; 14 + 20];
    err[0..6].copy_from_slice(&DIP_MAC.0);
    err[6..12].copy_from_slice(&RS2_MAC.0);
    err[12..14].copy_from_slice(&[0x08, 0x00]);
    masq_wire::ipv4::write_header(&mut err[14..], RS2, DIP, 1, msg.len() as u16, 64);
    err.extend_from_slice(&msg);
    assert_eq!(
        lab.handle(Side::Dip, &mut err),
        Verdict::Drop(DropReason::TunnelIcmp)
    );
    let (side, out) = only_sent(&mut lab);
    assert_eq!((side, &out[0..6]), (Side::Vip, &CLIENT_MAC.0[..]));
    let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), (VIP, CLIENT));
    let icmp = ip.payload();
    assert_eq!((icmp[0], icmp[1]), (3, 4));
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1400 - 20);
    // It quotes the client's packet as the client sent it (but the TTL): to the VIP.
    let inner = Ipv4Packet::new_unchecked(&icmp[8..]);
    assert_eq!((inner.src_addr(), inner.dst_addr()), (CLIENT, VIP));
    assert_eq!(masq_wire::checksum::checksum(icmp), 0);
}

#[test]
fn an_unresolved_real_server_gets_the_encapsulated_frame_once_it_answers_arp() {
    let mut lab = Lab::with_config(config(None));
    let svc = service(Protocol::Tcp, 80);
    lab.ctl().add_service(svc, rr()).unwrap();
    lab.ctl().add_dest(svc, rs(RS1, 80), tunnel()).unwrap();
    let mut syn = from_client(40000, SYN);
    assert_eq!(lab.handle(Side::Vip, &mut syn), Verdict::Queued);
    let probes = lab.transmitted();
    assert!(
        probes.iter().all(|(_, f)| f[12..14] == [0x08, 0x06]),
        "ARP only"
    );
    let mut reply = arp_frame(masq_wire::arp::OP_REPLY, (RS1_MAC, RS1), (DIP_MAC, DIP));
    lab.handle(Side::Dip, &mut reply);
    let (side, out) = only_sent(&mut lab);
    assert_eq!((side, &out[0..6]), (Side::Dip, &RS1_MAC.0[..]));
    let outer = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert_eq!((outer.dst_addr(), outer.protocol()), (RS1, PROTO_IPIP));
}

#[test]
fn a_batched_sender_takes_every_encapsulated_frame_at_once_in_order() {
    let mut lab = tunnel_lab(Protocol::Tcp, 80);
    // Several rounds: the buffer is reused from its start once every frame was taken.
    for round in 0..3u16 {
        let ports: Vec<u16> = (0..20).map(|i| 41000 + round * 100 + i).collect();
        for &port in &ports {
            assert_eq!(
                lab.handle(Side::Vip, &mut from_client(port, SYN)),
                Verdict::Encapsulated(Side::Dip)
            );
        }
        let taken: Vec<(Side, u16)> = lab
            .worker
            .take_encapsulated()
            .iter()
            .map(|tx| {
                let inner = &tx.frame[14 + IPIP_OVERHEAD..];
                (tx.side, u16::from_be_bytes([inner[20], inner[21]]))
            })
            .collect();
        let expected: Vec<(Side, u16)> = ports.iter().map(|&p| (Side::Dip, p)).collect();
        assert_eq!(taken, expected);
        assert!(lab.transmitted().is_empty(), "nothing is sent twice");
    }
}

/// A TCP super-frame from the client of `payload_len` bytes (byte i is `i as u8`), DF
/// set, with PSH, as GRO hands one over: its TCP checksum only the pseudo-header's.
fn super_frame(payload_len: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..payload_len).map(|i| i as u8).collect();
    let mut frame = tcp_frame(
        (CLIENT_MAC, VIP_MAC),
        (CLIENT, 40000),
        (VIP, 80),
        ACK,
        &payload,
    );
    frame[14 + 6] |= 0x40;
    frame[14 + 20 + 13] |= PSH;
    frame[14 + 20 + 16..14 + 20 + 18].copy_from_slice(&[0x12, 0x34]);
    refill_ip_checksum(&mut frame);
    frame
}

/// The metadata of a TCP GSO frame cut at `mss`, its checksum left partial.
fn tcp_gso(mss: u16) -> FrameMeta {
    FrameMeta {
        partial_checksum: true,
        gso: true,
        tcp_gso_size: mss,
        ..FrameMeta::default()
    }
}

/// A connection to RS2 on port 40000 whose SYN went, the lab's clock and queues clear.
fn connected() -> Lab {
    let mut lab = tunnel_lab(Protocol::Tcp, 80);
    lab.handle(Side::Vip, &mut from_client(40000, SYN));
    lab.transmitted();
    lab
}

#[test]
fn a_tcp_super_frame_is_cut_into_segments_each_in_its_own_tunnel() {
    let mut lab = connected();
    let mut frame = super_frame(3500);
    assert_eq!(
        lab.worker
            .handle_frame(lab.now, Side::Vip, &mut frame, tcp_gso(1000)),
        Verdict::Encapsulated(Side::Dip)
    );
    let out = lab
        .worker
        .take_encapsulated()
        .iter()
        .map(|tx| tx.frame.to_vec())
        .collect::<Vec<_>>();
    assert_eq!(out.len(), 4, "3500 bytes at an MSS of 1000");
    let mut payload = Vec::new();
    for (i, frame) in out.iter().enumerate() {
        assert_eq!(
            (&frame[0..6], &frame[6..12]),
            (&RS2_MAC.0[..], &DIP_MAC.0[..])
        );
        let outer = Ipv4Packet::new_checked(&frame[14..]).unwrap();
        assert_eq!((outer.dst_addr(), outer.protocol()), (RS2, PROTO_IPIP));
        assert!(outer.verify_checksum());
        assert_eq!(usize::from(outer.total_len()), frame.len() - 14);
        let (ip, rest) = Ipv4Header::from_slice(&frame[14 + IPIP_OVERHEAD..]).unwrap();
        assert_eq!(ip.header_checksum, ip.calc_header_checksum());
        assert_eq!(ip.time_to_live, 63);
        let (tcp, data) = TcpHeader::from_slice(rest).unwrap();
        let want = tcp
            .calc_checksum_ipv4_raw(ip.source, ip.destination, data)
            .unwrap();
        assert_eq!(tcp.checksum, want, "segment {i}: a full TCP checksum");
        assert_eq!(tcp.sequence_number, 1000 + 1000 * i as u32);
        assert_eq!(tcp.psh, i == 3);
        assert_eq!(data.len(), if i < 3 { 1000 } else { 500 });
        payload.extend_from_slice(data);
    }
    assert_eq!(payload, (0..3500).map(|i| i as u8).collect::<Vec<_>>());
    assert_eq!(
        lab.director.counters().forwarded_in,
        2,
        "the SYN and the super-frame"
    );
}

#[test]
fn a_super_frame_whose_segments_do_not_fit_the_tunnel_gets_fragmentation_needed() {
    let mut lab = connected();
    lab.director.set_mtu(Side::Dip, 1500);
    // 1460-byte segments are 1500-byte packets: 1520 inside the outer header.
    let mut frame = super_frame(8000);
    assert_eq!(
        lab.worker
            .handle_frame(lab.now, Side::Vip, &mut frame, tcp_gso(1460)),
        Verdict::Drop(DropReason::FragNeeded)
    );
    let (side, icmp) = only_sent(&mut lab);
    assert_eq!(side, Side::Vip);
    let msg = Ipv4Packet::new_checked(&icmp[14..])
        .unwrap()
        .payload()
        .to_vec();
    assert_eq!((msg[0], msg[1]), (3, 4));
    assert_eq!(u16::from_be_bytes([msg[6], msg[7]]), 1480);
    // The client's next super-frame is cut to the path MTU it learnt.
    let mut frame = super_frame(8000);
    assert_eq!(
        lab.worker
            .handle_frame(lab.now, Side::Vip, &mut frame, tcp_gso(1440)),
        Verdict::Encapsulated(Side::Dip)
    );
    let lens: Vec<usize> = lab
        .worker
        .take_encapsulated()
        .iter()
        .map(|tx| tx.frame.len())
        .collect();
    assert_eq!(lens.len(), 6);
    assert!(lens.iter().all(|&len| len <= 14 + 1500), "{lens:?}");
}

#[test]
fn a_super_frame_that_cannot_be_cut_is_dropped_and_counted() {
    let mut lab = tunnel_lab(Protocol::Udp, 53);
    let mut frame = udp_frame((CLIENT_MAC, VIP_MAC), (CLIENT, 5000), (VIP, 53), &[1; 3000]);
    let udp_gso = FrameMeta {
        gso: true,
        ..FrameMeta::default()
    };
    assert_eq!(
        lab.worker
            .handle_frame(lab.now, Side::Vip, &mut frame, udp_gso),
        Verdict::Drop(DropReason::TunnelGso)
    );
    assert!(lab.transmitted().is_empty());
    assert_eq!(lab.director.counters().drops(DropReason::TunnelGso), 1);
}

#[test]
fn a_batch_of_super_frames_fits_and_the_segments_of_one_go_all_or_none() {
    let mut lab = connected();
    // 64 KiB super-frames at the MSS of a 1480-byte path: 46 segments each.
    let verdicts: Vec<Verdict> = (0..40)
        .map(|_| {
            let mut frame = super_frame(65535 - 40);
            lab.worker
                .handle_frame(lab.now, Side::Vip, &mut frame, tcp_gso(1428))
        })
        .collect();
    let sent = verdicts
        .iter()
        .take_while(|v| **v == Verdict::Encapsulated(Side::Dip))
        .count();
    assert!(
        sent >= 32,
        "a receive batch of super-frames fits: {verdicts:?}"
    );
    assert!(verdicts[sent..]
        .iter()
        .all(|v| *v == Verdict::Drop(DropReason::OutboxFull)));
    let taken = lab.worker.take_encapsulated().iter().count();
    assert_eq!(taken, sent * 46, "whole super-frames only");
    let dropped = lab.director.counters().drops(DropReason::OutboxFull);
    assert_eq!(dropped, (40 - sent) as u64);
}
