//! The director driven with in-memory frames and a fake clock: the seed lab's four stages,
//! the TCP life cycle, ARP, and every drop reason the data path can produce.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use masq_wire::arp;
use masq_wire::ethernet::MacAddr;

use super::*;
use crate::verdict::{DropReason, Verdict};
use crate::control::{
    Control, DestKey, DestParams, Family, FwdMethod, Protocol, ServiceKey, ServiceParams,
};

const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 101);
const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 10);
const DIP: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 10);
const RS1: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 7);
const RS2: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 9);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 1);
const ROUTED_CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

const VIP_MAC: MacAddr = MacAddr([2, 0xd1, 0, 0, 0, 1]);
const DIP_MAC: MacAddr = MacAddr([2, 0xd1, 0, 0, 0, 2]);
const CLIENT_MAC: MacAddr = MacAddr([2, 0xc1, 0, 0, 0, 101]);
const GATEWAY_MAC: MacAddr = MacAddr([2, 0xc1, 0, 0, 0, 1]);
const RS1_MAC: MacAddr = MacAddr([2, 0x5e, 0, 0, 0, 7]);
const RS2_MAC: MacAddr = MacAddr([2, 0x5e, 0, 0, 0, 9]);

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;

fn config(gateway: Option<Ipv4Addr>) -> DirectorConfig {
    DirectorConfig {
        vip_side: SideConfig {
            mac: VIP_MAC,
            addrs: vec![(VIP, 24)],
        },
        dip_side: SideConfig {
            mac: DIP_MAC,
            addrs: vec![(DIP, 24)],
        },
        vip_gateway: gateway,
        max_conns: DEFAULT_MAX_CONNS,
    }
}

fn http(protocol: Protocol, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol,
        addr: IpAddr::V4(VIP),
        port,
    }
}

fn masq(weight: i32) -> DestParams {
    DestParams {
        fwd: FwdMethod::Masq,
        weight,
        ..DestParams::default()
    }
}

fn rr() -> ServiceParams {
    ServiceParams {
        scheduler: "rr".into(),
        ..ServiceParams::default()
    }
}

fn rs(addr: Ipv4Addr, port: u16) -> DestKey {
    DestKey {
        addr: IpAddr::V4(addr),
        port,
    }
}

/// A test lab: the director, one worker, a fake clock.
struct Lab {
    director: Arc<Director>,
    worker: Worker,
    now: Timestamp,
}

impl Lab {
    /// The seed lab: `-A -t VIP:80 -s rr`, `-a RS1 -m`, `-a RS2 -m`, neighbours known.
    fn seed() -> Lab {
        let lab = Lab::empty(None);
        let ctl = lab.director.control(lab.now);
        ctl.add_service(http(Protocol::Tcp, 80), rr()).unwrap();
        ctl.add_dest(http(Protocol::Tcp, 80), rs(RS1, 80), masq(1))
            .unwrap();
        ctl.add_dest(http(Protocol::Tcp, 80), rs(RS2, 80), masq(1))
            .unwrap();
        let mut lab = lab;
        lab.learn_all();
        lab
    }

    /// One rr service on `proto`/`port` with RS1 (on `rs_port`) as its only server;
    /// neighbours learnt when `learn` is set.
    fn one_server(gateway: Option<Ipv4Addr>, svc: ServiceKey, rs_port: u16, learn: bool) -> Lab {
        let mut lab = Lab::empty(gateway);
        lab.ctl().add_service(svc, rr()).unwrap();
        lab.ctl().add_dest(svc, rs(RS1, rs_port), masq(1)).unwrap();
        if learn {
            lab.learn_all();
        }
        lab
    }

    /// One rr service with RS1, neighbours learnt, and a table of at most `max_conns`.
    fn bounded(max_conns: usize) -> Lab {
        let mut lab = Lab::with_config(DirectorConfig {
            max_conns,
            ..config(None)
        });
        lab.ctl()
            .add_service(http(Protocol::Tcp, 80), rr())
            .unwrap();
        lab.ctl()
            .add_dest(http(Protocol::Tcp, 80), rs(RS1, 80), masq(1))
            .unwrap();
        lab.learn_all();
        lab
    }

