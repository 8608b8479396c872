//! The seed lab as a director fixture, for the core's tests, the end-to-end crate's
//! sans-IO tests, the fuzz targets and the benchmarks (built with the `testkit` feature).
//!
//! The lab is the one `docs/lab.md` walks through: a client 192.168.0.101, the director
//! with the VIP 192.168.0.10/24 on its VIP side and the DIP 192.168.100.10/24 on its DIP
//! side, real servers RS1 192.168.100.7 and RS2 192.168.100.9. [`Lab`] is that director
//! with one worker and a fake clock; the frame builders make what the lab's hosts send.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use etherparse::PacketBuilder;
use masq_wire::arp;
use masq_wire::ethernet::MacAddr;
use masq_wire::ipv4::Ipv4Packet;
use masq_wire::tcp::flags;

use crate::control::{
    Control, DestKey, DestParams, FwdMethod, Protocol, ServiceKey, ServiceParams,
};
use crate::director::{
    Director, DirectorConfig, DirectorControl, FrameMeta, SideConfig, Worker, DEFAULT_MAX_CONNS,
};
use crate::time::Timestamp;
use crate::verdict::{Side, Verdict};

pub const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 101);
pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 10);
pub const DIP: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 10);
pub const RS1: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 7);
pub const RS2: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 9);
/// The VIP side's router, for clients that are not on-link (`--vip-gateway`).
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 1);
/// A client behind [`GATEWAY`].
pub const ROUTED_CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

pub const VIP_MAC: MacAddr = MacAddr([2, 0xd1, 0, 0, 0, 1]);
pub const DIP_MAC: MacAddr = MacAddr([2, 0xd1, 0, 0, 0, 2]);
pub const CLIENT_MAC: MacAddr = MacAddr([2, 0xc1, 0, 0, 0, 101]);
pub const GATEWAY_MAC: MacAddr = MacAddr([2, 0xc1, 0, 0, 0, 1]);
pub const RS1_MAC: MacAddr = MacAddr([2, 0x5e, 0, 0, 0, 7]);
pub const RS2_MAC: MacAddr = MacAddr([2, 0x5e, 0, 0, 0, 9]);

/// The director's interfaces in the lab, with `gateway` as `--vip-gateway`.
pub fn config(gateway: Option<Ipv4Addr>) -> DirectorConfig {
    DirectorConfig {
        vip_side: SideConfig {
            mac: VIP_MAC,
            addrs: vec![(VIP, 24)],
        },
        dip_side: SideConfig {
            mac: DIP_MAC,
            addrs: vec![(DIP, 24)],
        },
        vip_gateway: gateway,
        max_conns: DEFAULT_MAX_CONNS,
        max_neighbours: crate::neigh::DEFAULT_CAPACITY,
    }
}

/// The virtual service VIP:`port` over `protocol`.
pub fn service(protocol: Protocol, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol,
        addr: IpAddr::V4(VIP),
        port,
    }
}

/// The real server `addr:port`.
pub fn rs(addr: Ipv4Addr, port: u16) -> DestKey {
    DestKey {
        addr: IpAddr::V4(addr),
        port,
    }
}

/// `-m -w weight`.
pub fn masq(weight: i32) -> DestParams {
    DestParams {
        fwd: FwdMethod::Masq,
        weight,
        ..DestParams::default()
    }
}

/// `-s rr`.
pub fn rr() -> ServiceParams {
    ServiceParams {
        scheduler: "rr".into(),
        ..ServiceParams::default()
    }
}

/// The director, one worker, a fake clock.
pub struct Lab {
    pub director: Arc<Director>,
    pub worker: Worker,
    pub now: Timestamp,
}

impl Lab {
    /// The seed lab: `-A -t VIP:80 -s rr`, `-a RS1 -m`, `-a RS2 -m`, neighbours learnt.
    pub fn seed() -> Lab {
        Lab::seed_on(config(None))
    }

    /// The seed lab's service and real servers on a director set up as `config`.
    pub fn seed_on(config: DirectorConfig) -> Lab {
        let mut lab = Lab::with_config(config);
        let svc = service(Protocol::Tcp, 80);
        lab.ctl()
            .add_service(svc, rr())
            .expect("adding the service");
        for host in [RS1, RS2] {
            lab.ctl()
                .add_dest(svc, rs(host, 80), masq(1))
                .expect("adding a real server");
        }
        lab.learn_all();
        lab
    }

    /// A director set up as `config`, with no services, at 1000 s on its clock.
    pub fn with_config(config: DirectorConfig) -> Lab {
        let director = Director::new(config);
        let worker = director.worker();
        Lab {
            director,
            worker,
            now: Timestamp::from_secs(1000),
        }
    }

    /// Feeds the ARP traffic a real lab has before the first connection: both real
    /// servers announce themselves, the client asks for the VIP.
    pub fn learn_all(&mut self) {
        for (ip, mac) in [(RS1, RS1_MAC), (RS2, RS2_MAC)] {
            let mut f = arp_frame(arp::OP_REPLY, (mac, ip), (DIP_MAC, DIP));
            assert_eq!(self.handle(Side::Dip, &mut f), Verdict::NotOurs);
        }
        let mut req = arp_frame(arp::OP_REQUEST, (CLIENT_MAC, CLIENT), (MacAddr::ZERO, VIP));
        assert_eq!(
            self.handle(Side::Vip, &mut req),
            Verdict::Forward(Side::Vip)
        );
    }

