//! Hostile frames through a running masqd: a corpus of malformed and odd frames,
//! built with scapy and sent from the client's namespace to the director's VIP-side MAC and
//! from a real server's namespace to its DIP-side MAC, while a normal client keeps asking
//! for pages. masqd must stay up, count every frame it refuses under the right drop reason
//! (checked kind by kind on its Prometheus counters), forward nothing malformed (checked on
//! a capture of everything it sent on both sides), answer TTL 1 with ICMP time exceeded as
//! a router does, and serve the normal client without a single failure.
//!
//! A second test sends jumbo SYNs with DF that do not fit the DIP side's MTU: they are owed
//! ICMP fragmentation needed, as IPVS answers them (`ensure_mtu_is_adequate` in the
//! kernel's `ip_vs_xmit.c`).
//!
//! Root, iproute2, tcpdump, nftables and Debian's python3-scapy are needed
//! (`scripts/install-deps.sh` installs them; the tests are `#[ignore]`d for that and fail,
//! naming what is missing, when run without it), and the binaries:
//! `cargo build --workspace --bins` first. The figures are printed.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{describe, Lab, LabOptions, CLIENT_IP, RS1_IP, RS2_IP, VIP};
use masq::wire::icmp;
use masq::wire::ipv4::Ipv4Packet;

/// Frames of each kind sent.
const PER_KIND: usize = 20;
/// Requests of the normal client.
const NORMAL_REQUESTS: usize = 200;
const METRICS: &str = "127.0.0.1:9104";
/// The first marker of the VIP-side and the DIP-side corpus: kind `i` of a side uses
/// markers `base + 100 i ..` (as client port, IP identification or ICMP rest-of-header).
const VIP_BASE: u32 = 20000;
const DIP_BASE: u32 = 25000;
/// The normal client's ports (its namespace's ephemeral range), apart from the markers.
const EPHEMERAL: (u16, u16) = (50000, 60999);
/// MTU of the client's cable, for the jumbo frames.
const JUMBO_MTU: &str = "9000";

/// What masqd must do with every frame of a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Dropped and counted under this reason.
    Drop(&'static str),
    /// Well formed: forwarded, correctly translated, every checksum right.
    Forward,
    /// Forwarded as it came, its defect kept: kernel IPVS does the same (it updates L4
    /// checksums incrementally, never verifying them: that would cost a pass over every
    /// payload), and the real server's stack discards it. The capture checks the defect is
    /// still there.
    PassThrough(Defect),
    /// Not the director's business (no connection of its): left to the host's kernel.
    NotOurs,
    /// Too big for the far side with DF set: dropped (counted, under whatever reason) and
    /// answered with ICMP fragmentation needed carrying the far side's MTU.
    FragNeeded,
}

/// What a pass-through kind carries through the director.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Defect {
    /// A wrong TCP/UDP checksum (an incremental update keeps it wrong).
    BadL4Checksum,
}

use Expect::{Drop, Forward, FragNeeded, NotOurs, PassThrough};

/// The corpus sent to the VIP side, in order; `hostile.py` builds each kind.
const VIP_CASES: &[(&str, Expect)] = &[
    ("eth_header_only_ipv4", Drop("malformed")),
    ("eth_header_only_arp", Drop("malformed")),
    ("arp_truncated", Drop("malformed")),
    ("arp_other_hardware", Drop("malformed")),
    ("ip_truncated", Drop("malformed")),
    ("ip_ihl_below_5", Drop("malformed")),
    ("ip_ihl_beyond_length", Drop("malformed")),
    ("ip_total_length_beyond_frame", Drop("malformed")),
    ("ip_total_length_cuts_tcp", Drop("malformed")),
    ("ip_trailing_padding", Forward),
    ("ip_bad_checksum", Drop("bad_ip_checksum")),
    ("ip_options_syn", Forward),
    ("tcp_truncated", Drop("malformed")),
    ("tcp_data_offset_below_5", Drop("malformed")),
    ("tcp_data_offset_beyond_segment", Drop("malformed")),
    ("tcp_bad_checksum_syn", PassThrough(Defect::BadL4Checksum)),
    ("tcp_no_flags", Drop("tcp_not_syn")),
    ("tcp_syn_fin", Drop("tcp_bad_flags")),
    ("udp_truncated", Drop("malformed")),
    ("udp_length_beyond_datagram", Drop("malformed")),
    ("udp_length_below_8", Drop("malformed")),
    ("udp_bad_checksum", PassThrough(Defect::BadL4Checksum)),
    ("ttl_1_syn", Drop("ttl_expired")),
    ("ttl_0_syn", Drop("ttl_expired")),
    ("fragment_orphan", Drop("fragment")),
    ("fragment_tiny_first", Drop("malformed")),
    ("fragment_of_icmp_error", Drop("fragment")),
    ("icmp_error_about_connection", Forward),
    ("icmp_error_bad_checksum", Drop("bad_icmp_checksum")),
    ("icmp_error_bad_ip_checksum", Drop("bad_ip_checksum")),
    ("icmp_error_quoting_garbage", Drop("malformed")),
    ("icmp_error_quoting_not_ipv4", Drop("malformed")),
    ("icmp_error_quoting_unknown_flow", NotOurs),
    ("jumbo_tcp_ack_no_connection", Drop("tcp_not_syn")),
    ("jumbo_total_length_beyond_frame", Drop("malformed")),
];

