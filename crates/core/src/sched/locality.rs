//! The destination-address table behind `lblc` and `lblcr` (the kernel's
//! `ip_vs_lblc_table` / `ip_vs_lblcr_table`), with their garbage collection.
//!
//! 1024 buckets indexed by `hash_32(daddr, 10)`. The kernel collects stale entries from a
//! timer that fires every 60 s after init_service; the core has no clock and no threads,
//! so the timer's ticks are replayed, each at its own time, from the next `schedule()` —
//! the only place that reads or grows the table — before it looks anything up. The first
//! `schedule()` starts the timer (an empty table has nothing to collect before then).
//!
//! Each tick (`ip_vs_lblc_check_expire`):
//! * every 30th tick (counter starts at 1) is a full check: entries unused for
//!   `expiration` (sysctl `lblc_expiration` / `lblcr_expiration`, 24 h) are dropped;
//! * otherwise, only when the table holds more than 16 × 1024 entries, entries unused for
//!   6 minutes are dropped, bucket by bucket from a rover, until
//!   `min((entries - 16384) * 4 / 3, 8192)` are gone.
//!
//! The kernel's `entries` counter is not decremented when lblc replaces an entry's server
//! (a drift that only makes the 16K trigger fire early); this table counts exactly.

use std::net::IpAddr;
use std::time::Duration;

use super::hash::{fold_addr, hash_32};
use crate::time::Timestamp;

/// `IP_VS_LBLC_TAB_BITS`.
const TAB_BITS: u32 = 10;
const TAB_SIZE: usize = 1 << TAB_BITS;
/// `CHECK_EXPIRE_INTERVAL`.
const CHECK_EXPIRE_INTERVAL: Duration = Duration::from_secs(60);
/// `ENTRY_TIMEOUT`: the age an entry may be collected at when the table is over-full.
const ENTRY_TIMEOUT: Duration = Duration::from_secs(6 * 60);
/// `COUNT_FOR_FULL_EXPIRATION`.
const COUNT_FOR_FULL_EXPIRATION: u32 = 30;
/// `max_size`.
const MAX_SIZE: usize = TAB_SIZE * 16;

/// The default of the `lblc_expiration` and `lblcr_expiration` sysctls.
pub(crate) const DEFAULT_EXPIRATION: Duration = Duration::from_secs(24 * 60 * 60);

/// One destination address and what the scheduler remembers for it.
#[derive(Debug)]
pub(crate) struct Entry<V> {
    pub addr: IpAddr,
    pub lastuse: Timestamp,
    pub value: V,
}

/// The table.
#[derive(Debug)]
pub(crate) struct LocalityTable<V> {
    buckets: Vec<Vec<Entry<V>>>,
    entries: usize,
    rover: usize,
    counter: u32,
    /// When the GC timer fires next; `None` until the first `schedule()`.
    next_check: Option<Timestamp>,
}

fn bucket_of(addr: IpAddr) -> usize {
    hash_32(fold_addr(addr), TAB_BITS) as usize
}

impl<V> LocalityTable<V> {
    /// An empty table (init_service).
    pub fn new() -> Self {
        LocalityTable {
            buckets: (0..TAB_SIZE).map(|_| Vec::new()).collect(),
            entries: 0,
            rover: 0,
            counter: 1,
            next_check: None,
        }
    }

