//! Hostile frames fed straight to the sans-IO director (issue #7), without root: what
//! `tests/hostile_frames/` sends through a running masqd, plus what no Linux interface
//! can carry (frames shorter than an Ethernet header: AF_PACKET refuses to send them) and
//! every truncation of real frames. Each frame must get the expected verdict, counted under
//! its reason; whatever is forwarded or generated must be well formed.

use etherparse::PacketBuilder;
use masq::core::control::{Control, Protocol};
use masq::core::director::DirectorConfig;
use masq::core::testkit::{
    self, from_client, masq, refill_ip_checksum, rr, rs, service, Lab, CLIENT, CLIENT_MAC, DIP,
    RS1, RS1_MAC, VIP, VIP_MAC,
};
use masq::core::{DropReason, Side, Verdict};
use masq::wire::arp;
use masq::wire::ethernet::MacAddr;
use masq::wire::icmp;
use masq::wire::ipv4::Ipv4Packet;

/// The client port of the connection the lab has open.
const OPEN: u16 = 40000;

/// The seed lab's director with `-A -t VIP:80 -s rr`, `-A -u VIP:7 -s rr`, RS1 behind both,
/// neighbours learnt and one TCP connection from the client established.
fn lab() -> Lab {
    let mut lab = Lab::with_config(DirectorConfig {
        max_conns: 1024,
        ..testkit::config(None)
    });
    for (protocol, port) in [(Protocol::Tcp, 80), (Protocol::Udp, 7)] {
        let svc = service(protocol, port);
        lab.ctl().add_service(svc, rr()).expect("adding a service");
        lab.ctl()
            .add_dest(svc, rs(RS1, port), masq(1))
            .expect("adding RS1");
    }
    lab.learn_all();
    for (side, mut frame) in [
        (Side::Vip, syn(OPEN)),
        (Side::Dip, from_rs(0x12)),
        (Side::Vip, tcp(OPEN, 0x10, 64)),
    ] {
        assert!(matches!(lab.handle(side, &mut frame), Verdict::Forward(_)));
    }
    lab.drain();
    lab
}

/// What the tests read off the lab besides verdicts.
trait Outcome {
    /// The frames the director generated, each checked well formed.
    fn drain(&mut self) -> Vec<Vec<u8>>;
    /// Drops counted for `reason`.
    fn drops(&self, reason: DropReason) -> u64;
}

impl Outcome for Lab {
    fn drain(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for (_, frame) in self.transmitted() {
            if frame[12..14] == [0x08, 0x00] {
                let ip = Ipv4Packet::new_checked(&frame[14..]).expect("generated IPv4 parses");
                assert!(ip.verify_checksum(), "generated with a bad IP checksum");
                if ip.protocol() == 1 {
                    let msg = icmp::IcmpPacket::new_checked(ip.payload()).expect("whole ICMP");
                    assert!(msg.verify_checksum(), "generated ICMP with a bad checksum");
                }
            }
            out.push(frame);
        }
        out
    }

    fn drops(&self, reason: DropReason) -> u64 {
        self.director.counters().drops(reason)
    }
}

/// A client → VIP:80 TCP segment with `flags` and `ttl`.
fn tcp(sport: u16, flags: u8, ttl: u8) -> Vec<u8> {
    let mut frame = from_client(sport, flags);
    frame[14 + 8] = ttl;
    refill_ip_checksum(&mut frame);
    frame
}

fn syn(sport: u16) -> Vec<u8> {
    tcp(sport, 0x02, 64)
}

/// RS1:80 → client:OPEN with `flags`.
fn from_rs(flags: u8) -> Vec<u8> {
    testkit::from_rs(RS1, RS1_MAC, OPEN, flags)
}

/// An ICMP error from the client to the VIP quoting `quote`.
fn icmp_error(quote: &[u8]) -> Vec<u8> {
    let mut body = vec![3, 1, 0, 0, 0, 0, 0, 0];
    body.extend_from_slice(quote);
    icmp::fill_checksum(&mut body);
    let mut out = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC.0, VIP_MAC.0)
        .ipv4(CLIENT.octets(), VIP.octets(), 64)
        .write(&mut out, etherparse::IpNumber::ICMP, &body)
        .expect("building an ICMP error");
    out
}

/// The packet masqd sent the client on the open connection, as the client quotes it.
fn quote_of_open() -> Vec<u8> {
    let mut b = Vec::new();
    PacketBuilder::ipv4(VIP.octets(), CLIENT.octets(), 63)
        .tcp(80, OPEN, 1000, 64240)
        .write(&mut b, b"")
        .expect("building a quote");
    b.truncate(28);
    b
}

fn patched(mut frame: Vec<u8>, at: usize, bytes: &[u8], fix_ip_checksum: bool) -> Vec<u8> {
    frame[at..at + bytes.len()].copy_from_slice(bytes);
    if fix_ip_checksum {
        refill_ip_checksum(&mut frame);
    }
    frame
}

