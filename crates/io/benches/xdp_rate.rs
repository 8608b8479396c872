//! Forwarding rate of an [`XdpPort`] pair against a [`PacketSocket`] pair, alternating in
//! one run, over veth links between network namespaces of its own:
//!
//! ```text
//!  gen (g0) ──► [f0  forwarder  f1] ──► sink (s0)
//! ```
//!
//! The generator sends minimal UDP frames (64 bytes on the wire) to a VIP as fast as
//! `sendmmsg` goes; the forwarder rewrites their MACs and sends them on; the sink's
//! interface counts what arrived. A measurement, not a check: run it by hand, as root,
//!
//! ```text
//! cargo bench -p masq-io --bench xdp_rate
//! ```
//!
//! It is a bench target (`harness = false`) so that no test run includes it. A socket
//! belongs to the namespace it was created in, and a process joins one with
//! `ip netns exec`: so the process builds the namespaces (and deletes them when it ends,
//! also on a panic), then runs itself in `gen` as the generator and in `fwd` as the
//! forwarder. Everything is bounded: each back end forwards for [`ROUND`], twice, and the
//! generator stops after [`GENERATOR_LIMIT`] if nobody stopped it before.

use std::env;
use std::net::Ipv4Addr;
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

use masq_io::{
    FrameIo, Interface, Offload, PacketSocket, Received, RecvBatch, SendBatch, SocketOptions,
    XdpOptions, XdpPort, XdpSide,
};

/// How long each back end forwards in each of the two rounds.
const ROUND: Duration = Duration::from_secs(2);
/// The longest the generator runs.
const GENERATOR_LIMIT: Duration = Duration::from_secs(60);
/// How long an interface may take to get its carrier.
const CARRIER_WAIT: Duration = Duration::from_secs(3);

const VIP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 100);
const GEN_IP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
// Fixed MACs, so each role knows its peers' without asking another namespace.
const G0_MAC: [u8; 6] = [0x02, 0x6d, 0x71, 0, 1, 1];
const F0_MAC: [u8; 6] = [0x02, 0x6d, 0x71, 0, 1, 2];
const F1_MAC: [u8; 6] = [0x02, 0x6d, 0x71, 0, 2, 1];
const S0_MAC: [u8; 6] = [0x02, 0x6d, 0x71, 0, 2, 2];

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        // What `cargo bench` runs.
        ["--bench", ..] => run(),
        // The roles `run` starts in the namespaces.
        ["generate"] => generate(),
        ["forward", sink_ns] => forward(sink_ns),
        // `cargo test --benches` (or `--all-targets`) runs bench targets with no
        // arguments: a test run must not start a measurement.
        [] => eprintln!(
            "xdp_rate: a measurement; run it with `cargo bench -p masq-io --bench xdp_rate`"
        ),
        _ => panic!("xdp_rate: unexpected arguments {args:?}"),
    }
}

/// The namespaces of one run, and the processes in them; both removed on drop.
struct Lab {
    prefix: String,
    created: Vec<String>,
    children: Vec<Child>,
}

impl Lab {
    fn ns(&self, short: &str) -> String {
        format!("{}-{short}", self.prefix)
    }

    fn add(&mut self, short: &str) {
        let ns = self.ns(short);
        ip(&["netns", "add", &ns]);
        self.created.push(ns);
    }

    /// A veth pair `if1` (in `ns1`) — `if2` (in `ns2`) with the given MACs and addresses,
    /// both up.
    fn veth(&self, ends: [(&str, &str, [u8; 6], &str); 2]) {
        let [(ns1, if1, mac1, addr1), (ns2, if2, mac2, addr2)] = ends;
        let (n1, n2) = (self.ns(ns1), self.ns(ns2));
        let (m1, m2) = (mac_text(mac1), mac_text(mac2));
        ip(&[
            "link", "add", if1, "address", &m1, "netns", &n1, "type", "veth", "peer", "name", if2,
            "address", &m2, "netns", &n2,
        ]);
        for (ns, ifname, addr) in [(&n1, if1, addr1), (&n2, if2, addr2)] {
            ip(&["-n", ns, "addr", "add", addr, "dev", ifname]);
            ip(&["-n", ns, "link", "set", ifname, "up"]);
        }
    }

