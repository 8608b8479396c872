//! Direct routing: the client's packet reaches the real server with only its MACs and TTL
//! changed, the real server's answer from the VIP comes back through the director (its
//! gateway) unchanged but for the same, and both are counted and tracked.

use super::icmp::icmp_error_frame;
use super::*;
use crate::control::FwdMethod;
use masq_wire::tcp::flags::RST;

/// `-g -w weight`.
fn route(weight: i32) -> DestParams {
    DestParams {
        fwd: FwdMethod::Route,
        weight,
        ..DestParams::default()
    }
}

/// `-A -t VIP:80 -s rr` (or `-u VIP:port`) with RS1 and RS2 by direct routing, neighbours
/// learnt; RS1 is added on `rs1_port` (ipvsadm would have forced it to the service's).
fn routed_lab(protocol: Protocol, port: u16, rs1_port: u16) -> Lab {
    let mut lab = Lab::with_config(config(None));
    let svc = service(protocol, port);
    lab.ctl().add_service(svc, rr()).unwrap();
    lab.ctl()
        .add_dest(svc, rs(RS1, rs1_port), route(1))
        .unwrap();
    lab.ctl().add_dest(svc, rs(RS2, port), route(1)).unwrap();
    lab.learn_all();
    lab
}

/// What a real server holding the VIP sends its gateway, the DIP: VIP:80 → client.
fn from_vip(rs_mac: MacAddr, cport: u16, tcp_flags: u8) -> Vec<u8> {
    tcp_frame(
        (rs_mac, DIP_MAC),
        (VIP, 80),
        (CLIENT, cport),
        tcp_flags,
        b"",
    )
}

/// The frame after its Ethernet header with TTL and IP header checksum blanked: what
/// direct routing must leave as it found it.
fn untouched_part(frame: &[u8]) -> Vec<u8> {
    let mut ip = frame[14..].to_vec();
    ip[8] = 0;
    ip[10..12].fill(0);
    ip
}

#[test]
fn the_stages_of_a_routed_connection() {
    let mut lab = routed_lab(Protocol::Tcp, 80, 80);
    // Client → VIP reaches the newest real server with only its MACs and TTL changed.
    let mut syn = from_client(40000, SYN);
    let sent = untouched_part(&syn);
    assert_eq!(lab.handle(Side::Vip, &mut syn), Verdict::Forward(Side::Dip));
    assert_eq!(
        seen(&syn),
        Seen {
            dst_mac: RS2_MAC,
            src_mac: DIP_MAC,
            src: (CLIENT, 40000),
            dst: (VIP, 80),
            ttl: 63,
            checksums_ok: true,
        }
    );
    assert_eq!(untouched_part(&syn), sent);
    // The real server answers as the VIP, through the director as its gateway.
    let mut syn_ack = from_vip(RS2_MAC, 40000, SYN | ACK);
    let answered = untouched_part(&syn_ack);
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
    assert_eq!(untouched_part(&syn_ack), answered);
    let mut ack = from_client(40000, ACK);
    assert_eq!(lab.handle(Side::Vip, &mut ack), Verdict::Forward(Side::Dip));
    // Counted both ways, tracked as NAT is, listed with the real server.
    let stats = lab.ctl().services()[0].stats;
    assert_eq!((stats.conns, stats.inpkts, stats.outpkts), (1, 2, 1));
    assert_eq!((stats.inbytes, stats.outbytes), (80, 40));
    let conns = lab.ctl().connections();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].state, "ESTABLISHED");
    assert_eq!(conns[0].dest, (IpAddr::V4(RS2), 80));
    assert_eq!(lab.conns_of(RS2), (1, 0));
    // The listing says how the real servers are reached.
    let svc = &lab.ctl().services()[0];
    assert!(svc.dests.iter().all(|d| d.params.fwd == FwdMethod::Route));
}

