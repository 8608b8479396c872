//! [`PacketSocket`] on the lab's link: frames and batches cross whole and never echo, the
//! kernel finishes checksums and segments, and the host checks see the caller's namespace.

use std::thread;
use std::time::{Duration, Instant};

use super::*;
use crate::host::{ip_forward_enabled, offload_state};
use crate::socket::{PacketType, RecvBatch, SendBatch};

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn frames_cross_the_link_and_never_echo() {
    let lab = Lab::new("cross");
    let a = lab.socket("A");
    let b = lab.socket("B");
    let mut buf = vec![0u8; 65536];

    // A complete frame arrives whole, described as needing no work.
    let full = udp_frame(&lab, 7001, b"complete checksum", Csum::Full);
    a.send(&Offload::NONE, &full).unwrap();
    let got = recv_matching(&b, &mut buf, |f| f == full.as_slice()).expect("frame crossed");
    assert_eq!(got.len, full.len());
    assert_eq!(got.pkttype, PacketType::Host);
    assert!(
        !got.truncated && !got.offload.needs_csum && !got.offload.is_gso(),
        "{got:?}"
    );
    eprintln!("measured: plain frame received with {:?}", got.offload);

    // A partial-checksum frame crosses the veth still partial, with its offsets.
    let part = udp_frame(&lab, 7002, b"partial checksum", Csum::Partial);
    a.send(&partial(6), &part).unwrap();
    let got = recv_matching(&b, &mut buf, |f| f == part.as_slice()).expect("frame crossed");
    assert!(got.offload.needs_csum, "{got:?}");
    assert_eq!((got.offload.csum_start, got.offload.csum_offset), (34, 6));

    // Neither frame comes back on the sending socket.
    let ours = |f: &[u8]| f == full.as_slice() || f == part.as_slice();
    assert!(!sees_within(&a, Duration::from_millis(200), ours));
    eprintln!("measured: PACKET_IGNORE_OUTGOING left {:?}", a.stats());

    // The defensive filter: a socket without PACKET_IGNORE_OUTGOING gets the frames this
    // host sends, and drops them itself.
    let unfiltered = lab.socket_with("A", false);
    let probe = udp_frame(&lab, 7003, b"outgoing probe", Csum::Full);
    a.send(&Offload::NONE, &probe).unwrap();
    assert!(!sees_within(&unfiltered, Duration::from_millis(200), |f| f
        == probe.as_slice()));
    assert!(
        unfiltered.stats().outgoing_skipped >= 1,
        "{:?}",
        unfiltered.stats()
    );

    // A frame over the MTU without GSO is refused, and the error names the call.
    let jumbo = udp_frame(&lab, 7004, &[0u8; 3000], Csum::Full);
    let err = a.send(&Offload::NONE, &jumbo).unwrap_err();
    assert_eq!(
        err.to_string(),
        "sendmsg on va: Message too long (os error 90)"
    );

    // A frame longer than the buffer is reported as truncated, not silently cut.
    let long = udp_frame(&lab, 7005, &[0x5a; 1000], Csum::Full);
    a.send(&Offload::NONE, &long).unwrap();
    let mut short = [0u8; 100];
    let got = recv_matching(&b, &mut short, |f| f == &long[..100]).expect("long frame");
    assert_eq!((got.len, got.truncated), (100, true));

    let stats = b.kernel_stats().unwrap();
    assert!(stats.packets >= 4 && stats.drops == 0, "{stats:?}");
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn batches_cross_the_link_in_order() {
    let lab = Lab::new("batch");
    let a = lab.socket("A");
    let b = lab.socket("B");
    let frames: Vec<Vec<u8>> = (0..20u8)
        .map(|i| {
            udp_frame(
                &lab,
                7100 + u16::from(i),
                &vec![i; 10 + usize::from(i)],
                Csum::Full,
            )
        })
        .collect();
    let mut tx = SendBatch::new(8);
    let sent = a
        .send_batch(
            &mut tx,
            frames.iter().map(|f| (Offload::NONE, f.as_slice())),
        )
        .unwrap();
    assert_eq!(sent, 20);

    let mut rx = RecvBatch::new(8);
    let mut bufs = vec![vec![0u8; 2048]; 16];
    let mut seen = Vec::new();
    let deadline = Instant::now() + WAIT;
    let mut calls = 0;
    while seen.len() < frames.len() && Instant::now() < deadline {
        let n = b
            .recv_batch(&mut rx, &mut bufs, Duration::from_millis(500))
            .unwrap();
        assert!(n <= rx.capacity());
        calls += 1;
        for (got, buf) in rx.received().iter().zip(&bufs) {
            let frame = &buf[..got.len];
            if frames.iter().any(|f| f == frame) {
                seen.push(frame.to_vec());
            }
        }
    }
    assert_eq!(seen, frames, "all frames, in order");
    // 20 frames queued before the first call: recvmmsg takes 8 per call.
    assert!(calls <= 4, "{calls} calls");
    let ours = |f: &[u8]| frames.iter().any(|sent| sent == f);
    assert!(!sees_within(&a, Duration::from_millis(100), ours));

    // A batch mixing frames this host sent with frames it received (on a socket without
    // PACKET_IGNORE_OUTGOING) returns only the received ones, contiguous and in order.
    let unfiltered = lab.socket_with("A", false);
    let mut incoming = Vec::new();
    for i in 0..5u8 {
        let outgoing = udp_frame(&lab, 7200, &[i; 30], Csum::Full);
        a.send(&Offload::NONE, &outgoing).unwrap();
        let frame = udp_frame(&lab, 7300, &[i; 40], Csum::Full);
        b.send(&Offload::NONE, &frame).unwrap();
        incoming.push(frame);
    }
    thread::sleep(Duration::from_millis(100));
    let mut rx = RecvBatch::new(16);
    let n = unfiltered.recv_batch(&mut rx, &mut bufs, WAIT).unwrap();
    let got: Vec<&[u8]> = rx
        .received()
        .iter()
        .zip(&bufs)
        .map(|(r, buf)| &buf[..r.len])
        .collect();
    assert_eq!(n, 5);
    assert_eq!(got, incoming.iter().map(Vec::as_slice).collect::<Vec<_>>());
    assert_eq!(unfiltered.stats().outgoing_skipped, 5);
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn kernel_completes_checksums_and_segments_on_transmit() {
    let lab = Lab::new("csum");
    let a = lab.socket("A");
    let b = lab.socket("B");
    let mut buf = vec![0u8; 65536];

    let defaults = in_ns(&lab.a, || offload_state("va")).unwrap();
    eprintln!("measured: veth defaults {defaults:?}");
    assert!(defaults.tso && defaults.tx_csum && defaults.delivers_super_frames());

    // A super-frame of 4 x 1000 payload bytes, partial checksum, as TSO would hand it over.
    let payload: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
    let superframe = tcp_frame(&lab, 1000, &payload, Csum::Partial);
    let tso = Offload {
        gso_type: GsoType::TcpV4,
        gso_size: 1000,
        hdr_len: 54,
        ..partial(16)
    };

    // With TSO on, veth passes the super-frame through whole.
    a.send(&tso, &superframe).unwrap();
    let got = recv_matching(&b, &mut buf, |f| f == superframe.as_slice()).expect("super-frame");
    assert_eq!(got.offload.gso_type, GsoType::TcpV4, "{got:?}");
    assert_eq!(got.offload.gso_size, 1000);
    assert!(got.offload.needs_csum);

    // With transmit checksumming off (which takes TSO with it), the kernel segments the
    // super-frame and completes every checksum in software.
    lab.set_offload("A", Feature::TxCsum, false);
    let now = in_ns(&lab.a, || offload_state("va")).unwrap();
    assert!(!now.tx_csum && !now.tso, "{now:?}");

    a.send(&tso, &superframe).unwrap();
    let mut next_seq = 1000u32;
    let mut joined = Vec::new();
    while joined.len() < payload.len() {
        let got = recv_matching(&b, &mut buf, |f| {
            f.len() > 54 && f[23] == 6 && f[36..38] == [0, 9]
        })
        .expect("segment");
        let seg = &buf[..got.len];
        assert_eq!(got.len, 54 + 1000, "segment of gso_size");
        assert!(!got.offload.needs_csum && !got.offload.is_gso(), "{got:?}");
        assert!(ip_checksum_ok(seg), "IPv4 header checksum");
        assert!(l4_checksum_ok(seg), "TCP checksum completed");
        assert_eq!(
            u32::from_be_bytes(seg[38..42].try_into().unwrap()),
            next_seq
        );
        next_seq += 1000;
        joined.extend_from_slice(&seg[54..]);
    }
    assert_eq!(joined, payload);

    // And a single partial-checksum UDP frame comes out complete.
    let part = udp_frame(&lab, 7201, b"finish me", Csum::Partial);
    assert!(!l4_checksum_ok(&part));
    a.send(&partial(6), &part).unwrap();
    let got = recv_matching(&b, &mut buf, |f| {
        f.len() == part.len() && f[36..38] == 7201u16.to_be_bytes()
    })
    .expect("udp frame");
    assert!(!got.offload.needs_csum, "{got:?}");
    assert!(l4_checksum_ok(&buf[..got.len]), "UDP checksum completed");
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn tcp_write_arrives_as_gso_frames() {
    let lab = Lab::new("tso");
    tcp_write_arrives_as_super_frames(&lab, &lab.socket("B"), 5555, 9000);
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn host_checks_see_the_callers_namespace() {
    let lab = Lab::new("host");
    let iface = lab.running("A");
    assert_eq!((iface.name.as_str(), iface.mtu), ("va", 1500));
    assert_eq!(iface.ipv4, vec![(IP_A, 24)]);
    assert_eq!(iface.mac, lab.mac_a);
    assert_ne!(lab.mac_a, lab.mac_b);

    // A new namespace starts with forwarding off; turning it on there shows there only.
    assert!(!in_ns(&lab.a, ip_forward_enabled).unwrap());
    in_ns(&lab.a, || {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
    })
    .unwrap();
    assert!(in_ns(&lab.a, ip_forward_enabled).unwrap());
    assert!(!in_ns(&lab.b, ip_forward_enabled).unwrap());

    lab.set_offload("B", Feature::Gro, true);
    assert!(in_ns(&lab.b, || offload_state("vb")).unwrap().gro);
    lab.set_offload("B", Feature::Gro, false);
    assert!(!in_ns(&lab.b, || offload_state("vb")).unwrap().gro);
    // veth has no LRO: turning it off is a no-op that succeeds, turning it on is refused.
    lab.set_offload("B", Feature::Lro, false);
    let err = in_ns(&lab.b, || set_offload("vb", Feature::Lro, true)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("ioctl(SIOCETHTOOL, ETHTOOL_SFLAGS) on vb: "),
        "{err}"
    );
    lab.set_offload("B", Feature::Tso, false);
    lab.set_offload("B", Feature::Gso, false);
    let now = in_ns(&lab.b, || offload_state("vb")).unwrap();
    assert!(
        !now.tso && !now.gso && now.tx_csum && now.rx_csum,
        "{now:?}"
    );
}
