//! ARP: answering for the VIPs, frames that wait for a next hop, housekeeping's probes and
//! the VIP side's gateway.

use super::*;

#[test]
fn answers_arp_for_a_vip_and_learns_the_client() {
    let mut lab = Lab::seed();
    let mut req = arp_frame(arp::OP_REQUEST, (CLIENT_MAC, CLIENT), (MacAddr::ZERO, VIP));
    assert_eq!(lab.handle(Side::Vip, &mut req), Verdict::Forward(Side::Vip));
    let reply = arp::ArpPacket::new_checked(&req[14..]).unwrap();
    assert_eq!(reply.operation(), arp::OP_REPLY);
    assert_eq!((reply.sender_mac(), reply.sender_ip()), (VIP_MAC, VIP));
    assert_eq!(
        (reply.target_mac(), reply.target_ip()),
        (CLIENT_MAC, CLIENT)
    );
    assert_eq!(&req[0..6], &CLIENT_MAC.0);
    assert_eq!(
        lab.director.neighbour_table(Side::Vip).peek(CLIENT),
        Some(CLIENT_MAC)
    );
    // ARP for another address (the host's own) is left to the host.
    let mut other = arp_frame(
        arp::OP_REQUEST,
        (CLIENT_MAC, CLIENT),
        (MacAddr::ZERO, Ipv4Addr::new(192, 168, 0, 99)),
    );
    assert_eq!(lab.handle(Side::Vip, &mut other), Verdict::NotOurs);
}

#[test]
fn unknown_real_server_mac_queues_the_frame_and_probes() {
    let mut lab = one_server(None, service(Protocol::Tcp, 80), 80, false);
    let mut syn = from_client(40000, SYN);
    assert_eq!(lab.handle(Side::Vip, &mut syn), Verdict::Queued);
    let out = lab.transmitted();
    assert_eq!(out.len(), 1, "just the ARP probe");
    let probe = arp::ArpPacket::new_checked(&out[0].1[14..]).unwrap();
    assert_eq!(out[0].0, Side::Dip);
    assert_eq!(
        (probe.operation(), probe.sender_ip(), probe.target_ip()),
        (arp::OP_REQUEST, DIP, RS1)
    );
    let mut answer = arp_frame(arp::OP_REPLY, (RS1_MAC, RS1), (DIP_MAC, DIP));
    lab.handle(Side::Dip, &mut answer);
    let out = lab.transmitted();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, Side::Dip);
    assert_eq!(seen(&out[0].1).dst_mac, RS1_MAC);
    assert_eq!(seen(&out[0].1).dst, (RS1, 80));
    assert_eq!(lab.worker.pending_len(), 0);
}

#[test]
fn a_traced_frame_that_waits_for_arp_is_shown_and_captured_when_it_leaves() {
    use crate::trace::{Stage, TraceFilter, TraceKind};
    let mut lab = one_server(None, service(Protocol::Tcp, 80), 80, false);
    let sub = lab
        .director
        .trace
        .subscribe_with_frames(TraceFilter::default(), 64);
    let frames = sub.frames.as_ref().unwrap();
    let stages = |sub: &crate::trace::Subscription| -> Vec<_> {
        sub.events
            .try_iter()
            .filter_map(|e| match e.kind {
                TraceKind::Stage(s, v) => Some((s, v)),
                _ => None,
            })
            .collect()
    };
    let mut syn = from_client(40000, SYN);
    assert_eq!(lab.handle(Side::Vip, &mut syn), Verdict::Queued);
    lab.transmitted();
    let waiting = stages(&sub);
    assert_eq!(waiting.len(), 1, "only stage 1 while the SYN waits");
    assert_eq!(waiting[0].0, Stage::ClientToVip);
    assert_eq!(frames.try_iter().count(), 1);

    lab.advance(1);
    let mut answer = arp_frame(arp::OP_REPLY, (RS1_MAC, RS1), (DIP_MAC, DIP));
    lab.handle(Side::Dip, &mut answer);
    let out = lab.transmitted();
    assert_eq!(out.len(), 1);

    let left = stages(&sub);
    assert_eq!(left.len(), 1);
    let (stage, view) = left[0];
    assert_eq!(stage, Stage::DirectorToServer);
    assert_eq!((view.dst_mac, view.src_mac), (RS1_MAC, DIP_MAC));
    assert_eq!((*view.src.ip(), *view.dst.ip()), (CLIENT, RS1));
    let captured: Vec<_> = frames.try_iter().collect();
    assert_eq!(captured.len(), 1);
    assert_eq!(captured[0].stage, Stage::DirectorToServer);
    assert_eq!(
        captured[0].at, lab.now,
        "captured when it left, not when it was queued"
    );
    assert_eq!(captured[0].bytes, out[0].1, "the bytes that left");
    assert_eq!(seen(&captured[0].bytes).dst_mac, RS1_MAC);
}

