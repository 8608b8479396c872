//! [`PnetPort`] against the real kernel: two network namespaces of our own joined by a
//! veth pair (`pa` in namespace A, `pb` in namespace B), so no frame leaves this machine.
//!
//! As in `netns_tests`: each test builds its own namespaces and deletes them when it ends,
//! also when it fails (`netns_lab`, which also says how they are run). The frames are of a
//! local experimental EtherType (0x88b5) with no IP in them, and IPv6 is off in both
//! namespaces, so nothing else crosses the link.

use std::time::{Duration, Instant};

use crate::netns_lab::{in_ns, Namespaces};
use crate::{FrameIo, GsoType, Interface, IoError, Offload, PacketType, PnetOptions};
use crate::{PnetPort, RecvBatch};

const WAIT: Duration = Duration::from_secs(3);
/// IEEE 802 local experimental EtherType 1: no host stack acts on it.
const ETHERTYPE: [u8; 2] = [0x88, 0xb5];

/// Two namespaces joined by a veth pair; deleted on drop.
struct Link {
    namespaces: Namespaces,
}

impl Link {
    /// The link of test `tag`; fails the test without root or `ip`.
    fn new(tag: &str) -> Link {
        let mut namespaces = Namespaces::new("mqpn", tag);
        namespaces.add("a");
        namespaces.add("b");
        namespaces.veth(("a", "pa", None), ("b", "pb", None));
        Link { namespaces }
    }

    /// The interface of `side` once it has a carrier, and a port on it.
    fn port(&self, side: &str) -> (Interface, PnetPort) {
        self.port_with(side, false)
    }

    fn port_with(&self, side: &str, qdisc_bypass: bool) -> (Interface, PnetPort) {
        let (short, ifname) = if side == "A" {
            ("a", "pa")
        } else {
            ("b", "pb")
        };
        let iface = self.namespaces.running(short, ifname);
        let options = PnetOptions {
            recv_buffer: Some(1 << 20),
            qdisc_bypass,
        };
        let port = in_ns(&self.namespaces.name(short), || {
            PnetPort::open(&iface, &options)
        })
        .unwrap();
        (iface, port)
    }
}

/// A frame from `src` to `dst` with `len` bytes in all, its payload a pattern from `seed`.
fn frame(dst: [u8; 6], src: [u8; 6], seed: u8, len: usize) -> Vec<u8> {
    let mut frame = Vec::with_capacity(len);
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&ETHERTYPE);
    frame.extend((0..len - 14).map(|i| seed.wrapping_add(i as u8)));
    frame
}

