//! Hostile neighbours and the tables a packet can grow: one neighbour table per side with
//! its learning rules, persistence templates inside `--max-conns`, and the fragment table's
//! fair share per source.

use super::*;
use crate::frag::{MAX_ENTRIES, MAX_PER_SOURCE};

const ROGUE_MAC: MacAddr = MacAddr([2, 0x66, 0, 0, 0, 0x66]);

/// After a forgery: a new connection to RS1 goes out to RS1's real MAC.
fn rs1_still_at_its_mac(lab: &mut Lab, sport: u16) {
    let mut syn = from_client(sport, SYN);
    assert_eq!(lab.handle(Side::Vip, &mut syn), Verdict::Forward(Side::Dip));
    assert_eq!(&syn[0..6], &RS1_MAC.0, "RS1's frames go to RS1's MAC");
}

#[test]
fn a_client_claiming_a_real_servers_address_teaches_nothing() {
    let mut lab = one_server(None, service(Protocol::Tcp, 80), 80, true);
    let forgeries = [
        (arp::OP_REQUEST, (MacAddr::ZERO, VIP)),
        (arp::OP_REPLY, (VIP_MAC, VIP)),
        (arp::OP_REQUEST, (MacAddr::ZERO, RS1)),
    ];
    for (sport, (op, target)) in (40000..).zip(forgeries) {
        let mut forged = arp_frame(op, (CLIENT_MAC, RS1), target);
        lab.handle(Side::Vip, &mut forged);
        assert_eq!(lab.director.neighbour_table(Side::Vip).peek(RS1), None);
        rs1_still_at_its_mac(&mut lab, sport);
    }
}

#[test]
fn a_rogue_on_the_real_servers_segment_cannot_take_a_confirmed_address() {
    let mut lab = one_server(None, service(Protocol::Tcp, 80), 80, true);
    for (op, target) in [
        (arp::OP_REQUEST, (MacAddr::ZERO, DIP)),
        (arp::OP_REPLY, (DIP_MAC, DIP)),
        (arp::OP_REPLY, (MacAddr::BROADCAST, RS1)),
    ] {
        let mut forged = arp_frame(op, (ROGUE_MAC, RS1), target);
        assert_eq!(lab.handle(Side::Dip, &mut forged), Verdict::NotOurs);
    }
    rs1_still_at_its_mac(&mut lab, 40000);
    let conflicts = lab
        .director
        .neighbour_table(Side::Dip)
        .conflicts(lab.now, 60_000);
    assert_eq!(conflicts.len(), 1);
    assert_eq!(
        (conflicts[0].first, conflicts[0].second),
        (RS1_MAC, ROGUE_MAC)
    );
    // The diagnosis names it, once.
    let findings = lab.director.diagnose(lab.now);
    assert_eq!(
        findings
            .iter()
            .filter(|f| f.problem().contains("192.168.100.7"))
            .count(),
        1
    );
}

#[test]
fn nobody_may_teach_a_side_an_address_off_its_networks_or_of_the_director() {
    let mut lab = one_server(None, service(Protocol::Tcp, 80), 80, true);
    // From the real servers' side: the client's address, the VIP, the DIP.
    for claimed in [CLIENT, VIP, DIP] {
        let mut forged = arp_frame(arp::OP_REQUEST, (ROGUE_MAC, claimed), (MacAddr::ZERO, DIP));
        lab.handle(Side::Dip, &mut forged);
        assert_eq!(
            lab.director.neighbour_table(Side::Dip).peek(claimed),
            None,
            "{claimed} learnt on the DIP side"
        );
    }
    // From the client's side: the VIP itself, and multicast or zero MACs.
    let mut vip = arp_frame(arp::OP_REQUEST, (ROGUE_MAC, VIP), (MacAddr::ZERO, VIP));
    lab.handle(Side::Vip, &mut vip);
    assert_eq!(lab.director.neighbour_table(Side::Vip).peek(VIP), None);
    let other = Ipv4Addr::new(192, 168, 0, 77);
    for mac in [MacAddr::BROADCAST, MacAddr::ZERO] {
        let mut f = arp_frame(arp::OP_REQUEST, (mac, other), (MacAddr::ZERO, VIP));
        lab.handle(Side::Vip, &mut f);
        assert_eq!(lab.director.neighbour_table(Side::Vip).peek(other), None);
    }
    // The client's answers to the replies still go to the client.
    let mut syn = from_client(40000, SYN);
    lab.handle(Side::Vip, &mut syn);
    let mut synack = from_rs(RS1, RS1_MAC, 40000, SYN | ACK);
    assert_eq!(
        lab.handle(Side::Dip, &mut synack),
        Verdict::Forward(Side::Vip)
    );
    assert_eq!(&synack[0..6], &CLIENT_MAC.0);
}