#[test]
fn a_queued_frame_whose_next_hop_never_answers_is_dropped_and_counted() {
    let mut lab = one_server(None, service(Protocol::Tcp, 80), 80, false);
    let mut syn = from_client(40000, SYN);
    assert_eq!(lab.handle(Side::Vip, &mut syn), Verdict::Queued);
    lab.transmitted();
    lab.advance(3);
    assert!(lab.transmitted().is_empty());
    assert_eq!(lab.worker.pending_len(), 0);
    assert_eq!(
        lab.director
            .counters()
            .drops(DropReason::NeighbourUnreachable),
        1
    );
}

#[test]
fn housekeeping_probes_real_servers_before_traffic_needs_them() {
    let mut lab = one_server(None, service(Protocol::Tcp, 80), 80, false);
    lab.ctl()
        .add_dest(service(Protocol::Tcp, 80), rs(RS2, 80), masq(1))
        .unwrap();
    let mut targets = Vec::new();
    for (side, f) in lab.housekeeping().1 {
        assert_eq!(side, Side::Dip);
        targets.push(arp::ArpPacket::new_checked(&f[14..]).unwrap().target_ip());
    }
    targets.sort();
    assert_eq!(targets, vec![RS1, RS2]);
}

#[test]
fn routed_clients_go_through_the_vip_gateway() {
    let mut lab = one_server(Some(GATEWAY), service(Protocol::Tcp, 80), 80, true);
    let (_, probes) = lab.housekeeping();
    let gw_probe = probes
        .iter()
        .filter_map(|(side, f)| {
            let a = arp::ArpPacket::new_checked(&f[14..]).ok()?;
            (*side == Side::Vip).then(|| a.target_ip())
        })
        .collect::<Vec<_>>();
    assert_eq!(gw_probe, vec![GATEWAY]);
    let mut gw = arp_frame(arp::OP_REPLY, (GATEWAY_MAC, GATEWAY), (VIP_MAC, VIP));
    lab.handle(Side::Vip, &mut gw);
    let mut syn = tcp_frame(
        (GATEWAY_MAC, VIP_MAC),
        (ROUTED_CLIENT, 33000),
        (VIP, 80),
        SYN,
        b"",
    );
    assert_eq!(lab.handle(Side::Vip, &mut syn), Verdict::Forward(Side::Dip));
    let mut reply = tcp_frame(
        (RS1_MAC, DIP_MAC),
        (RS1, 80),
        (ROUTED_CLIENT, 33000),
        SYN | ACK,
        b"",
    );
    assert_eq!(
        lab.handle(Side::Dip, &mut reply),
        Verdict::Forward(Side::Vip)
    );
    assert_eq!(seen(&reply).dst_mac, GATEWAY_MAC);
    assert_eq!(seen(&reply).dst, (ROUTED_CLIENT, 33000));
}

#[test]
fn without_a_gateway_routed_clients_are_dropped_with_a_reason() {
    let mut lab = Lab::seed();
    let mut syn = tcp_frame(
        (CLIENT_MAC, VIP_MAC),
        (ROUTED_CLIENT, 33000),
        (VIP, 80),
        SYN,
        b"",
    );
    assert_eq!(lab.handle(Side::Vip, &mut syn), Verdict::Forward(Side::Dip));
    let mut reply = tcp_frame(
        (RS2_MAC, DIP_MAC),
        (RS2, 80),
        (ROUTED_CLIENT, 33000),
        SYN | ACK,
        b"",
    );
    assert_eq!(
        lab.handle(Side::Dip, &mut reply),
        Verdict::Drop(DropReason::NoRouteToClient)
    );
}

#[test]
fn housekeeping_probes_more_real_servers_than_the_outbox_holds() {
    let mut lab = Lab::with_config(config(None));
    let svc = service(Protocol::Tcp, 80);
    lab.ctl().add_service(svc, rr()).unwrap();
    let servers: Vec<Ipv4Addr> = (20..120).map(|h| Ipv4Addr::new(192, 168, 100, h)).collect();
    for &host in &servers {
        lab.ctl().add_dest(svc, rs(host, 80), masq(1)).unwrap();
    }
    let (_, probes) = lab.housekeeping();
    let mut targets: Vec<Ipv4Addr> = probes
        .iter()
        .map(|(_, f)| arp::ArpPacket::new_checked(&f[14..]).unwrap().target_ip())
        .collect();
    targets.sort();
    assert_eq!(targets, servers, "one probe each, none lost");
    assert_eq!(lab.director.counters().drops(DropReason::OutboxFull), 0);
}
