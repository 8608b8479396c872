//! The director's own neighbour (ARP) tables, one per side.
//!
//! masq resolves real servers, on-link clients and the external next hop itself, because
//! the addresses it forwards to are not routes of its host's kernel. As in the kernel,
//! each interface has a table of its own: what is learnt on one side never changes where
//! the other side's frames go. The director (not this module) decides which ARP packets
//! may teach a table anything — only senders on that side's own networks that are not the
//! director's own addresses.
//!
//! Entries are learnt from ARP replies and from requests addressed to the director,
//! confirmed for [`REACHABLE_MS`]; after that they stay usable but are re-probed (at most
//! once per [`PROBE_INTERVAL_MS`]), and are forgotten [`STALE_MS`] after the last
//! confirmation. An address that never answers is given up after [`MAX_PROBES`] probes.
//!
//! The first MAC learnt for an address keeps it. Another MAC claiming the same address is
//! a conflict — a spoofer, or the lab's duplicate-address typo — recorded (bounded, by
//! [`MAX_CONFLICTS`]) and otherwise ignored, unless the first host stopped answering the
//! director's probes: then the address has moved and the newcomer takes it.
//!
//! Each table holds at most its capacity. An address the director must send to gets room
//! by shedding entries nobody needs — addresses that never answered, and hosts learnt only
//! because they asked the director something (nobody sends to them yet); it is refused if
//! that frees nothing. A new requester is not learnt into a full table at all: a flood of
//! strangers asking for a VIP can fill it, but never keeps out a host the director has to
//! answer.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use dashmap::mapref::entry::Entry as MapEntry;
use dashmap::DashMap;
use masq_wire::ethernet::MacAddr;

use crate::time::Timestamp;
use crate::verdict::Side;

/// How long an answer is trusted without asking again.
pub const REACHABLE_MS: u64 = 30_000;
/// How long an unconfirmed entry is still used while being re-probed.
pub const STALE_MS: u64 = 300_000;
/// Minimum time between two probes for one address.
pub const PROBE_INTERVAL_MS: u64 = 1_000;
/// Probes sent for an address without an answer before it is given up.
pub const MAX_PROBES: u8 = 3;
/// Entries one side's table holds by default (`--max-neighbours`).
pub const DEFAULT_CAPACITY: usize = 16_384;
/// Conflicts remembered per side.
pub const MAX_CONFLICTS: usize = 256;
/// How long a conflict is remembered (and worth reporting) after it was last seen.
pub const CONFLICT_MEMORY_MS: u64 = 60_000;
/// Entries looked at, and at most shed, when a full table needs room.
const SHED_SCAN: usize = 64;
const SHED_MAX: usize = 8;

/// How an entry came to be, which decides whether a full table may shed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// The director sends to this address (a real server, the gateway, a client it
    /// answers): kept while it answers.
    Resolving,
    /// Learnt from a request the host sent to the director; nobody sent to it yet.
    Requester,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    mac: Option<MacAddr>,
    confirmed: Timestamp,
    last_probe: Option<Timestamp>,
    /// Probes sent since the last answer.
    probes: u8,
    origin: Origin,
}

impl Entry {
    fn incomplete(now: Timestamp) -> Self {
        Entry {
            mac: None,
            confirmed: now,
            last_probe: None,
            probes: 0,
            origin: Origin::Resolving,
        }
    }

    fn is_fresh(&self, now: Timestamp) -> bool {
        self.mac.is_some() && since(now, self.confirmed) < REACHABLE_MS
    }

    /// An entry a full table may give up for an address the director must send to:
    /// one that never answered, or a requester nobody sends to.
    fn is_sheddable(&self) -> bool {
        self.mac.is_none() || self.origin == Origin::Requester
    }
}

fn since(now: Timestamp, then: Timestamp) -> u64 {
    u64::try_from(now.saturating_since(then).as_millis()).unwrap_or(u64::MAX)
}

/// What [`NeighbourTable::resolve`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    /// The MAC to use now, if any is known.
    pub mac: Option<MacAddr>,
    /// Whether the caller should send an ARP request for the address now.
    pub probe: bool,
}

