//! The seed lab, as docs/lab.md and scripts/lab.sh build it with namespaces: the client
//! 192.168.0.101 on the VIP side's 192.168.0.0/24; the director with the VIP 192.168.0.10
//! there and the DIP 192.168.100.10 on 192.168.100.0/24; RS1 192.168.100.7 and RS2
//! 192.168.100.9 behind it, whose default gateway is the DIP.

use std::net::Ipv4Addr;

use masq_core::director::{DirectorConfig, SideConfig, DEFAULT_MAX_CONNS};
use masq_core::neigh;
use masq_wire::ethernet::MacAddr;

use crate::host::{HostConfig, Role};
use crate::lab::Topology;

pub const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 101);
pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 10);
pub const DIP: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 10);
pub const RS1: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 7);
pub const RS2: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 9);

/// Locally administered MACs whose last byte is the host's: easy to read in a capture.
const fn mac(kind: u8, last: u8) -> MacAddr {
    MacAddr([2, kind, 0, 0, 0, last])
}

/// The seed lab's hosts and director.
pub fn topology() -> Topology {
    let side = |mac, addr| SideConfig {
        mac,
        addrs: vec![(addr, 24)],
    };
    let host = |name: &str, addr: Ipv4Addr, gateway, role| HostConfig {
        name: name.to_string(),
        addr,
        prefix: 24,
        mac: mac(
            if role == Role::Client { 0xc1 } else { 0x5e },
            addr.octets()[3],
        ),
        gateway,
        role,
    };
    Topology {
        director: DirectorConfig {
            vip_side: side(mac(0xd1, 1), VIP),
            dip_side: side(mac(0xd1, 2), DIP),
            vip_gateway: None,
            max_conns: DEFAULT_MAX_CONNS,
            max_neighbours: neigh::DEFAULT_CAPACITY,
        },
        vip_side: vec![host("client", CLIENT, None, Role::Client)],
        dip_side: vec![
            host("RS1", RS1, Some(DIP), Role::RealServer),
            host("RS2", RS2, Some(DIP), Role::RealServer),
        ],
    }
}
