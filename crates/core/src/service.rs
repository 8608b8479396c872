//! Virtual services and the table the data path looks them up in.
//!
//! The table is an immutable snapshot behind an `ArcSwap`: workers load it without locking,
//! the control plane builds a new one and swaps it in. What changes without a new snapshot
//! lives in the service itself: its destinations and scheduler behind the per-service
//! scheduling lock (the kernel's `sched_lock`, taken only for a connection's first packet
//! and by the control plane), and its counters.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::control::{Protocol, ServiceKey, ServiceParams};
use crate::dest_list::DestList;
use crate::sched::Scheduler;
use crate::stats::Stats;

/// A virtual service (`-A`).
#[derive(Debug)]
pub struct VirtualService {
    pub key: ServiceKey,
    sched: Mutex<SchedState>,
    /// Traffic counters and rates of the whole service.
    pub stats: Stats,
}

/// What the scheduling lock guards.
#[derive(Debug)]
pub struct SchedState {
    pub params: ServiceParams,
    /// Destinations in the kernel's list order: newest first.
    pub dests: DestList,
    pub scheduler: Box<dyn Scheduler>,
}

impl VirtualService {
    /// A new service with no destinations.
    pub fn new(key: ServiceKey, params: ServiceParams, scheduler: Box<dyn Scheduler>) -> Self {
        VirtualService {
            key,
            sched: Mutex::new(SchedState {
                params,
                dests: DestList::new(),
                scheduler,
            }),
            stats: Stats::default(),
        }
    }

    /// The virtual port (0 for a port-0 service or a fwmark service).
    pub fn port(&self) -> u16 {
        match self.key {
            ServiceKey::Addr { port, .. } => port,
            ServiceKey::Fwmark { .. } => 0,
        }
    }

    /// Takes the scheduling lock. A panic while it was held cannot leave it half-updated in
    /// a way that matters more than stopping the director, so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, SchedState> {
        self.sched.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The data path's lookup key of a service: protocol number, VIP, virtual port.
pub type DataPathKey = (u8, Ipv4Addr, u16);

/// The VIPs as an open-addressed hash set of their 32-bit values, at most half full.
///
/// [`ServiceTable::is_vip`] runs on every frame. In a profile of
/// `benches/datapath.rs` `scaling_services/established/1000` (200 VIPs) the linear scan
/// this replaces took about 8 % of the samples, and a binary search 9 % at 100 VIPs; this
/// set, one or two probes at any count, 1.5 %. Not keyed: the entries are the operator's
/// VIPs, so a sender choosing destination addresses can only probe, never lengthen, the
/// runs.
#[derive(Debug, Default, Clone)]
struct VipSet {
    /// Power-of-two sized; [`Self::EMPTY`] marks a free slot.
    slots: Vec<u32>,
    /// 0.0.0.0 is a VIP (it cannot go in `slots`, where 0 means free).
    has_zero: bool,
}

impl VipSet {
    const EMPTY: u32 = 0;

    fn new(vips: &[Ipv4Addr]) -> Self {
        let mut set = VipSet {
            slots: vec![Self::EMPTY; (vips.len() * 2).next_power_of_two()],
            has_zero: false,
        };
        for &vip in vips {
            let addr = u32::from(vip);
            if addr == Self::EMPTY {
                set.has_zero = true;
                continue;
            }
            let mut i = set.home(addr);
            while set.slots[i] != Self::EMPTY && set.slots[i] != addr {
                i = (i + 1) & (set.slots.len() - 1);
            }
            set.slots[i] = addr;
        }
        set
    }

    /// The first slot to look at: the top bits of a multiplicative (Fibonacci) hash.
    fn home(&self, addr: u32) -> usize {
        let bits = self.slots.len().trailing_zeros();
        (u64::from(addr.wrapping_mul(0x9e37_79b9)) << bits >> 32) as usize
    }

    fn contains(&self, vip: Ipv4Addr) -> bool {
        let addr = u32::from(vip);
        if addr == Self::EMPTY {
            return self.has_zero;
        }
        if self.slots.is_empty() {
            return false;
        }
        // Terminates: at most half the slots are taken.
        let mut i = self.home(addr);
        loop {
            match self.slots[i] {
                s if s == addr => return true,
                Self::EMPTY => return false,
                _ => i = (i + 1) & (self.slots.len() - 1),
            }
        }
    }
}

/// An immutable snapshot of all services.
#[derive(Debug, Default, Clone)]
pub struct ServiceTable {
    /// In the order they were added (what `--nosort` shows).
    pub services: Vec<Arc<VirtualService>>,
    by_datapath_key: HashMap<DataPathKey, Arc<VirtualService>>,
    /// Every IPv4 VIP, in the order their first service was added.
    vips: Vec<Ipv4Addr>,
    /// The same, for [`Self::is_vip`].
    vip_set: VipSet,
}

impl ServiceTable {
    /// Builds the lookup structures for `services`.
    pub fn new(services: Vec<Arc<VirtualService>>) -> Self {
        let mut by_datapath_key = HashMap::new();
        let mut vips = Vec::new();
        for svc in &services {
            if let ServiceKey::Addr {
                protocol,
                addr: IpAddr::V4(vip),
                port,
            } = svc.key
            {
                // SCTP services can be configured and listed but the data path only
                // forwards TCP and UDP.
                if protocol != Protocol::Sctp {
                    by_datapath_key.insert((protocol.number(), vip, port), svc.clone());
                }
                if !vips.contains(&vip) {
                    vips.push(vip);
                }
            }
        }
        ServiceTable {
            services,
            by_datapath_key,
            vip_set: VipSet::new(&vips),
            vips,
        }
    }

