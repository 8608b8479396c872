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
use crate::dest::Destination;
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
    pub dests: Vec<Arc<Destination>>,
    pub scheduler: Box<dyn Scheduler>,
}

impl VirtualService {
    /// A new service with no destinations.
    pub fn new(key: ServiceKey, params: ServiceParams, scheduler: Box<dyn Scheduler>) -> Self {
        VirtualService {
            key,
            sched: Mutex::new(SchedState {
                params,
                dests: Vec::new(),
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

/// An immutable snapshot of all services.
#[derive(Debug, Default, Clone)]
pub struct ServiceTable {
    /// In the order they were added (what `--nosort` shows).
    pub services: Vec<Arc<VirtualService>>,
    by_datapath_key: HashMap<DataPathKey, Arc<VirtualService>>,
    vips: Vec<Ipv4Addr>,
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
        self.vips.contains(&addr)
    }

    /// Every IPv4 VIP.
    pub fn vips(&self) -> &[Ipv4Addr] {
        &self.vips
    }

    /// The service with this key.
    pub fn find(&self, key: &ServiceKey) -> Option<&Arc<VirtualService>> {
        self.services.iter().find(|s| s.key == *key)
    }
}
