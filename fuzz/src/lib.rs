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

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use etherparse::PacketBuilder;
use masq_core::control::{
    Control, DestKey, DestParams, FwdMethod, Protocol, ServiceKey, ServiceParams,
};
use masq_core::trace::{Subscription, TraceFilter};
use masq_core::{
    Director, DirectorConfig, FrameMeta, Side, SideConfig, Timestamp, Verdict, Worker,
};
use masq_wire::arp::{self, ArpPacket};
use masq_wire::checksum;
use masq_wire::ethernet::{self, EthernetFrame, MacAddr};
use masq_wire::icmp::{self, IcmpPacket};
use masq_wire::ipv4::{Ipv4Packet, PROTO_ICMP, PROTO_TCP, PROTO_UDP};
use masq_wire::tcp::TcpSegment;
use masq_wire::udp::UdpDatagram;

pub const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 101);
pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 10);
pub const DIP: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 10);
pub const RS1: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 7);
pub const RS2: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 9);
/// The VIP-side gateway, never resolved: frames for routed clients wait for ARP.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 1);

pub const VIP_MAC: MacAddr = MacAddr([2, 0xd1, 0, 0, 0, 1]);
pub const DIP_MAC: MacAddr = MacAddr([2, 0xd1, 0, 0, 0, 2]);
pub const CLIENT_MAC: MacAddr = MacAddr([2, 0xc1, 0, 0, 0, 101]);
pub const RS1_MAC: MacAddr = MacAddr([2, 0x5e, 0, 0, 0, 7]);
pub const RS2_MAC: MacAddr = MacAddr([2, 0x5e, 0, 0, 0, 9]);

/// Client ports of the connections the harness sets up (the seeds use them).
pub const ESTABLISHED_PORT: u16 = 40000;
pub const HALF_OPEN_PORT: u16 = 40001;
pub const UDP_PORT: u16 = 5000;
/// IP identification of the UDP datagram whose first fragment went through.
pub const FRAGMENT_IDENT: u16 = 0x4242;

/// Three entries: the table is full before the input arrives.
const MAX_CONNS: usize = 3;

/// The director, one worker, a fake clock, a trace listener.
pub struct Harness {
    director: Arc<Director>,
    worker: Worker,
    now: Timestamp,
    _trace: Subscription,
}

fn masq(port: u16, addr: Ipv4Addr) -> (DestKey, DestParams) {
    (
        DestKey {
            addr: IpAddr::V4(addr),
            port,
        },
        DestParams {
            fwd: FwdMethod::Masq,
            ..DestParams::default()
        },
    )
}

fn service(protocol: Protocol, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol,
        addr: IpAddr::V4(VIP),
        port,
    }
}

/// An Ethernet frame carrying a TCP segment with `flags` (SYN 0x02, ACK 0x10, ...).
pub fn tcp_frame(
    macs: (MacAddr, MacAddr),
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    flags: u8,
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(macs.0 .0, macs.1 .0)
        .ipv4(src.0.octets(), dst.0.octets(), 64)
        .tcp(src.1, dst.1, 1000, 64240);
    if flags & 0x02 != 0 {
        b = b.syn();
    }
    if flags & 0x10 != 0 {
        b = b.ack(1);
    }
    let mut out = Vec::new();
    b.write(&mut out, b"").expect("building a TCP frame");
    out
}

/// The first fragment (MF set, offset 0) of a UDP datagram client:5000 → VIP:7 that is
/// 16 bytes longer than what this fragment carries.
pub fn first_udp_fragment() -> Vec<u8> {
    let mut whole = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC.0, VIP_MAC.0)
        .ipv4(CLIENT.octets(), VIP.octets(), 64)
        .udp(UDP_PORT, 7)
        .write(&mut whole, &[0x5a; 32])
        .expect("building a UDP frame");
    let mut frag = whole[..ethernet::HEADER_LEN + 20 + 24].to_vec();
    let ip = &mut frag[ethernet::HEADER_LEN..];
    ip[2..4].copy_from_slice(&44u16.to_be_bytes());
    ip[4..6].copy_from_slice(&FRAGMENT_IDENT.to_be_bytes());
    ip[6] = 0x20;
    ip[7] = 0;
    Ipv4Packet::new_checked(&mut ip[..])
        .expect("a valid header")
        .fill_checksum();
    frag
}

