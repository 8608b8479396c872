//! [`XdpPort`] against the real kernel: network namespaces of our own joined by veth
//! pairs (`netns_lab`: each test builds its own, uniquely named, and deletes them when it
//! ends, also when it fails; it also says how they are run). The forwarding rate of the
//! port is measured by `benches/xdp_rate.rs`, not here.
//!
//! The usual lab: `va` in namespace A (192.0.2.1, where the port under test sits), `vb`
//! in namespace B (192.0.2.2, the peer that sends and checks).

use std::net::Ipv4Addr;
use std::thread;
use std::time::{Duration, Instant};

use crate::netns_lab::{in_ns, output, recv_until, require_tool, run, Namespaces};
use crate::socket::{RecvBatch, SendBatch, SocketOptions};
use crate::{FrameIo, Interface, Offload, PacketSocket, XdpMode, XdpOptions, XdpPort, XdpSide};

const IP_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// A VIP the director (A) serves; not assigned to any kernel.
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
/// Another address on the link, assigned to nobody.
const OTHER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 77);
/// A client beyond the director.
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const WAIT: Duration = Duration::from_secs(3);

/// Namespaces joined by veth pairs ([`Namespaces`], which it derefs to); deleted on drop.
struct Lab {
    namespaces: Namespaces,
}

impl std::ops::Deref for Lab {
    type Target = Namespaces;
    fn deref(&self) -> &Namespaces {
        &self.namespaces
    }
}

impl Lab {
    /// The usual two-namespace lab of test `tag`: `va` (192.0.2.1) in A, `vb`
    /// (192.0.2.2) in B. Fails the test without root or `ip`.
    fn pair(tag: &str) -> Lab {
        let mut namespaces = Namespaces::new("mqxdp", tag);
        namespaces.add("a");
        namespaces.add("b");
        let lab = Lab { namespaces };
        lab.link(("a", "va", "192.0.2.1/24"), ("b", "vb", "192.0.2.2/24"));
        lab
    }

    /// A veth pair with an address on each end, both running.
    fn link(&self, (ns1, if1, addr1): (&str, &str, &str), (ns2, if2, addr2): (&str, &str, &str)) {
        self.veth((ns1, if1, Some(addr1)), (ns2, if2, Some(addr2)));
        self.running(ns1, if1);
        self.running(ns2, if2);
    }

    fn socket(&self, ns: &str, ifname: &str) -> PacketSocket {
        in_ns(&self.name(ns), || {
            let iface = Interface::by_name(ifname).unwrap();
            let options = SocketOptions {
                recv_buffer: Some(4 << 20),
                ..SocketOptions::default()
            };
            PacketSocket::open(&iface, &options).unwrap()
        })
    }

    fn xdp(&self, ns: &str, ifname: &str, side: XdpSide) -> XdpPort {
        in_ns(&self.name(ns), || {
            let iface = Interface::by_name(ifname).unwrap();
            XdpPort::open(&iface, &XdpOptions::new(side))
        })
        .unwrap_or_else(|e| panic!("XdpPort::open on {ifname}: {e}"))
    }

    /// `ip -d link show ifname` in namespace `ns`.
    fn link_show(&self, ns: &str, ifname: &str) -> String {
        let out = output("ip", &["-n", &self.name(ns), "-d", "link", "show", ifname]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

// ---- frames ----

fn sum16(data: &[u8]) -> u32 {
    data.chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum()
}

fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// An Ethernet + IPv4 + UDP frame with complete checksums; `payload` starts with `tag`.
fn udp_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::with_capacity(42 + payload.len());
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (28 + payload.len()) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, 17, 0, 0]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    let ip_csum = !fold(sum16(&f[14..34]));
    f[24..26].copy_from_slice(&ip_csum.to_be_bytes());
    let udp_len = (8 + payload.len()) as u16;
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&80u16.to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    let pseudo = sum16(&f[26..34]) + 17 + u32::from(udp_len);
    let csum = match !fold(pseudo + sum16(&f[34..])) {
        0 => 0xffff,
        c => c,
    };
    f[40..42].copy_from_slice(&csum.to_be_bytes());
    f
}

/// An ARP request from `sender` asking who has `target`.
fn arp_request(src_mac: [u8; 6], sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&sender.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f
}

/// Receives until `want` accepts a frame or `window` passes; returns the frame.
fn recv_matching(
    port: &impl FrameIo,
    window: Duration,
    want: impl Fn(&[u8]) -> bool,
) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 65536];
    let got = recv_until(port, &mut buf, window, want)?;
    Some(buf[..got.len].to_vec())
}