    fn empty(gateway: Option<Ipv4Addr>) -> Lab {
        Lab::with_config(config(gateway))
    }

    fn with_config(config: DirectorConfig) -> Lab {
        let director = Director::new(config);
        let worker = director.worker();
        Lab {
            director,
            worker,
            now: Timestamp::from_secs(1000),
        }
    }

    /// Feeds the ARP traffic a real lab has before the first connection.
    fn learn_all(&mut self) {
        for (ip, mac) in [(RS1, RS1_MAC), (RS2, RS2_MAC)] {
            let mut f = arp_frame(arp::OP_REPLY, (mac, ip), (DIP_MAC, DIP));
            assert_eq!(self.handle(Side::Dip, &mut f), Verdict::NotOurs);
        }
        let mut req = arp_frame(arp::OP_REQUEST, (CLIENT_MAC, CLIENT), (MacAddr::ZERO, VIP));
        assert_eq!(
            self.handle(Side::Vip, &mut req),
            Verdict::Forward(Side::Vip)
        );
    }

    fn handle(&mut self, side: Side, frame: &mut [u8]) -> Verdict {
        self.worker
            .handle_frame(self.now, side, frame, FrameMeta::default())
    }

    fn advance(&mut self, secs: u64) {
        self.now = self.now + Duration::from_secs(secs);
    }

    fn ctl(&self) -> DirectorControl<'_> {
        self.director.control(self.now)
    }

    fn transmitted(&mut self) -> Vec<(Side, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(t) = self.worker.poll_transmit(self.now) {
            out.push((t.side, t.frame.to_vec()));
        }
        out
    }

    /// (ActiveConn, InActConn) of a destination of the port-80 service.
    fn conns_of(&self, addr: Ipv4Addr) -> (u32, u32) {
        let views = self.ctl().services();
        let d = views[0]
            .dests
            .iter()
            .find(|d| d.key.addr == IpAddr::V4(addr))
            .unwrap();
        (d.active_conns, d.inact_conns)
    }
}

fn arp_frame(op: u16, sender: (MacAddr, Ipv4Addr), target: (MacAddr, Ipv4Addr)) -> Vec<u8> {
    let mut buf = vec![0u8; arp::FRAME_LEN];
    arp::write_frame(&mut buf, op, sender, target);
    buf
}

