//! The connection table: every flow the director has scheduled, found from either side.
//!
//! Keyed the way IPVS keys it: client-to-VIP packets by (protocol, client, VIP:vport),
//! real-server-to-client packets by (protocol, RIP:rport, client). Both maps hold the
//! same shared [`Conn`]. A connection's mutable state (TCP state, expiry) is atomics, so
//! workers on either side update it without a lock; the dashmap shard locks are held only
//! inside single map calls, never across two (its known deadlock).
//!
//! Memory: each map is a set of `Arc<Conn>` (8 bytes a bucket) whose key is read from the
//! `Conn` itself — `InboundKeyed` and `OutboundKeyed` hash and compare by the
//! [`FlowKey`] stored in the entry and lend it out through `Borrow`, so a lookup by
//! `&FlowKey` needs no key copy in the table. A (FlowKey, Arc) bucket would be 24 bytes,
//! and a hash table runs between 44 % and 88 % full, so storing keys in the maps cost
//! 55–110 bytes per connection; this way it is 20–41. A lookup touches the same lines as
//! before (control bytes, slot, then the `Conn`, whose counts sit next to the key).
//! Measured with `benches/conntable.rs`, in `docs/benchmarks.md`.
//!
//! Lock order when both maps are touched in one operation: inbound before outbound.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use dashmap::DashMap;