/// What one ARP packet did to the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learnt {
    /// A new entry.
    New,
    /// An entry confirmed (same MAC, or the first MAC for an incomplete one).
    Confirmed,
    /// The address moved: its old host stopped answering, the new MAC took over.
    Moved,
    /// Another MAC claims an address whose first host still answers: ignored, recorded.
    Conflict,
    /// Nothing to update and no entry may be made for it (not addressed to us, or the
    /// table is full).
    Ignored,
}

/// A neighbour entry as listed for diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighbourView {
    /// The side whose table holds it.
    pub side: Side,
    pub addr: Ipv4Addr,
    pub mac: Option<MacAddr>,
    /// Milliseconds since the last confirmation (`None` if never confirmed).
    pub age_ms: Option<u64>,
}

/// Two hosts claiming one address: the host that had it first (and keeps it, unless it
/// stopped answering) and the latest other claimant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressConflict {
    pub addr: Ipv4Addr,
    pub first: MacAddr,
    pub second: MacAddr,
    pub seen: Timestamp,
}

/// Counters of what the table refused.
#[derive(Debug, Default)]
pub struct NeighbourCounters {
    /// Claims by a second MAC that were ignored.
    pub conflicts: AtomicU64,
    /// Entries shed to make room.
    pub shed: AtomicU64,
    /// New addresses refused because the table was full.
    pub refused: AtomicU64,
}

/// One side's table, shared by all workers.
#[derive(Debug)]
pub struct NeighbourTable {
    entries: DashMap<Ipv4Addr, Entry>,
    /// Entries in the table, kept beside the map (`DashMap::len` locks every shard).
    count: AtomicUsize,
    capacity: usize,
    conflicts: DashMap<Ipv4Addr, AddressConflict>,
    pub counters: NeighbourCounters,
}

