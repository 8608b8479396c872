//! The director's own neighbour (ARP) cache.
//!
//! masq resolves real servers, on-link clients and the external next hop itself, because
//! the addresses it forwards to are not routes of its host's kernel. Entries are learnt from
//! ARP replies and from requests addressed to the director, confirmed for
//! [`REACHABLE_MS`]; after that they stay usable but are re-probed (at most once per
//! [`PROBE_INTERVAL_MS`]), and are forgotten [`STALE_MS`] after the last confirmation. An
//! address that never answers is given up after [`MAX_PROBES`] probes.

use std::net::Ipv4Addr;

use dashmap::DashMap;
use masq_wire::ethernet::MacAddr;

use crate::time::Timestamp;

/// How long an answer is trusted without asking again.
pub const REACHABLE_MS: u64 = 30_000;
/// How long an unconfirmed entry is still used while being re-probed.
pub const STALE_MS: u64 = 300_000;
/// Minimum time between two probes for one address.
pub const PROBE_INTERVAL_MS: u64 = 1_000;
/// Probes sent for an unresolved address before it is given up.
pub const MAX_PROBES: u8 = 3;

#[derive(Debug, Clone, Copy)]
struct Entry {
    mac: Option<MacAddr>,
    confirmed: Timestamp,
    last_probe: Option<Timestamp>,
    probes: u8,
}

/// What [`Neighbours::resolve`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    /// The MAC to use now, if any is known.
    pub mac: Option<MacAddr>,
    /// Whether the caller should send an ARP request for the address now.
    pub probe: bool,
}

/// A neighbour entry as listed for diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighbourView {
    pub addr: Ipv4Addr,
    pub mac: Option<MacAddr>,
    /// Milliseconds since the last confirmation (`None` if never confirmed).
    pub age_ms: Option<u64>,
}

/// Two hosts answering ARP for one address within [`CONFLICT_WINDOW_MS`]: the classic lab
/// typo of giving a second real server the first one's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressConflict {
    pub addr: Ipv4Addr,
    pub first: MacAddr,
    pub second: MacAddr,
    pub seen: Timestamp,
}

/// Two different MACs for one address within this long count as a conflict (a host that
/// really moved announces itself once, not over and over).
pub const CONFLICT_WINDOW_MS: u64 = 10_000;

/// The cache, shared by all workers.
#[derive(Debug, Default)]
pub struct Neighbours {
    entries: DashMap<Ipv4Addr, Entry>,
    conflicts: DashMap<Ipv4Addr, AddressConflict>,
}

impl Neighbours {
    /// Looks `addr` up for sending at `now`, creating an incomplete entry if it is unknown
    /// and deciding whether a probe is due.
    pub fn resolve(&self, addr: Ipv4Addr, now: Timestamp) -> Resolution {
        let mut entry = self.entries.entry(addr).or_insert(Entry {
            mac: None,
            confirmed: now,
            last_probe: None,
            probes: 0,
        });
        let e = entry.value_mut();
        let fresh = e.mac.is_some()
            && now.saturating_since(e.confirmed).as_millis() < u128::from(REACHABLE_MS);
        let probe_due = e
            .last_probe
            .is_none_or(|t| now.saturating_since(t).as_millis() >= u128::from(PROBE_INTERVAL_MS));
        let probe = !fresh && probe_due && (e.mac.is_some() || e.probes < MAX_PROBES);
        if probe {
            e.last_probe = Some(now);
            e.probes = e.probes.saturating_add(1);
        }
        Resolution { mac: e.mac, probe }
    }

    /// The MAC of `addr` if known, without creating an entry or probing.
    pub fn peek(&self, addr: Ipv4Addr) -> Option<MacAddr> {
        self.entries.get(&addr).and_then(|e| e.mac)
    }

    /// Whether `addr` was probed [`MAX_PROBES`] times without an answer.
    pub fn is_unreachable(&self, addr: Ipv4Addr, now: Timestamp) -> bool {
        self.entries.get(&addr).is_some_and(|e| {
            e.mac.is_none()
                && e.probes >= MAX_PROBES
                && e.last_probe.is_some_and(|t| {
                    now.saturating_since(t).as_millis() >= u128::from(PROBE_INTERVAL_MS)
                })
        })
    }

