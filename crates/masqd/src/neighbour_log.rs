//! Says each ARP conflict once: two MACs claiming one address, on either side.
//!
//! The core keeps the conflicts (bounded, per side) and keeps the first host's MAC; this
//! only tells the operator. Conflicts about real servers are the diagnosis's (it names
//! them with their fix, see `masq_core::diagnose`); the others — the gateway, clients, a
//! rogue host claiming an address on the real servers' segment — are logged here. A flood
//! of forged claims cannot flood the log: at most [`PER_ROUND`] lines a round, then one
//! line with how many more.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use masq_core::neigh::CONFLICT_MEMORY_MS;
use masq_core::{Director, Side, Timestamp};
use masq_wire::ethernet::MacAddr;

/// Conflicts logged one by one per housekeeping round.
const PER_ROUND: usize = 8;

/// The conflicts already said: each stays said while the core remembers it.
#[derive(Default)]
pub struct NeighbourLog {
    said: HashSet<(Side, Ipv4Addr, MacAddr)>,
}

impl NeighbourLog {
    /// Logs the conflicts that appeared since the last call.
    pub fn round(&mut self, director: &Director, now: Timestamp) {
        let servers: HashSet<Ipv4Addr> = director
            .services()
            .real_server_addrs()
            .into_iter()
            .collect();
        let mut current = HashSet::new();
        let mut new = Vec::new();
        for side in [Side::Vip, Side::Dip] {
            for c in director
                .neighbour_table(side)
                .conflicts(now, CONFLICT_MEMORY_MS)
            {
                if side == Side::Dip && servers.contains(&c.addr) {
                    continue;
                }
                let key = (side, c.addr, c.second);
                if !self.said.contains(&key) {
                    new.push((side, c));
                }
                current.insert(key);
            }
        }
        for (side, c) in new.iter().take(PER_ROUND) {
            tracing::warn!(
                "ARP conflict on the {} side: {} is claimed by {} and by {}; masqd keeps {} while it answers",
                side.name(),
                c.addr,
                c.first,
                c.second,
                c.first
            );
        }
        if new.len() > PER_ROUND {
            tracing::warn!(
                "and {} more ARP conflicts (masq_neighbour_conflicts_total counts them)",
                new.len() - PER_ROUND
            );
        }
        // Forget what the core forgot, so the set stays as small as its records.
        self.said = current;
    }
}
