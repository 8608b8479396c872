//! [`PacketSocket`] and [`RingSocket`] against the real kernel (`packet_socket`,
//! `ring_socket`): two network namespaces of our own joined by a veth pair (`va` in
//! namespace A, `vb` in namespace B), so no frame leaves this machine. This file holds
//! the lab and the frames the tests send.
//!
//! Each test builds its own pair of namespaces and deletes them when it ends, also when
//! it fails (`netns_lab`, which also says how they are run: ignored unless asked for,
//! failing without root).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::host::{set_offload, Feature};
use crate::netns_lab::{in_ns, recv_until, Namespaces};
use crate::socket::SocketOptions;
use crate::{
    FrameIo, GsoType, Interface, Offload, PacketSocket, RingFormat, RingOptions, RingSocket,
    V2_SLOT,
};

mod packet_socket;
mod ring_socket;

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
    /// The lab of test `tag`; fails the test without root or `ip`.
    fn new(tag: &str) -> Lab {
        let mut namespaces = Namespaces::new("mqio", tag);
        let (a, b) = (namespaces.add("a"), namespaces.add("b"));
        namespaces.veth(
            ("a", "va", Some("192.0.2.1/24")),
            ("b", "vb", Some("192.0.2.2/24")),
        );
        let mac_a = namespaces.running("a", "va").mac;
        let mac_b = namespaces.running("b", "vb").mac;
        Lab {
            a,
            b,
            mac_a,
            mac_b,
            namespaces,
        }
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

/// A TCP write of `len` bytes from A to B's port `port` reaches `b` (on B) as GSO
/// super-frames, whole, each described as TSO would hand it over, with a partial checksum
/// that holds exactly the pseudo-header sum; and the write arrives intact.
fn tcp_write_arrives_as_super_frames(lab: &Lab, b: &impl FrameIo, port: u16, len: u32) {
    let listener = in_ns(&lab.b, || TcpListener::bind((IP_B, port))).unwrap();
    let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
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

    // Follow the client's data frames until every byte was seen.
    let mut buf = vec![0u8; 65536];
    let mut payload_seen = 0;
    let mut biggest = 0;
    while payload_seen < data.len() {
        let got = recv_matching(b, &mut buf, |f| {
            // IPv4 (not ARP) from A carrying TCP payload.
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
        assert!((500..=1460).contains(&offload.gso_size), "{offload:?}");
        assert_eq!(usize::from(offload.hdr_len), headers, "{offload:?}");
        assert_eq!(
            u16::from_be_bytes([frame[50], frame[51]]),
            fold(pseudo_sum(frame))
        );
    }
    eprintln!("measured: largest TCP frame received {biggest} bytes");
    assert_eq!(payload_seen, data.len());
    assert!(
        biggest > 1514,
        "TSO on veth hands over frames above the MTU"
    );
    drop(client);
    assert_eq!(reader.join().unwrap(), data);
}
