//! What the `handle_frame` fuzz targets share: a director set up like the seed lab with
//! connections in flight, fed one input frame, and the checks every frame it sends out must
//! pass (a fuzz "crash" is a panic in masq or one of these checks failing).
//!
//! The director is built afresh for every input, so that a crash replays from its input
//! alone. Its state covers the deep paths: an established TCP connection, a half-open one
//! in a table that is full (so a new SYN sheds it), a UDP connection whose first fragment
//! went through (so later fragments follow it), a persistent service with port mapping,
//! and a trace listener that wants every packet and frame copies.
#![forbid(unsafe_code)]

use std::time::Duration;

use masq_core::control::{Control, Protocol, ServiceParams};
use masq_core::director::DirectorConfig;
use masq_core::testkit::{
    self, masq, rr, rs, service, tcp_frame, udp_frame, Lab, CLIENT, CLIENT_MAC, GATEWAY, RS1, RS2,
    RS2_MAC, VIP, VIP_MAC,
};
use masq_core::trace::{Subscription, TraceFilter};
use masq_core::{FrameMeta, Side, Verdict};
use masq_wire::arp::{self, ArpPacket};
use masq_wire::checksum;
use masq_wire::ethernet::{self, EthernetFrame, MacAddr};
use masq_wire::icmp::{self, IcmpPacket};
use masq_wire::ipv4::{Ipv4Packet, PROTO_ICMP, PROTO_TCP, PROTO_UDP};
use masq_wire::tcp::{flags, TcpSegment};
use masq_wire::udp::UdpDatagram;

/// Client ports of the connections the harness sets up (the seeds use them).
pub const ESTABLISHED_PORT: u16 = 40000;
pub const HALF_OPEN_PORT: u16 = 40001;
pub const UDP_PORT: u16 = 5000;
/// IP identification of the UDP datagram whose first fragment went through.
pub const FRAGMENT_IDENT: u16 = 0x4242;

/// Three entries: the table is full before the input arrives.
const MAX_CONNS: usize = 3;
/// Each side's neighbour table holds this many: a few inputs fill it.
const MAX_NEIGHBOURS: usize = 8;
/// Most frames one input of [`Harness::run_interleaved`] is cut into.
const MAX_RECORDS: usize = 16;

/// The seed lab's director (its VIP-side gateway never resolved: frames for routed
/// clients wait for ARP) and a trace listener.
pub struct Harness {
    lab: Lab,
    _trace: Subscription,
}

/// The first fragment (MF set, offset 0) of a UDP datagram client:5000 → VIP:7 that is
/// 16 bytes longer than what this fragment carries.
pub fn first_udp_fragment() -> Vec<u8> {
    let whole = udp_frame(
        (CLIENT_MAC, VIP_MAC),
        (CLIENT, UDP_PORT),
        (VIP, 7),
        &[0x5a; 32],
    );
    let mut frag = whole[..ethernet::HEADER_LEN + 20 + 24].to_vec();
    let ip = &mut frag[ethernet::HEADER_LEN..];
    ip[2..4].copy_from_slice(&44u16.to_be_bytes());
    ip[4..6].copy_from_slice(&FRAGMENT_IDENT.to_be_bytes());
    ip[6] = 0x20;
    ip[7] = 0;
    testkit::refill_ip_checksum(&mut frag);
    frag
}

impl Harness {
    /// The seed lab in the state described in the module doc.
    pub fn new() -> Harness {
        let mut lab = Lab::with_config(DirectorConfig {
            max_conns: MAX_CONNS,
            max_neighbours: MAX_NEIGHBOURS,
            ..testkit::config(Some(GATEWAY))
        });
        let trace = lab.director.trace.subscribe_with_frames(
            TraceFilter {
                service: None,
                every_packet: true,
            },
            8,
        );
        let persistent = ServiceParams {
            scheduler: "wlc".into(),
            persistent: Some(300),
            ..ServiceParams::default()
        };
        for (svc, params, port) in [
            (service(Protocol::Tcp, 80), rr(), 80),
            (service(Protocol::Udp, 7), rr(), 7),
            (service(Protocol::Tcp, 443), persistent, 8443),
        ] {
            lab.ctl()
                .add_service(svc, params)
                .expect("adding a service");
            for host in [RS1, RS2] {
                lab.ctl()
                    .add_dest(svc, rs(host, port), masq(1))
                    .expect("adding a real server");
            }
        }
        lab.learn_all();
        let mut h = Harness { lab, _trace: trace };
        // rr starts with the newest server: the established connection goes to RS2.
        let to_vip = (CLIENT_MAC, VIP_MAC);
        let from_client =
            |port: u16, tcp_flags: u8| tcp_frame(to_vip, (CLIENT, port), (VIP, 80), tcp_flags, b"");
        h.setup(Side::Vip, &mut from_client(ESTABLISHED_PORT, flags::SYN));
        h.setup(
            Side::Dip,
            &mut testkit::from_rs(RS2, RS2_MAC, ESTABLISHED_PORT, flags::SYN | flags::ACK),
        );
        h.setup(Side::Vip, &mut from_client(ESTABLISHED_PORT, flags::ACK));
        h.setup(Side::Vip, &mut from_client(HALF_OPEN_PORT, flags::SYN));
        h.setup(Side::Vip, &mut first_udp_fragment());
        h.drain();
        h
    }

