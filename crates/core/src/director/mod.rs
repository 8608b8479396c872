//! The director: shared state plus per-worker packet handling.
//!
//! [`Director`] owns what every worker shares — the service table snapshot, the connection
//! table, one neighbour table per side, timeouts and global counters. A [`Worker`] is what one packet
//! thread drives: `handle_frame(now, side, &mut frame)` decides and rewrites in place,
//! `poll_transmit` hands out frames the director generated (ARP, ICMP, frames that waited
//! for ARP), and `housekeeping(now)`, on one worker about once a second, expires entries
//! and queues ARP probes. The control plane reaches the director through [`Director::control`], which
//! implements [`crate::control::Control`] for one moment in time.

mod control;
mod dr;
mod frame;
mod icmp;
mod nat;
mod synced;
mod trace_events;
mod transmit;
mod tunnel;
mod worker;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use arc_swap::ArcSwap;
use masq_wire::arp;
use masq_wire::ethernet::MacAddr;

use crate::conn::ConnTable;
use crate::control::{DestKey, ServiceKey};
use crate::dest::Destination;
use crate::frag::FragTable;
use crate::neigh::{NeighbourTable, NeighbourView};
use crate::persist::TemplateTable;
use crate::proto_state::{TcpTable, TimeoutTable};
use crate::service::ServiceTable;
use crate::stats::Stats;
use crate::sync::{SyncCounters, SyncDaemons, SyncOutbox};
use crate::time::Timestamp;
use crate::trace::TraceHub;
use crate::verdict::{CounterTotals, Side, WorkerCounters};

pub use control::DirectorControl;
pub use dr::VipClaim;
pub use frame::FrameMeta;
pub use transmit::{Drained, Transmit, MAX_FRAME};
pub use worker::Worker;

/// How one of the director's interfaces is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideConfig {
    /// The interface's MAC: source of everything sent there, and the destination of
    /// frames meant for the director.
    pub mac: MacAddr,
    /// The interface's IPv4 addresses and prefix lengths: they define which hosts are
    /// on-link, and the first one in a neighbour's network is the sender of ARP probes.
    pub addrs: Vec<(Ipv4Addr, u8)>,
}

impl SideConfig {
    /// The address of ours on the same network as `host`, if `host` is on-link.
    pub fn on_link_source(&self, host: Ipv4Addr) -> Option<Ipv4Addr> {
        self.addrs.iter().find_map(|&(addr, prefix)| {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix.min(32)))
            };
            (u32::from(addr) & mask == u32::from(host) & mask).then_some(addr)
        })
    }
}

/// The director's static configuration (from the command line and the interfaces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorConfig {
    pub vip_side: SideConfig,
    pub dip_side: SideConfig,
    /// Next hop for clients that are not on-link on the VIP side (`--vip-gateway`).
    pub vip_gateway: Option<Ipv4Addr>,
    /// Most entries the connection table holds, persistence templates included
    /// (`--max-conns`); a full table sheds idle templates and half-open connections
    /// before it refuses a new connection.
    pub max_conns: usize,
    /// Most entries each side's neighbour table holds (`--max-neighbours`).
    pub max_neighbours: usize,
}

/// The default `--max-conns`: about 1M connections.
pub const DEFAULT_MAX_CONNS: usize = 1 << 20;

impl DirectorConfig {
    /// The configuration of `side`.
    pub fn side(&self, side: Side) -> &SideConfig {
        match side {
            Side::Vip => &self.vip_side,
            Side::Dip => &self.dip_side,
        }
    }

    /// Next hop on the VIP side towards `client`.
    pub fn next_hop_to_client(&self, client: Ipv4Addr) -> Option<Ipv4Addr> {
        if self.vip_side.on_link_source(client).is_some() {
            Some(client)
        } else {
            self.vip_gateway
        }
    }
}

