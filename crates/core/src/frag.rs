//! IP fragments: forwarded, not reassembled.
//!
//! Only a datagram's first fragment carries the ports that identify its connection. When it
//! goes through, the director remembers (protocol, source, destination, IP ID) → connection
//! for [`FRAG_TIMEOUT_MS`], and the later fragments — which need only their IP address
//! rewritten, since the L4 checksum in the first fragment already covers the whole
//! datagram — follow it. Memory is bounded by [`MAX_ENTRIES`]. A later fragment that arrives
//! before its first one is dropped and counted (the kernel's IPVS would reassemble it;
//! masq trades that for never holding datagrams). In practice fragments arrive in order.

use std::net::Ipv4Addr;
use std::sync::Arc;

use dashmap::DashMap;

use crate::conn::Conn;
use crate::time::Timestamp;

/// How long a fragmented datagram's mapping lives (the kernel's `ipfrag_time`).
pub const FRAG_TIMEOUT_MS: u64 = 30_000;
/// At most this many datagrams in flight are remembered.
pub const MAX_ENTRIES: usize = 4096;

/// Identifies one fragmented datagram as it arrives (before any rewrite).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragKey {
    pub protocol: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ident: u16,
}

/// The datagrams whose first fragment went through.
#[derive(Debug, Default)]
pub struct FragTable {
    map: DashMap<FragKey, (Arc<Conn>, Timestamp)>,
}

impl FragTable {
    /// Remembers that datagram `key` belongs to `conn`. Returns `false` when the table is
    /// full (the later fragments will then be dropped and counted).
    pub fn remember(&self, key: FragKey, conn: &Arc<Conn>, now: Timestamp) -> bool {
        if self.map.len() >= MAX_ENTRIES && !self.map.contains_key(&key) {
            return false;
        }
        self.map
            .insert(key, (conn.clone(), Timestamp(now.0 + FRAG_TIMEOUT_MS)));
        true
    }

    /// The connection of a later fragment, if its first fragment was seen.
    pub fn lookup(&self, key: &FragKey, now: Timestamp) -> Option<Arc<Conn>> {
        self.map.get(key).filter(|e| e.1 > now).map(|e| e.0.clone())
    }

    /// Forgets timed-out datagrams.
    pub fn expire(&self, now: Timestamp) {
        self.map.retain(|_, e| e.1 > now);
    }

    /// Datagrams remembered.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
