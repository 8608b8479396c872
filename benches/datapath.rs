//! Cost of the director's per-packet work, measured without I/O:
//! - `nat_rewrite`: the wire-level rewrite of one TCP segment (addresses, ports, checksums);
//! - `handle_frame/established/N`: one client→server frame of an established connection
//!   through `Worker::handle_frame` with N live connections in the table (the forwarding
//!   cost should stay flat as N grows);
//! - `handle_frame/new_connection`: a SYN that is scheduled (rr) and inserted.
//!
//! Scaling curves (issue #6: the cost per frame should stay flat), each measuring one
//! client→server frame of an established connection (`established/…`) and a new
//! connection's SYN, scheduled and inserted (`new_connection/…`):
//! - `scaling_services/{established,new_connection}/S`: S = 1, 100, 1000 services (200
//!   VIPs × up to 5 ports, 2 real servers each), the measured one in the middle, 10k live
//!   connections;
//! - `scaling_dests/{established,new_connection}/SCHED_D`: the measured service with
//!   D = 2 or 1000 real servers under rr or wlc, 10k live connections;
//! - `scaling_conns/{new_connection,established_spread}/N`: N = 1k, 100k, 1M live
//!   connections. `handle_frame/established/N` above sends every frame on one connection,
//!   whose entry stays in the CPU's caches; `established_spread` picks a random live
//!   connection for each frame (its source address and port patched into the template,
//!   as `new_connection` does, a constant cost at every N), so that a table larger than
//!   the caches shows.
//!
//! The SYNs come from a pool of 10 % of the live count (at least 100) clients that have no
//! entry. Between rounds of one pool, outside the timed region, the clock moves 61 s on
//! and `housekeeping` expires the pool's entries (SYN_RECV lives 60 s) while the live
//! connections stay (ESTABLISHED, with the tcp timeout raised), so every measured SYN
//! creates an entry and the table stays between N and 1.1 N.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use masq::core::control::{
    Control, DestKey, DestParams, FwdMethod, Protocol, ServiceKey, ServiceParams, Timeouts,
};
use masq::core::director::{DirectorConfig, SideConfig};
use masq::core::testkit::{
    self, tcp_frame, Lab, CLIENT, CLIENT_MAC, DIP_MAC, GATEWAY, VIP, VIP_MAC,
};
use masq::core::{Director, FrameMeta, Side, Timestamp, Verdict, Worker};
use masq::wire::arp;
use masq::wire::checksum::L4Checksum;
use masq::wire::ethernet::MacAddr;
use masq::wire::ipv4::Ipv4Packet;
use masq::wire::nat::{self, Endpoint};
use masq::wire::tcp::flags;

fn frame(src: (Ipv4Addr, u16), syn: bool, payload: usize) -> Vec<u8> {
    frame_to(src, (VIP, 80), syn, payload)
}

/// A client's SYN, or a segment of an established connection, with `payload` bytes.
fn frame_to(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), syn: bool, payload: usize) -> Vec<u8> {
    let tcp_flags = if syn { flags::SYN } else { flags::ACK };
    tcp_frame(
        (CLIENT_MAC, VIP_MAC),
        src,
        dst,
        tcp_flags,
        &vec![0x61; payload],
    )
}

/// Client `i`: 10.x.y.z, behind the VIP side's gateway.
fn client(i: u32) -> (Ipv4Addr, u16) {
    (
        Ipv4Addr::from(0x0a00_0000 | (i >> 14)),
        1024 + (i & 0x3fff) as u16,
    )
}

/// The seed lab's director (`-A -t VIP:80 -s rr`, RS1 and RS2 resolved); the clients
/// (10.x) are reached through the VIP side's gateway.
fn director() -> Arc<Director> {
    Lab::seed_on(testkit::config(Some(GATEWAY))).director
}

fn nat_rewrite(c: &mut Criterion) {
    let template = frame((CLIENT, 40000), false, 1400);
    let mut buf = template.clone();
    let mut g = c.benchmark_group("nat_rewrite");
    g.throughput(Throughput::Elements(1));
    g.bench_function("tcp_1400B", |b| {
        b.iter(|| {
            buf.copy_from_slice(&template);
            let mut ip = Ipv4Packet::new_checked(&mut buf[14..]).unwrap();
            nat::rewrite(
                &mut ip,
                Endpoint::Destination,
                black_box(Ipv4Addr::new(192, 168, 100, 7)),
                80,
                L4Checksum::Full,
            )
            .unwrap();
            nat::decrement_ttl(&mut ip);
            ip.fill_checksum();
        })
    });
    g.finish();
}