/// The corpus a real server sends to the DIP side, in order.
const DIP_CASES: &[(&str, Expect)] = &[
    ("dip_eth_header_only_ipv4", Drop("malformed")),
    ("dip_ip_truncated", Drop("malformed")),
    ("dip_ip_ihl_below_5", Drop("malformed")),
    ("dip_ip_bad_checksum", Drop("bad_ip_checksum")),
    ("dip_tcp_truncated", Drop("malformed")),
    ("dip_udp_length_beyond_datagram", Drop("malformed")),
    ("dip_ttl_1_on_connection", Drop("ttl_expired")),
    ("dip_fragment_orphan", NotOurs),
    ("dip_icmp_error_about_connection", Forward),
    ("dip_icmp_error_bad_checksum", Drop("bad_icmp_checksum")),
    ("dip_icmp_error_quoting_garbage", Drop("malformed")),
];

/// Builds and sends the corpus with scapy. argv[1] is a JSON object: iface, src_mac,
/// dst_mac, count, base, kinds (in order), held_port, rs_ip, ack_dir. After each kind it
/// prints `sent KIND BASE COUNT` and waits for the file ACK_DIR/ack-KIND, so that the test
/// can read masqd's counters kind by kind.
const HOSTILE_PY: &str = r#"
import json, os, socket, struct, sys, time
from scapy.all import ARP, IP, TCP, UDP, Ether, IPOption_NOP, IPOption_RR, Raw, raw

cfg = json.loads(sys.argv[1])
SRC, DST = cfg["src_mac"], cfg["dst_mac"]
CLIENT, VIP, RS = "192.168.0.101", "192.168.0.10", cfg["rs_ip"]
HELD, N = cfg["held_port"], cfg["count"]

def ether(t=0x0800):
    return Ether(src=SRC, dst=DST, type=t)

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF

def spoil(frame, at):
    """Flips bits of the checksum at byte `at`: never right afterwards, and never 0 (which
    in UDP means "no checksum")."""
    b = bytearray(frame)
    for flip in (0x5AA5, 0x0F0F):
        value = struct.unpack("!H", frame[at:at + 2])[0] ^ flip
        if value:
            break
    b[at:at + 2] = struct.pack("!H", value)
    return bytes(b)

def icmp_error(src, dst, t, code, rest, quote, bad_sum=False, **ip):
    body = bytes([t, code, 0, 0]) + struct.pack("!I", rest) + quote
    s = csum(body)
    if bad_sum:
        s ^= 0x5AA5
    body = body[:2] + struct.pack("!H", s) + body[4:]
    return raw(ether() / IP(src=src, dst=dst, proto=1, **ip) / Raw(body))

def tcp(p, flags="S", payload=b"", src=CLIENT, dst=VIP, sport=None, dport=80, **ip):
    return raw(ether() / IP(src=src, dst=dst, **ip)
               / TCP(sport=p if sport is None else sport, dport=dport, flags=flags, seq=1000 + p, window=64240)
               / Raw(payload))

def udp(p, udp_len=None, payload=b"ping", src=CLIENT, dst=VIP, **kw):
    return raw(ether() / IP(src=src, dst=dst) / UDP(sport=p, dport=7, len=udp_len, **kw) / Raw(payload))

E, I = 14, 34  # offsets of the IP header and of a 20-byte header's payload
# The packet masqd sent the client about the held connection, and the one it sent the RS.
to_client = raw(IP(src=VIP, dst=CLIENT) / TCP(sport=80, dport=HELD, flags="A", seq=7))[:28]
to_rs = raw(IP(src=CLIENT, dst=RS) / TCP(sport=HELD, dport=80, flags="A", seq=7))[:28]