impl Default for NeighbourTable {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl NeighbourTable {
    /// An empty table holding at most `capacity` entries (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        NeighbourTable {
            entries: DashMap::new(),
            count: AtomicUsize::new(0),
            capacity: capacity.max(1),
            conflicts: DashMap::new(),
            counters: NeighbourCounters::default(),
        }
    }

    /// Most entries the table holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries in the table.
    pub fn len(&self) -> usize {
        self.count.load(Relaxed)
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Looks `addr` up for sending at `now`, creating an incomplete entry if it is unknown
    /// and deciding whether a probe is due. `None` when the address is unknown and the
    /// table is full of entries it may not shed.
    pub fn resolve(&self, addr: Ipv4Addr, now: Timestamp) -> Option<Resolution> {
        // The packet path's case — a fresh answer for a host the director sends to — takes
        // the shard's read lock only, so packet threads sending to one real server do not
        // contend on it.
        if let Some(e) = self.entries.get(&addr) {
            if e.is_fresh(now) && e.origin == Origin::Resolving {
                return Some(Resolution {
                    mac: e.mac,
                    probe: false,
                });
            }
        } else if self.len() >= self.capacity && !self.make_room() {
            self.counters.refused.fetch_add(1, Relaxed);
            return None;
        }
        let mut entry = match self.entries.entry(addr) {
            MapEntry::Occupied(e) => e.into_ref(),
            MapEntry::Vacant(v) => {
                self.count.fetch_add(1, Relaxed);
                v.insert(Entry::incomplete(now))
            }
        };
        let e = entry.value_mut();
        // Somebody sends to it now: it is no longer a mere requester.
        e.origin = Origin::Resolving;
        let probe_due = e
            .last_probe
            .is_none_or(|t| since(now, t) >= PROBE_INTERVAL_MS);
        let probe = !e.is_fresh(now) && probe_due && (e.mac.is_some() || e.probes < MAX_PROBES);
        if probe {
            e.last_probe = Some(now);
            e.probes = e.probes.saturating_add(1);
        }
        Some(Resolution { mac: e.mac, probe })
    }

    /// The MAC of `addr` if known, without creating an entry or probing.
    pub fn peek(&self, addr: Ipv4Addr) -> Option<MacAddr> {
        self.entries.get(&addr).and_then(|e| e.mac)
    }

    /// Whether `addr` was probed [`MAX_PROBES`] times without ever answering.
    pub fn is_unreachable(&self, addr: Ipv4Addr, now: Timestamp) -> bool {
        self.entries.get(&addr).is_some_and(|e| {
            e.mac.is_none()
                && e.probes >= MAX_PROBES
                && e.last_probe
                    .is_some_and(|t| since(now, t) >= PROBE_INTERVAL_MS)
        })
    }

    /// Records that `addr` claims to be at `mac` (from an ARP packet the director accepted
    /// for this side). `create` says whether a new entry may be made — as in the kernel,
    /// only for packets addressed to the director; otherwise only an existing entry is
    /// updated.
    pub fn learn(&self, addr: Ipv4Addr, mac: MacAddr, now: Timestamp, create: bool) -> Learnt {
        let confirmed = |origin| Entry {
            mac: Some(mac),
            confirmed: now,
            last_probe: None,
            probes: 0,
            origin,
        };
        if create && self.len() >= self.capacity && !self.entries.contains_key(&addr) {
            self.counters.refused.fetch_add(1, Relaxed);
            return Learnt::Ignored;
        }
        let (learnt, refused_by) = match self.entries.entry(addr) {
            MapEntry::Vacant(v) if create => {
                self.count.fetch_add(1, Relaxed);
                v.insert(confirmed(Origin::Requester));
                (Learnt::New, None)
            }
            MapEntry::Vacant(_) => (Learnt::Ignored, None),
            MapEntry::Occupied(mut o) => {
                let e = o.get_mut();
                match e.mac {
                    Some(old) if old != mac => {
                        // The first host keeps the address while it answers our probes.
                        if e.probes >= MAX_PROBES {
                            *e = confirmed(e.origin);
                            (Learnt::Moved, Some(old))
                        } else {
                            (Learnt::Conflict, Some(old))
                        }
                    }
                    _ => {
                        *e = confirmed(e.origin);
                        (Learnt::Confirmed, None)
                    }
                }
            }
        };
        // Recorded after the entry's shard lock is gone (never two dashmap guards at once).
        if let Some(first) = refused_by {
            if learnt == Learnt::Conflict {
                self.counters.conflicts.fetch_add(1, Relaxed);
            }
            self.record_conflict(AddressConflict {
                addr,
                first,
                second: mac,
                seen: now,
            });
        }
        learnt
    }

    fn record_conflict(&self, conflict: AddressConflict) {
        if self.conflicts.len() >= MAX_CONFLICTS && !self.conflicts.contains_key(&conflict.addr) {
            // Full of other addresses' conflicts: the oldest one goes.
            let oldest = self
                .conflicts
                .iter()
                .min_by_key(|c| c.seen)
                .map(|c| *c.key());
            if let Some(addr) = oldest {
                self.conflicts.remove(&addr);
            }
        }
        self.conflicts.insert(conflict.addr, conflict);
    }

    /// Addresses claimed by two hosts within the last `window_ms`.
    pub fn conflicts(&self, now: Timestamp, window_ms: u64) -> Vec<AddressConflict> {
        self.conflicts
            .iter()
            .filter(|c| since(now, c.seen) < window_ms)
            .map(|c| *c.value())
            .collect()
    }

    /// Whether the table has room for one more entry, shedding some if it is full.
    fn make_room(&self) -> bool {
        if self.len() < self.capacity {
            return true;
        }
        let mut victims = [Ipv4Addr::UNSPECIFIED; SHED_MAX];
        let mut found = 0;
        for e in self.entries.iter().take(SHED_SCAN) {
            if e.is_sheddable() {
                victims[found] = *e.key();
                found += 1;
                if found == SHED_MAX {
                    break;
                }
            }
        }
        // The iterator's shard locks are gone before removing.
        for addr in &victims[..found] {
            if self
                .entries
                .remove_if(addr, |_, e| e.is_sheddable())
                .is_some()
            {
                self.count.fetch_sub(1, Relaxed);
                self.counters.shed.fetch_add(1, Relaxed);
            }
        }
        self.len() < self.capacity
    }

    /// Forgets entries not confirmed for [`STALE_MS`], given-up incomplete ones, and
    /// conflicts not seen for [`CONFLICT_MEMORY_MS`].
    pub fn expire(&self, now: Timestamp) {
        self.entries.retain(|_, e| {
            let keep = match e.mac {
                Some(_) => since(now, e.confirmed) < STALE_MS,
                None => {
                    e.probes < MAX_PROBES
                        || since(now, e.confirmed) < PROBE_INTERVAL_MS * u64::from(MAX_PROBES) * 10
                }
            };
            if !keep {
                self.count.fetch_sub(1, Relaxed);
            }
            keep
        });
        self.conflicts
            .retain(|_, c| since(now, c.seen) < CONFLICT_MEMORY_MS);
    }

    /// Every entry, for diagnostics, as the table of `side`.
    pub fn list(&self, side: Side, now: Timestamp) -> Vec<NeighbourView> {
        let mut v: Vec<_> = self
            .entries
            .iter()
            .map(|e| NeighbourView {
                side,
                addr: *e.key(),
                mac: e.mac,
                age_ms: e.mac.map(|_| since(now, e.confirmed)),
            })
            .collect();
        v.sort_by_key(|n| n.addr);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RS1: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 7);
    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 7]);
    const ROGUE: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x66]);

    fn resolve(n: &NeighbourTable, addr: Ipv4Addr, t: Timestamp) -> Resolution {
        n.resolve(addr, t).expect("room in the table")
    }

    #[test]
    fn unknown_address_is_probed_then_rate_limited_then_given_up() {
        let n = NeighbourTable::default();
        let t = Timestamp::from_secs(100);
        assert_eq!(
            resolve(&n, RS1, t),
            Resolution {
                mac: None,
                probe: true
            }
        );
        assert!(!resolve(&n, RS1, t + std::time::Duration::from_millis(500)).probe);
        assert!(resolve(&n, RS1, Timestamp::from_secs(101)).probe);
        assert!(resolve(&n, RS1, Timestamp::from_secs(102)).probe);
        assert!(
            !resolve(&n, RS1, Timestamp::from_secs(103)).probe,
            "gave up after 3"
        );
        assert!(n.is_unreachable(RS1, Timestamp::from_secs(104)));
    }

    #[test]
    fn learnt_entry_is_used_then_reprobed_when_stale_then_forgotten() {
        let n = NeighbourTable::default();
        assert_eq!(
            n.learn(RS1, MAC, Timestamp::from_secs(0), true),
            Learnt::New
        );
        assert_eq!(
            resolve(&n, RS1, Timestamp::from_secs(10)),
            Resolution {
                mac: Some(MAC),
                probe: false
            }
        );
        assert_eq!(
            resolve(&n, RS1, Timestamp::from_secs(31)),
            Resolution {
                mac: Some(MAC),
                probe: true
            }
        );
        n.expire(Timestamp::from_secs(299));
        assert_eq!(n.peek(RS1), Some(MAC));
        n.expire(Timestamp::from_secs(301));
        assert_eq!(n.peek(RS1), None);
        assert!(n.is_empty());
    }

    #[test]
    fn a_second_mac_is_a_conflict_and_the_first_keeps_the_address() {
        let n = NeighbourTable::default();
        n.learn(RS1, MAC, Timestamp::from_secs(1), true);
        n.learn(RS1, MAC, Timestamp::from_secs(2), true);
        assert!(n.conflicts(Timestamp::from_secs(2), 60_000).is_empty());
        assert_eq!(
            n.learn(RS1, ROGUE, Timestamp::from_secs(3), true),
            Learnt::Conflict
        );
        assert_eq!(n.peek(RS1), Some(MAC), "the first host keeps its address");
        let c = n.conflicts(Timestamp::from_secs(3), 60_000);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].first, c[0].second), (MAC, ROGUE));
        assert_eq!(n.counters.conflicts.load(Relaxed), 1);
        // Long after, even a stale entry stays with its first host while it answers.
        assert_eq!(
            n.learn(RS1, ROGUE, Timestamp::from_secs(40), false),
            Learnt::Conflict
        );
        assert_eq!(n.peek(RS1), Some(MAC));
        assert!(n.conflicts(Timestamp::from_secs(200), 60_000).is_empty());
    }

    #[test]
    fn an_address_whose_host_stopped_answering_moves_to_the_new_mac() {
        let n = NeighbourTable::default();
        n.learn(RS1, MAC, Timestamp::ZERO, true);
        // Stale after 30 s; three probes go unanswered.
        for s in 31..34 {
            assert!(resolve(&n, RS1, Timestamp::from_secs(s)).probe);
        }
        assert_eq!(
            n.learn(RS1, ROGUE, Timestamp::from_secs(35), false),
            Learnt::Moved
        );
        assert_eq!(n.peek(RS1), Some(ROGUE));
    }

    #[test]
    fn learning_without_create_only_updates() {
        let n = NeighbourTable::default();
        assert_eq!(n.learn(RS1, MAC, Timestamp::ZERO, false), Learnt::Ignored);
        assert_eq!(n.peek(RS1), None);
        resolve(&n, RS1, Timestamp::ZERO);
        assert_eq!(n.learn(RS1, MAC, Timestamp::ZERO, false), Learnt::Confirmed);
        assert_eq!(n.peek(RS1), Some(MAC));
    }

    #[test]
    fn a_full_table_makes_room_for_hosts_it_sends_to_but_never_sheds_them() {
        let n = NeighbourTable::with_capacity(4);
        let t0 = Timestamp::ZERO;
        let host = |i: u8| Ipv4Addr::new(192, 168, 0, i);
        // Two real servers the director sends to, answered.
        for i in 1..=2 {
            resolve(&n, host(i), t0);
            n.learn(host(i), MacAddr([2, 0, 0, 0, 0, i]), t0, false);
        }
        // Two requesters fill it.
        n.learn(host(3), MacAddr([2, 0, 0, 0, 0, 3]), t0, true);
        n.learn(host(4), MacAddr([2, 0, 0, 0, 0, 4]), t0, true);
        assert_eq!(n.len(), 4);
        // A full table learns no more requesters...
        assert_eq!(
            n.learn(host(5), MacAddr([2, 0, 0, 0, 0, 5]), t0, true),
            Learnt::Ignored
        );
        assert_eq!(n.counters.refused.load(Relaxed), 1);
        // ...but a host the director must send to takes a requester's place; the servers
        // stay.
        assert!(n.resolve(host(9), t0).is_some());
        assert!(n.len() <= 4);
        assert_eq!(n.peek(host(1)), Some(MacAddr([2, 0, 0, 0, 0, 1])));
        assert_eq!(n.peek(host(2)), Some(MacAddr([2, 0, 0, 0, 0, 2])));
        assert!(n.counters.shed.load(Relaxed) >= 1);
        // Once every entry is a host the director sends to and that answered, a new one
        // is refused.
        for i in [9, 10] {
            assert!(n.resolve(host(i), t0).is_some());
            n.learn(host(i), MacAddr([2, 0, 0, 0, 0, i]), t0, false);
        }
        assert_eq!(n.len(), 4);
        assert_eq!(n.resolve(host(11), t0), None);
    }

    #[test]
    fn a_flood_of_unanswered_addresses_never_grows_the_table_past_its_capacity() {
        let n = NeighbourTable::with_capacity(64);
        let t = Timestamp::from_secs(1);
        for i in 0..10_000u32 {
            let _ = n.resolve(Ipv4Addr::from(0x0a00_0000 + i), t);
            assert!(n.len() <= 64);
        }
        assert_eq!(n.entries.len(), n.len());
    }

    #[test]
    fn conflict_records_are_bounded() {
        let n = NeighbourTable::default();
        for i in 0..(MAX_CONFLICTS as u32 * 2) {
            let addr = Ipv4Addr::from(0x0a00_0000 + i);
            let t = Timestamp(u64::from(i));
            n.learn(addr, MAC, t, true);
            n.learn(addr, ROGUE, t, true);
        }
        assert!(n.conflicts.len() <= MAX_CONFLICTS);
        let newest = Ipv4Addr::from(0x0a00_0000 + MAX_CONFLICTS as u32 * 2 - 1);
        assert!(n.conflicts.contains_key(&newest), "the newest is kept");
    }
}
