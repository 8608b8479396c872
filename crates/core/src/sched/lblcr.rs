//! `lblcr` — locality-based least connection with replication (ip_vs_lblcr.c).
//!
//! Algorithm: like lblc, but a destination address maps to a *set* of servers:
//!
//! ```text
//! if serverset[dest_ip] is null then
//!         n, serverset[dest_ip] <- {weighted least-conn node};
//! else
//!         n <- {least-conn (alive) node in serverset[dest_ip]};
//!         if (n is null) OR
//!            (n.conns > n.weight AND
//!             there is a node m with m.conns < m.weight / 2) then
//!             n <- {weighted least-conn node};
//!             add n to serverset[dest_ip];
//!         if |serverset[dest_ip]| > 1 AND
//!             now - serverset[dest_ip].lastmod > T then
//!             m <- {most conn node in serverset[dest_ip]};
//!             remove m from serverset[dest_ip];
//! return n;
//! ```
//!
//! Kernel details kept: the least-loaded member is chosen *before* the shrink, so it may
//! be the member that is removed and still be used this once; the shrink removes the
//! member with the highest `overhead / weight` among those with weight > 0, ignoring the
//! OVERLOAD flag and availability; a set only changes `lastmod` when it gains or loses a
//! member. Sets list their members newest first. "conns" in the overload rule is
//! ActiveConn; the set's least-loaded member must be linked, not overloaded and weight > 0
//! to be a candidate. T is `lblcr_expiration`, 24 h. Entries are collected by the table's
//! timer as in lblc (see `locality.rs`).

use std::sync::Arc;

use super::lblc::{is_overloaded, position};
use super::locality::{LocalityTable, DEFAULT_EXPIRATION};
use super::wlc::least_loaded;
use super::{DestChange, SchedInput, Scheduler};
use crate::dest::Destination;
use crate::time::Timestamp;

/// The servers replicating one destination address (`ip_vs_dest_set`).
#[derive(Debug)]
struct DestSet {
    /// Newest first.
    members: Vec<Arc<Destination>>,
    lastmod: Timestamp,
}

impl DestSet {
    /// ip_vs_dest_set_insert with `check`: add unless already a member.
    fn insert(&mut self, dest: &Arc<Destination>, now: Timestamp) {
        if self.members.iter().any(|m| Arc::ptr_eq(m, dest)) {
            return;
        }
        self.members.insert(0, Arc::clone(dest));
        self.lastmod = now;
    }

    /// ip_vs_dest_set_min: the weighted least-connection member that may take a connection.
    fn least_loaded(&self) -> Option<&Arc<Destination>> {
        let first = self
            .members
            .iter()
            .position(|d| !d.is_overloaded() && d.weight() > 0 && d.is_available())?;
        let mut least = &self.members[first];
        let mut loh = least.overhead();
        for dest in &self.members[first + 1..] {
            if dest.is_overloaded() {
                continue;
            }
            let doh = dest.overhead();
            if loh * i64::from(dest.weight()) > doh * i64::from(least.weight())
                && dest.is_available()
            {
                least = dest;
                loh = doh;
            }
        }
        Some(least)
    }

    /// ip_vs_dest_set_max + ip_vs_dest_set_erase: drop the most loaded member.
    fn shrink(&mut self, now: Timestamp) {
        let Some(first) = self.members.iter().position(|d| d.weight() > 0) else {
            return;
        };
        let mut most = first;
        let mut moh = self.members[first].overhead();
        for (i, dest) in self.members.iter().enumerate().skip(first + 1) {
            let doh = dest.overhead();
            if moh * i64::from(dest.weight()) < doh * i64::from(self.members[most].weight())
                && dest.weight() > 0
            {
                most = i;
                moh = doh;
            }
        }
        self.members.remove(most);
        self.lastmod = now;
    }
}

/// The `lblcr` scheduler.
#[derive(Debug)]
pub struct LocalityLeastConnectionReplicated {
    table: LocalityTable<DestSet>,
}

impl LocalityLeastConnectionReplicated {
    /// init_service: an empty table.
    pub fn new(_dests: &[Arc<Destination>]) -> Self {
        LocalityLeastConnectionReplicated {
            table: LocalityTable::new(),
        }
    }
}

