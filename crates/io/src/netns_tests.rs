//! Tests against the real kernel: two network namespaces of our own joined by a veth pair
//! (`va` in namespace A, `vb` in namespace B), so no frame leaves this machine.
//!
//! Each test builds its own pair of namespaces and deletes them when it ends, also when
//! it fails (`netns_lab`). Skipped (with a message) when not running as root.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::host::{ip_forward_enabled, offload_state, set_offload, Feature};
use crate::netns_lab::{in_ns, recv_until, Namespaces};
use crate::socket::{PacketType, RecvBatch, SendBatch, SocketOptions};
use crate::{
    FrameIo, GsoType, Interface, Offload, PacketSocket, RingFormat, RingOptions, RingSocket,
    V2_SLOT,
};

const IP_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// On the link's subnet but assigned to nobody: frames sent to it draw no reply.
const IP_NOBODY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 77);
const WAIT: Duration = Duration::from_secs(3);

/// Two namespaces joined by a veth pair; deleted on drop.
struct Lab {
    a: String,
    b: String,
    mac_a: [u8; 6],
    mac_b: [u8; 6],
    namespaces: Namespaces,
}

impl Lab {
    /// `None` (after saying why) when not root.
    fn new(tag: &str) -> Option<Lab> {
        let mut namespaces = Namespaces::new("mqio", tag)?;
        let (a, b) = (namespaces.add("a"), namespaces.add("b"));
        namespaces.veth(
            ("a", "va", Some("192.0.2.1/24")),
            ("b", "vb", Some("192.0.2.2/24")),
        );
        let mac_a = namespaces.running("a", "va").mac;
        let mac_b = namespaces.running("b", "vb").mac;
        Some(Lab {
            a,
            b,
            mac_a,
            mac_b,
            namespaces,
        })
    }

    fn ns(&self, side: &str) -> &str {
        if side == "A" {
            &self.a
        } else {
            &self.b
        }
    }

    fn ifname(side: &str) -> &'static str {
        if side == "A" {
            "va"
        } else {
            "vb"
        }
    }

    /// The interface of `side`, once it has a carrier.
    fn running(&self, side: &str) -> Interface {
        let short = if side == "A" { "a" } else { "b" };
        self.namespaces.running(short, Lab::ifname(side))
    }

    fn socket(&self, side: &str) -> PacketSocket {
        self.socket_with(side, true)
    }

    fn socket_with(&self, side: &str, ignore_outgoing: bool) -> PacketSocket {
        in_ns(self.ns(side), || {
            let iface = Interface::by_name(Lab::ifname(side)).unwrap();
            let options = SocketOptions {
                recv_buffer: Some(4 << 20),
                ..SocketOptions::default()
            };
            PacketSocket::open_with(&iface, &options, ignore_outgoing).unwrap()
        })
    }

    /// A TPACKET_V3 ring socket on `side`, in fanout group `group` if given.
    fn ring(&self, side: &str, group: Option<u16>) -> RingSocket {
        self.ring_as(side, group, RingFormat::V3)
    }

    /// A ring socket of `format` on `side`, in fanout group `group` if given.
    fn ring_as(&self, side: &str, group: Option<u16>, format: RingFormat) -> RingSocket {
        in_ns(self.ns(side), || {
            let iface = Interface::by_name(Lab::ifname(side)).unwrap();
            let options = match format {
                RingFormat::V3 => RingOptions {
                    block_count: 8,
                    fanout_group: group,
                    ..RingOptions::default()
                },
                RingFormat::V2 => RingOptions {
                    format,
                    block_size: V2_SLOT,
                    block_count: 256,
                    fanout_group: group,
                    ..RingOptions::default()
                },
            };
            RingSocket::open(&iface, &options).unwrap()
        })
    }

    fn set_offload(&self, side: &str, feature: Feature, on: bool) {
        in_ns(self.ns(side), || {
            set_offload(Lab::ifname(side), feature, on)
        })
        .unwrap();
    }
}

// ---- frames ----

