//! The three BPF maps the steering program reads, and how the port fills them:
//!
//! - `addrs` (hash, 4096 entries): key, an IPv4 address as it is on the wire; value, its
//!   flags [`VIP`], [`RIP`], [`LOCAL`];
//! - `services` (hash, 4096 entries): key, `(VIP, port, protocol, 0)` as the program lays
//!   it on its stack; value 1;
//! - `xsks` (XSKMAP, [`MAX_QUEUES`] entries): key, a receive queue; value, its AF_XDP
//!   socket.
//!
//! Control path only: filling a map allocates and makes one `bpf()` call per entry.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use super::steering_prog::ProgramMaps;
use crate::error::IoError;
use crate::sys::bpf::{self, MapKey};

/// Flag in the `addrs` map: the address is a virtual service address.
pub(super) const VIP: u32 = 1;
/// Flag in the `addrs` map: the address is a real server's.
pub(super) const RIP: u32 = 2;
/// Flag in the `addrs` map: the address is one of this host's own.
pub(super) const LOCAL: u32 = 4;

/// Entries of the `addrs` and `services` maps.
const MAP_ENTRIES: u32 = 4096;
/// Entries of the XSKMAP, so the most queues a port binds.
pub(super) const MAX_QUEUES: u32 = 64;

/// The maps of one port.
pub(super) struct Maps {
    addrs: OwnedFd,
    services: OwnedFd,
    xsks: OwnedFd,
}

impl Maps {
    /// Creates the three maps, empty, for the port on `iface`.
    pub(super) fn create(iface: &str) -> Result<Maps, IoError> {
        let create = |map_type, key_size, entries, name, call| {
            bpf::map_create(map_type, key_size, entries, name).map_err(|source| IoError::Bpf {
                call,
                iface: iface.to_owned(),
                source,
            })
        };
        let hash = "bpf(BPF_MAP_CREATE, HASH)";
        Ok(Maps {
            addrs: create(bpf::BPF_MAP_TYPE_HASH, 4, MAP_ENTRIES, "masq_addrs", hash)?,
            services: create(
                bpf::BPF_MAP_TYPE_HASH,
                8,
                MAP_ENTRIES,
                "masq_services",
                hash,
            )?,
            xsks: create(
                bpf::BPF_MAP_TYPE_XSKMAP,
                4,
                MAX_QUEUES,
                "masq_xsks",
                "bpf(BPF_MAP_CREATE, XSKMAP)",
            )?,
        })
    }

    /// The descriptors the program is assembled over.
    pub(super) fn for_program(&self) -> ProgramMaps {
        ProgramMaps {
            addrs: self.addrs.as_raw_fd(),
            services: self.services.as_raw_fd(),
            xsks: self.xsks.as_raw_fd(),
        }
    }

    /// The XSKMAP.
    pub(super) fn xsks(&self) -> BorrowedFd<'_> {
        self.xsks.as_fd()
    }

    /// Makes `addrs` hold exactly `vips` with the VIP flag, `rips` with RIP and `locals`
    /// with LOCAL (an address may be in several lists), see [`replace_map`].
    pub(super) fn set_addresses(
        &self,
        iface: &str,
        vips: &[Ipv4Addr],
        rips: &[Ipv4Addr],
        locals: &[Ipv4Addr],
    ) -> Result<(), IoError> {
        let mut wanted: HashMap<u32, u32> = HashMap::new();
        for (list, flag) in [(vips, VIP), (rips, RIP), (locals, LOCAL)] {
            for addr in list {
                *wanted.entry(map_key(*addr)).or_default() |= flag;
            }
        }
        replace_map(self.addrs.as_fd(), &wanted, iface, "addrs")
    }

    /// Makes `services` hold exactly `services`, `(VIP, IP protocol, port)` each, see
    /// [`replace_map`].
    pub(super) fn set_service_ports(
        &self,
        iface: &str,
        services: &[(Ipv4Addr, u8, u16)],
    ) -> Result<(), IoError> {
        let wanted: HashMap<[u8; 8], u32> = services
            .iter()
            .map(|&(vip, protocol, port)| (service_key(vip, protocol, port), 1))
            .collect();
        replace_map(self.services.as_fd(), &wanted, iface, "services")
    }
}

/// The `addrs` map key of an address: its four bytes as they are on the wire, which is
/// how the program loads them from the frame.
fn map_key(addr: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(addr.octets())
}

/// The `services` map key of `(vip, protocol, port)`: the bytes the program writes on its
/// stack, i.e. the address and the port as they are on the wire, the protocol, a zero.
fn service_key(vip: Ipv4Addr, protocol: u8, port: u16) -> [u8; 8] {
    let [a, b, c, d] = vip.octets();
    let [p0, p1] = port.to_be_bytes();
    [a, b, c, d, p0, p1, protocol, 0]
}

/// Makes `map` hold exactly `wanted`: new entries are written before stale ones are
/// removed, so a key in both the old and the new set is never missing.
fn replace_map<K>(
    map: BorrowedFd<'_>,
    wanted: &HashMap<K, u32>,
    iface: &str,
    name: &'static str,
) -> Result<(), IoError>
where
    K: MapKey + Eq + Hash,
{
    let err = |call: &'static str| {
        move |source| IoError::Bpf {
            call,
            iface: format!("{iface} ({name} map)"),
            source,
        }
    };
    for (&key, &value) in wanted {
        bpf::map_update(map, key, value).map_err(err("bpf(BPF_MAP_UPDATE_ELEM)"))?;
    }
    let mut stale = Vec::new();
    let mut key = None;
    while let Some(next) = bpf::map_next_key(map, key).map_err(err("bpf(BPF_MAP_GET_NEXT_KEY)"))? {
        if !wanted.contains_key(&next) {
            stale.push(next);
        }
        key = Some(next);
    }
    for key in stale {
        match bpf::map_delete(map, key) {
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => {
                return Err(err("bpf(BPF_MAP_DELETE_ELEM)")(e))
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_keys_are_wire_order() {
        let key = map_key(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(key.to_ne_bytes(), [10, 0, 0, 1]);
        let key = service_key(Ipv4Addr::new(10, 0, 0, 1), 17, 80);
        assert_eq!(key, [10, 0, 0, 1, 0, 80, 17, 0]);
    }
}