    /// One frame received on `side`, as a wire delivers it.
    pub fn handle(&mut self, side: Side, frame: &mut [u8]) -> Verdict {
        self.worker
            .handle_frame(self.now, side, frame, FrameMeta::default())
    }

    /// Moves the clock on.
    pub fn advance(&mut self, secs: u64) {
        self.now = self.now + Duration::from_secs(secs);
    }

    /// The control plane now.
    pub fn ctl(&self) -> DirectorControl<'_> {
        self.director.control(self.now)
    }

    /// Every frame the worker has to send now.
    pub fn transmitted(&mut self) -> Vec<(Side, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(t) = self.worker.poll_transmit(self.now) {
            out.push((t.side, t.frame.to_vec()));
        }
        out
    }

    /// (ActiveConn, InActConn) of the real server `addr` of the first service.
    ///
    /// # Panics
    /// If the first service has no real server at `addr`.
    pub fn conns_of(&self, addr: Ipv4Addr) -> (u32, u32) {
        let views = self.ctl().services();
        let d = views[0]
            .dests
            .iter()
            .find(|d| d.key.addr == IpAddr::V4(addr))
            .expect("a real server of the first service");
        (d.active_conns, d.inact_conns)
    }

    /// Housekeeping now; returns the connections it expired and the frames it sent.
    pub fn housekeeping(&mut self) -> (usize, Vec<(Side, Vec<u8>)>) {
        let expired = self.worker.housekeeping(self.now);
        (expired, self.transmitted())
    }
}

/// An ARP packet in an Ethernet frame.
pub fn arp_frame(op: u16, sender: (MacAddr, Ipv4Addr), target: (MacAddr, Ipv4Addr)) -> Vec<u8> {
    let mut buf = vec![0u8; arp::FRAME_LEN];
    arp::write_frame(&mut buf, op, sender, target);
    buf
}

/// A TCP segment with `tcp_flags` (of [`flags`]) and `payload`, TTL 64, in an Ethernet
/// frame from `macs.0` to `macs.1`.
pub fn tcp_frame(
    macs: (MacAddr, MacAddr),
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    tcp_flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(macs.0 .0, macs.1 .0)
        .ipv4(src.0.octets(), dst.0.octets(), 64)
        .tcp(src.1, dst.1, 1000, 64240);
    if tcp_flags & flags::SYN != 0 {
        b = b.syn();
    }
    if tcp_flags & flags::ACK != 0 {
        b = b.ack(1);
    }
    if tcp_flags & flags::FIN != 0 {
        b = b.fin();
    }
    if tcp_flags & flags::RST != 0 {
        b = b.rst();
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("building a TCP frame");
    out
}

/// A UDP datagram with `payload`, TTL 64, in an Ethernet frame from `macs.0` to `macs.1`.
pub fn udp_frame(
    macs: (MacAddr, MacAddr),
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(macs.0 .0, macs.1 .0)
        .ipv4(src.0.octets(), dst.0.octets(), 64)
        .udp(src.1, dst.1);
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("building a UDP frame");
    out
}

/// Client → VIP:80 as the client sends it (stage 1).
pub fn from_client(sport: u16, tcp_flags: u8) -> Vec<u8> {
    tcp_frame(
        (CLIENT_MAC, VIP_MAC),
        (CLIENT, sport),
        (VIP, 80),
        tcp_flags,
        b"",
    )
}

/// RS:80 → client as a real server sends it to its gateway, the DIP (stage 3).
pub fn from_rs(rs: Ipv4Addr, rs_mac: MacAddr, cport: u16, tcp_flags: u8) -> Vec<u8> {
    tcp_frame((rs_mac, DIP_MAC), (rs, 80), (CLIENT, cport), tcp_flags, b"")
}

/// Splits an Ethernet+IPv4 frame into fragments of at most `chunk` payload bytes (a
/// multiple of 8), as a sender's IP layer would.
pub fn fragment(frame: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    let (eth, ip) = frame.split_at(14);
    let (header, payload) = ip.split_at(20);
    let chunks: Vec<&[u8]> = payload.chunks(chunk).collect();
    chunks
        .iter()
        .enumerate()
        .map(|(i, data)| {
            let mut f = eth.to_vec();
            let mut h = header.to_vec();
            h[2..4].copy_from_slice(&((20 + data.len()) as u16).to_be_bytes());
            let more = if i + 1 < chunks.len() { 0x2000 } else { 0 };
            let flags_offset = more | (i * chunk / 8) as u16;
            h[6..8].copy_from_slice(&flags_offset.to_be_bytes());
            f.extend_from_slice(&h);
            f.extend_from_slice(data);
            Ipv4Packet::new_checked(&mut f[14..])
                .unwrap()
                .fill_checksum();
            f
        })
        .collect()
}

/// Recomputes the IPv4 header checksum of an Ethernet frame after a header field was
/// changed (nothing if it holds no valid IPv4 header).
pub fn refill_ip_checksum(frame: &mut [u8]) {
    if let Some(Ok(mut ip)) = frame.get_mut(14..).map(Ipv4Packet::new_checked) {
        ip.fill_checksum();
    }
}