    fn setup(&mut self, side: Side, frame: &mut [u8]) {
        let verdict = self.lab.handle(side, frame);
        assert!(
            !matches!(verdict, Verdict::Drop(_)),
            "setting up the harness: {verdict:?}"
        );
    }

    /// Takes every frame the director wants sent and checks it.
    fn drain(&mut self) {
        let lab = &mut self.lab;
        while let Some(tx) = lab.worker.poll_transmit(lab.now) {
            check_sent(lab.director.config().side(tx.side).mac, tx.frame);
        }
    }

    /// Feeds `data` as a frame received on `side`: once as a wire delivers it, then once
    /// more as if the host had handed it over with a partial checksum (a retransmission,
    /// to the state the first left). Then time passes (queued frames time out) and
    /// housekeeping runs.
    pub fn run(&mut self, side: Side, data: &[u8]) {
        for partial_checksum in [false, true] {
            let mut frame = data.to_vec();
            let meta = FrameMeta {
                partial_checksum,
                gso: false,
                io: [0xa5; 16],
            };
            let lab = &mut self.lab;
            let verdict = lab.worker.handle_frame(lab.now, side, &mut frame, meta);
            assert_eq!(frame.len(), data.len());
            match verdict {
                Verdict::Forward(to) => {
                    let mac = lab.director.config().side(to).mac;
                    check_forwarded(data, &frame, mac, !partial_checksum);
                }
                Verdict::Encapsulated(_) | Verdict::Queued | Verdict::Drop(_) | Verdict::NotOurs => {}
            }
            self.drain();
        }
        self.lab.now = self.lab.now + Duration::from_secs(4);
        self.drain();
        self.lab.worker.housekeeping(self.lab.now);
        self.drain();
        let director = &self.lab.director;
        director.estimate();
        let totals = director.counters();
        let drops: u64 = totals.drops.iter().map(|(_, n)| n).sum();
        let handled =
            totals.forwarded_in + totals.forwarded_out + totals.queued + totals.not_ours + drops;
        // Setup frames and the two deliveries of the input, each counted once (drops of
        // queued frames that timed out come on top).
        assert!(handled >= 10, "frames went uncounted: {totals:?}");
        let _ = director.control(self.lab.now).connections();
    }
}

impl Harness {
    /// Feeds `data` as a sequence of frames on both sides, interleaved: each record is a
    /// byte whose low bit picks the side (0: VIP, 1: DIP), a little-endian length, and that
    /// many bytes of frame (fewer if the input ends). After every frame the tables are
    /// within their bounds, and no frame changed the other side's neighbour table: a MAC
    /// once known there stays the same.
    pub fn run_interleaved(&mut self, mut data: &[u8]) {
        for _ in 0..MAX_RECORDS {
            let [tag, lo, hi, rest @ ..] = data else {
                break;
            };
            let side = if tag & 1 == 0 { Side::Vip } else { Side::Dip };
            let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(rest.len());
            let (frame, tail) = rest.split_at(len);
            data = tail;
            let other = match side {
                Side::Vip => Side::Dip,
                Side::Dip => Side::Vip,
            };
            let before = self
                .lab
                .director
                .neighbour_table(other)
                .list(other, self.lab.now);
            let mut frame = frame.to_vec();
            let lab = &mut self.lab;
            lab.worker
                .handle_frame(lab.now, side, &mut frame, FrameMeta::default());
            self.drain();
            // Before any time passes (expiry may then forget and re-probe an entry).
            let after = self
                .lab
                .director
                .neighbour_table(other)
                .list(other, self.lab.now);
            for old in before.iter().filter(|n| n.mac.is_some()) {
                if let Some(now) = after.iter().find(|n| n.addr == old.addr) {
                    assert_eq!(
                        now.mac, old.mac,
                        "a frame on the {side:?} side moved {} on the {other:?} side",
                        old.addr
                    );
                }
            }
            if tag & 2 != 0 {
                // Time passes now and then, so entries age, expire and are re-probed.
                self.lab.now = self.lab.now + Duration::from_secs(u64::from(tag >> 2));
                self.lab.worker.housekeeping(self.lab.now);
                self.drain();
            }
            let director = &self.lab.director;
            for s in [Side::Vip, Side::Dip] {
                let table = director.neighbour_table(s);
                assert!(
                    table.len() <= MAX_NEIGHBOURS,
                    "{s:?}: {} neighbours",
                    table.len()
                );
            }
            assert!(
                director.entry_count() <= MAX_CONNS,
                "{} entries for --max-conns {MAX_CONNS}",
                director.entry_count()
            );
            assert!(director.fragment_count() <= masq_core::frag::MAX_ENTRIES);
        }
    }
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
    }
}