/// State shared by all workers and the control plane.
#[derive(Debug)]
pub struct Director {
    config: DirectorConfig,
    services: ArcSwap<ServiceTable>,
    /// Serialises control operations (never taken by the data path).
    control_lock: Mutex<()>,
    /// Deleted destinations that connections still hold, by (service, destination): a
    /// re-add brings them back with their counters, as the kernel's trash does.
    trash: Mutex<HashMap<(ServiceKey, DestKey), Weak<Destination>>>,
    conns: ConnTable,
    templates: TemplateTable,
    fragments: FragTable,
    timeouts: TimeoutTable,
    /// One neighbour table per side, by [`Side`] index: what one side learns never
    /// changes where the other side's frames go.
    neighbours: [NeighbourTable; 2],
    workers: Mutex<Vec<Arc<WorkerCounters>>>,
    /// Counters of the whole director (`/proc/net/ip_vs_stats`).
    pub totals: Stats,
    /// Trace listeners.
    pub trace: Arc<TraceHub>,
    /// MTU of each side's interface (0: unknown, not checked), by [`Side`] index.
    mtu: [AtomicU32; 2],
    /// The table is over three quarters full: TCP entries follow secure_tcp's table.
    pub(crate) under_pressure: AtomicBool,
    /// The last host on the DIP side that used a VIP in ARP.
    vip_claim: dr::LastVipClaim,
    /// The connection-sync daemons started (`--start-daemon`).
    pub sync_daemons: SyncDaemons,
    /// A master's entries on their way from the workers to the sync thread.
    pub sync_outbox: SyncOutbox,
    /// What the sync daemons sent, received, applied and refused.
    pub sync_counters: SyncCounters,
    /// The outbox shard the next worker gets.
    next_sync_shard: AtomicUsize,
}

impl Director {
    /// A director with no services.
    pub fn new(config: DirectorConfig) -> Arc<Self> {
        Arc::new(Director {
            services: ArcSwap::from_pointee(ServiceTable::default()),
            control_lock: Mutex::new(()),
            trash: Mutex::new(HashMap::new()),
            conns: ConnTable::default(),
            templates: TemplateTable::default(),
            fragments: FragTable::default(),
            timeouts: TimeoutTable::default(),
            neighbours: [
                NeighbourTable::with_capacity(config.max_neighbours),
                NeighbourTable::with_capacity(config.max_neighbours),
            ],
            workers: Mutex::new(Vec::new()),
            totals: Stats::default(),
            trace: Arc::new(TraceHub::default()),
            mtu: [AtomicU32::new(0), AtomicU32::new(0)],
            under_pressure: AtomicBool::new(false),
            vip_claim: dr::LastVipClaim::default(),
            sync_daemons: SyncDaemons::default(),
            sync_outbox: SyncOutbox::default(),
            sync_counters: SyncCounters::default(),
            next_sync_shard: AtomicUsize::new(0),
            config,
        })
    }

    /// Sets the MTU of `side`'s interface: larger packets that may not be fragmented are
    /// answered with ICMP fragmentation needed (0 turns the check off).
    pub fn set_mtu(&self, side: Side, mtu: u32) {
        self.mtu[side as usize].store(mtu, Relaxed);
    }

    /// The MTU of `side`'s interface (0: not checked).
    pub fn mtu(&self, side: Side) -> u32 {
        self.mtu[side as usize].load(Relaxed)
    }

    /// Which TCP state table applies now: secure_tcp's while the connection table is more
    /// than three quarters full (IPVS switches under memory pressure), else the normal one.
    pub fn tcp_table(&self) -> TcpTable {
        if self.under_pressure.load(Relaxed) {
            TcpTable::Secure
        } else {
            TcpTable::Normal
        }
    }

    /// The static configuration.
    pub fn config(&self) -> &DirectorConfig {
        &self.config
    }

    /// A new worker for one packet thread.
    pub fn worker(self: &Arc<Self>) -> Worker {
        let counters = Arc::new(WorkerCounters::default());
        lock(&self.workers).push(counters.clone());
        let sync_shard = self.next_sync_shard.fetch_add(1, Relaxed);
        Worker::new(self.clone(), counters, sync_shard)
    }