fn sum16(data: &[u8], mut sum: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for pair in &mut chunks {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Sum of the IPv4 pseudo-header of the L4 segment in `frame`.
fn pseudo_sum(frame: &[u8]) -> u32 {
    let l4_len = frame.len() - 34;
    let sum = sum16(&frame[26..34], 0) + u32::from(frame[23]);
    sum + l4_len as u32
}

fn l4_checksum_ok(frame: &[u8]) -> bool {
    fold(sum16(&frame[34..], pseudo_sum(frame))) == 0xffff
}

fn ip_checksum_ok(frame: &[u8]) -> bool {
    fold(sum16(&frame[14..34], 0)) == 0xffff
}

#[derive(Clone, Copy, PartialEq)]
enum Csum {
    /// Complete checksum.
    Full,
    /// Pseudo-header sum only, to be completed on transmit (NEEDS_CSUM).
    Partial,
}

/// Ethernet + IPv4 (20 bytes, DF) around `l4`, whose checksum field is at `csum_at` (an
/// offset into `l4`) and is filled as `csum` says.
fn ipv4_frame(
    lab: &Lab,
    dst: Ipv4Addr,
    proto: u8,
    l4: &[u8],
    csum_at: usize,
    csum: Csum,
) -> Vec<u8> {
    let mut frame = Vec::with_capacity(34 + l4.len());
    frame.extend_from_slice(&lab.mac_b);
    frame.extend_from_slice(&lab.mac_a);
    frame.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + l4.len()) as u16;
    frame.extend_from_slice(&[0x45, 0]);
    frame.extend_from_slice(&total.to_be_bytes());
    frame.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, proto, 0, 0]);
    frame.extend_from_slice(&IP_A.octets());
    frame.extend_from_slice(&dst.octets());
    let ip_csum = !fold(sum16(&frame[14..34], 0));
    frame[24..26].copy_from_slice(&ip_csum.to_be_bytes());
    frame.extend_from_slice(l4);
    let at = 34 + csum_at;
    frame[at..at + 2].fill(0);
    let value = match csum {
        Csum::Full => !fold(sum16(&frame[34..], pseudo_sum(&frame))),
        Csum::Partial => fold(pseudo_sum(&frame)),
    };
    frame[at..at + 2].copy_from_slice(&value.to_be_bytes());
    frame
}

fn udp_frame(lab: &Lab, dport: u16, payload: &[u8], csum: Csum) -> Vec<u8> {
    let mut udp = Vec::new();
    udp.extend_from_slice(&40000u16.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    ipv4_frame(lab, IP_NOBODY, 17, &udp, 6, csum)
}

/// A TCP ACK|PSH segment of `payload` (20-byte header, no options).
fn tcp_frame(lab: &Lab, seq: u32, payload: &[u8], csum: Csum) -> Vec<u8> {
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&40000u16.to_be_bytes());
    tcp.extend_from_slice(&9u16.to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&1u32.to_be_bytes());
    tcp.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    tcp.extend_from_slice(payload);
    ipv4_frame(lab, IP_NOBODY, 6, &tcp, 16, csum)
}

/// Offload of a frame whose L4 checksum is partial.
fn partial(csum_offset: u16) -> Offload {
    Offload {
        needs_csum: true,
        csum_start: 34,
        csum_offset,
        ..Offload::NONE
    }
}

/// Receives until `want` accepts a frame or `WAIT` passes; other frames are skipped.
fn recv_matching(
    socket: &impl FrameIo,
    buf: &mut [u8],
    want: impl FnMut(&[u8]) -> bool,
) -> Option<crate::Received> {
    recv_until(socket, buf, WAIT, want)
}

/// Whether `socket` receives a frame `is_ours` within `window`.
fn sees_within(socket: &impl FrameIo, window: Duration, is_ours: impl Fn(&[u8]) -> bool) -> bool {
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + window;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if let Some(got) = socket.recv(&mut buf, left).unwrap() {
            if is_ours(&buf[..got.len]) {
                return true;
            }
        }
    }
    false
}

// ---- tests ----

