//! Cost of the director's per-packet work, measured without I/O:
//! - `nat_rewrite`: the wire-level rewrite of one TCP segment (addresses, ports, checksums);
//! - `handle_frame/established/N`: one client→server frame of an established connection
//!   through `Worker::handle_frame` with N live connections in the table (the forwarding
//!   cost should stay flat as N grows);
//! - `handle_frame/new_connection`: a SYN that is scheduled (rr) and inserted.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use masq::core::control::{
    Control, DestKey, DestParams, FwdMethod, Protocol, ServiceKey, ServiceParams,
};
use masq::core::director::{DirectorConfig, SideConfig};
use masq::core::{Director, FrameMeta, Side, Timestamp, Verdict};
use masq::wire::arp;
use masq::wire::checksum::L4Checksum;
use masq::wire::ethernet::MacAddr;
use masq::wire::ipv4::Ipv4Packet;
use masq::wire::nat::{self, Endpoint};

const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 10);
const DIP: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 10);
const VIP_MAC: MacAddr = MacAddr([2, 0xd1, 0, 0, 0, 1]);
const DIP_MAC: MacAddr = MacAddr([2, 0xd1, 0, 0, 0, 2]);
const CLIENT_MAC: MacAddr = MacAddr([2, 0xc1, 0, 0, 0, 1]);

fn frame(src: (Ipv4Addr, u16), syn: bool, payload: usize) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(CLIENT_MAC.0, VIP_MAC.0)
        .ipv4(src.0.octets(), VIP.octets(), 64)
        .tcp(src.1, 80, 1, 64240);
    let b = if syn { b.syn() } else { b.ack(1) };
    let mut out = Vec::new();
    b.write(&mut out, &vec![0x61; payload]).unwrap();
    out
}

fn client(i: u32) -> (Ipv4Addr, u16) {
    (
        Ipv4Addr::from(0x0a00_0000 | (i >> 14)),
        1024 + (i & 0x3fff) as u16,
    )
}

fn director() -> std::sync::Arc<Director> {
    let d = Director::new(DirectorConfig {
        vip_side: SideConfig {
            mac: VIP_MAC,
            addrs: vec![(VIP, 24)],
        },
        dip_side: SideConfig {
            mac: DIP_MAC,
            addrs: vec![(DIP, 24)],
        },
        // Clients are 10.x: reached through a gateway.
        vip_gateway: Some(Ipv4Addr::new(192, 168, 0, 1)),
        max_conns: masq::core::director::DEFAULT_MAX_CONNS,
    });
    let svc = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: IpAddr::V4(VIP),
        port: 80,
    };
    let ctl = d.control(Timestamp::ZERO);
    ctl.add_service(
        svc,
        ServiceParams {
            scheduler: "rr".into(),
            ..ServiceParams::default()
        },
    )
    .unwrap();
    for host in [7u8, 9] {
        ctl.add_dest(
            svc,
            DestKey {
                addr: IpAddr::V4(Ipv4Addr::new(192, 168, 100, host)),
                port: 80,
            },
            DestParams {
                fwd: FwdMethod::Masq,
                ..DestParams::default()
            },
        )
        .unwrap();
    }
    let mut w = d.worker();
    for host in [7u8, 9] {
        let mut reply = vec![0u8; arp::FRAME_LEN];
        let rs = Ipv4Addr::new(192, 168, 100, host);
        arp::write_frame(
            &mut reply,
            arp::OP_REPLY,
            (MacAddr([2, 0, 0, 0, 0, host]), rs),
            (DIP_MAC, DIP),
        );
        w.handle_frame(Timestamp::ZERO, Side::Dip, &mut reply, FrameMeta::default());
    }
    d
}

fn nat_rewrite(c: &mut Criterion) {
    let template = frame((Ipv4Addr::new(192, 168, 0, 101), 40000), false, 1400);
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

criterion_group!(benches, nat_rewrite, handle_frame);
criterion_main!(benches);