impl Scheduler for LocalityLeastConnectionReplicated {
    fn name(&self) -> &'static str {
        "lblcr"
    }

    fn dests_changed(&mut self, _dests: &[Arc<Destination>], _change: DestChange) {}

    fn schedule(&mut self, dests: &[Arc<Destination>], input: &SchedInput) -> Option<usize> {
        let now = input.now;
        self.table.run_timers(now, DEFAULT_EXPIRATION);
        if let Some(entry) = self.table.get_mut(input.dst) {
            entry.lastuse = now;
            let set = &mut entry.value;
            let least = set.least_loaded().cloned();
            if set.members.len() > 1 && now > set.lastmod + DEFAULT_EXPIRATION {
                set.shrink(now);
            }
            if let Some(dest) = least {
                if !is_overloaded(&dest, dests) {
                    if let Some(index) = position(dests, &dest) {
                        return Some(index);
                    }
                }
            }
            let index = least_loaded(dests, Destination::overhead)?;
            set.insert(&dests[index], now);
            return Some(index);
        }
        let index = least_loaded(dests, Destination::overhead)?;
        let set = DestSet {
            members: vec![Arc::clone(&dests[index])],
            lastmod: now,
        };
        self.table.insert(input.dst, now, set);
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use crate::sched::testutil::{from, Conn, Lab};
    use crate::sched::SchedInput;
    use crate::time::Timestamp;
    use std::net::{IpAddr, Ipv4Addr};

    fn to(d: u8, secs: u64) -> SchedInput {
        SchedInput {
            dst: IpAddr::V4(Ipv4Addr::new(10, 1, 0, d)),
            now: Timestamp::from_secs(secs),
            ..from(101, 1)
        }
    }

    #[test]
    fn sched_lblcr_set_grows_when_its_best_member_is_overloaded() {
        let mut lab = Lab::new("lblcr");
        lab.add(7, 2).add(9, 2).add(11, 4);
        // Held connections to one target: .11 (newest) until it has more than 4 active
        // while some server is below half its weight; then wlc adds .9 to the set, which
        // takes the next ones as the set's least-loaded member, until .11 is least loaded
        // again but overloaded: then .7 joins.
        let picks: Vec<SchedInput> = (0..9).map(|k| to(1, k)).collect();
        assert_eq!(lab.picks_for(&picks, Conn::Held), "11 11 11 11 11 9 9 9 7");
        // Set {7, 9, 11} (newest first): .7 (1 active / 2) is the least loaded.
        assert_eq!(lab.picks_for(&[to(1, 9)], Conn::Held), "7");
        // Another target starts its own set with the wlc pick: .7 (2 / 2) beats .9 (3 / 2).
        assert_eq!(lab.picks_for(&[to(2, 9)], Conn::Held), "7");
    }

    #[test]
    fn sched_lblcr_set_shrinks_after_a_day_without_change() {
        let mut lab = Lab::new("lblcr");
        lab.add(7, 1).add(9, 1);
        assert_eq!(lab.picks_for(&[to(1, 0)], Conn::Untracked), "9");
        // .9 over its weight, .7 idle: .7 joins the set at t = 1.
        lab.dest(9).set_conns_for_test(2, 0);
        assert_eq!(lab.picks_for(&[to(1, 1)], Conn::Untracked), "7");
        // Set {7, 9}. Keep it in use (hourly) so the entry itself never expires.
        lab.dest(7).set_conns_for_test(1, 0);
        lab.dest(9).set_conns_for_test(1, 0);
        for hour in 1..24 {
            assert_eq!(lab.picks_for(&[to(1, hour * 3600)], Conn::Untracked), "7");
        }
        // Past lastmod + 24 h: the most loaded member goes. .9 now has 3 active; the
        // least-loaded member (.7) was chosen before the shrink and is used.
        lab.dest(9).set_conns_for_test(3, 0);
        lab.dest(7).set_conns_for_test(1, 1);
        assert_eq!(lab.picks_for(&[to(1, 24 * 3600 + 2)], Conn::Untracked), "7");
        // {7} only: even with .7 busier than .9, the set answers .7 (1 active <= weight 1).
        lab.dest(9).set_conns_for_test(0, 0);
        assert_eq!(lab.picks_for(&[to(1, 24 * 3600 + 3)], Conn::Untracked), "7");
        // Whereas with .9 still a member the set would have picked .9: prove it by
        // growing the set again and looking.
        lab.dest(7).set_conns_for_test(2, 0);
        assert_eq!(lab.picks_for(&[to(1, 24 * 3600 + 4)], Conn::Untracked), "9");
        lab.dest(7).set_conns_for_test(1, 0);
        lab.dest(9).set_conns_for_test(0, 0);
        assert_eq!(lab.picks_for(&[to(1, 24 * 3600 + 5)], Conn::Untracked), "9");
    }

    #[test]
    fn sched_lblcr_dead_members_are_skipped() {
        let mut lab = Lab::new("lblcr");
        lab.add(7, 1).add(9, 1);
        assert_eq!(lab.picks_for(&[to(1, 0)], Conn::Untracked), "9");
        lab.delete(9);
        // The set's only member is unlinked: wlc picks .7 and adds it.
        assert_eq!(lab.picks_for(&[to(1, 1)], Conn::Untracked), "7");
        lab.edit(7, 0);
        assert_eq!(lab.picks_for(&[to(1, 2)], Conn::Untracked), "-");
        assert_eq!(lab.picks_for(&[to(2, 2)], Conn::Untracked), "-");
    }
}