    /// The service for a packet to `vip:port` over `protocol`.
    pub fn lookup(&self, protocol: u8, vip: Ipv4Addr, port: u16) -> Option<&Arc<VirtualService>> {
        self.by_datapath_key.get(&(protocol, vip, port))
    }

    /// The service a new connection to `vip:port` belongs to: the exact service, else a
    /// persistent port-0 service on the VIP (a non-persistent port-0 service never
    /// schedules, as in the kernel).
    pub fn lookup_for_new(
        &self,
        protocol: u8,
        vip: Ipv4Addr,
        port: u16,
    ) -> Option<&Arc<VirtualService>> {
        self.lookup(protocol, vip, port).or_else(|| {
            self.lookup(protocol, vip, 0)
                .filter(|svc| svc.lock().params.persistent.is_some())
        })
    }

    /// Whether `addr` is the VIP of some IPv4 service (the director answers ARP for it).
    pub fn is_vip(&self, addr: Ipv4Addr) -> bool {
        self.vip_set.contains(addr)
    }

    /// Every IPv4 VIP.
    pub fn vips(&self) -> &[Ipv4Addr] {
        &self.vips
    }

    /// The service with this key.
    pub fn find(&self, key: &ServiceKey) -> Option<&Arc<VirtualService>> {
        self.services.iter().find(|s| s.key == *key)
    }

    /// (protocol, VIP, port) of every service the data path forwards — IPv4 TCP and UDP;
    /// neither SCTP, fwmark nor IPv6 services are forwarded — sorted, each once. Port 0
    /// is a service on every port.
    pub fn forwarded_services(&self) -> Vec<(Protocol, Ipv4Addr, u16)> {
        let mut services: Vec<_> = self
            .services
            .iter()
            .filter_map(|s| match s.key {
                ServiceKey::Addr {
                    protocol: protocol @ (Protocol::Tcp | Protocol::Udp),
                    addr: IpAddr::V4(vip),
                    port,
                } => Some((protocol, vip, port)),
                _ => None,
            })
            .collect();
        services.sort_unstable();
        services.dedup();
        services
    }

    /// Every IPv4 real server of every service, sorted, each once.
    pub fn real_server_addrs(&self) -> Vec<Ipv4Addr> {
        let mut addrs: Vec<Ipv4Addr> = self
            .services
            .iter()
            .flat_map(|s| {
                s.lock()
                    .dests
                    .iter()
                    .filter_map(|d| match d.key.addr {
                        IpAddr::V4(addr) => Some(addr),
                        IpAddr::V6(_) => None,
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        addrs.sort_unstable();
        addrs.dedup();
        addrs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The hash set answers as a scan of the list does, 0.0.0.0 included.
        #[test]
        fn vip_set_agrees_with_the_list(
            vips in proptest::collection::vec(any::<u32>(), 0..300),
            probes in proptest::collection::vec(any::<u32>(), 0..50),
        ) {
            let vips: Vec<Ipv4Addr> = vips.into_iter().map(Ipv4Addr::from).collect();
            let set = VipSet::new(&vips);
            for addr in vips.iter().copied().chain(probes.into_iter().map(Ipv4Addr::from)) {
                prop_assert_eq!(set.contains(addr), vips.contains(&addr), "{}", addr);
            }
            prop_assert!(!VipSet::default().contains(Ipv4Addr::UNSPECIFIED));
        }
    }

    #[test]
    fn vip_set_holds_neighbouring_addresses_and_the_zero_address() {
        let vips: Vec<Ipv4Addr> = (0..=255).map(|h| Ipv4Addr::new(192, 168, 0, h)).collect();
        let set = VipSet::new(&vips);
        assert!(vips.iter().all(|&v| set.contains(v)));
        assert!(!set.contains(Ipv4Addr::new(192, 168, 1, 0)));
        assert!(!set.contains(Ipv4Addr::UNSPECIFIED));
        let with_zero = VipSet::new(&[Ipv4Addr::new(192, 168, 0, 10), Ipv4Addr::UNSPECIFIED]);
        assert!(with_zero.contains(Ipv4Addr::UNSPECIFIED));
        assert!(with_zero.contains(Ipv4Addr::new(192, 168, 0, 10)));
    }
}