fn handle_frame(c: &mut Criterion) {
    let mut g = c.benchmark_group("handle_frame");
    g.throughput(Throughput::Elements(1));
    for &n in &[1_000u32, 100_000, 1_000_000] {
        let d = director();
        let mut w = d.worker();
        let now = Timestamp::from_secs(1);
        for i in 0..n {
            let mut syn = frame(client(i), true, 0);
            let v = w.handle_frame(now, Side::Vip, &mut syn, FrameMeta::default());
            assert_eq!(v, Verdict::Forward(Side::Dip));
        }
        assert_eq!(d.connection_count(), n as usize);
        let template = frame(client(n / 2), false, 64);
        let mut buf = template.clone();
        g.bench_with_input(BenchmarkId::new("established", n), &n, |b, _| {
            b.iter(|| {
                buf.copy_from_slice(&template);
                black_box(w.handle_frame(now, Side::Vip, &mut buf, FrameMeta::default()))
            })
        });
    }
    // The cost of tracing: nobody listening (the default), a listener for another
    // service, and a listener that wants every packet of this connection.
    {
        let d = director();
        let mut w = d.worker();
        let now = Timestamp::from_secs(1);
        let mut syn = frame(client(7), true, 0);
        let every = masq::core::trace::TraceFilter {
            service: None,
            every_packet: true,
        };
        // Subscribed before the connection opens, so that it is traced.
        let sub = d.trace.subscribe(every, 1 << 16);
        w.handle_frame(now, Side::Vip, &mut syn, FrameMeta::default());
        let template = frame(client(7), false, 64);
        let mut buf = template.clone();
        g.bench_function("established/traced_every_packet", |b| {
            b.iter(|| {
                buf.copy_from_slice(&template);
                let v = w.handle_frame(now, Side::Vip, &mut buf, FrameMeta::default());
                // Keep the listener's queue from filling (a full queue loses, which is cheaper).
                while sub.events.try_recv().is_ok() {}
                black_box(v)
            })
        });
        drop(sub);
        let other = masq::core::trace::TraceFilter {
            service: Some((6, "192.168.0.99:80".parse().unwrap())),
            every_packet: false,
        };
        let _sub = d.trace.subscribe(other, 16);
        g.bench_function("established/listener_for_another_service", |b| {
            b.iter(|| {
                buf.copy_from_slice(&template);
                black_box(w.handle_frame(now, Side::Vip, &mut buf, FrameMeta::default()))
            })
        });
        drop(_sub);
        g.bench_function("established/nobody_listening", |b| {
            b.iter(|| {
                buf.copy_from_slice(&template);
                black_box(w.handle_frame(now, Side::Vip, &mut buf, FrameMeta::default()))
            })
        });
    }
    let d = director();
    let mut w = d.worker();
    let mut i = 0u32;
    let template = frame(client(0), true, 0);
    let mut syn = template.clone();
    g.bench_function("new_connection", |b| {
        b.iter(|| {
            // A new client address and port each time: patch the template in place (the
            // wire rewrite keeps its checksums right) instead of building a frame.
            i = i.wrapping_add(1);
            syn.copy_from_slice(&template);
            let (addr, port) = client(i);
            let mut ip = Ipv4Packet::new_checked(&mut syn[14..]).unwrap();
            nat::rewrite(&mut ip, Endpoint::Source, addr, port, L4Checksum::Full).unwrap();
            ip.fill_checksum();
            black_box(w.handle_frame(
                Timestamp::from_secs(1),
                Side::Vip,
                &mut syn,
                FrameMeta::default(),
            ))
        })
    });
    g.finish();
}

/// A director for the scaling curves, with `live` established connections to the measured
/// service and a pool of clients without an entry for the SYNs.
struct Scale {
    director: Arc<Director>,
    worker: Worker,
    now: Timestamp,
    live: usize,
    /// ARP replies of every real server, fed again each round so that none goes stale.
    arp: Vec<Vec<u8>>,
    /// The pool's SYNs back to back (each `syn_len` bytes), and the copy they are
    /// rewritten in.
    pristine: Vec<u8>,
    work: Vec<u8>,
    syn_len: usize,
    /// An established connection's frame (64 bytes of payload).
    established: Vec<u8>,
}