KINDS = {
    "eth_header_only_ipv4": lambda p: raw(ether()),
    "eth_header_only_arp": lambda p: raw(ether(0x0806)),
    "arp_truncated": lambda p: raw(ether(0x0806) / ARP(op=1, hwsrc=SRC, psrc=CLIENT, pdst=VIP))[:E + 20],
    "arp_other_hardware": lambda p: raw(ether(0x0806) / ARP(hwtype=6, op=1, hwsrc=SRC, psrc=CLIENT, pdst=VIP)),
    "ip_truncated": lambda p: tcp(p)[:E + 12],
    "ip_ihl_below_5": lambda p: raw(ether() / IP(src=CLIENT, dst=VIP, ihl=4) / TCP(sport=p, dport=80, flags="S")),
    "ip_ihl_beyond_length": lambda p: raw(ether() / IP(src=CLIENT, dst=VIP, ihl=15, len=40) / TCP(sport=p, dport=80, flags="S")),
    "ip_total_length_beyond_frame": lambda p: raw(ether() / IP(src=CLIENT, dst=VIP, len=140) / TCP(sport=p, dport=80, flags="S")),
    "ip_total_length_cuts_tcp": lambda p: raw(ether() / IP(src=CLIENT, dst=VIP, len=30) / TCP(sport=p, dport=80, flags="S")),
    "ip_trailing_padding": lambda p: tcp(p) + b"\xee" * 40,
    "ip_bad_checksum": lambda p: spoil(tcp(p), E + 10),
    "ip_options_syn": lambda p: raw(ether() / IP(src=CLIENT, dst=VIP, options=[IPOption_NOP(), IPOption_RR(routers=["0.0.0.0"] * 2)])
                                 / TCP(sport=p, dport=80, flags="S", seq=1000 + p)),
    "tcp_truncated": lambda p: raw(ether() / IP(src=CLIENT, dst=VIP, proto=6) / Raw(raw(TCP(sport=p, dport=80, flags="S"))[:10])),
    "tcp_data_offset_below_5": lambda p: raw(ether() / IP(src=CLIENT, dst=VIP) / TCP(sport=p, dport=80, flags="S", dataofs=4)),
    "tcp_data_offset_beyond_segment": lambda p: raw(ether() / IP(src=CLIENT, dst=VIP) / TCP(sport=p, dport=80, flags="S", dataofs=15)),
    "tcp_bad_checksum_syn": lambda p: spoil(tcp(p), I + 16),
    "tcp_no_flags": lambda p: tcp(p, flags=""),
    "tcp_syn_fin": lambda p: tcp(p, flags="SF"),
    "udp_truncated": lambda p: raw(ether() / IP(src=CLIENT, dst=VIP, proto=17) / Raw(struct.pack("!HH", p, 7))),
    "udp_length_beyond_datagram": lambda p: udp(p, udp_len=100),
    "udp_length_below_8": lambda p: udp(p, udp_len=4),
    "udp_bad_checksum": lambda p: spoil(udp(p), I + 6),
    "ttl_1_syn": lambda p: tcp(p, ttl=1),
    "ttl_0_syn": lambda p: tcp(p, ttl=0),
    "fragment_orphan": lambda p: raw(ether() / IP(src=CLIENT, dst=VIP, proto=17, id=p, frag=8) / Raw(b"\x5a" * 16)),
    "fragment_tiny_first": lambda p: raw(ether() / IP(src=CLIENT, dst=VIP, proto=6, id=p, flags="MF")
                                      / Raw(raw(TCP(sport=p, dport=80, flags="S"))[:8])),
    "fragment_of_icmp_error": lambda p: icmp_error(CLIENT, VIP, 3, 1, p, to_client, id=p, flags="MF"),
    "icmp_error_about_connection": lambda p: icmp_error(CLIENT, VIP, 3, 1, p, to_client),
    "icmp_error_bad_checksum": lambda p: icmp_error(CLIENT, VIP, 3, 1, p, to_client, bad_sum=True),
    "icmp_error_bad_ip_checksum": lambda p: spoil(icmp_error(CLIENT, VIP, 3, 1, p, to_client), E + 10),
    "icmp_error_quoting_garbage": lambda p: icmp_error(CLIENT, VIP, 3, 1, p, b"\x45\x00garbage"),
    "icmp_error_quoting_not_ipv4": lambda p: icmp_error(CLIENT, VIP, 3, 1, p, b"\x60" + to_client[1:]),
    "icmp_error_quoting_unknown_flow": lambda p: icmp_error(
        CLIENT, VIP, 3, 1, p, raw(IP(src=VIP, dst=CLIENT) / TCP(sport=80, dport=p, flags="A"))[:28]),
    "jumbo_tcp_ack_no_connection": lambda p: tcp(p, flags="A", payload=b"j" * 8946),
    "jumbo_syn_dont_fragment": lambda p: raw(ether() / IP(src=CLIENT, dst=VIP, flags="DF") / TCP(sport=p, dport=80, flags="S")
                                          / Raw(b"j" * 8946)),
    "jumbo_total_length_beyond_frame": lambda p: raw(ether() / IP(src=CLIENT, dst=VIP, len=9100) / TCP(sport=p, dport=80, flags="A")
                                                  / Raw(b"j" * 8946)),

    "dip_eth_header_only_ipv4": lambda p: raw(ether()),
    "dip_ip_truncated": lambda p: tcp(p, src=RS, dst=CLIENT, sport=80, dport=HELD)[:E + 12],
    "dip_ip_ihl_below_5": lambda p: raw(ether() / IP(src=RS, dst=CLIENT, ihl=4) / TCP(sport=80, dport=HELD, flags="A")),
    "dip_ip_bad_checksum": lambda p: spoil(tcp(p, "A", src=RS, dst=CLIENT, sport=80, dport=HELD), E + 10),
    "dip_tcp_truncated": lambda p: raw(ether() / IP(src=RS, dst=CLIENT, proto=6) / Raw(raw(TCP(sport=80, dport=HELD))[:10])),
    "dip_udp_length_beyond_datagram": lambda p: raw(ether() / IP(src=RS, dst=CLIENT) / UDP(sport=7, dport=p, len=100) / Raw(b"pong")),
    "dip_ttl_1_on_connection": lambda p: tcp(p, "A", src=RS, dst=CLIENT, sport=80, dport=HELD, ttl=1, id=p),
    "dip_fragment_orphan": lambda p: raw(ether() / IP(src=RS, dst=CLIENT, proto=6, id=p, frag=8) / Raw(b"\x5a" * 16)),
    "dip_icmp_error_about_connection": lambda p: icmp_error(RS, CLIENT, 3, 1, p, to_rs),
    "dip_icmp_error_bad_checksum": lambda p: icmp_error(RS, CLIENT, 3, 1, p, to_rs, bad_sum=True),
    "dip_icmp_error_quoting_garbage": lambda p: icmp_error(RS, CLIENT, 3, 1, p, b"\x45"),
}

s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((cfg["iface"], 0))
for i, kind in enumerate(cfg["kinds"]):
    base = cfg["base"] + 100 * i
    for n in range(N):
        s.send(KINDS[kind](base + n))
        time.sleep(0.002)
    print("sent", kind, base, N, flush=True)
    ack = os.path.join(cfg["ack_dir"], "ack-" + kind)
    while not os.path.exists(ack):
        time.sleep(0.01)
print("corpus done", flush=True)
"#;