#[test]
fn rr_alternates_over_routed_real_servers() {
    let mut lab = routed_lab(Protocol::Tcp, 80, 80);
    let macs: Vec<MacAddr> = (0..6)
        .map(|i| {
            let mut syn = from_client(20001 + i, SYN);
            assert_eq!(lab.handle(Side::Vip, &mut syn), Verdict::Forward(Side::Dip));
            seen(&syn).dst_mac
        })
        .collect();
    assert_eq!(macs, [RS2_MAC, RS1_MAC].repeat(3));
}

#[test]
fn a_mapped_port_is_not_applied_the_service_port_is() {
    // RS1 added on :8080, which ipvsadm never sends with -g: the packet still reaches :80.
    let mut lab = routed_lab(Protocol::Tcp, 80, 8080);
    let mut first = from_client(40000, SYN);
    lab.handle(Side::Vip, &mut first);
    let mut second = from_client(40001, SYN);
    assert_eq!(
        lab.handle(Side::Vip, &mut second),
        Verdict::Forward(Side::Dip)
    );
    assert_eq!(seen(&second).dst_mac, RS1_MAC);
    assert_eq!(seen(&second).dst, (VIP, 80));
    let listed: Vec<_> = lab.ctl().connections().iter().map(|c| c.dest).collect();
    assert!(listed.contains(&(IpAddr::V4(RS1), 80)), "{listed:?}");
}

#[test]
fn udp_goes_both_ways() {
    let mut lab = routed_lab(Protocol::Udp, 7, 7);
    let mut ask = udp_frame((CLIENT_MAC, VIP_MAC), (CLIENT, 5000), (VIP, 7), b"ping");
    assert_eq!(lab.handle(Side::Vip, &mut ask), Verdict::Forward(Side::Dip));
    assert_eq!(seen(&ask).dst, (VIP, 7));
    assert_eq!(seen(&ask).dst_mac, RS2_MAC);
    let mut echo = udp_frame((RS2_MAC, DIP_MAC), (VIP, 7), (CLIENT, 5000), b"ping");
    assert_eq!(
        lab.handle(Side::Dip, &mut echo),
        Verdict::Forward(Side::Vip)
    );
    let echo = seen(&echo);
    assert_eq!(
        (echo.src, echo.dst_mac, echo.ttl),
        ((VIP, 7), CLIENT_MAC, 63)
    );
    assert!(echo.checksums_ok);
    let stats = lab.ctl().services()[0].stats;
    assert_eq!((stats.inpkts, stats.outpkts), (1, 1));
}

#[test]
fn answers_from_the_vip_that_no_routed_connection_expects_are_not_ours() {
    let mut lab = routed_lab(Protocol::Tcp, 80, 80);
    let mut stray = from_vip(RS1_MAC, 40000, SYN | ACK);
    assert_eq!(lab.handle(Side::Dip, &mut stray), Verdict::NotOurs);
    // A NAT connection is never answered from the VIP: its real server speaks as itself.
    let mut nat = Lab::seed();
    let mut syn = from_client(40000, SYN);
    nat.handle(Side::Vip, &mut syn);
    let mut forged = from_vip(RS2_MAC, 40000, SYN | ACK);
    assert_eq!(nat.handle(Side::Dip, &mut forged), Verdict::NotOurs);
    assert_eq!(nat.ctl().services()[0].stats.outpkts, 0);
}

#[test]
fn a_reset_from_the_real_server_closes_the_routed_connection() {
    let mut lab = routed_lab(Protocol::Tcp, 80, 80);
    let mut syn = from_client(40000, SYN);
    lab.handle(Side::Vip, &mut syn);
    let mut rst = from_vip(RS2_MAC, 40000, RST | ACK);
    assert_eq!(lab.handle(Side::Dip, &mut rst), Verdict::Forward(Side::Vip));
    assert_eq!(lab.ctl().connections()[0].state, "CLOSE");
}

#[test]
fn ttl_one_gets_time_exceeded_and_is_not_routed() {
    let mut lab = routed_lab(Protocol::Tcp, 80, 80);
    let mut syn = from_client(40000, SYN);
    syn[14 + 8] = 1;
    refill_ip_checksum(&mut syn);
    assert_eq!(
        lab.handle(Side::Vip, &mut syn),
        Verdict::Drop(DropReason::TtlExpired)
    );
    let out = lab.transmitted();
    assert_eq!(out.len(), 1, "one time exceeded to the client");
    assert_eq!(&out[0].1[0..6], &CLIENT_MAC.0);
}