const SCALE_DIP: Ipv4Addr = Ipv4Addr::new(172, 16, 255, 1);

/// Real server `j`: 172.16.x.y, on-link on the DIP side's /16.
fn rip(j: usize) -> Ipv4Addr {
    Ipv4Addr::new(172, 16, (j / 250) as u8, 1 + (j % 250) as u8)
}

/// Service `k`'s VIP and port: 200 VIPs, then the next port.
fn scale_vip(k: usize) -> (Ipv4Addr, u16) {
    (
        Ipv4Addr::new(192, 168, 0, 10 + (k % 200) as u8),
        80 + (k / 200) as u16,
    )
}

impl Scale {
    /// `services` services; the measured one (number `services / 2`) has `dests` real
    /// servers and `scheduler`, the others 2 real servers and rr.
    fn new(services: usize, dests: usize, scheduler: &str, live: usize) -> Self {
        // The DIP side on a /16 for up to 1000 real servers, room for 1.1M entries
        // without secure_tcp's table or eviction.
        let director = Director::new(DirectorConfig {
            dip_side: SideConfig {
                mac: DIP_MAC,
                addrs: vec![(SCALE_DIP, 16)],
            },
            max_conns: 1 << 22,
            max_neighbours: masq_core::neigh::DEFAULT_CAPACITY,
            ..testkit::config(Some(GATEWAY))
        });
        let now = Timestamp::from_secs(1);
        let ctl = director.control(now);
        // The live connections must outlive every round's 61 s step.
        ctl.set_timeouts(Timeouts {
            tcp: 100_000_000,
            ..Timeouts::default()
        })
        .unwrap();
        let measured = services / 2;
        for k in 0..services {
            let (addr, port) = scale_vip(k);
            let key = ServiceKey::Addr {
                protocol: Protocol::Tcp,
                addr: IpAddr::V4(addr),
                port,
            };
            let (n, sched) = if k == measured {
                (dests, scheduler)
            } else {
                (2, "rr")
            };
            ctl.add_service(
                key,
                ServiceParams {
                    scheduler: sched.into(),
                    ..ServiceParams::default()
                },
            )
            .unwrap();
            for j in 0..n {
                let dest = DestKey {
                    addr: IpAddr::V4(rip(j)),
                    port: 80,
                };
                let params = DestParams {
                    fwd: FwdMethod::Masq,
                    ..DestParams::default()
                };
                ctl.add_dest(key, dest, params).unwrap();
            }
        }
        let arp = (0..dests.max(2))
            .map(|j| {
                let mut reply = vec![0u8; arp::FRAME_LEN];
                let mac = MacAddr([2, 0, 0, 0, (j >> 8) as u8, j as u8]);
                arp::write_frame(
                    &mut reply,
                    arp::OP_REPLY,
                    (mac, rip(j)),
                    (DIP_MAC, SCALE_DIP),
                );
                reply
            })
            .collect();
        let vip = scale_vip(measured);
        let worker = director.worker();
        let pool = (live / 10).max(100);
        let mut s = Scale {
            established: frame_to(client(live as u32 / 2), vip, false, 64),
            director,
            worker,
            now,
            live,
            arp,
            pristine: Vec::new(),
            work: Vec::new(),
            syn_len: 0,
        };
        s.feed_arp();
        for i in 0..live as u32 {
            for syn in [true, false] {
                let mut f = frame_to(client(i), vip, syn, 0);
                let v = s
                    .worker
                    .handle_frame(now, Side::Vip, &mut f, FrameMeta::default());
                assert_eq!(v, Verdict::Forward(Side::Dip));
            }
        }
        assert_eq!(s.director.connection_count(), live);
        for i in live..live + pool {
            s.pristine.extend(frame_to(client(i as u32), vip, true, 0));
        }
        s.syn_len = s.pristine.len() / pool;
        s.work = s.pristine.clone();
        s
    }