    /// Starts this program in namespace `short` with `args`.
    fn spawn_in(&mut self, short: &str, args: &[&str]) -> &mut Child {
        let exe = env::current_exe().expect("the path of this program");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(short)])
            .arg(exe)
            .args(args)
            .spawn()
            .expect("ip netns exec");
        self.children.push(child);
        self.children.last_mut().expect("just pushed")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in &self.created {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Builds the lab, runs the generator and the forwarder in it, and tears it down.
fn run() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2).map(str::to_owned)
        });
    assert_eq!(
        uid.as_deref(),
        Some("0"),
        "xdp_rate needs root (network namespaces, AF_XDP)"
    );
    let mut lab = Lab {
        prefix: format!("mqrate-{}", std::process::id()),
        created: Vec::new(),
        children: Vec::new(),
    };
    for ns in ["gen", "fwd", "sink"] {
        lab.add(ns);
    }
    lab.veth([
        ("gen", "g0", G0_MAC, "10.1.0.1/24"),
        ("fwd", "f0", F0_MAC, "10.1.0.2/24"),
    ]);
    lab.veth([
        ("fwd", "f1", F1_MAC, "10.2.0.1/24"),
        ("sink", "s0", S0_MAC, "10.2.0.2/24"),
    ]);
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!("measured: load before {}", load().trim_end());
    lab.spawn_in("gen", &["generate"]);
    let sink = lab.ns("sink");
    let status = lab.spawn_in("fwd", &["forward", &sink]).wait();
    eprintln!("measured: load after {}", load().trim_end());
    assert!(status.is_ok_and(|s| s.success()), "the forwarder failed");
}