use crate::control::FwdMethod;
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
/// A second client packet arrived.
pub const REPEATED: u8 = 8;
/// A real server's packet was forwarded to the client.
pub const ANSWERED: u8 = 16;

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
    /// (protocol, client, VIP:vport): the key of client-to-VIP packets. Never changes
    /// while the entry is in a table (the inbound map hashes it in place).
    inbound: FlowKey,
    /// (protocol, RIP:rport, client): the key of real-server-to-client packets. Never
    /// changes while the entry is in a table.
    outbound: FlowKey,
    pub service: Arc<VirtualService>,
    pub dest: Arc<Destination>,
    /// The persistence template that created this connection, if any.
    pub template: Option<Arc<Template>>,
    /// How its packets are forwarded, the destination's method when it was made (an `-e`
    /// that changes the method applies to new connections only, as in the kernel).
    fwd: FwdMethod,
    state: AtomicU8,
    /// [`TRACED`], [`SHOWN_IN`], [`SHOWN_OUT`], [`REPEATED`] and [`ANSWERED`].
    marks: AtomicU8,
    /// Expiry time in milliseconds; refreshed by every packet.
    expires: AtomicU64,
    /// Client packets counted while a sync master runs (the kernel's `in_pkts`).
    in_pkts: AtomicU32,
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
            inbound: flow,
            outbound: FlowKey {
                protocol: flow.protocol,
                src: daddr,
                dst: flow.src,
            },
            fwd: dest.forwarding(),
            service,
            dest,
            template,
            state: AtomicU8::new(state as u8),
            marks: AtomicU8::new(0),
            // The kernel's initial 3 s, until the first transition replaces it.
            expires: AtomicU64::new(now.as_millis() + 3000),
            in_pkts: AtomicU32::new(0),
        }
    }

    /// Key of client-to-VIP packets.
    pub fn inbound_key(&self) -> FlowKey {
        self.inbound
    }

    /// Key of real-server-to-client packets.
    pub fn outbound_key(&self) -> FlowKey {
        self.outbound
    }

    /// IP protocol number (TCP or UDP).
    pub fn protocol(&self) -> u8 {
        self.inbound.protocol
    }

    /// Client address and port.
    pub fn client(&self) -> SocketAddrV4 {
        self.inbound.src
    }

    /// VIP and virtual port the client addressed.
    pub fn vaddr(&self) -> SocketAddrV4 {
        self.inbound.dst
    }

    /// Real server address and port the connection is forwarded to.
    pub fn daddr(&self) -> SocketAddrV4 {
        self.outbound.src
    }

    /// How its packets are forwarded.
    pub fn fwd(&self) -> FwdMethod {
        self.fwd
    }

    /// Marks the connection as traced (a listener wanted it when it was created).
    pub fn set_traced(&self) {
        self.marks.fetch_or(TRACED, Relaxed);
    }

    /// Whether the connection is traced.
    pub fn is_traced(&self) -> bool {
        self.marks.load(Relaxed) & TRACED != 0
    }

    /// Records that a packet in direction `dir` was shown; returns whether it is the
    /// first one in that direction.
    pub fn mark_shown(&self, dir: Direction) -> bool {
        let bit = match dir {
            Direction::In => SHOWN_IN,
            Direction::Out => SHOWN_OUT,
        };
        self.marks.fetch_or(bit, Relaxed) & bit == 0
    }

    /// Records that another client packet found this entry.
    pub fn mark_repeated(&self) {
        self.mark(REPEATED);
    }

    /// Records that a real server's packet reached the client.
    pub fn mark_answered(&self) {
        self.mark(ANSWERED);
    }

    /// Sets `bit` once: later calls only read the shared line.
    fn mark(&self, bit: u8) {
        if self.marks.load(Relaxed) & bit == 0 {
            self.marks.fetch_or(bit, Relaxed);
        }
    }

    /// Whether a full table may shed this entry, as the kernel's `drop_entry` would: a
    /// TCP connection still half-open (SYN_RECV, or SYNACK, where secure_tcp's table puts
    /// a SYN the real server answered but the client never acknowledged), or a UDP entry
    /// that is not yet a conversation: the client sent once, or nothing came back to it
    /// (the kernel sheds the UDP entries with fewest packets first; a spoofed flood's
    /// answers never reach a client). An established connection, and a UDP flow that
    /// went both ways and on, are never shed.
    pub fn is_sheddable(&self) -> bool {
        if self.protocol() == PROTO_TCP {
            matches!(self.state(), ConnState::SynRecv | ConnState::SynAck)
        } else {
            self.marks.load(Relaxed) & (REPEATED | ANSWERED) != REPEATED | ANSWERED
        }
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
        let (old, new) = if self.protocol() == PROTO_TCP {
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

    /// Counts a client packet for the sync master's rule; returns the count so far.
    pub fn count_in_packet(&self) -> u32 {
        self.in_pkts.fetch_add(1, Relaxed).wrapping_add(1)
    }

    /// Takes the state and expiry a sync master sent, moving the destination's
    /// ActiveConn/InActConn counters when the state changes class.
    pub fn set_synced(&self, state: ConnState, expires: Timestamp) {
        let old = ConnState::from_index(self.state.swap(state as u8, Relaxed));
        if old.is_active() != state.is_active() {
            self.dest.conn_became_active(state.is_active());
        }
        self.expires.store(expires.as_millis(), Relaxed);
    }

    /// Releases the entry's hold on its destination; called once, on removal.
    fn unbind(&self) {
        self.dest.unbind_conn(self.state().is_active());
        if let Some(t) = &self.template {
            t.release_conn();
        }
    }
}

/// An entry of the inbound map: a connection hashed and compared by its inbound key.
#[derive(Debug)]
struct InboundKeyed(Arc<Conn>);

/// An entry of the outbound map: a connection hashed and compared by its outbound key.
#[derive(Debug)]
struct OutboundKeyed(Arc<Conn>);

// Hash, Eq and Borrow all go through the same stored FlowKey, as `Borrow` requires.
macro_rules! keyed_by {
    ($entry:ident, $field:ident) => {
        impl Borrow<FlowKey> for $entry {
            fn borrow(&self) -> &FlowKey {
                &self.0.$field
            }
        }
        impl Hash for $entry {
            fn hash<H: Hasher>(&self, state: &mut H) {
                self.0.$field.hash(state);
            }
        }
        impl PartialEq for $entry {
            fn eq(&self, other: &Self) -> bool {
                self.0.$field == other.0.$field
            }
        }
        impl Eq for $entry {}
    };
}
keyed_by!(InboundKeyed, inbound);
keyed_by!(OutboundKeyed, outbound);

/// The shared connection table.
#[derive(Debug, Default)]
pub struct ConnTable {
    inbound: DashMap<InboundKeyed, ()>,
    /// Entries in the table, kept alongside the maps: `DashMap::len` takes every shard's
    /// lock, too much for a check made on each new connection.
    count: AtomicUsize,
    outbound: DashMap<OutboundKeyed, ()>,
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
        self.inbound.get(key).map(|c| c.key().0.clone())
    }

    /// Finds the connection of a real-server-to-client packet.
    pub fn lookup_outbound(&self, key: &FlowKey) -> Option<Arc<Conn>> {
        self.outbound.get(key).map(|c| c.key().0.clone())
    }

    /// Adds a connection under both keys unless its inbound key is taken. An outbound key
    /// already present (another connection to the same real server from the same client
    /// address and port) is taken over by the new connection.
    pub fn insert(&self, conn: Conn) -> Inserted {
        use dashmap::mapref::entry::Entry;
        let conn = Arc::new(conn);
        match self.inbound.entry(InboundKeyed(conn.clone())) {
            Entry::Occupied(existing) => {
                let existing = existing.key().0.clone();
                conn.unbind();
                Inserted::Existing(existing)
            }
            Entry::Vacant(slot) => {
                // The key lives in the entry: replace the entry, not only its (empty) value.
                match self.outbound.entry(OutboundKeyed(conn.clone())) {
                    Entry::Occupied(taken) => drop(taken.replace_entry(())),
                    Entry::Vacant(free) => drop(free.insert(())),
                }
                slot.insert(());
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
            .remove_if(&conn.inbound, |c, _| Arc::ptr_eq(&c.0, conn))
            .is_some();
        if removed {
            self.count.fetch_sub(1, Relaxed);
            self.outbound
                .remove_if(&conn.outbound, |c, _| Arc::ptr_eq(&c.0, conn));
            conn.unbind();
        }
        removed
    }

    /// Removes every entry whose timer ran out by `now`; returns how many went.
    pub fn expire(&self, now: Timestamp) -> usize {
        let mut expired = 0;
        self.inbound.retain(|InboundKeyed(conn), _| {
            if conn.expires() > now {
                return true;
            }
            self.outbound
                .remove_if(&conn.outbound, |c, _| Arc::ptr_eq(&c.0, conn));
            conn.unbind();
            expired += 1;
            self.count.fetch_sub(1, Relaxed);
            false
        });
        expired
    }

    /// Makes room in a full table the way IPVS's `drop_entry` defends against floods:
    /// entries [`Conn::is_sheddable`] says may go (half-open TCP, lone UDP datagrams) are
    /// dropped, at most `limit` of them among the first `scan` entries looked at;
    /// established connections are never touched. Returns how many went.
    pub fn evict_half_open(&self, scan: usize, limit: usize) -> usize {
        let mut victims: [Option<Arc<Conn>>; 16] = Default::default();
        let mut found = 0;
        for entry in self.inbound.iter().take(scan) {
            if found == limit.min(victims.len()) {
                break;
            }
            if entry.key().0.is_sheddable() {
                victims[found] = Some(entry.key().0.clone());
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
            f(&entry.key().0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{DestKey, DestParams, Protocol, ServiceKey, ServiceParams};
    use std::net::{IpAddr, Ipv4Addr};

    const CLIENT: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 40000);
    const RIP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(192, 168, 100, 7), 80);

    fn service(vip: Ipv4Addr) -> Arc<VirtualService> {
        let key = ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: IpAddr::V4(vip),
            port: 80,
        };
        let sched = crate::sched::create("rr", &[]).expect("rr exists");
        Arc::new(VirtualService::new(key, ServiceParams::default(), sched))
    }

    fn dest() -> Arc<Destination> {
        let key = DestKey {
            addr: IpAddr::V4(*RIP.ip()),
            port: RIP.port(),
        };
        Arc::new(Destination::new(key, &DestParams::default()))
    }

    /// The same client (address and port) to two VIPs that share a real server.
    fn conn(vip: Ipv4Addr, dest: &Arc<Destination>) -> Conn {
        let flow = FlowKey {
            protocol: PROTO_TCP,
            src: CLIENT,
            dst: SocketAddrV4::new(vip, 80),
        };
        Conn::new(flow, RIP, service(vip), dest.clone(), None, Timestamp::ZERO)
    }

    fn new(inserted: Inserted) -> Arc<Conn> {
        match inserted {
            Inserted::New(conn) => conn,
            Inserted::Existing(_) => panic!("the flow was taken"),
        }
    }

    #[test]
    fn both_keys_find_the_entry_and_a_second_insert_gets_the_first() {
        let table = ConnTable::default();
        let rs = dest();
        let vip = Ipv4Addr::new(192, 168, 0, 10);
        let first = new(table.insert(conn(vip, &rs)));
        let inbound = first.inbound_key();
        let outbound = first.outbound_key();
        assert_eq!((outbound.src, outbound.dst), (RIP, CLIENT));
        assert!(Arc::ptr_eq(
            &table.lookup_inbound(&inbound).unwrap(),
            &first
        ));
        assert!(Arc::ptr_eq(
            &table.lookup_outbound(&outbound).unwrap(),
            &first
        ));
        match table.insert(conn(vip, &rs)) {
            Inserted::Existing(c) => assert!(Arc::ptr_eq(&c, &first)),
            Inserted::New(_) => panic!("the same flow went in twice"),
        }
        assert_eq!(table.len(), 1);
        assert_eq!(rs.inact_conns(), 1, "the loser's hold is released");
        assert!(table.remove(&first));
        assert!(table.lookup_inbound(&inbound).is_none());
        assert!(table.lookup_outbound(&outbound).is_none());
        assert_eq!((table.len(), rs.inact_conns()), (0, 0));
    }

    #[test]
    fn a_shared_outbound_key_belongs_to_the_newest_until_it_goes() {
        let table = ConnTable::default();
        let rs = dest();
        let older = new(table.insert(conn(Ipv4Addr::new(192, 168, 0, 10), &rs)));
        let newer = new(table.insert(conn(Ipv4Addr::new(192, 168, 0, 11), &rs)));
        let outbound = older.outbound_key();
        assert_eq!(outbound, newer.outbound_key());
        assert!(Arc::ptr_eq(
            &table.lookup_outbound(&outbound).unwrap(),
            &newer
        ));
        // Removing the older one leaves the newer one's outbound entry alone.
        assert!(table.remove(&older));
        assert!(Arc::ptr_eq(
            &table.lookup_outbound(&outbound).unwrap(),
            &newer
        ));
        assert_eq!(table.expire(Timestamp::from_secs(4)), 1);
        assert!(table.lookup_outbound(&outbound).is_none());
        assert!(table.is_empty());
    }
}