#[test]
fn frames_cross_the_link_and_never_echo() {
    let Some(lab) = Lab::new("cross") else { return };
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
fn batches_cross_the_link_in_order() {
    let Some(lab) = Lab::new("batch") else { return };
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
fn kernel_completes_checksums_and_segments_on_transmit() {
    let Some(lab) = Lab::new("csum") else { return };
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
fn tcp_write_arrives_as_gso_frames() {
    let Some(lab) = Lab::new("tso") else { return };
    let b = lab.socket("B");
    let listener = in_ns(&lab.b, || TcpListener::bind((IP_B, 5555))).unwrap();
    let data: Vec<u8> = (0..9000u32).map(|i| i as u8).collect();

    let reader = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).unwrap();
        got
    });
    let mut client = in_ns(&lab.a, || {
        TcpStream::connect_timeout(&SocketAddr::from((IP_B, 5555)), WAIT)
    })
    .unwrap();
    client.write_all(&data).unwrap();

    // Follow the client's data frames until all 9000 bytes were seen.
    let mut buf = vec![0u8; 65536];
    let mut payload_seen = 0;
    let mut super_frames = 0;
    while payload_seen < data.len() {
        let got = recv_matching(&b, &mut buf, |f| {
            // IPv4 (not ARP) from A carrying TCP payload.
            f.len() >= 54
                && f[12..14] == [0x08, 0x00]
                && f[23] == 6
                && f[26..30] == IP_A.octets()
                && f.len() > 34 + usize::from(f[46] >> 4) * 4
        })
        .expect("the client's data");
        let frame = &buf[..got.len];
        let headers = 34 + usize::from(frame[46] >> 4) * 4;
        payload_seen += got.len - headers;
        if got.len <= 1514 {
            continue;
        }
        super_frames += 1;
        eprintln!(
            "measured: {}-byte TCP frame with {:?}",
            got.len, got.offload
        );
        let offload = got.offload;
        assert_eq!(offload.gso_type, GsoType::TcpV4);
        assert!(offload.needs_csum);
        assert_eq!((offload.csum_start, offload.csum_offset), (34, 16));
        assert!((500..=1460).contains(&offload.gso_size), "{offload:?}");
        assert_eq!(usize::from(offload.hdr_len), headers, "{offload:?}");
        // The partial checksum holds exactly the pseudo-header sum.
        assert_eq!(
            u16::from_be_bytes([frame[50], frame[51]]),
            fold(pseudo_sum(frame))
        );
    }
    assert_eq!(payload_seen, data.len());
    assert!(
        super_frames >= 1,
        "TSO on veth hands over frames above the MTU"
    );

    drop(client);
    assert_eq!(reader.join().unwrap(), data);
}

