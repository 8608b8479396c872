//! The NAT path: the seed lab's four stages, scheduling, the TCP life cycle, port mapping,
//! UDP, partial checksums and fragments.

use super::*;

#[test]
fn the_four_stages_of_one_connection() {
    let mut lab = Lab::seed();
    // Stage 1 → 2: client → VIP becomes client → RIP. rr picks the newest server first.
    let mut syn = from_client(40000, SYN);
    assert_eq!(lab.handle(Side::Vip, &mut syn), Verdict::Forward(Side::Dip));
    assert_eq!(
        seen(&syn),
        Seen {
            dst_mac: RS2_MAC,
            src_mac: DIP_MAC,
            src: (CLIENT, 40000),
            dst: (RS2, 80),
            ttl: 63,
            checksums_ok: true,
        }
    );
    // Stage 3 → 4: RIP → client becomes VIP → client.
    let mut syn_ack = from_rs(RS2, RS2_MAC, 40000, SYN | ACK);
    assert_eq!(
        lab.handle(Side::Dip, &mut syn_ack),
        Verdict::Forward(Side::Vip)
    );
    assert_eq!(
        seen(&syn_ack),
        Seen {
            dst_mac: CLIENT_MAC,
            src_mac: VIP_MAC,
            src: (VIP, 80),
            dst: (CLIENT, 40000),
            ttl: 63,
            checksums_ok: true,
        }
    );
    let stats = lab.ctl().services()[0].stats;
    assert_eq!((stats.conns, stats.inpkts, stats.outpkts), (1, 1, 1));
    assert_eq!(stats.inbytes, 40);
}

#[test]
fn rr_alternates_newest_first_like_the_kernel() {
    // crates/ctl/tests/ipvsadm/data/a.txt: PICKS a-rr: 9 7 9 7 9 7
    let mut lab = Lab::seed();
    let picks: Vec<Ipv4Addr> = (0..6)
        .map(|i| {
            let mut syn = from_client(20001 + i, SYN);
            assert_eq!(lab.handle(Side::Vip, &mut syn), Verdict::Forward(Side::Dip));
            seen(&syn).dst.0
        })
        .collect();
    assert_eq!(picks, vec![RS2, RS1, RS2, RS1, RS2, RS1]);
}

#[test]
fn tcp_life_cycle_moves_the_counters_and_expires() {
    let mut lab = Lab::seed();
    let steps: [(Side, u8, &str, (u32, u32)); 6] = [
        (Side::Vip, SYN, "SYN_RECV", (1, 0)),
        (Side::Dip, SYN | ACK, "SYN_RECV", (1, 0)),
        (Side::Vip, ACK, "ESTABLISHED", (1, 0)),
        (Side::Vip, FIN | ACK, "CLOSE_WAIT", (0, 1)),
        (Side::Dip, FIN | ACK, "TIME_WAIT", (0, 1)),
        (Side::Vip, ACK, "TIME_WAIT", (0, 1)),
    ];
    for (side, fl, state, counts) in steps {
        let mut f = match side {
            Side::Vip => from_client(40000, fl),
            Side::Dip => from_rs(RS2, RS2_MAC, 40000, fl),
        };
        assert!(matches!(lab.handle(side, &mut f), Verdict::Forward(_)));
        let conns = lab.ctl().connections();
        assert_eq!(conns.len(), 1);
        assert_eq!(conns[0].state, state);
        assert_eq!(lab.conns_of(RS2), counts, "after {state}");
    }
    assert_eq!(lab.ctl().connections()[0].expires_secs, 120);
    lab.advance(119);
    assert_eq!(lab.housekeeping().0, 0);
    lab.advance(1);
    assert_eq!(lab.housekeeping().0, 1);
    assert_eq!(lab.conns_of(RS2), (0, 0));
    assert!(lab.ctl().connections().is_empty());
}