/// A real connection from the client, held open while the corpus flies (the ICMP errors
/// and the TTL 1 segment are about it); once `GO` exists it asks for a page on it.
const HELD_PY: &str = r#"
import os, socket, sys, time
s = socket.create_connection(("192.168.0.10", 80), timeout=10)
print("port", s.getsockname()[1], flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
data = b""
while True:
    d = s.recv(4096)
    if not d:
        break
    data += d
print("answer", data.split(b"\r\n\r\n", 1)[-1].decode().strip(), flush=True)
"#;

fn masqadm_ok(lab: &Lab, args: &[&str]) -> String {
    let (stdout, stderr, code) = lab.masqadm(args);
    assert!(
        code == 0,
        "masqadm {} failed: exit {code}\n{stdout}{stderr}",
        args.join(" ")
    );
    stdout
}

fn exec_ok(lab: &Lab, ns: &str, args: &[&str]) -> String {
    let out = lab.exec(ns, args);
    assert!(
        out.status.success(),
        "{} in {ns}:\n{}",
        args.join(" "),
        describe(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mac_of(lab: &Lab, ns: &str, iface: &str) -> String {
    exec_ok(
        lab,
        ns,
        &["cat", &format!("/sys/class/net/{iface}/address")],
    )
    .trim()
    .to_owned()
}

/// Drop counters by reason, from masqd's Prometheus endpoint.
fn drops(lab: &Lab) -> BTreeMap<String, u64> {
    let text = exec_ok(
        lab,
        "dir",
        &[
            "curl",
            "-sf",
            "-m",
            "5",
            &format!("http://{METRICS}/metrics"),
        ],
    );
    text.lines()
        .filter_map(|l| l.strip_prefix("masq_dropped_frames_total{reason=\""))
        .filter_map(|l| {
            let (reason, rest) = l.split_once("\"}")?;
            Some((reason.to_owned(), rest.trim().parse().ok()?))
        })
        .collect()
}

fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(r, n)| (r.clone(), n - before.get(r).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// What one kind did to masqd's counters.
struct KindResult {
    side: &'static str,
    kind: &'static str,
    expect: Expect,
    base: u32,
    sent: usize,
    dropped: BTreeMap<String, u64>,
}

/// Who sends one side's corpus, from where, to whom.
struct Sender<'a> {
    side: &'static str,
    ns: &'a str,
    iface: &'a str,
    src_mac: &'a str,
    dst_mac: &'a str,
    /// The first marker of this side (see [`VIP_BASE`]).
    base: u32,
    /// The client port of the held connection the ICMP errors and TTL 1 segments are about.
    held_port: u16,
    /// The real server of that connection.
    rs_ip: &'a str,
}

impl Sender<'_> {
    /// Sends `cases` in order, `PER_KIND` frames each, and reads the drop counters after
    /// each kind: for a kind expected dropped, until they have moved by all it sent (or 3 s
    /// passed); for the others, after a pause.
    fn send(&self, lab: &Lab, cases: &[(&'static str, Expect)]) -> Vec<KindResult> {
        let script = lab.state_dir().join("hostile.py");
        std::fs::write(&script, HOSTILE_PY).expect("writing hostile.py");
        let ack_dir = lab.state_dir().join(format!("acks-{}", self.side));
        std::fs::create_dir_all(&ack_dir).expect("creating the ack directory");
        let kinds: Vec<String> = cases.iter().map(|(k, _)| format!("\"{k}\"")).collect();
        let config = format!(
            "{{\"iface\": \"{}\", \"src_mac\": \"{}\", \"dst_mac\": \"{}\", \
             \"count\": {PER_KIND}, \"base\": {}, \"kinds\": [{}], \"held_port\": {}, \
             \"rs_ip\": \"{}\", \"ack_dir\": \"{}\"}}",
            self.iface,
            self.src_mac,
            self.dst_mac,
            self.base,
            kinds.join(", "),
            self.held_port,
            self.rs_ip,
            ack_dir.display()
        );
        let mut sender = lab.spawn(
            self.ns,
            &format!("hostile-{}", self.side),
            &["/usr/bin/python3", &script.to_string_lossy(), &config],
        );
        let mut results = Vec::new();
        let mut before = drops(lab);
        for &(kind, expect) in cases {
            let line = format!("sent {kind} ");
            sender.wait_for_output(&line, Duration::from_secs(60));
            let output = sender.output();
            let fields: Vec<&str> = output
                .lines()
                .find(|l| l.starts_with(&line))
                .expect("the line just waited for")
                .split(' ')
                .collect();
            let (base, sent): (u32, usize) = (
                fields[2].parse().expect("base"),
                fields[3].parse().expect("count"),
            );
            let wait = match expect {
                Drop(_) | FragNeeded => Duration::from_secs(3),
                _ => Duration::from_millis(300),
            };
            let deadline = Instant::now() + wait;
            let dropped = loop {
                std::thread::sleep(Duration::from_millis(100));
                let d = delta(&drops(lab), &before);
                let settled = match expect {
                    Drop(reason) => d.get(reason).copied().unwrap_or(0) >= sent as u64,
                    FragNeeded => d.values().sum::<u64>() >= sent as u64,
                    _ => false,
                };
                if settled || Instant::now() >= deadline {
                    break d;
                }
            };
            before = drops(lab);
            results.push(KindResult {
                side: self.side,
                kind,
                expect,
                base,
                sent,
                dropped,
            });
            std::fs::write(ack_dir.join(format!("ack-{kind}")), b"").expect("acknowledging");
        }
        sender.wait_for_output("corpus done", Duration::from_secs(10));
        results
    }
}

/// The frames of a pcap file (tcpdump -w), checked not cut by the snap length.
fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert!(data.len() >= 24, "{} is not a pcap file", path.display());
    let magic = u32::from_le_bytes(data[0..4].try_into().expect("4 bytes"));
    let le = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        other => panic!("{}: pcap magic {other:#x}", path.display()),
    };
    let u32_at = |at: usize| {
        let b: [u8; 4] = data[at..at + 4].try_into().expect("4 bytes");
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    assert_eq!(u32_at(20), 1, "link type Ethernet");
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let (incl, orig) = (u32_at(at + 8) as usize, u32_at(at + 12) as usize);
        assert_eq!(incl, orig, "a frame cut by the capture's snap length");
        frames.push(data[at + 16..at + 16 + incl].to_vec());
        at += 16 + incl;
    }
    frames
}

/// The one's-complement sum of `data` (RFC 1071), folded.
fn ones_sum(mut sum: u32, data: &[u8]) -> u16 {
    for pair in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Whether the TCP/UDP checksum of a whole (unfragmented) IPv4 packet is right.
fn l4_checksum_right(ip: &Ipv4Packet<&[u8]>) -> bool {
    let l4 = ip.payload();
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&ip.src_addr().octets());
    pseudo.extend_from_slice(&ip.dst_addr().octets());
    pseudo.extend_from_slice(&[0, ip.protocol()]);
    pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    ones_sum(u32::from(ones_sum(0, &pseudo)), l4) == 0xffff
}

/// What a frame the director sent is, or why it is not well formed.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Sent {
    Arp,
    /// The normal client's connections, either way.
    Normal,
    /// A frame carrying a corpus marker (client port, IP identification or ICMP
    /// rest-of-header): which kind it belongs to, by marker.
    Marked(u32),
    /// Well formed and nobody's marker: ICMP of the director's kernel, say.
    Other,
    /// A TCP or UDP flow that is neither the normal client's nor the corpus's.
    Unexpected(String),
    Malformed(String),
}

/// Checks one frame the director sent: parses as Ethernet/IPv4 (or ARP) without
/// truncation, IPv4 header checksum right, TCP/UDP/ICMP checksum right unless its kind is
/// a pass-through one with a bad checksum (which must then still be wrong).
fn classify(frame: &[u8], defect_of: &dyn Fn(u32) -> Option<Defect>) -> Sent {
    if let Err(e) = etherparse::SlicedPacket::from_ethernet(frame) {
        return Sent::Malformed(format!("etherparse refuses it: {e}"));
    }
    match u16::from_be_bytes([frame[12], frame[13]]) {
        0x0806 => return Sent::Arp,
        0x0800 => {}
        other => return Sent::Malformed(format!("EtherType {other:#06x}")),
    }
    let Ok(ip) = Ipv4Packet::new_checked(&frame[14..]) else {
        return Sent::Malformed("IPv4 header does not parse".into());
    };
    if !ip.verify_checksum() {
        return Sent::Malformed("IPv4 header checksum wrong".into());
    }
    if ip.is_fragment() {
        return Sent::Malformed("a fragment (none is expected)".into());
    }
    let l4 = ip.payload();
    let client = Ipv4Addr::new(192, 168, 0, 101);
    let (marker, l4_right, flags) = match ip.protocol() {
        6 | 17 if l4.len() >= 8 => {
            let port_at = if ip.src_addr() == client { 0 } else { 2 };
            let client_port = u16::from_be_bytes([l4[port_at], l4[port_at + 1]]);
            let right = l4_checksum_right(&ip);
            if (EPHEMERAL.0..=EPHEMERAL.1).contains(&client_port) {
                return if right {
                    Sent::Normal
                } else {
                    Sent::Malformed("the normal client's traffic with a wrong L4 checksum".into())
                };
            }
            let flags = if ip.protocol() == 6 {
                l4.get(13).copied()
            } else {
                None
            };
            (u32::from(client_port), right, flags)
        }
        6 | 17 => return Sent::Malformed("truncated L4 header".into()),
        1 => {
            if ones_sum(0, l4) != 0xffff {
                return Sent::Malformed("ICMP checksum wrong".into());
            }
            match (l4[0], l4[1], icmp::quoted_flow(l4)) {
                // Time exceeded in transit, generated by masqd: the offending packet's
                // client port, or its IP identification when the client port is not a
                // marker (a real server's segment of the held connection).
                (11, 0, Ok(q)) => {
                    let ident = u16::from_be_bytes([l4[12], l4[13]]);
                    let port = if q.src == client { q.sport } else { ident };
                    (u32::from(port), true, None)
                }
                // Fragmentation needed, generated by masqd: the next-hop MTU is the DIP
                // side's, the offending packet's client port the marker.
                (3, 4, Ok(q)) => {
                    let mtu = u16::from_be_bytes([l4[6], l4[7]]);
                    if mtu != 1500 {
                        return Sent::Malformed(format!("fragmentation needed, MTU {mtu}"));
                    }
                    (u32::from(q.sport), true, None)
                }
                // Forwarded errors keep the sender's rest-of-header: the marker.
                (3, _, Ok(_)) => (u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]), true, None),
                (_, _, Ok(_)) => return Sent::Other,
                (_, _, Err(e)) => return Sent::Malformed(format!("ICMP quote: {e}")),
            }
        }
        _ => return Sent::Other,
    };
    if !(VIP_BASE..DIP_BASE + 10_000).contains(&marker) {
        return if ip.protocol() == 1 {
            Sent::Other
        } else {
            Sent::Unexpected(format!(
                "{} {} -> {}, client port {marker}",
                ip.protocol(),
                ip.src_addr(),
                ip.dst_addr()
            ))
        };
    }
    let syn_fin = flags.is_some_and(|f| f & 0x03 == 0x03);
    match (defect_of(marker), l4_right) {
        (None, false) => Sent::Malformed(format!("L4 checksum wrong (marker {marker})")),
        (Some(Defect::BadL4Checksum), true) => Sent::Malformed(format!(
            "a bad checksum was made right on the way (marker {marker})"
        )),
        (_, _) if syn_fin => Sent::Malformed(format!("SYN+FIN (marker {marker})")),
        _ => Sent::Marked(marker),
    }
}

