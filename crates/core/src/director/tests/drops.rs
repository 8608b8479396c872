//! Frames the director refuses, each with its reason, and the connection table's bound.

use super::*;

#[test]
fn bad_input_is_dropped_with_a_reason_and_never_forwarded() {
    let mut lab = Lab::seed();
    let cases: Vec<(Vec<u8>, Verdict)> = vec![
        (vec![0u8; 10], Verdict::Drop(DropReason::Malformed)),
        (
            from_client(1, SYN)[..30].to_vec(),
            Verdict::Drop(DropReason::Malformed),
        ),
        (
            {
                let mut f = from_client(1, SYN);
                f[14 + 10] ^= 0xff;
                f
            },
            Verdict::Drop(DropReason::BadIpChecksum),
        ),
        (
            {
                let mut f = from_client(1, SYN);
                f[14 + 7] = 0x10; // a later fragment (offset 128) whose first was never seen
                masq_wire::ipv4::Ipv4Packet::new_checked(&mut f[14..])
                    .unwrap()
                    .fill_checksum();
                f
            },
            Verdict::Drop(DropReason::Fragment),
        ),
        (
            {
                let mut f = from_client(1, SYN);
                f[14 + 20 + 12] = 0x40; // TCP data offset 4
                f
            },
            Verdict::Drop(DropReason::Malformed),
        ),
        (from_client(2, ACK), Verdict::Drop(DropReason::TcpNotSyn)),
        (
            tcp_frame((CLIENT_MAC, VIP_MAC), (CLIENT, 3), (VIP, 22), SYN, b""),
            Verdict::NotOurs,
        ),
        (
            tcp_frame(
                (CLIENT_MAC, VIP_MAC),
                (CLIENT, 3),
                (Ipv4Addr::new(192, 168, 0, 99), 80),
                SYN,
                b"",
            ),
            Verdict::NotOurs,
        ),
        (
            tcp_frame(
                (CLIENT_MAC, MacAddr([2, 9, 9, 9, 9, 9])),
                (CLIENT, 3),
                (VIP, 80),
                SYN,
                b"",
            ),
            Verdict::NotOurs,
        ),
    ];
    for (i, (mut frame, want)) in cases.into_iter().enumerate() {
        assert_eq!(lab.handle(Side::Vip, &mut frame), want, "case {i}");
    }
    assert!(lab.ctl().connections().is_empty());
    let c = lab.director.counters();
    assert_eq!(c.drops(DropReason::Malformed), 3);
    assert_eq!(c.drops(DropReason::TcpNotSyn), 1);
    assert_eq!(c.forwarded_in, 0);
    // A reply for no known connection is the host's business, not forwarded.
    let mut stray = from_rs(RS1, RS1_MAC, 4444, ACK);
    assert_eq!(lab.handle(Side::Dip, &mut stray), Verdict::NotOurs);
}

#[test]
fn deleted_destination_drops_its_connections_and_comes_back_with_its_counters() {
    let mut lab = Lab::seed();
    let mut syn = from_client(40000, SYN);
    lab.handle(Side::Vip, &mut syn);
    let svc = service(Protocol::Tcp, 80);
    lab.ctl().delete_dest(svc, rs(RS2, 80)).unwrap();
    let mut ack = from_client(40000, ACK);
    assert_eq!(
        lab.handle(Side::Vip, &mut ack),
        Verdict::Drop(DropReason::DestUnavailable)
    );
    lab.ctl().add_dest(svc, rs(RS2, 80), masq(1)).unwrap();
    assert_eq!(lab.conns_of(RS2), (1, 0), "resurrected from the trash");
    let mut ack = from_client(40000, ACK);
    assert_eq!(lab.handle(Side::Vip, &mut ack), Verdict::Forward(Side::Dip));
}

#[test]
fn a_syn_flood_fills_the_table_only_to_its_bound_and_sheds_half_open_entries() {
    let mut lab = bounded(100);
    // A legitimate connection, established before the flood.
    let mut syn = from_client(40000, SYN);
    lab.handle(Side::Vip, &mut syn);
    let mut ack = from_client(40000, ACK);
    lab.handle(Side::Vip, &mut ack);
    // The flood: SYNs from 2000 spoofed sources that never complete.
    for i in 0..2000u32 {
        let src = Ipv4Addr::from(0xc0a8_0000 | (i % 250 + 2) | ((i / 250) << 8));
        let mut f = tcp_frame(
            (CLIENT_MAC, VIP_MAC),
            (src, 1024 + (i % 60000) as u16),
            (VIP, 80),
            SYN,
            b"",
        );
        assert_eq!(lab.handle(Side::Vip, &mut f), Verdict::Forward(Side::Dip));
        assert!(lab.director.connection_count() <= 100);
    }
    let counters = lab.director.counters();
    assert!(counters.evicted_half_open >= 1900, "{counters:?}");
    // The established connection survived and still forwards.
    let mut data = from_client(40000, ACK);
    assert_eq!(
        lab.handle(Side::Vip, &mut data),
        Verdict::Forward(Side::Dip)
    );
    let established = lab
        .ctl()
        .connections()
        .into_iter()
        .filter(|c| c.state == "ESTABLISHED")
        .count();
    assert_eq!(established, 1);
    // A new legitimate client still gets in.
    let mut late = from_client(40001, SYN);
    assert_eq!(
        lab.handle(Side::Vip, &mut late),
        Verdict::Forward(Side::Dip)
    );
}

#[test]
fn a_table_full_of_established_connections_refuses_new_ones() {
    let mut lab = bounded(3);
    for port in 1..=3 {
        lab.handle(Side::Vip, &mut from_client(port, SYN));
        lab.handle(Side::Vip, &mut from_client(port, ACK));
    }
    assert_eq!(
        lab.handle(Side::Vip, &mut from_client(4, SYN)),
        Verdict::Drop(DropReason::TableFull)
    );
}

#[test]
fn under_pressure_a_client_alone_cannot_establish_an_entry() {
    let mut lab = bounded(8);
    for port in 1..=6 {
        lab.handle(Side::Vip, &mut from_client(port, SYN));
    }
    // Six of eight: over three quarters full, secure_tcp's table applies.
    let mut syn = from_client(100, SYN);
    lab.handle(Side::Vip, &mut syn);
    let mut ack = from_client(100, ACK);
    assert_eq!(lab.handle(Side::Vip, &mut ack), Verdict::Forward(Side::Dip));
    let state = |lab: &Lab| {
        lab.ctl()
            .connections()
            .into_iter()
            .find(|c| c.client.1 == 100)
            .map(|c| c.state)
    };
    assert_eq!(state(&lab), Some("SYN_RECV"), "still half-open, sheddable");
    // Once the real server answers, the handshake completes as usual.
    lab.handle(Side::Dip, &mut from_rs(RS1, RS1_MAC, 100, SYN | ACK));
    lab.handle(Side::Vip, &mut from_client(100, ACK));
    lab.handle(Side::Dip, &mut from_rs(RS1, RS1_MAC, 100, ACK));
    assert_eq!(state(&lab), Some("ESTABLISHED"));
}