/// The next frame of the test's EtherType on `port`, within `WAIT`.
fn recv_test_frame(port: &PnetPort, buf: &mut [u8]) -> (usize, bool, PacketType) {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let received = port
            .recv(buf, left)
            .unwrap()
            .expect("a frame within the wait");
        if buf[12..14] == ETHERTYPE {
            assert_eq!(received.offload, Offload::NONE);
            return (received.len, received.truncated, received.pkttype);
        }
    }
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn pnet_port_carries_frames_both_ways_and_skips_its_own() {
    let link = Link::new("both");
    let (iface_a, a) = link.port("A");
    let (iface_b, b) = link.port("B");
    let mut buf = vec![0u8; 2048];

    let to_b = frame(iface_b.mac, iface_a.mac, 1, 1000);
    a.send(&Offload::NONE, &to_b).unwrap();
    let (len, truncated, pkttype) = recv_test_frame(&b, &mut buf);
    assert_eq!((len, truncated), (to_b.len(), false));
    assert_eq!(&buf[..len], &to_b[..], "what B received");
    assert_eq!(pkttype, PacketType::Host);

    let to_a = frame([0xff; 6], iface_b.mac, 7, 300);
    b.send(&Offload::NONE, &to_a).unwrap();
    let (len, _, pkttype) = recv_test_frame(&a, &mut buf);
    assert_eq!(&buf[..len], &to_a[..], "what A received");
    assert_eq!(pkttype, PacketType::Broadcast);

    // The kernel never hands a socket the frames it sent itself, but it does hand it
    // every frame sent on the interface by anything else on the host (its IP stack, other
    // sockets, the other side of masqd): a second port on A stands for those.
    let (_, host) = link.port("A");
    let from_host = frame(iface_b.mac, iface_a.mac, 9, 400);
    host.send(&Offload::NONE, &from_host).unwrap();
    let (len, ..) = recv_test_frame(&b, &mut buf);
    assert_eq!(&buf[..len], &from_host[..], "what B received from A's host");
    for (name, port) in [("A", &a), ("B", &b)] {
        let got = port.recv(&mut buf, Duration::from_millis(200)).unwrap();
        assert!(
            got.is_none(),
            "{name} read back a frame sent from its own side: {:02x?}",
            &buf[..got.map_or(0, |r| r.len.min(20))]
        );
    }
    assert_eq!(a.stats().outgoing_skipped, 1, "A skipped its host's frame");

    // A burst arrives whole and in order through the default recv_batch.
    let burst: Vec<Vec<u8>> = (0..5)
        .map(|i| frame(iface_b.mac, iface_a.mac, 10 + i, 100 + usize::from(i)))
        .collect();
    for f in &burst {
        a.send(&Offload::NONE, f).unwrap();
    }
    let mut batch = RecvBatch::new(8);
    let mut bufs: Vec<Vec<u8>> = (0..8).map(|_| vec![0u8; 2048]).collect();
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while got.len() < burst.len() && Instant::now() < deadline {
        let n = b.recv_batch(&mut batch, &mut bufs, WAIT).unwrap();
        for (rx, buf) in batch.received()[..n].iter().zip(&bufs) {
            got.push(buf[..rx.len].to_vec());
        }
    }
    assert_eq!(got, burst, "the burst B received");
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn pnet_port_times_out_and_reports_truncation() {
    let link = Link::new("time");
    // Sending straight to the driver works the same.
    let (iface_a, a) = link.port_with("A", true);
    let (iface_b, b) = link.port("B");
    let mut buf = vec![0u8; 2048];

    for wait in [Duration::ZERO, Duration::from_millis(150)] {
        let start = Instant::now();
        let got = b.recv(&mut buf, wait).unwrap();
        let took = start.elapsed();
        assert!(got.is_none(), "nothing was sent, yet {got:?}");
        assert!(
            took >= wait && took < wait + Duration::from_millis(500),
            "a {wait:?} timeout took {took:?}"
        );
    }

    let long = frame(iface_b.mac, iface_a.mac, 3, 1200);
    a.send(&Offload::NONE, &long).unwrap();
    let (len, truncated, _) = recv_test_frame(&b, &mut buf[..100]);
    assert_eq!((len, truncated), (100, true));
    assert_eq!(&buf[..100], &long[..100]);
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn pnet_port_refuses_frames_that_need_offloads() {
    let link = Link::new("offl");
    let (iface_a, a) = link.port("A");
    let (iface_b, b) = link.port("B");
    let f = frame(iface_b.mac, iface_a.mac, 5, 200);
    let gso = Offload {
        gso_type: GsoType::TcpV4,
        gso_size: 100,
        ..Offload::NONE
    };
    let partial = Offload {
        needs_csum: true,
        csum_start: 34,
        csum_offset: 16,
        ..Offload::NONE
    };
    for offload in [gso, partial] {
        match a.send(&offload, &f) {
            Err(err @ IoError::Unsupported { .. }) => {
                let message = err.to_string();
                assert!(message.starts_with("pnet send_to on pa: "), "{message}");
            }
            other => panic!("{offload:?}: {other:?}"),
        }
    }
    let mut buf = vec![0u8; 2048];
    let got = b.recv(&mut buf, Duration::from_millis(200)).unwrap();
    assert!(got.is_none(), "a refused frame arrived: {got:?}");
}
