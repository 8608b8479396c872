//! The connection table: every flow the director has scheduled, found from either side.
//!
//! Keyed the way IPVS keys it: client-to-VIP packets by (protocol, client, VIP:vport),
//! real-server-to-client packets by (protocol, RIP:rport, client). Both maps point at the
//! same shared [`Conn`]. A connection's mutable state (TCP state, expiry) is atomics, so
//! workers on either side update it without a lock; the dashmap shard locks are held only
//! inside single map calls, never across two (its known deadlock).
//!
//! Lock order when both maps are touched in one operation: inbound before outbound.

use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use dashmap::DashMap;

use crate::dest::Destination;
use crate::persist::Template;
use crate::proto_state::{tcp_transition, ConnState, Direction, TcpTable, TimeoutTable};
use crate::service::VirtualService;
use crate::time::Timestamp;
use masq_wire::ipv4::PROTO_TCP;

/// The connection is being traced.
pub const TRACED: u8 = 1;
/// Its first client-to-server packet has been shown.
pub const SHOWN_IN: u8 = 2;
/// Its first server-to-client packet has been shown.
pub const SHOWN_OUT: u8 = 4;

/// A flow key: protocol and the packet's (source, destination) as seen on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub protocol: u8,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
}

/// One connection (the kernel's `struct ip_vs_conn`).
#[derive(Debug)]
pub struct Conn {
    pub protocol: u8,
    pub client: SocketAddrV4,
    /// VIP and virtual port the client addressed.
    pub vaddr: SocketAddrV4,
    /// Real server address and port the connection is forwarded to.
    pub daddr: SocketAddrV4,
    pub service: Arc<VirtualService>,
    pub dest: Arc<Destination>,
    /// The persistence template that created this connection, if any.
    pub template: Option<Arc<Template>>,
    state: AtomicU8,
    /// Trace bits: [`TRACED`], [`SHOWN_IN`], [`SHOWN_OUT`].
    trace: AtomicU8,
    /// Expiry time in milliseconds; refreshed by every packet.
    expires: AtomicU64,
}

impl Conn {
    /// A new entry for the client-to-VIP `flow`, bound to its destination as the kernel's `ip_vs_conn_new` does: it
    /// starts in state NONE and counts as inactive until its first transition.
    pub fn new(
        flow: FlowKey,
        daddr: SocketAddrV4,
        service: Arc<VirtualService>,
        dest: Arc<Destination>,
        template: Option<Arc<Template>>,
        now: Timestamp,
    ) -> Self {
        dest.bind_conn();
        let state = if flow.protocol == PROTO_TCP {
            ConnState::None
        } else {
            ConnState::Udp
        };
        Conn {
            protocol: flow.protocol,
            client: flow.src,
            vaddr: flow.dst,
            daddr,
            service,
            dest,
            template,
            state: AtomicU8::new(state as u8),
            trace: AtomicU8::new(0),
            // The kernel's initial 3 s, until the first transition replaces it.
            expires: AtomicU64::new(now.as_millis() + 3000),
        }
    }

    /// Key of client-to-VIP packets.
    pub fn inbound_key(&self) -> FlowKey {
        FlowKey {
            protocol: self.protocol,
            src: self.client,
            dst: self.vaddr,
        }
    }

    /// Key of real-server-to-client packets.
    pub fn outbound_key(&self) -> FlowKey {
        FlowKey {
            protocol: self.protocol,
            src: self.daddr,
            dst: self.client,
        }
    }

    /// Marks the connection as traced (a listener wanted it when it was created).
    pub fn set_traced(&self) {
        self.trace.fetch_or(TRACED, Relaxed);
    }

    /// Whether the connection is traced.
    pub fn is_traced(&self) -> bool {
        self.trace.load(Relaxed) & TRACED != 0
    }

    /// Records that a packet in direction `dir` was shown; returns whether it is the
    /// first one in that direction.
    pub fn mark_shown(&self, dir: Direction) -> bool {
        let bit = match dir {
            Direction::In => SHOWN_IN,
            Direction::Out => SHOWN_OUT,
        };
        self.trace.fetch_or(bit, Relaxed) & bit == 0
    }

    /// Current state.
    pub fn state(&self) -> ConnState {
        ConnState::from_index(self.state.load(Relaxed))
    }

    /// When the entry expires unless another packet comes.
    pub fn expires(&self) -> Timestamp {
        Timestamp(self.expires.load(Relaxed))
    }