/// The interface `name` of this process's namespace, once it has a carrier.
fn running(name: &str) -> Interface {
    let deadline = Instant::now() + CARRIER_WAIT;
    loop {
        let iface = Interface::by_name(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        if iface.is_running || Instant::now() > deadline {
            assert!(iface.is_running, "{name} has no carrier: {iface:?}");
            return iface;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn socket(iface: &Interface) -> PacketSocket {
    let options = SocketOptions {
        recv_buffer: Some(4 << 20),
        ..SocketOptions::default()
    };
    PacketSocket::open(iface, &options).unwrap_or_else(|e| panic!("{}: {e}", iface.name))
}

fn xdp(iface: &Interface, side: XdpSide) -> XdpPort {
    XdpPort::open(iface, &XdpOptions::new(side)).unwrap_or_else(|e| panic!("{}: {e}", iface.name))
}

/// The generator, in `gen`: minimal frames to the VIP through f0, in batches of 64, until
/// killed or [`GENERATOR_LIMIT`].
fn generate() {
    let g0 = running("g0");
    let generator = socket(&g0);
    let frame = vip_frame();
    let mut batch = SendBatch::new(64);
    let start = Instant::now();
    while start.elapsed() < GENERATOR_LIMIT {
        // A full queue refuses some; the generator only has to keep the link busy.
        let _ = generator.send_batch(&mut batch, [(Offload::NONE, frame.as_slice()); 64]);
    }
}

/// Frames `s0` in namespace `sink_ns` received: what the forwarder really delivered.
fn sink_rx(sink_ns: &str) -> u64 {
    let out = Command::new("ip")
        .args(["-n", sink_ns, "-s", "link", "show", "s0"])
        .output()
        .expect("ip -s link show");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("RX:"));
    let counters = lines.nth(1).unwrap_or_default();
    counters
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The forwarder's send step: frames `bufs[i][..received[i].len]`.
type Transmit<'a> = dyn Fn(&mut SendBatch, &[Vec<u8>], &[Received]) + 'a;

/// The received frames of a batch, as a send batch takes them.
fn frames<'a>(
    bufs: &'a [Vec<u8>],
    got: &'a [Received],
) -> impl Iterator<Item = (Offload, &'a [u8])> + 'a {
    bufs.iter().zip(got).map(|(b, r)| (r.offload, &b[..r.len]))
}

/// Forwards for [`ROUND`]: `rx` fills the buffers, the MACs are rewritten for the f1 →
/// s0 link, `tx` sends them. Returns (frames forwarded per second, frames the sink got
/// per second).
fn forward_round(
    sink_ns: &str,
    rx: &dyn Fn(&mut RecvBatch, &mut [Vec<u8>]) -> usize,
    tx: &Transmit<'_>,
) -> (f64, f64) {
    let mut recv = RecvBatch::new(64);
    let mut send = SendBatch::new(64);
    let mut bufs: Vec<Vec<u8>> = (0..64).map(|_| vec![0u8; 2048]).collect();
    let mut forwarded = 0u64;
    let delivered_before = sink_rx(sink_ns);
    let start = Instant::now();
    while start.elapsed() < ROUND {
        let n = rx(&mut recv, &mut bufs);
        for buf in &mut bufs[..n] {
            buf[0..6].copy_from_slice(&S0_MAC);
            buf[6..12].copy_from_slice(&F1_MAC);
        }
        tx(&mut send, &bufs[..n], &recv.received()[..n]);
        forwarded += n as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    thread::sleep(Duration::from_millis(50));
    let delivered = sink_rx(sink_ns) - delivered_before;
    (forwarded as f64 / secs, delivered as f64 / secs)
}

/// The forwarder, in `fwd`: two rounds, each an XdpPort pair then a PacketSocket pair.
fn forward(sink_ns: &str) {
    let (f0, f1) = (running("f0"), running("f1"));
    let wait = Duration::from_millis(10);
    let mut results: Vec<(&str, f64)> = Vec::new();
    for round in 0..2 {
        {
            let a = xdp(&f0, XdpSide::Vip);
            let b = xdp(&f1, XdpSide::Dip);
            a.set_addresses(&[VIP], &[], &[]).expect("set_addresses");
            let (rate, delivered) = forward_round(
                sink_ns,
                &|recv, bufs| a.recv_batch(recv, bufs, wait).expect("XDP receive"),
                &|send, bufs, got| {
                    b.send_batch(send, frames(bufs, got)).expect("XDP send");
                },
            );
            eprintln!(
                "measured: round {round} XdpPort {rate:.0} frames/s forwarded, {delivered:.0}/s at the sink; in {:?}; out {:?}",
                a.stats().expect("stats"),
                b.stats().expect("stats")
            );
            results.push(("xdp", rate));
        }
        {
            let a = socket(&f0);
            let b = socket(&f1);
            let (rate, delivered) = forward_round(
                sink_ns,
                &|recv, bufs| a.recv_batch(recv, bufs, wait).expect("receive"),
                &|send, bufs, got| {
                    // As the generator: a full queue refuses some, and the sink counts.
                    let _ = b.send_batch(send, frames(bufs, got));
                },
            );
            eprintln!(
                "measured: round {round} PacketSocket {rate:.0} frames/s forwarded, {delivered:.0}/s at the sink; {:?}",
                a.kernel_stats().expect("kernel stats")
            );
            results.push(("packet", rate));
        }
    }
    eprintln!("measured: {results:?}");
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ip {args:?} could not run ({e}): is iproute2 installed?"));
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

/// The generator's frame: Ethernet, IPv4 (its header checksum filled in) and UDP (no
/// checksum, which IPv4 allows) from GEN_IP:40000 to VIP:80, 18 bytes of payload: 60
/// bytes, 64 on the wire with the FCS.
fn vip_frame() -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&F0_MAC);
    f.extend_from_slice(&G0_MAC);
    f.extend_from_slice(&[
        0x08, 0x00, 0x45, 0, 0, 46, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0,
    ]);
    f.extend_from_slice(&GEN_IP.octets());
    f.extend_from_slice(&VIP.octets());
    let sum: u32 = f[14..34]
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], pair[1]])))
        .sum();
    let folded = (sum & 0xffff) + (sum >> 16);
    let checksum = !((folded & 0xffff) + (folded >> 16)) as u16;
    f[24..26].copy_from_slice(&checksum.to_be_bytes());
    f.extend_from_slice(&[0x9c, 0x40, 0, 80, 0, 26, 0, 0]);
    f.resize(60, 0x5a);
    f
}