#[test]
fn a_syn_on_a_time_wait_entry_is_scheduled_afresh() {
    let mut lab = Lab::seed();
    for (side, fl) in [
        (Side::Vip, SYN),
        (Side::Vip, ACK),
        (Side::Vip, FIN | ACK),
        (Side::Dip, FIN | ACK),
    ] {
        let mut f = match side {
            Side::Vip => from_client(40000, fl),
            Side::Dip => from_rs(RS2, RS2_MAC, 40000, fl),
        };
        lab.handle(side, &mut f);
    }
    let mut again = from_client(40000, SYN);
    assert_eq!(
        lab.handle(Side::Vip, &mut again),
        Verdict::Forward(Side::Dip)
    );
    assert_eq!(seen(&again).dst.0, RS1, "rescheduled: rr moved on to RS1");
    assert_eq!(lab.conns_of(RS2), (0, 0));
    assert_eq!(lab.conns_of(RS1), (1, 0));
}

#[test]
fn wrr_after_the_seed_edit_picks_9_7_7_7() {
    // crates/ctl/tests/ipvsadm/data/a.txt: -E -s wrr, -e .7 -w 3 -> PICKS a-wrr: 9 7 7 7 9 7 7 7
    let mut lab = Lab::seed();
    let svc = service(Protocol::Tcp, 80);
    lab.ctl()
        .edit_service(
            svc,
            ServiceParams {
                scheduler: "wrr".into(),
                ..ServiceParams::default()
            },
        )
        .unwrap();
    lab.ctl().edit_dest(svc, rs(RS1, 80), masq(3)).unwrap();
    let picks: Vec<u8> = (0..8)
        .map(|i| {
            let mut syn = from_client(20007 + i, SYN);
            lab.handle(Side::Vip, &mut syn);
            seen(&syn).dst.0.octets()[3]
        })
        .collect();
    assert_eq!(picks, vec![9, 7, 7, 7, 9, 7, 7, 7]);
}

#[test]
fn port_mapping_rewrites_both_ways() {
    let mut lab = one_server(None, service(Protocol::Tcp, 8021), 80, true);
    let mut syn = tcp_frame((CLIENT_MAC, VIP_MAC), (CLIENT, 5555), (VIP, 8021), SYN, b"");
    assert_eq!(lab.handle(Side::Vip, &mut syn), Verdict::Forward(Side::Dip));
    assert_eq!(seen(&syn).dst, (RS1, 80));
    assert!(seen(&syn).checksums_ok);
    let mut reply = tcp_frame(
        (RS1_MAC, DIP_MAC),
        (RS1, 80),
        (CLIENT, 5555),
        SYN | ACK,
        b"hi",
    );
    assert_eq!(
        lab.handle(Side::Dip, &mut reply),
        Verdict::Forward(Side::Vip)
    );
    assert_eq!(seen(&reply).src, (VIP, 8021));
    assert!(seen(&reply).checksums_ok);
}

#[test]
fn udp_round_trips_and_counts_as_inactive() {
    let mut lab = one_server(None, service(Protocol::Udp, 7), 7, true);
    let mut q = udp_frame((CLIENT_MAC, VIP_MAC), (CLIENT, 5000), (VIP, 7), b"ping");
    assert_eq!(lab.handle(Side::Vip, &mut q), Verdict::Forward(Side::Dip));
    assert_eq!(seen(&q).dst, (RS1, 7));
    assert!(seen(&q).checksums_ok);
    let mut a = udp_frame((RS1_MAC, DIP_MAC), (RS1, 7), (CLIENT, 5000), b"RS1 ping");
    assert_eq!(lab.handle(Side::Dip, &mut a), Verdict::Forward(Side::Vip));
    assert_eq!(seen(&a).src, (VIP, 7));
    let conns = lab.ctl().connections();
    assert_eq!(
        (conns[0].protocol, conns[0].state, conns[0].expires_secs),
        ("UDP", "UDP", 300)
    );
    assert_eq!(lab.conns_of(RS1), (0, 1));
}