/// Whether the TCP or UDP checksum of `ip`'s payload is right (`None`: not TCP/UDP, a
/// fragment, or no UDP checksum).
fn l4_checksum_ok(ip: &Ipv4Packet<&[u8]>) -> Option<bool> {
    if ip.is_fragment() {
        return None;
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
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
    let sum = checksum::pseudo_header_sum(src, dst, ip.protocol(), len);
    Some(checksum::fold(checksum::accumulate(sum, data)) == 0xffff)
}

/// A frame the director forwarded (rewritten in place from `input`) must be well formed:
/// from our MAC, a valid IPv4 header with a right checksum and one hop less, whole L4
/// headers, and the L4 checksum still right if it was right (`full`: not a partial one).
pub fn check_forwarded(input: &[u8], output: &[u8], our_mac: MacAddr, full: bool) {
    let eth = EthernetFrame::new_checked(output).expect("a forwarded frame has an Ethernet header");
    assert_eq!(eth.src_addr(), our_mac, "forwarded from our MAC");
    if eth.ethertype() == ethernet::ETHERTYPE_ARP {
        let reply = ArpPacket::new_checked(eth.payload()).expect("a whole ARP packet");
        assert_eq!(reply.operation(), arp::OP_REPLY);
        return;
    }
    assert_eq!(
        eth.ethertype(),
        ethernet::ETHERTYPE_IPV4,
        "only IPv4 is forwarded"
    );
    let before = Ipv4Packet::new_checked(&input[ethernet::HEADER_LEN..])
        .expect("only a valid IPv4 packet is forwarded");
    assert!(
        before.verify_checksum(),
        "forwarded despite a bad IP checksum"
    );
    let ip = Ipv4Packet::new_checked(eth.payload()).expect("forwarded IPv4 still parses");
    assert!(ip.verify_checksum(), "forwarded with a wrong IP checksum");
    assert_eq!(ip.ttl(), before.ttl() - 1, "one hop less");
    assert_eq!(ip.total_len(), before.total_len());
    assert_eq!(
        ip.header()[20..],
        before.header()[20..],
        "options untouched"
    );
    let first = ip.frag_offset() == 0;
    match ip.protocol() {
        PROTO_TCP if first => {
            TcpSegment::new_checked(ip.payload()).expect("a whole TCP header");
        }
        PROTO_UDP if first => assert!(ip.payload().len() >= 8, "a whole UDP header"),
        PROTO_ICMP => {
            let msg = IcmpPacket::new_checked(ip.payload()).expect("a whole ICMP header");
            assert!(msg.is_error(), "only ICMP errors are forwarded");
            assert!(
                msg.verify_checksum(),
                "forwarded ICMP with a wrong checksum"
            );
            icmp::quoted_flow(ip.payload()).expect("the quote still parses");
        }
        _ => {}
    }
    if full && l4_checksum_ok(&before) == Some(true) {
        assert_eq!(
            l4_checksum_ok(&ip),
            Some(true),
            "the rewrite broke a right L4 checksum"
        );
    }
}

/// A frame the director generated or released from its ARP queue must be well formed.
pub fn check_sent(our_mac: MacAddr, frame: &[u8]) {
    let eth = EthernetFrame::new_checked(frame).expect("a sent frame has an Ethernet header");
    assert_eq!(eth.src_addr(), our_mac, "sent from our MAC");
    match eth.ethertype() {
        ethernet::ETHERTYPE_ARP => {
            ArpPacket::new_checked(eth.payload()).expect("a whole ARP packet");
        }
        ethernet::ETHERTYPE_IPV4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).expect("sent IPv4 parses");
            assert!(ip.verify_checksum(), "sent with a wrong IP checksum");
            if ip.protocol() == PROTO_ICMP {
                let msg = IcmpPacket::new_checked(ip.payload()).expect("a whole ICMP header");
                assert!(msg.verify_checksum(), "sent ICMP with a wrong checksum");
            }
        }
        other => panic!("sent a frame of EtherType {other:#06x}"),
    }
}
