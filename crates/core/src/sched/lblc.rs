//! `lblc` — locality-based least connection (ip_vs_lblc.c).
//!
//! Algorithm (from the kernel's header):
//!
//! ```text
//! if cachenode[dest_ip] is null then
//!         n, cachenode[dest_ip] <- {weighted least-conn node};
//! else
//!         n <- cachenode[dest_ip];
//!         if (n is dead) OR
//!            (n.conns > n.weight AND
//!             there is a node m with m.conns < m.weight / 2) then
//!           n, cachenode[dest_ip] <- {weighted least-conn node};
//! return n;
//! ```
//!
//! Meant for a cache cluster behind a fwmark service: the same *destination* address keeps
//! going to the same server while that server is not overloaded. "Dead" is: unlinked
//! (deleted — a re-added server is the same object and is alive again), or quiesced.
//! "conns" is ActiveConn, and the OVERLOAD threshold flag is not consulted for the cached
//! server; the weighted least-connection pick is wlc's (overhead / weight, overloaded
//! servers skipped).
//!
//! Invariants: a lookup refreshes the entry's last use even when the entry turns out to
//! be invalid; an invalid entry is replaced only when the new pick is a different server.
//! Entries are collected by the table's timer (see `locality.rs`): after 24 h unused, or
//! after 6 min unused while the table holds over 16K entries.

use std::sync::Arc;

use super::locality::{LocalityTable, DEFAULT_EXPIRATION};
use super::wlc::least_loaded;
use super::{DestChange, SchedInput, Scheduler};
use crate::dest::Destination;

/// The `lblc` scheduler.
#[derive(Debug)]
pub struct LocalityLeastConnection {
    table: LocalityTable<Arc<Destination>>,
}

impl LocalityLeastConnection {
    /// init_service: an empty table.
    pub fn new(_dests: &[Arc<Destination>]) -> Self {
        LocalityLeastConnection {
            table: LocalityTable::new(),
        }
    }
}

/// The kernel's `is_overloaded` for lblc and lblcr: more active connections than weight,
/// while some server in the service is below half its weight.
pub(crate) fn is_overloaded(dest: &Destination, dests: &[Arc<Destination>]) -> bool {
    i64::from(dest.active_conns()) > i64::from(dest.weight())
        && dests
            .iter()
            .any(|d| i64::from(d.active_conns()) * 2 < i64::from(d.weight()))
}

/// Where `dest` is in the list, by identity.
pub(crate) fn position(dests: &[Arc<Destination>], dest: &Arc<Destination>) -> Option<usize> {
    dests.iter().position(|d| Arc::ptr_eq(d, dest))
}