#[test]
fn later_fragments_follow_unchanged() {
    let mut lab = routed_lab(Protocol::Udp, 7, 7);
    let whole = udp_frame((CLIENT_MAC, VIP_MAC), (CLIENT, 5000), (VIP, 7), &[7u8; 64]);
    for mut piece in fragment(&whole, 32) {
        assert_eq!(
            lab.handle(Side::Vip, &mut piece),
            Verdict::Forward(Side::Dip)
        );
        assert_eq!(&piece[0..6], &RS2_MAC.0);
        let ip = masq_wire::ipv4::Ipv4Packet::new_checked(&piece[14..]).unwrap();
        assert_eq!((ip.dst_addr(), ip.ttl()), (VIP, 63));
        assert!(ip.verify_checksum());
    }
}

#[test]
fn icmp_errors_about_a_routed_connection_go_on_unchanged() {
    let mut lab = routed_lab(Protocol::Tcp, 80, 80);
    let mut syn = from_client(40000, SYN);
    lab.handle(Side::Vip, &mut syn);
    // The real server's router says the client's packet (to the VIP) was too big.
    let mut err = icmp_error_frame((RS2_MAC, DIP_MAC), RS2, &syn[14..], 4);
    let sent = untouched_part(&err);
    assert_eq!(lab.handle(Side::Dip, &mut err), Verdict::Forward(Side::Vip));
    assert_eq!(&err[0..6], &CLIENT_MAC.0);
    assert_eq!(untouched_part(&err), sent);
    // The client's error about the real server's answer (from the VIP) goes to it.
    let reply = from_vip(RS2_MAC, 40000, SYN | ACK);
    let mut err = icmp_error_frame((CLIENT_MAC, VIP_MAC), CLIENT, &reply[14..], 3);
    let sent = untouched_part(&err);
    assert_eq!(lab.handle(Side::Vip, &mut err), Verdict::Forward(Side::Dip));
    assert_eq!(&err[0..6], &RS2_MAC.0);
    assert_eq!(untouched_part(&err), sent);
}

#[test]
fn a_real_server_using_the_vip_in_arp_is_diagnosed() {
    let mut lab = routed_lab(Protocol::Tcp, 80, 80);
    assert_eq!(lab.director.diagnose(lab.now), vec![]);
    // RS1 without arp_announce=2 asks for its gateway from the VIP, its answers' source.
    let mut ask = arp_frame(arp::OP_REQUEST, (RS1_MAC, VIP), (MacAddr::ZERO, DIP));
    lab.handle(Side::Dip, &mut ask);
    let findings = lab.director.diagnose(lab.now);
    let [crate::diagnose::Finding::VipInArp(claim)] = findings.as_slice() else {
        panic!("{findings:?}")
    };
    assert_eq!((claim.vip, claim.mac), (VIP, RS1_MAC));
    assert!(findings[0].fix().contains("arp_announce=2"));
    // It taught the director nothing: the VIP is never a neighbour.
    assert!(lab.director.neighbour_table(Side::Dip).peek(VIP).is_none());
    // Forgotten a minute later.
    lab.advance(61);
    assert_eq!(lab.director.diagnose(lab.now), vec![]);
}

#[test]
fn a_routed_real_server_that_never_answers_is_asked_about_the_vip() {
    let mut lab = routed_lab(Protocol::Tcp, 80, 80);
    for port in 40000..40006 {
        lab.handle(Side::Vip, &mut from_client(port, SYN));
    }
    lab.advance(2);
    let findings = lab.director.diagnose(lab.now);
    assert!(!findings.is_empty());
    for f in &findings {
        assert!(
            f.problem().contains("hold the VIP (on lo)"),
            "{}",
            f.problem()
        );
        assert!(
            f.fix().contains("ip addr add 192.168.0.10/32 dev lo"),
            "{}",
            f.fix()
        );
    }
}