    /// The control plane's view of the director at `now`.
    pub fn control(&self, now: Timestamp) -> DirectorControl<'_> {
        DirectorControl::new(self, now)
    }

    /// The current service table snapshot.
    pub fn services(&self) -> arc_swap::Guard<Arc<ServiceTable>> {
        self.services.load()
    }

    /// Number of connection entries.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// All workers' counters summed.
    pub fn counters(&self) -> CounterTotals {
        let workers = lock(&self.workers);
        CounterTotals::sum(workers.iter().map(|w| w.as_ref()))
    }

    /// The neighbour table of `side`.
    pub fn neighbour_table(&self, side: Side) -> &NeighbourTable {
        &self.neighbours[side as usize]
    }

    /// Both sides' neighbour entries, for diagnostics: the VIP side's first.
    pub fn neighbours(&self, now: Timestamp) -> Vec<NeighbourView> {
        [Side::Vip, Side::Dip]
            .into_iter()
            .flat_map(|side| self.neighbour_table(side).list(side, now))
            .collect()
    }

    /// The last host on the DIP side seen using a VIP as its ARP sender address (the
    /// classic direct-routing mistake: a real server without arp_ignore/arp_announce).
    pub fn vip_claim(&self) -> Option<VipClaim> {
        self.vip_claim.get()
    }

    /// Entries in the connection table's bound: connections and persistence templates.
    pub fn entry_count(&self) -> usize {
        self.conns.len() + self.templates.len()
    }

    /// Persistence templates in the table.
    pub fn template_count(&self) -> usize {
        self.templates.len()
    }

    /// Fragmented datagrams whose later fragments the director will forward.
    pub fn fragment_count(&self) -> usize {
        self.fragments.len()
    }

    /// What the fragment table refused or forgot to stay within its bounds.
    pub fn fragment_counters(&self) -> &crate::frag::FragCounters {
        &self.fragments.counters
    }

    /// Housekeeping's expiry: connections, templates, fragments and neighbour entries.
    /// Returns the number of connections expired.
    fn expire(&self, now: Timestamp) -> usize {
        let expired = self.conns.expire(now);
        self.templates.expire(now);
        let max = self.config.max_conns;
        self.under_pressure
            .store(self.entry_count() >= max - max / 4, Relaxed);
        self.fragments.expire(now);
        for table in &self.neighbours {
            table.expire(now);
        }
        expired
    }

    /// Housekeeping's ARP probes: calls `probe` for the gateway and every on-link real
    /// server that is due one, so that they are resolved before traffic needs them.
    fn probes_due(&self, now: Timestamp, probe: &mut dyn FnMut(Side, Ipv4Addr)) {
        let mut probe_if_due = |side: Side, target: Ipv4Addr| {
            // A full table refuses only addresses it does not hold; those get no probe.
            if self
                .neighbour_table(side)
                .resolve(target, now)
                .is_some_and(|r| r.probe)
            {
                probe(side, target);
            }
        };
        if let Some(gw) = self.config.vip_gateway {
            probe_if_due(Side::Vip, gw);
        }
        let table = self.services.load();
        for svc in &table.services {
            // Copied out: the neighbour table is not consulted under the scheduling lock.
            let dests: Vec<Ipv4Addr> = svc.lock().dests.iter().filter_map(|d| d.ipv4()).collect();
            for rip in dests {
                if self.config.dip_side.on_link_source(rip).is_some() {
                    probe_if_due(Side::Dip, rip);
                }
            }
        }
    }

    /// Runs the 2-second rate estimator over every stats object.
    pub fn estimate(&self) {
        self.totals.estimate();
        let table = self.services.load();
        for svc in &table.services {
            svc.stats.estimate();
            for dest in &svc.lock().dests {
                dest.stats.estimate();
            }
        }
    }

    /// Writes an ARP request for `target` out of `side` into `buf`; `None` if `target` is
    /// not on any of that side's networks.
    fn arp_probe(&self, side: Side, target: Ipv4Addr, buf: &mut [u8]) -> Option<usize> {
        let cfg = self.config.side(side);
        let source = cfg.on_link_source(target)?;
        Some(arp::write_frame(
            buf,
            arp::OP_REQUEST,
            (cfg.mac, source),
            (MacAddr::ZERO, target),
        ))
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
