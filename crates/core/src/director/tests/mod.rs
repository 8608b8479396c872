//! The director driven with in-memory frames and a fake clock, on the seed lab of
//! [`crate::testkit`]: the four stages, the TCP life cycle, ARP, ICMP, and every drop
//! reason the data path can produce.

mod bounds;
mod control;
mod dr;
mod drops;
mod icmp;
mod nat;
mod neighbours;
mod sync;
mod tunnel;

use std::net::{IpAddr, Ipv4Addr};

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use masq_wire::arp;
use masq_wire::ethernet::MacAddr;
use masq_wire::tcp::flags::{ACK, FIN, SYN};

use super::*;
use crate::control::{Control, DestParams, Family, Protocol, ServiceKey, ServiceParams};
use crate::testkit::*;
use crate::verdict::{DropReason, Verdict};

/// One rr service `svc` with RS1 (on `rs_port`) as its only server; neighbours learnt when
/// `learn` is set.
fn one_server(gateway: Option<Ipv4Addr>, svc: ServiceKey, rs_port: u16, learn: bool) -> Lab {
    one_server_on(config(gateway), svc, rs_port, learn)
}

/// One rr service with RS1, neighbours learnt, and a table of at most `max_conns`.
fn bounded(max_conns: usize) -> Lab {
    let config = DirectorConfig {
        max_conns,
        ..config(None)
    };
    one_server_on(config, service(Protocol::Tcp, 80), 80, true)
}

fn one_server_on(config: DirectorConfig, svc: ServiceKey, rs_port: u16, learn: bool) -> Lab {
    let mut lab = Lab::with_config(config);
    lab.ctl().add_service(svc, rr()).unwrap();
    lab.ctl().add_dest(svc, rs(RS1, rs_port), masq(1)).unwrap();
    if learn {
        lab.learn_all();
    }
    lab
}

/// What a frame says: MACs, addresses, ports, and whether every checksum is right.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    dst_mac: MacAddr,
    src_mac: MacAddr,
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    ttl: u8,
    checksums_ok: bool,
}

fn seen(frame: &[u8]) -> Seen {
    let p = SlicedPacket::from_ethernet(frame).unwrap();
    let mac = |at: usize| MacAddr(frame[at..at + 6].try_into().unwrap());
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!("not ipv4")
    };
    let ip_header = ip.header().to_header();
    let (sport, dport, l4_ok) = match &p.transport {
        Some(TransportSlice::Tcp(t)) => (
            t.source_port(),
            t.destination_port(),
            t.checksum()
                == t.to_header()
                    .calc_checksum_ipv4(&ip_header, t.payload())
                    .unwrap(),
        ),
        Some(TransportSlice::Udp(u)) => (
            u.source_port(),
            u.destination_port(),
            u.checksum()
                == u.to_header()
                    .calc_checksum_ipv4(&ip_header, u.payload())
                    .unwrap(),
        ),
        other => panic!("no transport: {other:?}"),
    };
    Seen {
        dst_mac: mac(0),
        src_mac: mac(6),
        src: (Ipv4Addr::from(ip_header.source), sport),
        dst: (Ipv4Addr::from(ip_header.destination), dport),
        ttl: ip_header.time_to_live,
        checksums_ok: l4_ok && ip_header.header_checksum == ip_header.calc_header_checksum(),
    }
}