#[test]
fn spoofed_on_link_clients_fill_a_neighbour_table_only_to_its_bound() {
    let config = DirectorConfig {
        max_neighbours: 32,
        ..config(None)
    };
    let mut lab = one_server_on(config, service(Protocol::Tcp, 80), 80, true);
    // SYNs from 250 on-link addresses that never answer ARP: each reply needs one resolved.
    for host in 2..252u8 {
        let src = Ipv4Addr::new(192, 168, 0, host);
        let mut syn = tcp_frame((CLIENT_MAC, VIP_MAC), (src, 1234), (VIP, 80), SYN, b"");
        lab.handle(Side::Vip, &mut syn);
        let mut synack = tcp_frame((RS1_MAC, DIP_MAC), (RS1, 80), (src, 1234), SYN | ACK, b"");
        lab.handle(Side::Dip, &mut synack);
        lab.transmitted();
        assert!(lab.director.neighbour_table(Side::Vip).len() <= 32);
    }
    let vip_side = lab.director.neighbour_table(Side::Vip);
    assert!(
        vip_side
            .counters
            .shed
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    // The real servers' side is untouched: RS1 is still known.
    assert_eq!(
        lab.director.neighbour_table(Side::Dip).peek(RS1),
        Some(RS1_MAC)
    );
}

/// `-A -t VIP:80 -s rr -p 300` with RS1, in a table of at most `max_conns` entries.
fn persistent(max_conns: usize) -> Lab {
    let config = DirectorConfig {
        max_conns,
        ..config(None)
    };
    let mut lab = Lab::with_config(config);
    let svc = service(Protocol::Tcp, 80);
    let params = ServiceParams {
        persistent: Some(300),
        netmask: u32::MAX,
        ..rr()
    };
    lab.ctl().add_service(svc, params).unwrap();
    lab.ctl().add_dest(svc, rs(RS1, 80), masq(1)).unwrap();
    lab.learn_all();
    lab
}

#[test]
fn templates_count_against_max_conns_and_idle_ones_are_shed_first() {
    let mut lab = persistent(100);
    // A legitimate client, established before the flood: its template must survive.
    lab.handle(Side::Vip, &mut from_client(40000, SYN));
    lab.handle(Side::Vip, &mut from_client(40000, ACK));
    // A flood from 5 000 spoofed sources: a connection and a template each.
    // The real server answers each SYN (under pressure secure_tcp makes that SYNACK);
    // the spoofed clients never do.
    for i in 0..5000u32 {
        let src = Ipv4Addr::from(0x0a00_0000 + i);
        let mut f = tcp_frame((CLIENT_MAC, VIP_MAC), (src, 1024), (VIP, 80), SYN, b"");
        assert_eq!(lab.handle(Side::Vip, &mut f), Verdict::Forward(Side::Dip));
        let mut answer = tcp_frame((RS1_MAC, DIP_MAC), (RS1, 80), (src, 1024), SYN | ACK, b"");
        assert_eq!(
            lab.handle(Side::Dip, &mut answer),
            Verdict::Drop(DropReason::NoRouteToClient)
        );
        assert!(
            lab.director.entry_count() <= 100,
            "{} entries",
            lab.director.entry_count()
        );
        lab.transmitted();
    }
    let counters = lab.director.counters();
    assert!(counters.evicted_templates >= 4800, "{counters:?}");
    assert_eq!(counters.drops(DropReason::TableFull), 0, "{counters:?}");
    // The listing shows no more than the bound either.
    assert!(lab.ctl().connections().len() <= 100);
    // The established connection and its template are there, and a new connection from
    // the same client still follows the template.
    let mut data = from_client(40000, ACK);
    assert_eq!(
        lab.handle(Side::Vip, &mut data),
        Verdict::Forward(Side::Dip)
    );
    let mut again = from_client(40001, SYN);
    assert_eq!(
        lab.handle(Side::Vip, &mut again),
        Verdict::Forward(Side::Dip)
    );
    let listed = lab.ctl().connections();
    let from_client = |c: &&crate::control::ConnView| c.client.0 == IpAddr::V4(CLIENT);
    assert_eq!(
        listed.iter().filter(from_client).count(),
        3,
        "two connections and their template: {listed:?}"
    );
}

#[test]
fn one_source_gets_its_share_of_the_fragment_table_and_no_more() {
    let mut lab = one_server(None, service(Protocol::Udp, 7), 7, true);
    let payload = [7u8; 2000];
    let datagram = |src: Ipv4Addr, ident: u16| {
        let mut f = udp_frame((CLIENT_MAC, VIP_MAC), (src, 5000), (VIP, 7), &payload);
        f[18..20].copy_from_slice(&ident.to_be_bytes());
        fragment(&f, 1480)
    };
    // One sender's first fragments, many more than its share: past it, its datagrams are
    // dropped whole, first fragment included.
    for ident in 0..1000u16 {
        let mut first = datagram(CLIENT, ident)[0].clone();
        let verdict = lab.handle(Side::Vip, &mut first);
        if u32::from(ident) >= MAX_PER_SOURCE {
            assert_eq!(verdict, Verdict::Drop(DropReason::FragmentLimit));
        }
    }
    assert_eq!(lab.director.fragment_count(), MAX_PER_SOURCE as usize);
    // Another sender still gets its datagram through, both fragments.
    let other = Ipv4Addr::new(192, 168, 0, 102);
    for mut f in datagram(other, 1) {
        assert_eq!(lab.handle(Side::Vip, &mut f), Verdict::Forward(Side::Dip));
    }
}

#[test]
fn a_datagram_that_went_through_whole_leaves_no_entry_behind() {
    let mut lab = one_server(None, service(Protocol::Udp, 7), 7, true);
    let payload = [7u8; 4000];
    let datagram = |ident: u16| {
        let mut f = udp_frame((CLIENT_MAC, VIP_MAC), (CLIENT, 5000), (VIP, 7), &payload);
        f[18..20].copy_from_slice(&ident.to_be_bytes());
        fragment(&f, 1480)
    };
    // Ten times its share of whole datagrams in a second, as a client with ordinary
    // fragmented traffic sends them: none is refused, none lingers.
    for ident in 0..(10 * MAX_PER_SOURCE as u16) {
        let pieces = datagram(ident);
        assert_eq!(pieces.len(), 3);
        for mut f in pieces {
            assert_eq!(lab.handle(Side::Vip, &mut f), Verdict::Forward(Side::Dip));
        }
        assert_eq!(lab.director.fragment_count(), 0, "datagram {ident}");
    }
    // The last fragment before the middle one: the entry waits for the middle one, which
    // completes it.
    let mut pieces = datagram(9999);
    for i in [0, 2, 1] {
        assert_eq!(
            lab.handle(Side::Vip, &mut pieces[i]),
            Verdict::Forward(Side::Dip)
        );
        let left = if i == 1 { 0 } else { 1 };
        assert_eq!(lab.director.fragment_count(), left, "after piece {i}");
    }
    // A straggler after completion has nothing to follow: dropped and counted.
    let mut straggler = datagram(9999)[1].clone();
    assert_eq!(
        lab.handle(Side::Vip, &mut straggler),
        Verdict::Drop(DropReason::Fragment)
    );
}

#[test]
fn a_flood_of_first_fragments_from_spoofed_sources_leaves_room_for_new_datagrams() {
    let mut lab = one_server(Some(GATEWAY), service(Protocol::Udp, 7), 7, true);
    let payload = [7u8; 2000];
    let datagram = |src: Ipv4Addr, ident: u16| {
        let mut f = udp_frame((GATEWAY_MAC, VIP_MAC), (src, 5000), (VIP, 7), &payload);
        f[18..20].copy_from_slice(&ident.to_be_bytes());
        fragment(&f, 1480)
    };
    for i in 0..(3 * MAX_ENTRIES as u32) {
        let mut first = datagram(Ipv4Addr::from(0x0a00_0000 + i), 9)[0].clone();
        lab.handle(Side::Vip, &mut first);
        assert!(lab.director.fragment_count() <= MAX_ENTRIES);
    }
    // A legitimate datagram in the middle of the flood goes through whole.
    for mut f in datagram(ROUTED_CLIENT, 42) {
        assert_eq!(lab.handle(Side::Vip, &mut f), Verdict::Forward(Side::Dip));
    }
}

#[test]
fn frames_waiting_for_arp_fill_their_slots_only_to_the_bound() {
    let mut lab = one_server(None, service(Protocol::Tcp, 80), 80, false);
    // RS1 never answers: every SYN waits for it, until the slots are gone.
    let verdicts: Vec<Verdict> = (0..20)
        .map(|port| lab.handle(Side::Vip, &mut from_client(40000 + port, SYN)))
        .collect();
    assert_eq!(
        verdicts.iter().filter(|v| **v == Verdict::Queued).count(),
        16
    );
    assert_eq!(
        verdicts
            .iter()
            .filter(|v| **v == Verdict::Drop(DropReason::NeighbourQueueFull))
            .count(),
        4
    );
    assert_eq!(lab.worker.pending_len(), 16);
}

#[test]
fn generated_frames_fill_the_outbox_only_to_its_bound() {
    let mut lab = Lab::seed();
    // 40 frames whose TTL runs out, none of the answers taken: the outbox holds 32.
    for port in 0..40 {
        let mut syn = from_client(40000 + port, SYN);
        syn[14 + 8] = 1;
        masq_wire::ipv4::Ipv4Packet::new_checked(&mut syn[14..])
            .unwrap()
            .fill_checksum();
        lab.handle(Side::Vip, &mut syn);
    }
    assert_eq!(lab.director.counters().drops(DropReason::OutboxFull), 8);
    assert_eq!(lab.transmitted().len(), 32);
}

#[test]
fn a_flood_of_lone_udp_datagrams_sheds_them_and_keeps_the_flows_that_talk() {
    let config = DirectorConfig {
        max_conns: 100,
        ..config(Some(GATEWAY))
    };
    let mut lab = one_server_on(config, service(Protocol::Udp, 7), 7, true);
    let to_vip = |src: Ipv4Addr, sport: u16| {
        udp_frame((GATEWAY_MAC, VIP_MAC), (src, sport), (VIP, 7), b"ping")
    };
    // A flow that talks: a datagram, the real server's answer, another datagram.
    let answer = |lab: &mut Lab| {
        let mut f = udp_frame((RS1_MAC, DIP_MAC), (RS1, 7), (ROUTED_CLIENT, 5000), b"pong");
        assert_eq!(lab.handle(Side::Dip, &mut f), Verdict::Forward(Side::Vip));
    };
    lab.handle(Side::Vip, &mut to_vip(ROUTED_CLIENT, 5000));
    let mut gw = arp_frame(arp::OP_REPLY, (GATEWAY_MAC, GATEWAY), (VIP_MAC, VIP));
    lab.handle(Side::Vip, &mut gw);
    answer(&mut lab);
    lab.handle(Side::Vip, &mut to_vip(ROUTED_CLIENT, 5000));
    // A flood of datagrams from spoofed sources, one per source, and one sender cycling
    // through its ports: their answers never reach anyone.
    for i in 0..5000u32 {
        let mut f = to_vip(Ipv4Addr::from(0x0a00_0000 + i), 1024);
        assert_eq!(lab.handle(Side::Vip, &mut f), Verdict::Forward(Side::Dip));
        let mut again = to_vip(Ipv4Addr::new(10, 9, 9, 9), 1024 + (i % 50) as u16);
        assert_eq!(
            lab.handle(Side::Vip, &mut again),
            Verdict::Forward(Side::Dip)
        );
        assert!(lab.director.entry_count() <= 100);
    }
    assert_eq!(lab.director.counters().drops(DropReason::TableFull), 0);
    let kept = lab
        .ctl()
        .connections()
        .into_iter()
        .filter(|c| c.client == (IpAddr::V4(ROUTED_CLIENT), 5000))
        .count();
    assert_eq!(kept, 1, "the flow that talked is still there");
}

#[test]
fn one_clients_fragmented_answers_do_not_use_up_a_real_servers_share() {
    let mut lab = one_server(Some(GATEWAY), service(Protocol::Udp, 7), 7, true);
    let mut gw = arp_frame(arp::OP_REPLY, (GATEWAY_MAC, GATEWAY), (VIP_MAC, VIP));
    lab.handle(Side::Vip, &mut gw);
    let payload = [7u8; 2000];
    // RS1 answers 500 datagrams of one client with fragmented replies.
    let answer = |client: Ipv4Addr, ident: u16| {
        let mut f = udp_frame((RS1_MAC, DIP_MAC), (RS1, 7), (client, 5000), &payload);
        f[18..20].copy_from_slice(&ident.to_be_bytes());
        fragment(&f, 1480)
    };
    let ask = |lab: &mut Lab, client: Ipv4Addr| {
        let mut f = udp_frame((GATEWAY_MAC, VIP_MAC), (client, 5000), (VIP, 7), b"ping");
        assert_eq!(lab.handle(Side::Vip, &mut f), Verdict::Forward(Side::Dip));
    };
    ask(&mut lab, ROUTED_CLIENT);
    for ident in 0..500u16 {
        let mut first = answer(ROUTED_CLIENT, ident)[0].clone();
        lab.handle(Side::Dip, &mut first);
    }
    assert_eq!(lab.director.fragment_count(), MAX_PER_SOURCE as usize);
    // Another client's fragmented answer from the same real server crosses whole.
    let other = Ipv4Addr::new(10, 0, 0, 3);
    ask(&mut lab, other);
    for mut f in answer(other, 9999) {
        assert_eq!(lab.handle(Side::Dip, &mut f), Verdict::Forward(Side::Vip));
    }
}