#[test]
fn partial_checksums_are_updated_as_partial() {
    // An offloading sender hands over TCP with only the pseudo-header sum in the checksum
    // field; after NAT it must be the pseudo-header sum of the new addresses.
    let mut lab = Lab::seed();
    let mut syn = from_client(40000, SYN);
    let l4_len = (syn.len() - 34) as u16;
    let partial = |s: Ipv4Addr, d: Ipv4Addr| {
        masq_wire::checksum::fold(masq_wire::checksum::pseudo_header_sum(s, d, 6, l4_len))
    };
    syn[34 + 16..34 + 18].copy_from_slice(&partial(CLIENT, VIP).to_be_bytes());
    let meta = FrameMeta {
        partial_checksum: true,
        gso: false,
        tcp_gso_size: 0,
        io: [7; 16],
    };
    assert_eq!(
        lab.worker.handle_frame(lab.now, Side::Vip, &mut syn, meta),
        Verdict::Forward(Side::Dip)
    );
    let got = u16::from_be_bytes([syn[34 + 16], syn[34 + 17]]);
    assert_eq!(got, partial(CLIENT, RS2));
}

#[test]
fn a_fragmented_udp_datagram_is_forwarded_fragment_by_fragment() {
    let mut lab = one_server(None, service(Protocol::Udp, 7), 7, true);
    let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    let whole = udp_frame((CLIENT_MAC, VIP_MAC), (CLIENT, 5000), (VIP, 7), &payload);
    let frags = fragment(&whole, 1480);
    assert_eq!(frags.len(), 3);
    // A later fragment before its first one cannot be placed.
    let mut early = frags[1].clone();
    assert_eq!(
        lab.handle(Side::Vip, &mut early),
        Verdict::Drop(DropReason::Fragment)
    );
    let mut out = Vec::new();
    for f in &frags {
        let mut f = f.clone();
        assert_eq!(lab.handle(Side::Vip, &mut f), Verdict::Forward(Side::Dip));
        out.push(f);
    }
    // Reassembled at the real server, the datagram is addressed to it with a valid checksum.
    let mut reassembled = out[0][..34].to_vec();
    for f in &out {
        let ip = masq_wire::ipv4::Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert_eq!(ip.dst_addr(), RS1);
        assert!(ip.verify_checksum());
        reassembled.extend_from_slice(ip.payload());
    }
    let total = (reassembled.len() - 14) as u16;
    reassembled[16..18].copy_from_slice(&total.to_be_bytes());
    reassembled[20..22].copy_from_slice(&[0, 0]);
    masq_wire::ipv4::Ipv4Packet::new_checked(&mut reassembled[14..])
        .unwrap()
        .fill_checksum();
    let s = seen(&reassembled);
    assert_eq!(s.dst, (RS1, 7));
    assert!(s.checksums_ok);
    let stats = lab.ctl().services()[0].stats;
    assert_eq!((stats.conns, stats.inpkts), (1, 3));
}

#[test]
fn ip_options_are_forwarded_untouched_behind_the_rewrite() {
    // A router alert option makes the IPv4 header 24 bytes: every later step must find the
    // TCP header behind it.
    let mut lab = Lab::seed();
    let plain = from_client(40000, SYN);
    let mut syn = plain[..34].to_vec();
    syn.extend_from_slice(&[0x94, 4, 0, 0]);
    syn.extend_from_slice(&plain[34..]);
    syn[14] = 0x46;
    let total = (syn.len() - 14) as u16;
    syn[16..18].copy_from_slice(&total.to_be_bytes());
    refill_ip_checksum(&mut syn);
    assert_eq!(lab.handle(Side::Vip, &mut syn), Verdict::Forward(Side::Dip));
    assert_eq!(&syn[34..38], &[0x94, 4, 0, 0], "options untouched");
    let s = seen(&syn);
    assert_eq!((s.src, s.dst, s.ttl), ((CLIENT, 40000), (RS2, 80), 63));
    assert!(s.checksums_ok);
}