    fn feed_arp(&mut self) {
        for reply in &self.arp {
            let mut f = reply.clone();
            self.worker
                .handle_frame(self.now, Side::Dip, &mut f, FrameMeta::default());
        }
    }

    /// The timed cost of `iters` SYNs, in rounds of at most the pool's size.
    fn new_connections(&mut self, iters: u64) -> Duration {
        let pool = (self.pristine.len() / self.syn_len) as u64;
        let mut total = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let k = left.min(pool) as usize;
            // Untimed: the previous round's entries expire, the live ones stay.
            self.now = self.now + Duration::from_secs(61);
            self.worker.housekeeping(self.now);
            while self.worker.poll_transmit(self.now).is_some() {}
            assert_eq!(self.director.connection_count(), self.live);
            self.feed_arp();
            let bytes = k * self.syn_len;
            self.work[..bytes].copy_from_slice(&self.pristine[..bytes]);
            let t0 = Instant::now();
            for syn in self.work[..bytes].chunks_exact_mut(self.syn_len) {
                black_box(
                    self.worker
                        .handle_frame(self.now, Side::Vip, syn, FrameMeta::default()),
                );
            }
            total += t0.elapsed();
            assert_eq!(self.director.connection_count(), self.live + k);
            left -= k as u64;
        }
        total
    }

    /// A frame of live connection `i` (0 ≤ i < live): the established template with its
    /// source patched.
    fn established_of(&mut self, i: u32, buf: &mut [u8]) -> Verdict {
        buf.copy_from_slice(&self.established);
        let (addr, port) = client(i);
        let mut ip = Ipv4Packet::new_checked(&mut buf[14..]).unwrap();
        nat::rewrite(&mut ip, Endpoint::Source, addr, port, L4Checksum::Full).unwrap();
        ip.fill_checksum();
        self.worker
            .handle_frame(self.now, Side::Vip, buf, FrameMeta::default())
    }

    /// One established connection's frame (copied from its template each time, as in
    /// `handle_frame/established`).
    fn established(&mut self, buf: &mut [u8]) -> Verdict {
        buf.copy_from_slice(&self.established);
        self.worker
            .handle_frame(self.now, Side::Vip, buf, FrameMeta::default())
    }
}

/// Both measurements on one scaling director.
fn scale_pair(g: &mut BenchmarkGroup<'_, WallTime>, id: &str, s: &mut Scale) {
    let mut buf = s.established.clone();
    assert_eq!(s.established(&mut buf), Verdict::Forward(Side::Dip));
    g.bench_function(BenchmarkId::new("established", id), |b| {
        b.iter(|| black_box(s.established(&mut buf)))
    });
    g.bench_function(BenchmarkId::new("new_connection", id), |b| {
        b.iter_custom(|iters| s.new_connections(iters))
    });
}

/// Each scaling group: 10 samples of 2 s (the 1M-connection director alone takes seconds
/// to build).
fn scale_group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(1))
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g
}

fn scaling(c: &mut Criterion) {
    let mut g = scale_group(c, "scaling_services");
    for services in [1, 100, 1000] {
        let mut s = Scale::new(services, 2, "rr", 10_000);
        scale_pair(&mut g, &services.to_string(), &mut s);
    }
    g.finish();

    let mut g = scale_group(c, "scaling_dests");
    for scheduler in ["rr", "wlc"] {
        for dests in [2, 1000] {
            let mut s = Scale::new(1, dests, scheduler, 10_000);
            scale_pair(&mut g, &format!("{scheduler}_{dests}"), &mut s);
        }
    }
    g.finish();

    let mut g = scale_group(c, "scaling_conns");
    for live in [1_000, 100_000, 1_000_000] {
        let mut s = Scale::new(1, 2, "rr", live);
        let mut buf = s.established.clone();
        assert_eq!(s.established_of(7, &mut buf), Verdict::Forward(Side::Dip));
        let mut x = 0x2545_f491u32;
        g.bench_function(BenchmarkId::new("established_spread", live), |b| {
            b.iter(|| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                black_box(s.established_of(x % live as u32, &mut buf))
            })
        });
        g.bench_function(BenchmarkId::new("new_connection", live), |b| {
            b.iter_custom(|iters| s.new_connections(iters))
        });
    }
    g.finish();
}

criterion_group!(benches, nat_rewrite, handle_frame, scaling);
criterion_main!(benches);