/// A lab with the seed services (TCP and UDP), jumbo frames possible on the client's
/// cable, and captures of everything the director sends on either side.
struct HostileLab {
    lab: Lab,
    cli: String,
    cli_mac: String,
    ext_mac: String,
    int_mac: String,
    int_pcap: std::path::PathBuf,
    cli_pcap: std::path::PathBuf,
    captures: Vec<common::Background>,
}

impl HostileLab {
    /// # Panics
    ///
    /// When not root, when python3-scapy is missing, or when the lab does not come up.
    fn up() -> HostileLab {
        common::require_root_and_iproute2();
        common::require_python_module("scapy", "python3-scapy");
        let lab = Lab::up_with(LabOptions {
            offloads_off: true,
            masqd_args: &["--metrics", METRICS],
            ..LabOptions::default()
        });
        for args in [
            &["-A", "-t", "192.168.0.10:80", "-s", "rr"][..],
            &["-a", "-t", "192.168.0.10:80", "-r", RS1_IP, "-m"][..],
            &["-a", "-t", "192.168.0.10:80", "-r", RS2_IP, "-m"][..],
            &["-A", "-u", "192.168.0.10:7", "-s", "rr"][..],
            &["-a", "-u", "192.168.0.10:7", "-r", RS1_IP, "-m"][..],
            &["-a", "-u", "192.168.0.10:7", "-r", RS2_IP, "-m"][..],
        ] {
            masqadm_ok(&lab, args);
        }
        let (cli, ext, int) = (lab.iface("cli"), lab.iface("ext"), lab.iface("int"));
        // The real servers' switch must not judge IP headers: with br_netfilter loaded on
        // the host, a bridge drops bad ones before they reach the director.
        exec_ok(
            &lab,
            "sw",
            &[
                "sh",
                "-c",
                "[ ! -e /proc/sys/net/bridge/bridge-nf-call-iptables ] || \
                 sysctl -qw net.bridge.bridge-nf-call-iptables=0",
            ],
        );
        // Jumbo frames get as far as masqd; the DIP side keeps 1500.
        exec_ok(
            &lab,
            "client",
            &["ip", "link", "set", &cli, "mtu", JUMBO_MTU],
        );
        exec_ok(&lab, "dir", &["ip", "link", "set", &ext, "mtu", JUMBO_MTU]);
        // The normal client's ports stay clear of the corpus markers, and the client's
        // kernel does not answer the real servers' SYN-ACKs to corpus SYNs with RSTs.
        let range = format!("{} {}", EPHEMERAL.0, EPHEMERAL.1);
        exec_ok(
            &lab,
            "client",
            &[
                "sysctl",
                "-qw",
                &format!("net.ipv4.ip_local_port_range={range}"),
            ],
        );
        exec_ok(
            &lab,
            "client",
            &[
                "nft",
                &format!(
                    "add table inet hostile; \
                     add chain inet hostile out {{ type filter hook output priority 0; }}; \
                     add rule inet hostile out tcp sport {VIP_BASE}-{} tcp flags rst drop",
                    DIP_BASE + 9999
                ),
            ],
        );
        let (cli_mac, ext_mac, int_mac) = (
            mac_of(&lab, "client", &cli),
            mac_of(&lab, "dir", &ext),
            mac_of(&lab, "dir", &int),
        );
        let int_pcap = lab.state_dir().join("int.pcap");
        let cli_pcap = lab.state_dir().join("cli.pcap");
        let mut captures = Vec::new();
        for (ns, iface, pcap, mac) in [
            ("dir", &int, &int_pcap, &int_mac),
            ("client", &cli, &cli_pcap, &ext_mac),
        ] {
            let mut capture = lab.spawn(
                ns,
                &format!("tcpdump-{iface}"),
                &[
                    "tcpdump",
                    "-i",
                    iface,
                    "-U",
                    "-s",
                    "0",
                    "-nn",
                    "-w",
                    &pcap.to_string_lossy(),
                    "ether",
                    "src",
                    mac,
                ],
            );
            capture.wait_for_output("listening on", Duration::from_secs(10));
            captures.push(capture);
        }
        lab.curl(&format!("http://{VIP}/"));
        HostileLab {
            lab,
            cli,
            cli_mac,
            ext_mac,
            int_mac,
            int_pcap,
            cli_pcap,
            captures,
        }
    }