fn tcp_frame(
    macs: (MacAddr, MacAddr),
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    tcp_flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(macs.0 .0, macs.1 .0)
        .ipv4(src.0.octets(), dst.0.octets(), 64)
        .tcp(src.1, dst.1, 1000, 64240);
    if tcp_flags & SYN != 0 {
        b = b.syn();
    }
    if tcp_flags & ACK != 0 {
        b = b.ack(1);
    }
    if tcp_flags & FIN != 0 {
        b = b.fin();
    }
    if tcp_flags & RST != 0 {
        b = b.rst();
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

fn udp_frame(
    macs: (MacAddr, MacAddr),
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(macs.0 .0, macs.1 .0)
        .ipv4(src.0.octets(), dst.0.octets(), 64)
        .udp(src.1, dst.1);
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

/// Client → VIP frame as the client sends it (stage 1).
fn from_client(sport: u16, tcp_flags: u8) -> Vec<u8> {
    tcp_frame(
        (CLIENT_MAC, VIP_MAC),
        (CLIENT, sport),
        (VIP, 80),
        tcp_flags,
        b"",
    )
}

/// RS → client frame as a real server sends it to its gateway, the DIP (stage 3).
fn from_rs(rs: Ipv4Addr, rs_mac: MacAddr, cport: u16, tcp_flags: u8) -> Vec<u8> {
    tcp_frame((rs_mac, DIP_MAC), (rs, 80), (CLIENT, cport), tcp_flags, b"")
}

/// What a frame says: MACs, addresses, ports, and whether every checksum is right.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    dst_mac: MacAddr,
    src_mac: MacAddr,
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    ttl: u8,
    checksums_ok: bool,
}

fn seen(frame: &[u8]) -> Seen {
    let p = SlicedPacket::from_ethernet(frame).unwrap();
    let mac = |at: usize| MacAddr(frame[at..at + 6].try_into().unwrap());
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!("not ipv4")
    };
    let ip_header = ip.header().to_header();
    let (sport, dport, l4_ok) = match &p.transport {
        Some(TransportSlice::Tcp(t)) => (
            t.source_port(),
            t.destination_port(),
            t.checksum()
                == t.to_header()
                    .calc_checksum_ipv4(&ip_header, t.payload())
                    .unwrap(),
        ),
        Some(TransportSlice::Udp(u)) => (
            u.source_port(),
            u.destination_port(),
            u.checksum()
                == u.to_header()
                    .calc_checksum_ipv4(&ip_header, u.payload())
                    .unwrap(),
        ),
        other => panic!("no transport: {other:?}"),
    };
    Seen {
        dst_mac: mac(0),
        src_mac: mac(6),
        src: (Ipv4Addr::from(ip_header.source), sport),
        dst: (Ipv4Addr::from(ip_header.destination), dport),
        ttl: ip_header.time_to_live,
        checksums_ok: l4_ok && ip_header.header_checksum == ip_header.calc_header_checksum(),
    }
}

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
    assert_eq!(lab.director.neighbours.peek(CLIENT), Some(CLIENT_MAC));
    // ARP for another address (the host's own) is left to the host.
    let mut other = arp_frame(
        arp::OP_REQUEST,
        (CLIENT_MAC, CLIENT),
        (MacAddr::ZERO, Ipv4Addr::new(192, 168, 0, 99)),
    );
    assert_eq!(lab.handle(Side::Vip, &mut other), Verdict::NotOurs);
}

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
    // kernel-observed/a.txt: PICKS a-rr: 9 7 9 7 9 7
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
    assert_eq!(lab.director.housekeeping(lab.now, &mut |_, _| {}), 0);
    lab.advance(1);
    assert_eq!(lab.director.housekeeping(lab.now, &mut |_, _| {}), 1);
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
    // kernel-observed/a.txt: -E -s wrr, -e .7 -w 3 -> PICKS a-wrr: 9 7 7 7 9 7 7 7
    let mut lab = Lab::seed();
    let svc = http(Protocol::Tcp, 80);
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
    let mut lab = Lab::one_server(None, http(Protocol::Tcp, 8021), 80, true);
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
    let mut lab = Lab::one_server(None, http(Protocol::Udp, 7), 7, true);
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
fn unknown_real_server_mac_queues_the_frame_and_probes() {
    let mut lab = Lab::one_server(None, http(Protocol::Tcp, 80), 80, false);
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
fn a_queued_frame_whose_next_hop_never_answers_is_dropped_and_counted() {
    let mut lab = Lab::one_server(None, http(Protocol::Tcp, 80), 80, false);
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
fn no_destination_sends_port_unreachable() {
    let mut lab = Lab::empty(None);
    lab.ctl()
        .add_service(http(Protocol::Tcp, 80), rr())
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
    let svc = http(Protocol::Tcp, 80);
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
fn routed_clients_go_through_the_vip_gateway() {
    let mut lab = Lab::one_server(Some(GATEWAY), http(Protocol::Tcp, 80), 80, true);
    let mut probes = Vec::new();
    lab.director
        .housekeeping(lab.now, &mut |side, f| probes.push((side, f.to_vec())));
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
fn housekeeping_probes_real_servers_before_traffic_needs_them() {
    let lab = Lab::one_server(None, http(Protocol::Tcp, 80), 80, false);
    lab.ctl()
        .add_dest(http(Protocol::Tcp, 80), rs(RS2, 80), masq(1))
        .unwrap();
    let mut targets = Vec::new();
    lab.director.housekeeping(lab.now, &mut |side, f| {
        assert_eq!(side, Side::Dip);
        targets.push(arp::ArpPacket::new_checked(&f[14..]).unwrap().target_ip());
    });
    targets.sort();
    assert_eq!(targets, vec![RS1, RS2]);
}

#[test]
fn control_errors_are_the_kernels() {
    use crate::control::ControlError;
    let lab = Lab::seed();
    let svc = http(Protocol::Tcp, 80);
    let ctl = lab.ctl();
    assert_eq!(
        ctl.add_service(svc, ServiceParams::default()),
        Err(ControlError::Exists)
    );
    assert_eq!(
        ctl.add_service(
            http(Protocol::Tcp, 81),
            ServiceParams {
                scheduler: "nosuch".into(),
                ..Default::default()
            }
        ),
        Err(ControlError::NotFound)
    );
    assert_eq!(
        ctl.add_dest(svc, rs(RS1, 80), masq(1)),
        Err(ControlError::Exists)
    );
    assert_eq!(
        ctl.edit_dest(svc, rs(Ipv4Addr::new(192, 168, 100, 99), 80), masq(1)),
        Err(ControlError::NotFound)
    );
    assert_eq!(
        ctl.add_dest(http(Protocol::Tcp, 9999), rs(RS1, 80), masq(1)),
        Err(ControlError::NoService)
    );
    assert_eq!(
        ctl.add_dest(
            svc,
            rs(Ipv4Addr::new(192, 168, 100, 11), 80),
            DestParams {
                u_threshold: 1,
                l_threshold: 5,
                ..masq(1)
            }
        ),
        Err(ControlError::OutOfRange)
    );
    assert_eq!(
        ctl.add_dest(svc, rs(Ipv4Addr::new(224, 0, 0, 1), 80), masq(1)),
        Err(ControlError::Invalid)
    );
    assert_eq!(
        ctl.delete_service(http(Protocol::Tcp, 9999)),
        Err(ControlError::NoService)
    );
    // Destinations are listed newest first (kernel list order).
    let order: Vec<_> = ctl.services()[0].dests.iter().map(|d| d.key.addr).collect();
    assert_eq!(order, vec![IpAddr::V4(RS2), IpAddr::V4(RS1)]);
}

#[test]
fn persistence_keeps_a_client_on_one_server_even_when_quiesced() {
    let mut lab = Lab::seed();
    let svc = http(Protocol::Tcp, 80);
    lab.ctl()
        .edit_service(
            svc,
            ServiceParams {
                scheduler: "rr".into(),
                persistent: Some(60),
                ..ServiceParams::default()
            },
        )
        .unwrap();
    let pick = |lab: &mut Lab, sport: u16| {
        let mut syn = from_client(sport, SYN);
        assert_eq!(lab.handle(Side::Vip, &mut syn), Verdict::Forward(Side::Dip));
        seen(&syn).dst.0
    };
    let first = pick(&mut lab, 30000);
    for sport in 30001..30020 {
        assert_eq!(
            pick(&mut lab, sport),
            first,
            "persistence broken at {sport}"
        );
    }
    let views = lab.ctl().services();
    let persist: u32 = views[0].dests.iter().map(|d| d.persist_conns).sum();
    assert_eq!(persist, 1, "one template");
    let templates: Vec<_> = lab
        .ctl()
        .connections()
        .into_iter()
        .filter(|c| c.template)
        .collect();
    assert_eq!(templates.len(), 1);
    assert_eq!(templates[0].client, (IpAddr::V4(CLIENT), 0));
    assert_eq!(templates[0].state, "NONE");
    // Quiescing the server does not break persistence (expire_quiescent_template=0).
    let first_key = rs(first, 80);
    lab.ctl().edit_dest(svc, first_key, masq(0)).unwrap();
    assert_eq!(pick(&mut lab, 30100), first);
    // Deleting it does: the template is invalid and the client is scheduled afresh.
    lab.ctl().delete_dest(svc, first_key).unwrap();
    assert_ne!(pick(&mut lab, 30200), first);
}

#[test]
fn a_template_outlives_its_timeout_while_it_controls_connections() {
    let mut lab = Lab::seed();
    let svc = http(Protocol::Tcp, 80);
    lab.ctl()
        .edit_service(
            svc,
            ServiceParams {
                scheduler: "rr".into(),
                persistent: Some(10),
                ..ServiceParams::default()
            },
        )
        .unwrap();
    let mut syn = from_client(30000, SYN);
    lab.handle(Side::Vip, &mut syn);
    let mut ack = from_client(30000, ACK);
    lab.handle(Side::Vip, &mut ack);
    lab.advance(11);
    lab.director.housekeeping(lab.now, &mut |_, _| {});
    assert_eq!(
        lab.director.templates.len(),
        1,
        "re-armed: an ESTABLISHED conn uses it"
    );
    lab.advance(901);
    lab.director.housekeeping(lab.now, &mut |_, _| {});
    assert_eq!(lab.director.connection_count(), 0);
    lab.advance(61);
    lab.director.housekeeping(lab.now, &mut |_, _| {});
    assert!(lab.director.templates.is_empty());
    let persist: u32 = lab.ctl().services()[0]
        .dests
        .iter()
        .map(|d| d.persist_conns)
        .sum();
    assert_eq!(persist, 0);
}

/// An ICMP error from `src` to `dst` quoting `quoted` (an IP packet as it was sent).
fn icmp_error_frame(macs: (MacAddr, MacAddr), src: Ipv4Addr, quoted: &[u8], code: u8) -> Vec<u8> {
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
fn a_trace_shows_the_four_stages_the_choice_and_the_states() {
    use crate::trace::{TraceFilter, TraceKind};
    let mut lab = Lab::seed();
    let sub = lab.director.trace.subscribe(TraceFilter::default(), 64);
    let mut syn = from_client(40000, SYN);
    lab.handle(Side::Vip, &mut syn);
    let mut syn_ack = from_rs(RS2, RS2_MAC, 40000, SYN | ACK);
    lab.handle(Side::Dip, &mut syn_ack);
    let mut ack = from_client(40000, ACK);
    lab.handle(Side::Vip, &mut ack);
    let mut stray = from_client(40001, ACK);
    lab.handle(Side::Vip, &mut stray);
    let events: Vec<_> = sub.events.try_iter().map(|e| e.kind).collect();
    let stages: Vec<(u8, Ipv4Addr, Ipv4Addr)> = events
        .iter()
        .filter_map(|k| match k {
            TraceKind::Stage(s, v) => Some((*s as u8, *v.src.ip(), *v.dst.ip())),
            _ => None,
        })
        .collect();
    assert_eq!(
        stages,
        vec![
            (1, CLIENT, VIP),
            (2, CLIENT, RS2),
            (3, RS2, CLIENT),
            (4, VIP, CLIENT),
        ],
        "only the first packet each way, by default"
    );
    assert!(events.iter().any(|k| matches!(
        k,
        TraceKind::Scheduled(c) if c.scheduler == "rr" && *c.dest.ip() == RS2 && c.candidates == 2
    )));
    let states: Vec<_> = events
        .iter()
        .filter_map(|k| match k {
            TraceKind::StateChange { from, to } => Some((from.name(), to.name())),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        vec![("NONE", "SYN_RECV"), ("SYN_RECV", "ESTABLISHED")]
    );
    assert!(events.iter().any(|k| matches!(
        k,
        TraceKind::Dropped {
            reason: DropReason::TcpNotSyn,
            ..
        }
    )));
}

/// Splits an Ethernet+IPv4 frame into fragments of at most `chunk` payload bytes (a
/// multiple of 8), as a sender's IP layer would.
fn fragment(frame: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    let (eth, ip) = frame.split_at(14);
    let (header, payload) = ip.split_at(20);
    let chunks: Vec<&[u8]> = payload.chunks(chunk).collect();
    chunks
        .iter()
        .enumerate()
        .map(|(i, data)| {
            let mut f = eth.to_vec();
            let mut h = header.to_vec();
            h[2..4].copy_from_slice(&((20 + data.len()) as u16).to_be_bytes());
            let more = if i + 1 < chunks.len() { 0x2000 } else { 0 };
            let flags_offset = more | (i * chunk / 8) as u16;
            h[6..8].copy_from_slice(&flags_offset.to_be_bytes());
            f.extend_from_slice(&h);
            f.extend_from_slice(data);
            masq_wire::ipv4::Ipv4Packet::new_checked(&mut f[14..])
                .unwrap()
                .fill_checksum();
            f
        })
        .collect()
}

#[test]
fn a_fragmented_udp_datagram_is_forwarded_fragment_by_fragment() {
    let mut lab = Lab::one_server(None, http(Protocol::Udp, 7), 7, true);
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
fn a_syn_flood_fills_the_table_only_to_its_bound_and_sheds_half_open_entries() {
    let mut lab = Lab::bounded(100);
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
    let mut lab = Lab::bounded(3);
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

#[test]
fn a_burst_of_syns_is_not_a_wrong_gateway_but_lasting_silence_is() {
    use crate::diagnose::Finding;
    let mut lab = Lab::one_server(None, http(Protocol::Tcp, 80), 80, true);
    let no_replies = |lab: &Lab| {
        lab.director
            .diagnose(lab.now)
            .iter()
            .any(|f| matches!(f, Finding::NoReplies { .. }))
    };
    // A busy moment: 32 SYNs in flight before the first SYN+ACK comes back.
    for port in 0..32 {
        lab.handle(Side::Vip, &mut from_client(30000 + port, SYN));
    }
    assert!(!no_replies(&lab), "SYNs in flight are not silence");
    lab.handle(Side::Dip, &mut from_rs(RS1, RS1_MAC, 30000, SYN | ACK));
    lab.advance(2);
    assert!(!no_replies(&lab), "the server answered");
    // Now it stops answering for good.
    for port in 100..103 {
        lab.handle(Side::Vip, &mut from_client(30000 + port, SYN));
    }
    assert!(!no_replies(&lab));
    lab.advance(2);
    let findings = lab.director.diagnose(lab.now);
    assert!(
        findings.iter().any(|f| f.problem()
            == "RS 192.168.100.7 received 3 SYNs but never answered through 192.168.100.10: is its default gateway the DIP?"),
        "{findings:?}"
    );
}

#[test]
fn under_pressure_a_client_alone_cannot_establish_an_entry() {
    let mut lab = Lab::bounded(8);
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

#[test]
fn forwarded_services_and_real_servers_leave_out_what_is_not_forwarded() {
    let lab = Lab::seed();
    let ctl = lab.ctl();
    // RS1 again, on another port of another service: one address.
    ctl.add_service(http(Protocol::Udp, 53), rr()).unwrap();
    ctl.add_dest(http(Protocol::Udp, 53), rs(RS1, 53), masq(1))
        .unwrap();
    ctl.add_service(http(Protocol::Tcp, 0), rr()).unwrap();
    // Not forwarded: SCTP, fwmark, IPv6.
    ctl.add_service(http(Protocol::Sctp, 80), rr()).unwrap();
    let fwmark = ServiceKey::Fwmark {
        mark: 1,
        family: Family::Inet,
    };
    ctl.add_service(fwmark, rr()).unwrap();
    let v6 = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        port: 80,
    };
    ctl.add_service(v6, rr()).unwrap();
    let other_rs = Ipv4Addr::new(192, 168, 100, 20);
    ctl.add_dest(fwmark, rs(other_rs, 80), masq(1)).unwrap();

    let table = lab.director.services();
    assert_eq!(
        table.forwarded_services(),
        [
            (Protocol::Tcp, VIP, 0),
            (Protocol::Tcp, VIP, 80),
            (Protocol::Udp, VIP, 53),
        ]
    );
    // Real servers of every service, the fwmark one's included, each once, sorted.
    assert_eq!(table.real_server_addrs(), [RS1, RS2, other_rs]);
}