impl Harness {
    /// The seed lab in the state described in the module doc.
    pub fn new() -> Harness {
        let director = Director::new(DirectorConfig {
            vip_side: SideConfig {
                mac: VIP_MAC,
                addrs: vec![(VIP, 24)],
            },
            dip_side: SideConfig {
                mac: DIP_MAC,
                addrs: vec![(DIP, 24)],
            },
            vip_gateway: Some(GATEWAY),
            max_conns: MAX_CONNS,
        });
        let trace = director.trace.subscribe_with_frames(
            TraceFilter {
                service: None,
                every_packet: true,
            },
            8,
        );
        let worker = director.worker();
        let mut h = Harness {
            director,
            worker,
            now: Timestamp::from_secs(1000),
            _trace: trace,
        };
        let ctl = h.director.control(h.now);
        let rr = ServiceParams {
            scheduler: "rr".into(),
            ..ServiceParams::default()
        };
        let persistent = ServiceParams {
            scheduler: "wlc".into(),
            persistent: Some(300),
            ..ServiceParams::default()
        };
        for (svc, params, dests) in [
            (
                service(Protocol::Tcp, 80),
                &rr,
                [masq(80, RS1), masq(80, RS2)],
            ),
            (service(Protocol::Udp, 7), &rr, [masq(7, RS1), masq(7, RS2)]),
            (
                service(Protocol::Tcp, 443),
                &persistent,
                [masq(8443, RS1), masq(8443, RS2)],
            ),
        ] {
            ctl.add_service(svc, params.clone())
                .expect("adding a service");
            for (key, p) in dests {
                ctl.add_dest(svc, key, p).expect("adding a real server");
            }
        }
        for (ip, mac) in [(RS1, RS1_MAC), (RS2, RS2_MAC)] {
            let mut reply = vec![0u8; arp::FRAME_LEN];
            arp::write_frame(&mut reply, arp::OP_REPLY, (mac, ip), (DIP_MAC, DIP));
            h.setup(Side::Dip, &mut reply);
        }
        let mut request = vec![0u8; arp::FRAME_LEN];
        arp::write_frame(
            &mut request,
            arp::OP_REQUEST,
            (CLIENT_MAC, CLIENT),
            (MacAddr::ZERO, VIP),
        );
        h.setup(Side::Vip, &mut request);
        // rr starts with the newest server: the established connection goes to RS2.
        let to_vip = (CLIENT_MAC, VIP_MAC);
        h.setup(
            Side::Vip,
            &mut tcp_frame(to_vip, (CLIENT, ESTABLISHED_PORT), (VIP, 80), 0x02),
        );
        h.setup(
            Side::Dip,
            &mut tcp_frame(
                (RS2_MAC, DIP_MAC),
                (RS2, 80),
                (CLIENT, ESTABLISHED_PORT),
                0x12,
            ),
        );
        h.setup(
            Side::Vip,
            &mut tcp_frame(to_vip, (CLIENT, ESTABLISHED_PORT), (VIP, 80), 0x10),
        );
        h.setup(
            Side::Vip,
            &mut tcp_frame(to_vip, (CLIENT, HALF_OPEN_PORT), (VIP, 80), 0x02),
        );
        h.setup(Side::Vip, &mut first_udp_fragment());
        h.drain();
        h
    }

    fn setup(&mut self, side: Side, frame: &mut [u8]) {
        let verdict = self
            .worker
            .handle_frame(self.now, side, frame, FrameMeta::default());
        assert!(
            !matches!(verdict, Verdict::Drop(_)),
            "setting up the harness: {verdict:?}"
        );
    }

    /// Takes every frame the director wants sent and checks it.
    fn drain(&mut self) {
        while let Some(tx) = self.worker.poll_transmit(self.now) {
            check_sent(self.director.config().side(tx.side).mac, tx.frame);
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
            let verdict = self.worker.handle_frame(self.now, side, &mut frame, meta);
            assert_eq!(frame.len(), data.len());
            match verdict {
                Verdict::Forward(to) => {
                    let mac = self.director.config().side(to).mac;
                    check_forwarded(data, &frame, mac, !partial_checksum);
                }
                Verdict::Queued | Verdict::Drop(_) | Verdict::NotOurs => {}
            }
            self.drain();
        }
        self.now = self.now + Duration::from_secs(4);
        self.drain();
        let config = self.director.config().clone();
        self.director.housekeeping(self.now, &mut |side, frame| {
            check_sent(config.side(side).mac, frame)
        });
        self.director.estimate();
        let totals = self.director.counters();
        let drops: u64 = totals.drops.iter().map(|(_, n)| n).sum();
        let handled =
            totals.forwarded_in + totals.forwarded_out + totals.queued + totals.not_ours + drops;
        // Setup frames and the two deliveries of the input, each counted once (drops of
        // queued frames that timed out come on top).
        assert!(handled >= 10, "frames went uncounted: {totals:?}");
        let _ = self.director.control(self.now).connections();
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