#[test]
fn frames_shorter_than_an_ethernet_header_are_malformed_on_both_sides() {
    let mut lab = lab();
    let whole = syn(41000);
    for side in [Side::Vip, Side::Dip] {
        for len in 0..14 {
            let mut frame = whole[..len].to_vec();
            assert_eq!(
                lab.handle(side, &mut frame),
                Verdict::Drop(DropReason::Malformed),
                "{len} bytes on the {side:?} side"
            );
        }
    }
    assert_eq!(lab.drops(DropReason::Malformed), 28);
    assert!(lab.drain().is_empty());
}

#[test]
fn a_real_frame_cut_anywhere_is_dropped_as_malformed() {
    let mut lab = lab();
    let arp_request = {
        let mut b = vec![0u8; arp::FRAME_LEN];
        arp::write_frame(
            &mut b,
            arp::OP_REQUEST,
            (CLIENT_MAC, CLIENT),
            (MacAddr::ZERO, VIP),
        );
        b.truncate(14 + arp::PACKET_LEN);
        b
    };
    let cases = [
        (Side::Vip, "SYN to the VIP", syn(41001)),
        (
            Side::Vip,
            "segment of the open connection",
            tcp(OPEN, 0x10, 64),
        ),
        (
            Side::Vip,
            "ICMP error about it",
            icmp_error(&quote_of_open()),
        ),
        (Side::Vip, "ARP request for the VIP", arp_request),
        (Side::Dip, "segment from the real server", from_rs(0x10)),
    ];
    let mut expected = 0;
    for (side, what, whole) in cases {
        for len in 0..whole.len() {
            let mut frame = whole[..len].to_vec();
            assert_eq!(
                lab.handle(side, &mut frame),
                Verdict::Drop(DropReason::Malformed),
                "{what} cut to {len} of {} bytes",
                whole.len()
            );
            expected += 1;
        }
    }
    assert_eq!(lab.drops(DropReason::Malformed), expected);
    assert!(lab.drain().is_empty(), "nothing generated for cut frames");
}

#[test]
fn each_hostile_kind_gets_its_verdict() {
    use DropReason::*;
    let malformed = Verdict::Drop(Malformed);
    let mut tiny_first = syn(41020);
    tiny_first.truncate(14 + 20 + 8);
    let tiny_first = patched(tiny_first, 14 + 2, &[0, 28, 0, 0, 0x20, 0], true);
    let mut icmp_fragment = icmp_error(&quote_of_open());
    icmp_fragment[14 + 6] = 0x20;
    refill_ip_checksum(&mut icmp_fragment);
    let mut bad_icmp_sum = icmp_error(&quote_of_open());
    bad_icmp_sum[14 + 20 + 2] ^= 0xff;
    let mut not_ipv4 = quote_of_open();
    not_ipv4[0] = 0x60;
    let cases: Vec<(&str, Side, Vec<u8>, Verdict)> = vec![
        (
            "IHL below 5",
            Side::Vip,
            patched(syn(41010), 14, &[0x44], true),
            malformed,
        ),
        (
            "IHL beyond the total length",
            Side::Vip,
            patched(syn(41011), 14, &[0x4f], true),
            malformed,
        ),
        (
            "total length beyond the frame",
            Side::Vip,
            patched(syn(41012), 16, &[0, 140], true),
            malformed,
        ),
        (
            "total length cutting the TCP header",
            Side::Vip,
            patched(syn(41013), 16, &[0, 30], true),
            malformed,
        ),
        (
            "bad IP checksum",
            Side::Vip,
            patched(syn(41014), 24, &[0xde, 0xad], false),
            Verdict::Drop(BadIpChecksum),
        ),
        (
            "TCP data offset below 5",
            Side::Vip,
            patched(syn(41015), 46, &[0x40], false),
            malformed,
        ),
        (
            "TCP data offset beyond the segment",
            Side::Vip,
            patched(syn(41016), 46, &[0xf0], false),
            malformed,
        ),
        (
            "TCP without flags",
            Side::Vip,
            tcp(41017, 0, 64),
            Verdict::Drop(TcpNotSyn),
        ),
        (
            "later fragment whose first was never seen",
            Side::Vip,
            patched(syn(41018), 20, &[0x00, 0x08], true),
            Verdict::Drop(Fragment),
        ),
        (
            "first fragment with 8 bytes of TCP header",
            Side::Vip,
            tiny_first,
            malformed,
        ),
        (
            "fragment of an ICMP error",
            Side::Vip,
            icmp_fragment,
            Verdict::Drop(Fragment),
        ),
        (
            "ICMP error with a bad checksum",
            Side::Vip,
            bad_icmp_sum,
            Verdict::Drop(BadIcmpChecksum),
        ),
        (
            "ICMP error quoting garbage",
            Side::Vip,
            icmp_error(b"\x45\x00garbage"),
            malformed,
        ),
        (
            "ICMP error quoting something not IPv4",
            Side::Vip,
            icmp_error(&not_ipv4),
            malformed,
        ),
        (
            "Ethernet header only, from a real server",
            Side::Dip,
            from_rs(0x10)[..14].to_vec(),
            malformed,
        ),
        (
            "bad IP checksum, from a real server",
            Side::Dip,
            patched(from_rs(0x10), 24, &[0xde, 0xad], false),
            Verdict::Drop(BadIpChecksum),
        ),
    ];
    for (what, side, mut frame, want) in cases {
        let mut lab = lab();
        assert_eq!(lab.handle(side, &mut frame), want, "{what}");
        if let Verdict::Drop(reason) = want {
            assert_eq!(lab.drops(reason), 1, "{what}: counted once");
        }
        assert!(lab.drain().is_empty(), "{what}: nothing generated");
    }
}