#[test]
fn host_checks_see_the_callers_namespace() {
    let Some(lab) = Lab::new("host") else { return };
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

// ---- ring sockets ----

#[test]
fn ring_frames_cross_and_never_echo() {
    let Some(lab) = Lab::new("ring") else { return };
    let other = lab.socket("A");
    let cases = [RingFormat::V3, RingFormat::V2]
        .into_iter()
        .flat_map(|format| [(format, None), (format, Some(0x4d51))]);
    for (format, group) in cases {
        let a = lab.ring_as("A", group, format);
        let b = lab.ring_as("B", group, format);
        let payload = format!("ring {format:?} {group:?}");
        let frame = udp_frame(&lab, 9, payload.as_bytes(), Csum::Full);
        a.send(&Offload::NONE, &frame).unwrap();
        let mut buf = vec![0u8; 65536];
        let got = recv_matching(&b, &mut buf, |f| f == frame.as_slice())
            .unwrap_or_else(|| panic!("B's ring gets A's frame (fanout {group:?})"));
        assert_eq!(got.pkttype, PacketType::Host);
        assert!(!got.truncated);
        // A batch send too; and neither those nor what another socket of this host
        // sends (as the kernel's own traffic) comes back to A's ring. The kernel never
        // loops a socket's (or its group's) own sends back; the other socket's frames are
        // what PACKET_FANOUT_FLAG_IGNORE_OUTGOING is for.
        let mut send = SendBatch::new(4);
        let frames = [frame.as_slice(); 3].map(|f| (Offload::NONE, f));
        assert_eq!(a.send_batch(&mut send, frames).unwrap(), 3);
        other.send(&Offload::NONE, &frame).unwrap();
        assert!(
            !sees_within(&a, Duration::from_millis(300), |f| f == frame.as_slice()),
            "A's ring read back a frame this host sent (fanout {group:?})"
        );
        assert_eq!(a.stats().outgoing_skipped, 0, "the kernel filtered them");
        let mut batch = RecvBatch::new(8);
        let mut bufs: Vec<Vec<u8>> = (0..8).map(|_| vec![0u8; 2048]).collect();
        let mut seen = 0;
        let deadline = Instant::now() + WAIT;
        while seen < 4 && Instant::now() < deadline {
            let n = b.recv_batch(&mut batch, &mut bufs, WAIT).unwrap();
            seen += (0..n)
                .filter(|&i| bufs[i][..batch.received()[i].len] == frame[..])
                .count();
        }
        assert_eq!(
            seen, 4,
            "the batch and the other socket's frame crossed (fanout {group:?})"
        );
    }
}

#[test]
fn ring_gets_gso_super_frames_whole() {
    let Some(lab) = Lab::new("rgso") else { return };
    super_frames_arrive_whole(&lab, &lab.ring("B", Some(0x4d52)), 5555);
}

#[test]
fn v2_ring_gets_gso_super_frames_whole() {
    let Some(lab) = Lab::new("r2gso") else { return };
    let b = lab.ring_as("B", Some(0x4d54), RingFormat::V2);
    super_frames_arrive_whole(&lab, &b, 5556);
}

/// A 60 000-byte TCP write from A reaches `b` (on B) as GSO super-frames, whole, with
/// their offload description.
fn super_frames_arrive_whole(lab: &Lab, b: &RingSocket, port: u16) {
    let listener = in_ns(&lab.b, || TcpListener::bind((IP_B, port))).unwrap();
    let data: Vec<u8> = (0..60000u32).map(|i| i as u8).collect();
    let reader = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).unwrap();
        got
    });
    let mut client = in_ns(&lab.a, || {
        TcpStream::connect_timeout(&SocketAddr::from((IP_B, port)), WAIT)
    })
    .unwrap();
    client.write_all(&data).unwrap();

    let mut buf = vec![0u8; 65536];
    let mut payload_seen = 0;
    let mut biggest = 0;
    while payload_seen < data.len() {
        let got = recv_matching(b, &mut buf, |f| {
            f.len() >= 54
                && f[12..14] == [0x08, 0x00]
                && f[23] == 6
                && f[26..30] == IP_A.octets()
                && f.len() > 34 + usize::from(f[46] >> 4) * 4
        })
        .expect("the client's data");
        assert!(!got.truncated);
        let frame = &buf[..got.len];
        let headers = 34 + usize::from(frame[46] >> 4) * 4;
        payload_seen += got.len - headers;
        if got.len <= 1514 {
            continue;
        }
        biggest = biggest.max(got.len);
        let offload = got.offload;
        assert_eq!(offload.gso_type, GsoType::TcpV4, "{offload:?}");
        assert!(offload.needs_csum);
        assert_eq!((offload.csum_start, offload.csum_offset), (34, 16));
        assert_eq!(usize::from(offload.hdr_len), headers, "{offload:?}");
        assert_eq!(
            u16::from_be_bytes([frame[50], frame[51]]),
            fold(pseudo_sum(frame))
        );
    }
    eprintln!("measured: largest frame in the ring {biggest} bytes");
    assert_eq!(payload_seen, data.len());
    assert!(
        biggest > 1514,
        "TSO on veth hands over frames above the MTU"
    );
    drop(client);
    assert_eq!(reader.join().unwrap(), data);
}

#[test]
fn fanout_group_splits_flows_and_keeps_each_whole() {
    let Some(lab) = Lab::new("fan") else { return };
    let a = lab.socket("A");
    let members = [lab.ring("B", Some(0x4d53)), lab.ring("B", Some(0x4d53))];
    const FLOWS: u16 = 64;
    // Two frames per flow (the UDP destination port names the flow).
    for round in 0..2u8 {
        for port in 1000..1000 + FLOWS {
            a.send(&Offload::NONE, &udp_frame(&lab, port, &[round], Csum::Full))
                .unwrap();
        }
    }
    let mut owner: std::collections::HashMap<u16, (usize, u8)> = Default::default();
    let mut buf = vec![0u8; 2048];
    for (i, member) in members.iter().enumerate() {
        while let Some(got) = member.recv(&mut buf, Duration::from_millis(300)).unwrap() {
            let f = &buf[..got.len];
            if f.len() < 43 || f[23] != 17 || f[30..34] != IP_NOBODY.octets() {
                continue;
            }
            let port = u16::from_be_bytes([f[36], f[37]]);
            let entry = owner.entry(port).or_insert((i, 0));
            assert_eq!(entry.0, i, "flow {port} reached both members");
            entry.1 += 1;
        }
    }
    assert_eq!(owner.len(), usize::from(FLOWS), "every flow arrived");
    assert!(owner.values().all(|&(_, n)| n == 2), "{owner:?}");
    let first = owner.values().filter(|&&(m, _)| m == 0).count();
    eprintln!("measured: member 0 got {first} of {FLOWS} flows");
    assert!(
        first > 0 && first < usize::from(FLOWS),
        "the flows were split"
    );
}