    /// Number of entries.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries
    }

    /// The entry for `addr`, if any.
    pub fn get_mut(&mut self, addr: IpAddr) -> Option<&mut Entry<V>> {
        self.buckets[bucket_of(addr)]
            .iter_mut()
            .find(|e| e.addr == addr)
    }

    /// Adds an entry for an `addr` that has none.
    pub fn insert(&mut self, addr: IpAddr, lastuse: Timestamp, value: V) {
        self.buckets[bucket_of(addr)].push(Entry {
            addr,
            lastuse,
            value,
        });
        self.entries += 1;
    }

    /// Replays every GC timer tick due at or before `now`, each at its own time.
    pub fn run_timers(&mut self, now: Timestamp, expiration: Duration) {
        let mut next = *self.next_check.get_or_insert(now + CHECK_EXPIRE_INTERVAL);
        while next <= now {
            if self.entries == 0 {
                // Nothing to collect: the remaining ticks only step the counter round its
                // 1..=30 cycle (a full check of an empty table leaves the rover in place).
                let interval = CHECK_EXPIRE_INTERVAL.as_millis() as u64;
                let ticks = (now.as_millis() - next.as_millis()) / interval + 1;
                let steps = (ticks % u64::from(COUNT_FOR_FULL_EXPIRATION)) as u32;
                self.counter = (self.counter - 1 + steps) % COUNT_FOR_FULL_EXPIRATION + 1;
                next = Timestamp(next.as_millis() + ticks * interval);
                break;
            }
            self.check_expire(next, expiration);
            next = next + CHECK_EXPIRE_INTERVAL;
        }
        self.next_check = Some(next);
    }

    /// One timer tick at `now` (`ip_vs_lblc_check_expire`).
    fn check_expire(&mut self, now: Timestamp, expiration: Duration) {
        if self.counter.is_multiple_of(COUNT_FOR_FULL_EXPIRATION) {
            // ip_vs_lblc_full_check: one lap of the buckets leaves the rover where it was.
            for bucket in 0..TAB_SIZE {
                self.expire_bucket(bucket, now, expiration);
            }
            self.counter = 1;
            return;
        }
        if self.entries <= MAX_SIZE {
            self.counter += 1;
            return;
        }
        let goal = ((self.entries - MAX_SIZE) * 4 / 3).min(MAX_SIZE / 2);
        let mut removed = 0;
        let mut j = self.rover;
        for _ in 0..TAB_SIZE {
            j = (j + 1) & (TAB_SIZE - 1);
            removed += self.expire_bucket(j, now, ENTRY_TIMEOUT);
            if removed >= goal {
                break;
            }
        }
        self.rover = j;
    }

    /// Drops the entries of one bucket unused for `age` at `now`; how many went.
    fn expire_bucket(&mut self, bucket: usize, now: Timestamp, age: Duration) -> usize {
        let entries = &mut self.buckets[bucket];
        let before = entries.len();
        entries.retain(|e| now < e.lastuse + age);
        let removed = before - entries.len();
        self.entries -= removed;
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn addr(i: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + i))
    }

    #[test]
    fn sched_locality_full_check_every_30_ticks() {
        let mut t: LocalityTable<()> = LocalityTable::new();
        let start = Timestamp::ZERO;
        t.run_timers(start, DEFAULT_EXPIRATION);
        t.insert(addr(1), start, ());
        // Ticks at 60 s, 120 s, ...; the 30th (at 30 min) is the first full check, but the
        // entry is not a day old yet.
        t.run_timers(Timestamp::from_secs(24 * 3600 - 1), DEFAULT_EXPIRATION);
        assert_eq!(t.len(), 1);
        // Full checks happen at multiples of 30 min: 24 h is one of them.
        t.run_timers(Timestamp::from_secs(24 * 3600), DEFAULT_EXPIRATION);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn sched_locality_full_check_waits_for_its_tick() {
        let mut t: LocalityTable<()> = LocalityTable::new();
        t.run_timers(Timestamp::from_secs(10), DEFAULT_EXPIRATION);
        t.insert(addr(1), Timestamp::from_secs(40), ());
        // Ticks at 70 s + k·60 s, full checks at 10 s + n·1800 s. The entry turns a day old
        // at 86440 s; the first full check after that is at 10 + 49·1800 = 88210 s.
        t.run_timers(Timestamp::from_secs(88_209), DEFAULT_EXPIRATION);
        assert_eq!(t.len(), 1);
        t.run_timers(Timestamp::from_secs(88_210), DEFAULT_EXPIRATION);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn sched_locality_idle_fast_forward_keeps_the_full_check_phase() {
        // An empty table skips its ticks arithmetically; the full checks must still fall
        // on every 30th tick counted from the start (multiples of 1800 s here).
        let mut t: LocalityTable<()> = LocalityTable::new();
        t.run_timers(Timestamp::ZERO, DEFAULT_EXPIRATION);
        t.run_timers(Timestamp::from_secs(100_000), DEFAULT_EXPIRATION);
        t.insert(addr(1), Timestamp::ZERO, ());
        t.run_timers(Timestamp::from_secs(100_799), DEFAULT_EXPIRATION);
        assert_eq!(t.len(), 1);
        t.run_timers(Timestamp::from_secs(100_800), DEFAULT_EXPIRATION);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn sched_locality_overfull_table_drops_six_minute_old_entries() {
        let mut t: LocalityTable<()> = LocalityTable::new();
        t.run_timers(Timestamp::ZERO, DEFAULT_EXPIRATION);
        let n = 20_000;
        for i in 0..n {
            t.insert(addr(i), Timestamp::ZERO, ());
        }
        // First tick at 60 s: nothing is 6 minutes old yet.
        t.run_timers(Timestamp::from_secs(60), DEFAULT_EXPIRATION);
        assert_eq!(t.len(), n as usize);
        // Tick at 360 s: goal (20000 - 16384) * 4 / 3 = 4821, collected whole buckets at a
        // time (about 20 entries each).
        t.run_timers(Timestamp::from_secs(360), DEFAULT_EXPIRATION);
        let gone = n as usize - t.len();
        assert!((4821..4821 + 60).contains(&gone), "{gone}");
        // Now below the limit: later ticks leave the table alone until the full check.
        let left = t.len();
        assert!(left <= MAX_SIZE);
        t.run_timers(Timestamp::from_secs(1799), DEFAULT_EXPIRATION);
        assert_eq!(t.len(), left);
    }
}