    /// Stops the captures and checks every frame the director sent: the failures, the
    /// frames of each (side, kind) it sent, and how many normal frames it checked.
    fn check_captures(
        &mut self,
        results: &[KindResult],
        failures: &mut Vec<String>,
    ) -> (BTreeMap<(&'static str, &'static str), usize>, usize) {
        std::thread::sleep(Duration::from_millis(500));
        for capture in self.captures.drain(..) {
            capture.stop();
        }
        let kind_of = |marker: u32| {
            results
                .iter()
                .find(|r| (r.base..r.base + PER_KIND as u32).contains(&marker))
        };
        let defect_of = |marker: u32| match kind_of(marker)?.expect {
            PassThrough(defect) => Some(defect),
            _ => None,
        };
        let mut seen = BTreeMap::new();
        let mut normal_frames = 0;
        for (side, pcap) in [("dip", &self.int_pcap), ("vip", &self.cli_pcap)] {
            for frame in read_pcap(pcap) {
                match classify(&frame, &defect_of) {
                    Sent::Malformed(why) => failures.push(format!(
                        "{side} side: the director sent a malformed frame ({why}): {frame:02x?}"
                    )),
                    Sent::Unexpected(what) => failures.push(format!(
                        "{side} side: the director sent a frame of nobody's flow: {what}"
                    )),
                    Sent::Marked(marker) => match kind_of(marker) {
                        Some(r) => *seen.entry((side, r.kind)).or_default() += 1,
                        None => failures.push(format!("{side} side: unknown marker {marker}")),
                    },
                    Sent::Normal => normal_frames += 1,
                    Sent::Arp | Sent::Other => {}
                }
            }
        }
        (seen, normal_frames)
    }
}