#[test]
fn ttl_one_on_either_side_gets_time_exceeded_from_the_director() {
    for (side, mut frame, from, to) in [
        (Side::Vip, tcp(41030, 0x02, 1), VIP, CLIENT),
        (Side::Vip, tcp(OPEN, 0x10, 1), VIP, CLIENT),
        (Side::Dip, patched(from_rs(0x10), 22, &[1], true), DIP, RS1),
    ] {
        let mut lab = lab();
        let sent = frame.clone();
        assert_eq!(
            lab.handle(side, &mut frame),
            Verdict::Drop(DropReason::TtlExpired)
        );
        assert_eq!(frame, sent, "the dropped frame is left as it came");
        let out = lab.drain();
        assert_eq!(out.len(), 1, "one ICMP time exceeded");
        let ip = Ipv4Packet::new_checked(&out[0][14..]).expect("IPv4");
        assert_eq!((ip.src_addr(), ip.dst_addr()), (from, to));
        assert_eq!(&ip.payload()[..2], &[11, 0], "time exceeded in transit");
        let quoted = icmp::quoted_flow(ip.payload()).expect("quotes the packet");
        let original = Ipv4Packet::new_checked(&sent[14..]).expect("IPv4");
        assert_eq!(
            (quoted.src, quoted.dst),
            (original.src_addr(), original.dst_addr())
        );
    }
}

#[test]
fn syn_fin_is_dropped_and_bad_l4_checksums_pass_through_as_kernel_ipvs_passes_them() {
    // SYN+FIN is never a real segment: masq drops it (kernel IPVS would pass it on). Kernel
    // IPVS updates L4 checksums incrementally without verifying them, and the real server's
    // stack discards a bad one; the director must not "repair" it on the way.
    let mut lab = lab();
    let mut syn_fin = tcp(41040, 0x03, 64);
    assert_eq!(
        lab.handle(Side::Vip, &mut syn_fin),
        Verdict::Drop(DropReason::TcpBadFlags)
    );
    let mut bad = syn(41041);
    bad[14 + 20 + 16] ^= 0x5a;
    assert_eq!(lab.handle(Side::Vip, &mut bad), Verdict::Forward(Side::Dip));
    let ip = Ipv4Packet::new_checked(&bad[14..]).expect("IPv4");
    assert!(ip.verify_checksum());
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&ip.src_addr().octets());
    pseudo.extend_from_slice(&ip.dst_addr().octets());
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(ip.payload().len() as u16).to_be_bytes());
    pseudo.extend_from_slice(ip.payload());
    assert_ne!(
        masq::wire::checksum::checksum(&pseudo),
        0,
        "the bad TCP checksum is still bad"
    );
}

/// The kernel's IP input (`ip_rcv_options`) drops a packet whose options do not parse, and
/// answers with ICMP parameter problem, before IPVS ever sees it. masq reads frames before
/// the kernel's IP input, so it must refuse them itself.
#[test]
fn ip_options_that_do_not_parse_are_not_forwarded() {
    let mut lab = lab();
    // A SYN with 4 bytes of options: a Record Route option whose length (2) is shorter
    // than its own header (3 bytes at least, RFC 791).
    let plain = syn(41050);
    let mut frame = plain[..34].to_vec();
    frame.extend_from_slice(&[7, 2, 4, 0]);
    frame.extend_from_slice(&plain[34..]);
    frame[14] = 0x46;
    frame[16..18].copy_from_slice(&44u16.to_be_bytes());
    refill_ip_checksum(&mut frame);
    assert_eq!(
        lab.handle(Side::Vip, &mut frame),
        Verdict::Drop(DropReason::Malformed),
        "masq gap (issue #7): a malformed IP option is forwarded to the real server"
    );
}