    /// Records that `addr` is at `mac` (from an ARP packet). `create` says whether a new
    /// entry may be made (as the kernel, only for packets addressed to us); otherwise only
    /// an existing entry is updated.
    pub fn learn(&self, addr: Ipv4Addr, mac: MacAddr, now: Timestamp, create: bool) {
        let confirmed = Entry {
            mac: Some(mac),
            confirmed: now,
            last_probe: None,
            probes: 0,
        };
        let previous = if create {
            self.entries.insert(addr, confirmed)
        } else if let Some(mut e) = self.entries.get_mut(&addr) {
            Some(std::mem::replace(&mut *e, confirmed))
        } else {
            None
        };
        if let Some(Entry {
            mac: Some(old),
            confirmed: when,
            ..
        }) = previous
        {
            if old != mac && now.saturating_since(when).as_millis() < u128::from(CONFLICT_WINDOW_MS)
            {
                self.conflicts.insert(
                    addr,
                    AddressConflict {
                        addr,
                        first: old,
                        second: mac,
                        seen: now,
                    },
                );
            }
        }
    }

    /// Addresses answered by two hosts within the last `window_ms`.
    pub fn conflicts(&self, now: Timestamp, window_ms: u64) -> Vec<AddressConflict> {
        self.conflicts
            .iter()
            .filter(|c| now.saturating_since(c.seen).as_millis() < u128::from(window_ms))
            .map(|c| *c.value())
            .collect()
    }

    /// Forgets entries not confirmed for [`STALE_MS`] and given-up incomplete ones.
    pub fn expire(&self, now: Timestamp) {
        self.entries.retain(|_, e| match e.mac {
            Some(_) => now.saturating_since(e.confirmed).as_millis() < u128::from(STALE_MS),
            None => {
                e.probes < MAX_PROBES
                    || now.saturating_since(e.confirmed).as_millis()
                        < u128::from(PROBE_INTERVAL_MS * u64::from(MAX_PROBES) * 10)
            }
        });
    }

    /// Every entry, for diagnostics.
    pub fn list(&self, now: Timestamp) -> Vec<NeighbourView> {
        let mut v: Vec<_> = self
            .entries
            .iter()
            .map(|e| NeighbourView {
                addr: *e.key(),
                mac: e.mac,
                age_ms: e
                    .mac
                    .map(|_| now.saturating_since(e.confirmed).as_millis() as u64),
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

    #[test]
    fn unknown_address_is_probed_then_rate_limited_then_given_up() {
        let n = Neighbours::default();
        let t = Timestamp::from_secs(100);
        assert_eq!(
            n.resolve(RS1, t),
            Resolution {
                mac: None,
                probe: true
            }
        );
        assert!(
            !n.resolve(RS1, t + std::time::Duration::from_millis(500))
                .probe
        );
        assert!(n.resolve(RS1, Timestamp::from_secs(101)).probe);
        assert!(n.resolve(RS1, Timestamp::from_secs(102)).probe);
        assert!(
            !n.resolve(RS1, Timestamp::from_secs(103)).probe,
            "gave up after 3"
        );
        assert!(n.is_unreachable(RS1, Timestamp::from_secs(104)));
    }

    #[test]
    fn learnt_entry_is_used_then_reprobed_when_stale_then_forgotten() {
        let n = Neighbours::default();
        n.learn(RS1, MAC, Timestamp::from_secs(0), true);
        assert_eq!(
            n.resolve(RS1, Timestamp::from_secs(10)),
            Resolution {
                mac: Some(MAC),
                probe: false
            }
        );
        assert_eq!(
            n.resolve(RS1, Timestamp::from_secs(31)),
            Resolution {
                mac: Some(MAC),
                probe: true
            }
        );
        n.expire(Timestamp::from_secs(299));
        assert_eq!(n.peek(RS1), Some(MAC));
        n.expire(Timestamp::from_secs(301));
        assert_eq!(n.peek(RS1), None);
    }

    #[test]
    fn two_macs_for_one_address_is_a_conflict() {
        let n = Neighbours::default();
        let other = MacAddr([2, 0, 0, 0, 0, 9]);
        n.learn(RS1, MAC, Timestamp::from_secs(1), true);
        n.learn(RS1, MAC, Timestamp::from_secs(2), true);
        assert!(n.conflicts(Timestamp::from_secs(2), 60_000).is_empty());
        n.learn(RS1, other, Timestamp::from_secs(3), true);
        let c = n.conflicts(Timestamp::from_secs(3), 60_000);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].first, c[0].second), (MAC, other));
        assert!(n.conflicts(Timestamp::from_secs(100), 60_000).is_empty());
    }

    #[test]
    fn learning_without_create_only_updates() {
        let n = Neighbours::default();
        n.learn(RS1, MAC, Timestamp::ZERO, false);
        assert_eq!(n.peek(RS1), None);
        n.resolve(RS1, Timestamp::ZERO);
        n.learn(RS1, MAC, Timestamp::ZERO, false);
        assert_eq!(n.peek(RS1), Some(MAC));
    }
}