/// What must have come out of the director for each kind: forwarded kinds on the far
/// side, ICMP back towards the sender of a TTL 1 or too big packet; nothing for the rest.
fn expected_out(results: &[KindResult]) -> BTreeMap<(&'static str, &'static str), usize> {
    let mut want = BTreeMap::new();
    for r in results {
        let far = if r.side == "vip" { "dip" } else { "vip" };
        match (r.expect, r.kind) {
            (Forward | PassThrough(_), _) => {
                want.insert((far, r.kind), r.sent);
            }
            (FragNeeded, _) | (_, "ttl_1_syn" | "ttl_0_syn" | "dip_ttl_1_on_connection") => {
                want.insert((r.side, r.kind), r.sent);
            }
            _ => {}
        }
    }
    want
}

/// Per kind: the counters moved by exactly what was sent, under the expected reason.
fn check_counters(results: &[KindResult], failures: &mut Vec<String>) {
    for r in results {
        let ok = match r.expect {
            Drop(reason) => r.dropped == BTreeMap::from([(reason.to_owned(), r.sent as u64)]),
            FragNeeded => r.dropped.values().sum::<u64>() == r.sent as u64,
            _ => r.dropped.is_empty(),
        };
        if !ok {
            failures.push(format!(
                "{} {}: expected {:?}, counters moved {:?}",
                r.side, r.kind, r.expect, r.dropped
            ));
        }
    }
}

/// masqd is up, answers masqadm and never panicked.
fn check_masqd_alive(lab: &Lab) {
    let listing = masqadm_ok(lab, &["-L", "-n"]);
    assert!(listing.contains("TCP  192.168.0.10:80 rr"), "{listing}");
    let log = std::fs::read_to_string(lab.state_dir().join("masqd.log")).unwrap_or_default();
    assert!(!log.contains("panicked"), "masqd panicked:\n{log}");
}

fn print_table(results: &[KindResult], seen: &BTreeMap<(&str, &str), usize>) {
    eprintln!(
        "{:<4} {:<34} {:>4}  {:<26} dropped",
        "side", "kind", "sent", "expected"
    );
    for r in results {
        let outcome = match r.expect {
            Drop(reason) => format!("drop {reason}"),
            other => format!("{other:?}"),
        };
        let dropped: Vec<String> = r.dropped.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let out: usize = seen
            .iter()
            .filter(|((_, k), _)| *k == r.kind)
            .map(|(_, n)| n)
            .sum();
        eprintln!(
            "{:<4} {:<34} {:>4}  {:<26} {}{}",
            r.side,
            r.kind,
            r.sent,
            outcome,
            if dropped.is_empty() {
                "0".into()
            } else {
                dropped.join(", ")
            },
            if out > 0 {
                format!("  (director sent {out} for it)")
            } else {
                String::new()
            }
        );
    }
}