    /// Runs the state machine for one packet and restarts the timer, moving the
    /// destination's ActiveConn/InActConn counters when the state changes class. Returns
    /// the (old, new) states.
    pub fn on_packet(
        &self,
        dir: Direction,
        tcp_flags: u8,
        timeouts: &TimeoutTable,
        table: TcpTable,
        now: Timestamp,
    ) -> (ConnState, ConnState) {
        let (old, new) = if self.protocol == PROTO_TCP {
            // Compare-and-swap so that packets racing on two workers each apply their
            // transition to the state the other left, as under the kernel's state lock.
            let mut old = self.state.load(Relaxed);
            loop {
                let new = tcp_transition(ConnState::from_index(old), dir, tcp_flags, table) as u8;
                match self.state.compare_exchange_weak(old, new, Relaxed, Relaxed) {
                    Ok(_) => break (ConnState::from_index(old), ConnState::from_index(new)),
                    Err(actual) => old = actual,
                }
            }
        } else {
            (ConnState::Udp, ConnState::Udp)
        };
        if old.is_active() != new.is_active() {
            self.dest.conn_became_active(new.is_active());
        }
        self.expires
            .store(now.as_millis() + timeouts.millis(new), Relaxed);
        (old, new)
    }

    /// Releases the entry's hold on its destination; called once, on removal.
    fn unbind(&self) {
        self.dest.unbind_conn(self.state().is_active());
        if let Some(t) = &self.template {
            t.release_conn();
        }
    }
}

/// The shared connection table.
#[derive(Debug, Default)]
pub struct ConnTable {
    inbound: DashMap<FlowKey, Arc<Conn>>,
    /// Entries in the table, kept alongside the maps: `DashMap::len` takes every shard's
    /// lock, too much for a check made on each new connection.
    count: AtomicUsize,
    outbound: DashMap<FlowKey, Arc<Conn>>,
}

/// Result of [`ConnTable::insert`].
#[derive(Debug)]
pub enum Inserted {
    /// The new connection is in the table.
    New(Arc<Conn>),
    /// Another worker inserted the same flow first; use this one instead.
    Existing(Arc<Conn>),
}

impl ConnTable {
    /// Finds the connection of a client-to-VIP packet.
    pub fn lookup_inbound(&self, key: &FlowKey) -> Option<Arc<Conn>> {
        self.inbound.get(key).map(|c| c.value().clone())
    }

    /// Finds the connection of a real-server-to-client packet.
    pub fn lookup_outbound(&self, key: &FlowKey) -> Option<Arc<Conn>> {
        self.outbound.get(key).map(|c| c.value().clone())
    }

    /// Adds a connection under both keys unless its inbound key is taken.
    pub fn insert(&self, conn: Conn) -> Inserted {
        use dashmap::mapref::entry::Entry;
        let conn = Arc::new(conn);
        match self.inbound.entry(conn.inbound_key()) {
            Entry::Occupied(existing) => {
                let existing = existing.get().clone();
                conn.unbind();
                Inserted::Existing(existing)
            }
            Entry::Vacant(slot) => {
                self.outbound.insert(conn.outbound_key(), conn.clone());
                slot.insert(conn.clone());
                self.count.fetch_add(1, Relaxed);
                Inserted::New(conn)
            }
        }
    }

    /// Removes a connection now (e.g. conn_reuse_mode expiring a TIME_WAIT entry that a new
    /// SYN reuses). Returns whether it was still there.
    pub fn remove(&self, conn: &Arc<Conn>) -> bool {
        let removed = self
            .inbound
            .remove_if(&conn.inbound_key(), |_, c| Arc::ptr_eq(c, conn))
            .is_some();
        if removed {
            self.count.fetch_sub(1, Relaxed);
            self.outbound
                .remove_if(&conn.outbound_key(), |_, c| Arc::ptr_eq(c, conn));
            conn.unbind();
        }
        removed
    }

    /// Removes every entry whose timer ran out by `now`; returns how many went.
    pub fn expire(&self, now: Timestamp) -> usize {
        let mut expired = 0;
        self.inbound.retain(|_, conn| {
            if conn.expires() > now {
                return true;
            }
            self.outbound
                .remove_if(&conn.outbound_key(), |_, c| Arc::ptr_eq(c, conn));
            conn.unbind();
            expired += 1;
            self.count.fetch_sub(1, Relaxed);
            false
        });
        expired
    }

    /// Makes room in a full table the way IPVS's `drop_entry` defends against SYN floods:
    /// half-open entries (SYN_RECV, never answered, never established) are dropped, at
    /// most `limit` of them among the first `scan` entries looked at; established
    /// connections are never touched. Returns how many went.
    pub fn evict_half_open(&self, scan: usize, limit: usize) -> usize {
        let mut victims: [Option<Arc<Conn>>; 16] = Default::default();
        let mut found = 0;
        for entry in self.inbound.iter().take(scan) {
            if found == limit.min(victims.len()) {
                break;
            }
            if entry.value().state() == ConnState::SynRecv {
                victims[found] = Some(entry.value().clone());
                found += 1;
            }
        }
        // The iterator's shard lock is released before removing (dashmap deadlock rule).
        victims
            .iter()
            .flatten()
            .filter(|conn| self.remove(conn))
            .count()
    }

    /// Number of connections.
    pub fn len(&self) -> usize {
        self.count.load(Relaxed)
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` on every connection (for listings; holds one shard lock at a time).
    pub fn for_each(&self, mut f: impl FnMut(&Arc<Conn>)) {
        for entry in self.inbound.iter() {
            f(entry.value());
        }
    }
}