impl Scheduler for LocalityLeastConnection {
    fn name(&self) -> &'static str {
        "lblc"
    }

    fn dests_changed(&mut self, _dests: &[Arc<Destination>], _change: DestChange) {}

    fn schedule(&mut self, dests: &[Arc<Destination>], input: &SchedInput) -> Option<usize> {
        self.table.run_timers(input.now, DEFAULT_EXPIRATION);
        if let Some(entry) = self.table.get_mut(input.dst) {
            entry.lastuse = input.now;
            let dest = &entry.value;
            if dest.is_available() && dest.weight() > 0 && !is_overloaded(dest, dests) {
                if let Some(index) = position(dests, dest) {
                    return Some(index);
                }
            }
        }
        let index = least_loaded(dests, Destination::overhead)?;
        let chosen = &dests[index];
        // ip_vs_lblc_new: keep an entry that already names this server, else a fresh one.
        match self.table.get_mut(input.dst) {
            Some(entry) if Arc::ptr_eq(&entry.value, chosen) => {}
            Some(entry) => {
                entry.value = Arc::clone(chosen);
                entry.lastuse = input.now;
            }
            None => self.table.insert(input.dst, input.now, Arc::clone(chosen)),
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use crate::sched::testutil::{from, Conn, Lab};
    use crate::sched::SchedInput;
    use crate::time::Timestamp;
    use std::net::{IpAddr, Ipv4Addr};

    /// A connection to the cache target 10.1.0.<d> at `secs`.
    fn to(d: u8, secs: u64) -> SchedInput {
        SchedInput {
            dst: IpAddr::V4(Ipv4Addr::new(10, 1, 0, d)),
            now: Timestamp::from_secs(secs),
            ..from(101, 1)
        }
    }

    fn lab() -> Lab {
        let mut lab = Lab::new("lblc");
        lab.add(7, 2).add(9, 2);
        lab
    }

    #[test]
    fn sched_lblc_same_destination_address_sticks_to_one_server() {
        let mut lab = lab();
        // Held connections: wlc alone would alternate 9 7 9 7; the cache keeps 10.1.0.1 on
        // .9 until .9 has more active connections than its weight while .7 is below half.
        let t1 = [to(1, 0), to(1, 1), to(1, 2), to(1, 3)];
        assert_eq!(lab.picks_for(&t1, Conn::Held), "9 9 9 7");
        // 10.1.0.2 is new: wlc picks .7 (1 active vs .9's 3).
        assert_eq!(lab.picks_for(&[to(2, 4)], Conn::Held), "7");
        // 10.1.0.1 is now cached on .7 (replaced), which has 2 active = weight: kept.
        assert_eq!(lab.picks_for(&[to(1, 5)], Conn::Held), "7");
    }

    #[test]
    fn sched_lblc_overload_needs_an_underused_server() {
        let mut lab = lab();
        assert_eq!(lab.picks_for(&[to(1, 0)], Conn::Untracked), "9");
        // .9 over its weight but no server below half its weight: the cache holds.
        lab.dest(9).set_conns_for_test(5, 0);
        lab.dest(7).set_conns_for_test(1, 0);
        assert_eq!(lab.picks_for(&[to(1, 1)], Conn::Untracked), "9");
        // .7 idle (0 * 2 < 2): .9 counts as overloaded, wlc picks .7.
        lab.dest(7).set_conns_for_test(0, 0);
        assert_eq!(lab.picks_for(&[to(1, 2)], Conn::Untracked), "7");
        // The threshold OVERLOAD flag is not consulted for the cached server...
        lab.dest(7).set_overloaded_for_test(true);
        assert_eq!(lab.picks_for(&[to(1, 3)], Conn::Untracked), "7");
        // ...but the wlc pick skips it.
        assert_eq!(lab.picks_for(&[to(2, 3)], Conn::Untracked), "9");
    }

    #[test]
    fn sched_lblc_dead_server_is_replaced_and_comes_back_when_readded() {
        let mut lab = lab();
        assert_eq!(lab.picks_for(&[to(1, 0)], Conn::Untracked), "9");
        lab.edit(9, 0);
        assert_eq!(lab.picks_for(&[to(1, 1)], Conn::Untracked), "7");
        lab.edit(9, 2);
        // The entry now names .7, and .7 is fine.
        assert_eq!(lab.picks_for(&[to(1, 2)], Conn::Untracked), "7");
        // Deleted: the entry still names .7 but it is unlinked.
        lab.dest(9).set_conns_for_test(1, 0);
        let seven = lab.delete(7);
        assert_eq!(lab.picks_for(&[to(1, 3)], Conn::Untracked), "9");
        // Re-added (the same object, from the trash) with no connections: wlc picks it for
        // a new target, and the old target's entry now names .9.
        lab.add_dest(seven);
        assert_eq!(lab.picks_for(&[to(3, 4)], Conn::Untracked), "7");
        assert_eq!(lab.picks_for(&[to(1, 5)], Conn::Untracked), "9");
    }

    #[test]
    fn sched_lblc_entries_expire_after_a_day_unused() {
        let mut lab = lab();
        assert_eq!(lab.picks_for(&[to(1, 0)], Conn::Untracked), "9");
        // Make wlc prefer .7 without making .9 "overloaded" (1 active <= weight 2).
        lab.dest(9).set_conns_for_test(1, 0);
        // Used every hour: the entry survives far beyond a day.
        for hour in 1..=30 {
            assert_eq!(lab.picks_for(&[to(1, hour * 3600)], Conn::Untracked), "9");
        }
        // Unused for a day and collected by the next full check (every 30 min).
        let later = 30 * 3600 + 24 * 3600 + 1800;
        assert_eq!(lab.picks_for(&[to(1, later)], Conn::Untracked), "7");
    }

    #[test]
    fn sched_lblc_no_destination() {
        let mut lab = Lab::new("lblc");
        assert_eq!(lab.picks_for(&[to(1, 0)], Conn::Untracked), "-");
        lab.add(7, 0);
        assert_eq!(lab.picks_for(&[to(1, 0)], Conn::Untracked), "-");
    }
}