// ---- tests ----

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn vip_side_steals_only_vip_frames() {
    let lab = Lab::pair("vip");
    let iface_a = lab.running("a", "va");
    let mac_b = lab.running("b", "vb").mac;
    let port = lab.xdp("a", "va", XdpSide::Vip);
    eprintln!("measured: XDP attached to veth in {:?} mode", port.mode());
    assert_eq!(port.mode(), XdpMode::Native, "veth supports native XDP");
    assert!(lab.link_show("a", "va").contains("prog/xdp"));
    port.set_addresses(&[VIP], &[], &[IP_A]).unwrap();
    // A tap of our own on A's interface: it sees what reaches the kernel, nothing else.
    let tap = lab.socket("a", "va");
    let b = lab.socket("b", "vb");

    // A frame to the VIP is stolen: the port gets it through AF_XDP, the kernel never.
    let to_vip = udp_frame(iface_a.mac, mac_b, IP_B, VIP, b"to the VIP");
    b.send(&Offload::NONE, &to_vip).unwrap();
    let got = recv_matching(&port, WAIT, |f| f == to_vip.as_slice());
    assert!(got.is_some(), "the VIP frame reached the port");
    let stats = port.stats().unwrap();
    assert_eq!((stats.rx_xdp, stats.rx_dropped), (1, 0), "{stats:?}");
    assert!(recv_matching(&tap, Duration::from_millis(200), |f| f == to_vip.as_slice()).is_none());

    // A frame to another address goes to the kernel: the tap sees it, and so does the
    // port, through its packet socket.
    let to_other = udp_frame(iface_a.mac, mac_b, IP_B, OTHER, b"not ours");
    b.send(&Offload::NONE, &to_other).unwrap();
    assert!(recv_matching(&port, WAIT, |f| f == to_other.as_slice()).is_some());
    assert!(recv_matching(&tap, WAIT, |f| f == to_other.as_slice()).is_some());

    // An ARP request for A's address reaches A's kernel, which answers it.
    let who_has = arp_request(mac_b, IP_B, IP_A);
    b.send(&Offload::NONE, &who_has).unwrap();
    assert!(recv_matching(&port, WAIT, |f| f == who_has.as_slice()).is_some());
    let reply = recv_matching(&b, WAIT, |f| {
        f.len() >= 42
            && f[12..14] == [0x08, 0x06]
            && f[20..22] == [0, 2]
            && f[28..32] == IP_A.octets()
    });
    assert!(reply.is_some(), "A's kernel answered the ARP request");

    let stats = port.stats().unwrap();
    assert_eq!(stats.rx_xdp, 1, "only the VIP frame was stolen: {stats:?}");
    assert!(stats.rx_kernel >= 2, "{stats:?}");

    // Once the VIP leaves the map, its frames go to the kernel too.
    port.set_addresses(&[], &[], &[IP_A]).unwrap();
    b.send(&Offload::NONE, &to_vip).unwrap();
    assert!(recv_matching(&tap, WAIT, |f| f == to_vip.as_slice()).is_some());
    assert_eq!(port.stats().unwrap().rx_xdp, 1);
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn dip_side_steals_real_server_replies_but_not_health_checks() {
    let lab = Lab::pair("dip");
    let mac_a = lab.running("a", "va").mac;
    let mac_b = lab.running("b", "vb").mac;
    let port = lab.xdp("a", "va", XdpSide::Dip);
    // B plays the real server; A's own address is local.
    port.set_addresses(&[VIP], &[IP_B], &[IP_A]).unwrap();
    let tap = lab.socket("a", "va");
    let b = lab.socket("b", "vb");

    let stolen = |frame: &[u8]| {
        let before = port.stats().unwrap();
        b.send(&Offload::NONE, frame).unwrap();
        assert!(recv_matching(&port, WAIT, |f| f == frame).is_some());
        let after = port.stats().unwrap();
        assert_eq!(after.rx_dropped, 0, "{after:?}");
        after.rx_xdp > before.rx_xdp
    };
    // A real server's reply to a client: stolen, and the kernel never sees it.
    let reply = udp_frame(mac_a, mac_b, IP_B, CLIENT, b"reply to a client");
    assert!(stolen(&reply), "RIP -> client is stolen");
    assert!(recv_matching(&tap, Duration::from_millis(200), |f| f == reply.as_slice()).is_none());
    // A real server's reply to the director's own health check: the kernel's.
    let health = udp_frame(mac_a, mac_b, IP_B, IP_A, b"health check reply");
    assert!(!stolen(&health), "RIP -> LOCAL is passed");
    // Not from a real server: passed, whatever the destination.
    let stranger = udp_frame(mac_a, mac_b, OTHER, CLIENT, b"from a stranger");
    assert!(!stolen(&stranger), "non-RIP source is passed");
    // The VIP side's rule does not apply on the DIP side.
    let to_vip = udp_frame(mac_a, mac_b, OTHER, VIP, b"to the VIP");
    assert!(!stolen(&to_vip), "the DIP side ignores VIP flags");
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn sent_frames_arrive_intact() {
    let lab = Lab::pair("send");
    let iface_a = lab.running("a", "va");
    let mac_b = lab.running("b", "vb").mac;
    let port = lab.xdp("a", "va", XdpSide::Vip);
    let b = lab.socket("b", "vb");

    // Every length from the smallest to a full 1500-byte MTU frame.
    let frames: Vec<Vec<u8>> = [18usize, 100, 555, 1000, 1472]
        .iter()
        .map(|&len| {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            udp_frame(mac_b, iface_a.mac, IP_A, OTHER, &payload)
        })
        .collect();
    assert_eq!(frames.last().unwrap().len(), 1514);
    port.send(&Offload::NONE, &frames[0]).unwrap();
    let mut batch = SendBatch::new(8);
    let rest = frames[1..].iter().map(|f| (Offload::NONE, f.as_slice()));
    assert_eq!(port.send_batch(&mut batch, rest).unwrap(), frames.len() - 1);
    for frame in &frames {
        let got = recv_matching(&b, WAIT, |f| {
            f.len() == frame.len() && f[14..34] == frame[14..34]
        });
        assert_eq!(
            got.as_deref(),
            Some(frame.as_slice()),
            "frame of {} bytes",
            frame.len()
        );
    }
    let stats = port.stats().unwrap();
    assert_eq!(
        (stats.tx_xdp, stats.tx_kernel, stats.tx_invalid),
        (5, 0, 0),
        "{stats:?}"
    );

    // A frame with a partial checksum goes through the packet socket, whose virtio-net
    // header carries the work left: it crosses the veth still partial, described.
    let mut partial = udp_frame(mac_b, iface_a.mac, IP_A, OTHER, b"finish my checksum");
    let udp_len = u32::from(u16::from_be_bytes([partial[38], partial[39]]));
    let pseudo = fold(sum16(&partial[26..34]) + 17 + udp_len);
    partial[40..42].copy_from_slice(&pseudo.to_be_bytes());
    let offload = Offload {
        needs_csum: true,
        csum_start: 34,
        csum_offset: 6,
        ..Offload::NONE
    };
    port.send(&offload, &partial).unwrap();
    let mut buf = vec![0u8; 2048];
    let deadline = Instant::now() + WAIT;
    let got = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let got = b
            .recv(&mut buf, left)
            .unwrap()
            .expect("the partial-checksum frame crossed");
        if buf[..got.len] == partial[..] {
            break got;
        }
    };
    assert!(got.offload.needs_csum, "{got:?}");
    assert_eq!((got.offload.csum_start, got.offload.csum_offset), (34, 6));
    assert_eq!(port.stats().unwrap().tx_kernel, 1);

    // A frame over the MTU is refused, and the error names the call.
    let jumbo = udp_frame(mac_b, iface_a.mac, IP_A, OTHER, &[0u8; 1600]);
    let err = port.send(&Offload::NONE, &jumbo).unwrap_err();
    assert_eq!(
        err.to_string(),
        "AF_XDP send on va: Message too long (os error 90)"
    );
}

/// Sends `count` numbered frames from `from` in batches of 50, 1 ms apart, and checks
/// `to` receives every one of them exactly once.
fn stream(from: &impl FrameIo, to: &impl FrameIo, frame: impl Fn(u32) -> Vec<u8>, count: u32) {
    let frames: Vec<Vec<u8>> = (0..count).map(&frame).collect();
    let mut seen = vec![false; count as usize];
    let mut got = 0;
    let mut send = SendBatch::new(64);
    let mut recv = RecvBatch::new(64);
    let mut bufs: Vec<Vec<u8>> = (0..64).map(|_| vec![0u8; 4096]).collect();
    let mut drain = |seen: &mut [bool], got: &mut u32, wait: Duration| {
        let n = to.recv_batch(&mut recv, &mut bufs, wait).unwrap();
        for (r, buf) in recv.received().iter().zip(&bufs).take(n) {
            let f = &buf[..r.len];
            if let Some(i) = frames.iter().position(|sent| sent.as_slice() == f) {
                assert!(!seen[i], "frame {i} twice");
                seen[i] = true;
                *got += 1;
            }
        }
    };
    for chunk in frames.chunks(50) {
        let sent = from
            .send_batch(
                &mut send,
                chunk.iter().map(|f| (Offload::NONE, f.as_slice())),
            )
            .unwrap();
        assert_eq!(sent, chunk.len());
        drain(&mut seen, &mut got, Duration::ZERO);
        thread::sleep(Duration::from_millis(1));
    }
    let deadline = Instant::now() + WAIT;
    while got < count && Instant::now() < deadline {
        drain(&mut seen, &mut got, Duration::from_millis(100));
    }
    let missing: Vec<usize> = (0..count as usize).filter(|&i| !seen[i]).collect();
    assert!(
        missing.is_empty(),
        "lost {} frames: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn a_thousand_frames_each_way_without_loss() {
    let lab = Lab::pair("bulk");
    let mac_a = lab.running("a", "va").mac;
    let mac_b = lab.running("b", "vb").mac;
    let vip_b = Ipv4Addr::new(192, 0, 2, 200);
    let a = lab.xdp("a", "va", XdpSide::Vip);
    let b = lab.xdp("b", "vb", XdpSide::Vip);
    a.set_addresses(&[VIP], &[], &[IP_A]).unwrap();
    b.set_addresses(&[vip_b], &[], &[IP_B]).unwrap();
    let numbered = |n: u32, dst_mac, src_mac, src, dst| {
        let mut payload = n.to_be_bytes().to_vec();
        payload.resize(64 + (n % 900) as usize, n as u8);
        udp_frame(dst_mac, src_mac, src, dst, &payload)
    };
    stream(&a, &b, |n| numbered(n, mac_b, mac_a, IP_A, vip_b), 1000);
    stream(&b, &a, |n| numbered(n, mac_a, mac_b, IP_B, VIP), 1000);
    for (name, port) in [("A", &a), ("B", &b)] {
        let stats = port.stats().unwrap();
        eprintln!("measured: port {name} {stats:?}");
        assert_eq!(
            (stats.tx_xdp, stats.rx_xdp),
            (1000, 1000),
            "{name}: {stats:?}"
        );
        assert_eq!(
            (stats.rx_dropped, stats.tx_invalid, stats.malformed),
            (0, 0, 0)
        );
    }
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn every_queue_gets_a_socket() {
    require_tool("ethtool", "ethtool");
    let lab = Lab::pair("mq");
    for (ns, ifname) in [("a", "va"), ("b", "vb")] {
        run(
            "ip",
            &[
                "netns",
                "exec",
                &lab.name(ns),
                "ethtool",
                "-L",
                ifname,
                "rx",
                "2",
                "tx",
                "2",
            ],
        );
    }
    let mac_a = lab.running("a", "va").mac;
    let mac_b = lab.running("b", "vb").mac;
    let port = lab.xdp("a", "va", XdpSide::Vip);
    assert_eq!(port.queues(), 2);
    port.set_addresses(&[VIP], &[], &[IP_A]).unwrap();
    let b = lab.socket("b", "vb");
    // 64 flows: the peer spreads them over its two transmit queues by hash, and veth
    // delivers each on the receive queue of the same number.
    let frames: Vec<Vec<u8>> = (0..64u8)
        .map(|i| {
            let mut f = udp_frame(mac_a, mac_b, IP_B, VIP, &[i; 32]);
            f[34..36].copy_from_slice(&(1000 + u16::from(i)).to_be_bytes());
            // The UDP checksum does not matter here: nobody verifies it.
            f[40..42].fill(0);
            f
        })
        .collect();
    let mut send = SendBatch::new(64);
    b.send_batch(
        &mut send,
        frames.iter().map(|f| (Offload::NONE, f.as_slice())),
    )
    .unwrap();
    let mut seen = 0;
    while seen < frames.len() {
        let got = recv_matching(&port, WAIT, |f| frames.iter().any(|sent| sent == f));
        assert!(got.is_some(), "{seen} of {} frames arrived", frames.len());
        seen += 1;
    }
    let stats = port.stats().unwrap();
    assert_eq!(
        stats.rx_xdp, 64,
        "every frame stolen, on either queue: {stats:?}"
    );
    let out = output(
        "ip",
        &["netns", "exec", &lab.name("a"), "ethtool", "-S", "va"],
    );
    let per_queue = String::from_utf8_lossy(&out.stdout);
    let redirects: Vec<&str> = per_queue
        .lines()
        .filter(|l| l.contains("xdp_redirect"))
        .collect();
    eprintln!("measured: {redirects:?}");
    assert_eq!(redirects.len(), 2, "{per_queue}");
    for line in redirects {
        let count: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(count > 0, "both queues carried stolen frames: {line}");
    }
}

/// What a kernel socket on the peer sends when the peer still offloads its transmit
/// checksum: XDP on a veth turns off the peer's GSO, not its checksum offload.
#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn kernel_senders_checksum_state_is_measured() {
    require_tool("ethtool", "ethtool");
    let lab = Lab::pair("csum");
    let mac_a = lab.running("a", "va").mac;
    let port = lab.xdp("a", "va", XdpSide::Vip);
    port.set_addresses(&[VIP], &[], &[IP_A]).unwrap();
    let mac = mac_a.map(|b| format!("{b:02x}")).join(":");
    run(
        "ip",
        &[
            "-n",
            &lab.name("b"),
            "neigh",
            "add",
            "192.0.2.100",
            "lladdr",
            &mac,
            "dev",
            "vb",
        ],
    );
    let checksum_ok = |tx_csum: &str| {
        run(
            "ip",
            &[
                "netns",
                "exec",
                &lab.name("b"),
                "ethtool",
                "-K",
                "vb",
                "tx",
                tx_csum,
            ],
        );
        let sender = in_ns(&lab.name("b"), || std::net::UdpSocket::bind((IP_B, 0))).unwrap();
        sender.send_to(&[7u8; 100], (VIP, 9)).unwrap();
        let f = recv_matching(&port, WAIT, |f| f.len() == 142 && f[30..34] == VIP.octets())
            .expect("the datagram was stolen");
        let udp_len = u32::from(u16::from_be_bytes([f[38], f[39]]));
        fold(sum16(&f[26..34]) + 17 + udp_len + sum16(&f[34..])) == 0xffff
    };
    let with_offload = checksum_ok("on");
    let without = checksum_ok("off");
    eprintln!("measured: UDP checksum complete with peer tx-checksumming on: {with_offload}, off: {without}");
    assert!(
        without,
        "with the peer's checksum offload off, frames are complete"
    );
    // The module documentation says so: a frame the program steals carries no record
    // that its checksum is partial. If a kernel changes this, the documentation must too.
    assert!(
        !with_offload,
        "with the peer's checksum offload on, the L4 checksum is partial"
    );
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn generic_mode_steals_the_same() {
    let lab = Lab::pair("gen");
    let iface_a = lab.running("a", "va");
    let mac_b = lab.running("b", "vb").mac;
    let options = XdpOptions {
        force_generic: true,
        ..XdpOptions::new(XdpSide::Vip)
    };
    let port = in_ns(&lab.name("a"), || XdpPort::open(&iface_a, &options)).unwrap();
    assert_eq!(port.mode(), XdpMode::Generic);
    assert!(lab.link_show("a", "va").contains("xdpgeneric"));
    port.set_addresses(&[VIP], &[], &[IP_A]).unwrap();
    let b = lab.socket("b", "vb");
    let to_vip = udp_frame(iface_a.mac, mac_b, IP_B, VIP, b"generic");
    let to_other = udp_frame(iface_a.mac, mac_b, IP_B, OTHER, b"generic");
    b.send(&Offload::NONE, &to_vip).unwrap();
    b.send(&Offload::NONE, &to_other).unwrap();
    assert!(recv_matching(&port, WAIT, |f| f == to_vip.as_slice()).is_some());
    assert!(recv_matching(&port, WAIT, |f| f == to_other.as_slice()).is_some());
    let stats = port.stats().unwrap();
    assert_eq!((stats.rx_xdp, stats.rx_kernel), (1, 1), "{stats:?}");
}

/// `frame` with byte `at` set to `value` (checksums left as they were: the program and a
/// tap never look at them).
fn patched(frame: &[u8], edits: &[(usize, u8)]) -> Vec<u8> {
    let mut f = frame.to_vec();
    for &(at, value) in edits {
        f[at] = value;
    }
    f
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn a_vip_the_host_owns_gives_up_only_service_traffic() {
    let lab = Lab::pair("own");
    let iface_a = lab.running("a", "va");
    let mac_b = lab.running("b", "vb").mac;
    let port = lab.xdp("a", "va", XdpSide::Vip);
    // The VIP is one of A's own addresses (as in the classic lab), serving UDP port 80.
    port.set_addresses(&[VIP], &[], &[IP_A, VIP]).unwrap();
    port.set_service_ports(&[(VIP, 17, 80)]).unwrap();
    let tap = lab.socket("a", "va");
    let b = lab.socket("b", "vb");
    let stolen = |frame: &[u8]| -> bool {
        let before = port.stats().unwrap().rx_xdp;
        b.send(&Offload::NONE, frame).unwrap();
        let by_port = recv_matching(&port, WAIT, |f| f == frame).is_some();
        assert!(by_port, "the port gets every frame, one way or the other");
        let seen_by_kernel =
            recv_matching(&tap, Duration::from_millis(200), |f| f == frame).is_some();
        let by_xdp = port.stats().unwrap().rx_xdp - before;
        assert_eq!(by_xdp == 1, !seen_by_kernel, "stolen xor passed");
        by_xdp == 1
    };

    let to_service = udp_frame(iface_a.mac, mac_b, IP_B, VIP, b"to the service");
    assert!(stolen(&to_service), "UDP to VIP:80, the service");
    // Bytes 36–37: the UDP destination port; 23: the IP protocol; 34: the ICMP type;
    // 20–21: flags and fragment offset.
    let other_port = patched(&to_service, &[(37, 81)]);
    assert!(
        !stolen(&other_port),
        "UDP to VIP:81, no service: the kernel's"
    );
    let tcp_80 = patched(&to_service, &[(23, 6)]);
    assert!(!stolen(&tcp_80), "TCP to VIP:80, only UDP is served");
    let echo = patched(&to_service, &[(23, 1), (34, 8), (35, 0)]);
    assert!(!stolen(&echo), "a ping to the VIP: the kernel answers it");
    let unreachable = patched(&to_service, &[(23, 1), (34, 3), (35, 3)]);
    let redirect = patched(&to_service, &[(23, 1), (34, 5), (35, 1)]);
    assert!(!stolen(&redirect), "an ICMP redirect is the kernel's");
    assert!(
        stolen(&unreachable),
        "an ICMP error may be about a connection"
    );
    let later_fragment = patched(&other_port, &[(20, 0), (21, 100)]);
    assert!(
        stolen(&later_fragment),
        "a later fragment has no ports to look at"
    );

    // A service on every port of the VIP takes them all.
    port.set_service_ports(&[(VIP, 17, 0)]).unwrap();
    assert!(
        stolen(&other_port),
        "UDP to VIP:81 with an every-port service"
    );
    assert!(!stolen(&tcp_80), "still only UDP");

    // A VIP the host does not own: everything to it is the director's.
    port.set_addresses(&[VIP], &[], &[IP_A]).unwrap();
    port.set_service_ports(&[]).unwrap();
    assert!(
        stolen(&tcp_80) && stolen(&echo),
        "a foreign VIP's traffic is all masqd's"
    );
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn dropping_the_port_detaches_the_program() {
    let lab = Lab::pair("drop");
    let port = lab.xdp("a", "va", XdpSide::Vip);
    let shown = lab.link_show("a", "va");
    assert!(shown.contains("prog/xdp"), "{shown}");
    drop(port);
    let shown = lab.link_show("a", "va");
    assert!(!shown.contains("prog/xdp"), "{shown}");
    // And the interface can take a program again.
    let again = lab.xdp("a", "va", XdpSide::Dip);
    assert!(lab.link_show("a", "va").contains("prog/xdp"));
    drop(again);
}
