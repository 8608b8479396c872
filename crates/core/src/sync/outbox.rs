//! The master's queue from the packet workers to the sync thread.
//!
//! A worker that decides a connection needs syncing pushes the entry (a fixed-size
//! [`SyncConn`]) into its own shard; the sync thread takes a whole shard at a time by
//! swapping it with an empty buffer of the same capacity. Neither side allocates once the
//! master runs (the buffers are reserved when it starts), and a worker never waits: it
//! only tries the shard's lock, which the sync thread holds for one swap, and counts the
//! entry as dropped when the lock is taken or the shard is full. With more workers than
//! shards two of them share one; they then drop a little more, never block.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Mutex;

use masq_wire::ipvs_sync::SyncConn;

use super::counters::SyncCounters;

/// Shards: one per worker up to this many.
const SHARDS: usize = 8;
/// Entries a shard holds between two drains (the sync thread drains every few
/// milliseconds; a burst beyond this is dropped and counted).
pub const SHARD_CAPACITY: usize = 1024;

/// Entries waiting for the sync thread.
#[derive(Debug, Default)]
pub struct SyncOutbox {
    /// Whether a master runs: the workers check this first, and do nothing else when not.
    active: AtomicBool,
    shards: [Mutex<Vec<SyncConn>>; SHARDS],
}

impl SyncOutbox {
    /// Whether a master runs (one relaxed load: cheap enough for every packet).
    pub fn is_active(&self) -> bool {
        self.active.load(Relaxed)
    }

    /// Starts or stops taking entries. Starting reserves the shards' buffers (on the
    /// control plane, so that the workers never allocate); stopping forgets what waits.
    pub fn set_active(&self, active: bool) {
        for shard in &self.shards {
            let mut entries = shard.lock().unwrap_or_else(|e| e.into_inner());
            entries.clear();
            if active {
                entries.reserve_exact(SHARD_CAPACITY);
            }
        }
        self.active.store(active, Relaxed);
    }

    /// Queues `entry` in shard `shard` (taken modulo the shard count), or counts it in
    /// `counters` as dropped when the shard is busy or full. Never waits, never
    /// allocates.
    pub fn push(&self, shard: usize, entry: SyncConn, counters: &SyncCounters) {
        let queued = match self.shards[shard % SHARDS].try_lock() {
            Ok(mut entries) if entries.len() < SHARD_CAPACITY.min(entries.capacity()) => {
                entries.push(entry);
                true
            }
            Ok(_) | Err(_) => false,
        };
        if !queued {
            counters.conns_queue_full.fetch_add(1, Relaxed);
        }
    }

    /// Takes every waiting entry, shard after shard, into `spare` (cleared first) and
    /// calls `f` on each. `spare` should have [`SHARD_CAPACITY`] of room: it is swapped
    /// with each shard's buffer, so that the buffers keep their capacity.
    pub fn drain(&self, spare: &mut Vec<SyncConn>, mut f: impl FnMut(&SyncConn)) {
        for shard in &self.shards {
            spare.clear();
            {
                let mut entries = shard.lock().unwrap_or_else(|e| e.into_inner());
                if entries.is_empty() {
                    continue;
                }
                std::mem::swap(&mut *entries, spare);
            }
            spare.iter().for_each(&mut f);
        }
        spare.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn entry(cport: u16) -> SyncConn {
        let a = IpAddr::V4(Ipv4Addr::LOCALHOST);
        SyncConn {
            protocol: 6,
            flags: 0,
            state: 1,
            caddr: a,
            cport,
            vaddr: a,
            vport: 80,
            daddr: a,
            dport: 80,
            fwmark: 0,
            timeout: 900,
            seq: None,
        }
    }

    #[test]
    fn holds_a_shard_full_then_counts_drops_and_keeps_its_capacity() {
        let outbox = SyncOutbox::default();
        let counters = SyncCounters::default();
        outbox.push(0, entry(1), &counters);
        assert_eq!(
            counters.conns_queue_full.load(Relaxed),
            1,
            "no master: no room reserved"
        );
        outbox.set_active(true);
        for port in 0..SHARD_CAPACITY as u16 + 5 {
            outbox.push(3, entry(port), &counters);
        }
        outbox.push(4, entry(9999), &counters);
        assert_eq!(counters.conns_queue_full.load(Relaxed), 6);
        let mut spare = Vec::with_capacity(SHARD_CAPACITY);
        let mut ports = Vec::new();
        outbox.drain(&mut spare, |e| ports.push(e.cport));
        assert_eq!(ports.len(), SHARD_CAPACITY + 1);
        assert_eq!(ports[..3], [0, 1, 2]);
        assert_eq!(ports.last(), Some(&9999));
        // Both buffers came back with their room: the next round queues a full shard again.
        for port in 0..SHARD_CAPACITY as u16 {
            outbox.push(3, entry(port), &counters);
        }
        assert_eq!(counters.conns_queue_full.load(Relaxed), 6);
        outbox.set_active(false);
        assert!(!outbox.is_active());
        let mut left = 0;
        outbox.drain(&mut spare, |_| left += 1);
        assert_eq!(left, 0, "a stopped master forgets what waited");
    }
}