#[test]
#[ignore = "needs root, network namespaces and python3-scapy: scripts/test.sh runs it"]
fn hostile_frames_are_counted_and_never_forwarded_while_a_client_is_served() {
    let mut h = HostileLab::up();
    let lab = &h.lab;
    let go = lab.state_dir().join("held-go");
    let held_script = lab.state_dir().join("held.py");
    std::fs::write(&held_script, HELD_PY).expect("writing held.py");
    let mut held = lab.spawn(
        "client",
        "held",
        &[
            "/usr/bin/python3",
            &held_script.to_string_lossy(),
            &go.to_string_lossy(),
        ],
    );
    held.wait_for_output("port ", Duration::from_secs(10));
    let held_port: u16 = held
        .output()
        .lines()
        .find_map(|l| l.strip_prefix("port "))
        .and_then(|p| p.trim().parse().ok())
        .expect("the held connection's port");
    let conns = masqadm_ok(lab, &["-L", "-n", "-c"]);
    let owner = conns
        .lines()
        .find(|l| l.contains(&format!(" {CLIENT_IP}:{held_port} ")))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or_else(|| panic!("the held connection is not in the table:\n{conns}"))
        .to_owned();
    let (rs_ns, rs_iface, rs_ip) = if owner.starts_with(&format!("{RS1_IP}:")) {
        ("rs1", lab.iface("r1"), RS1_IP)
    } else {
        ("rs2", lab.iface("r2"), RS2_IP)
    };
    let rs_mac = mac_of(lab, rs_ns, &rs_iface);

    let loop_script = format!(
        "i=0; while [ $i -lt {NORMAL_REQUESTS} ]; do \
         curl -s -o /dev/null --max-time 10 \
         -w '%{{http_code}} exit %{{exitcode}} in %{{time_total}} s: %{{errormsg}}\\n' http://{VIP}/ || true; \
         i=$((i+1)); sleep 0.05; done; echo normal done"
    );
    let started = Instant::now();
    let mut normal = lab.spawn("client", "normal", &["sh", "-c", &loop_script]);
    let drops_before = drops(lab);
    let vip = Sender {
        side: "vip",
        ns: "client",
        iface: &h.cli,
        src_mac: &h.cli_mac,
        dst_mac: &h.ext_mac,
        base: VIP_BASE,
        held_port,
        rs_ip,
    };
    let mut results = vip.send(lab, VIP_CASES);
    let dip = Sender {
        side: "dip",
        ns: rs_ns,
        iface: &rs_iface,
        src_mac: &rs_mac,
        dst_mac: &h.int_mac,
        base: DIP_BASE,
        held_port,
        rs_ip,
    };
    results.extend(dip.send(lab, DIP_CASES));
    let corpus_secs = started.elapsed().as_secs_f64();
    std::fs::write(&go, b"").expect("releasing the held connection");
    held.wait_for_output("answer ", Duration::from_secs(10));
    normal.wait_for_output("normal done", Duration::from_secs(120));
    let normal_secs = started.elapsed().as_secs_f64();
    check_masqd_alive(lab);

    let mut failures = Vec::new();
    let codes: Vec<String> = normal
        .output()
        .lines()
        .filter(|l| *l != "normal done")
        .map(String::from)
        .collect();
    let ok = codes
        .iter()
        .filter(|c| c.starts_with("200 exit 0 "))
        .count();
    if codes.len() != NORMAL_REQUESTS || ok != NORMAL_REQUESTS {
        let failed: Vec<(usize, &String)> = codes
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.starts_with("200 exit 0 "))
            .collect();
        failures.push(format!(
            "normal client: {ok} of {} requests answered 200 (expected {NORMAL_REQUESTS}); \
             failed (request number, curl's word): {failed:?}",
            codes.len()
        ));
    }
    let answer = held.output();
    if !answer.contains("answer RS") {
        failures.push(format!("the held connection did not survive: {answer}"));
    }
    check_counters(&results, &mut failures);
    let total = delta(&drops(lab), &drops_before);
    let expected_total = results.iter().fold(BTreeMap::new(), |mut m, r| {
        if let Drop(reason) = r.expect {
            *m.entry(reason.to_owned()).or_default() += r.sent as u64;
        }
        m
    });
    if total != expected_total {
        failures.push(format!(
            "drops over the whole run {total:?}, expected {expected_total:?}"
        ));
    }

    let (mut seen, normal_frames) = h.check_captures(&results, &mut failures);
    // A real server answers a forwarded well-formed SYN (with IP options, or padded) with a
    // SYN-ACK, which masqd returns to the client: evidence the SYN arrived intact.
    for kind in ["ip_options_syn", "ip_trailing_padding"] {
        let n = seen.remove(&("vip", kind)).unwrap_or(0);
        if n < PER_KIND {
            failures.push(format!(
                "{kind}: {n} SYN-ACKs came back for {PER_KIND} SYNs forwarded"
            ));
        }
    }
    let want = expected_out(&results);
    if seen != want {
        failures.push(format!(
            "frames the director sent, by kind: {seen:?}\nexpected: {want:?}"
        ));
    }
    if normal_frames == 0 {
        failures.push("the captures saw none of the normal client's traffic".into());
    }
    let slowest = codes
        .iter()
        .filter_map(|c| {
            c.split(" in ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<f64>()
                .ok()
        })
        .fold(0.0, f64::max);
    eprintln!(
        "hostile corpus: {} kinds x {PER_KIND} frames in {corpus_secs:.1} s; normal client \
         {ok}/{} answered 200 over {normal_secs:.1} s (slowest {slowest:.3} s); \
         {normal_frames} of its frames checked",
        results.len(),
        codes.len()
    );
    print_table(&results, &seen);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// As in IPVS, a packet with DF set that is larger than the path MTU (and not GSO) gets
/// ICMP fragmentation needed with the next-hop MTU, and is dropped. Here jumbo SYNs reach
/// masqd on a 9000-byte VIP side, for a DIP side of 1500.
#[test]
#[ignore = "needs root, network namespaces and python3-scapy: scripts/test.sh runs it"]
fn a_jumbo_syn_over_the_dip_mtu_gets_fragmentation_needed() {
    let mut h = HostileLab::up();
    let lab = &h.lab;
    let vip = Sender {
        side: "vip",
        ns: "client",
        iface: &h.cli,
        src_mac: &h.cli_mac,
        dst_mac: &h.ext_mac,
        base: VIP_BASE,
        held_port: 0,
        rs_ip: RS1_IP,
    };
    let results = vip.send(lab, &[("jumbo_syn_dont_fragment", FragNeeded)]);
    check_masqd_alive(lab);
    let mut failures = Vec::new();
    check_counters(&results, &mut failures);
    // masqd reports failed sends about once a second.
    std::thread::sleep(Duration::from_millis(1500));
    let log = std::fs::read_to_string(lab.state_dir().join("masqd.log")).unwrap_or_default();
    if let Some(line) = log.lines().find(|l| l.contains("I/O errors")) {
        failures.push(format!("masqd tried to send them anyway: {line}"));
    }
    let (seen, _) = h.check_captures(&results, &mut failures);
    let want = expected_out(&results);
    if seen != want {
        failures.push(format!(
            "frames the director sent, by kind: {seen:?}\nexpected: {want:?}"
        ));
    }
    print_table(&results, &seen);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
